import { z } from 'zod';
import { isInsecureRemote, urlProblem, type UrlRules } from './url.ts';

const SOCKET_URL_RULES: UrlRules = {
  schemes: ['wss', 'ws'],
  example: 'wss://api.openai.com/v1/realtime',
  credentialsGoTo: 'apiKey or headers',
};

/** Server voice-activity detection (hands-free): the server commits a segment at each pause. */
export const serverVadSchema = z.strictObject({
  type: z.literal('server_vad'),
  /** Activation threshold 0..1 (server default 0.5); higher needs louder speech. */
  threshold: z.number().min(0).max(1).optional(),
  /** Audio kept before detected speech, ms (server default 300). */
  prefixPaddingMs: z.number().int().min(0).optional(),
  /** Silence that ends a segment, ms (server default 500). */
  silenceDurationMs: z.number().int().min(0).optional(),
});

/**
 * Streaming transcription over the Realtime WebSocket while the user speaks (live recordings
 * only; files always use the upload). `true` takes every default.
 */
export const realtimeSettingsSchema = z.strictObject({
  enabled: z.boolean().default(true),
  /** Transcription model of the realtime session; default `asr.model`, else the instance's `asrModel`. */
  model: z.string().min(1).optional(),
  /**
   * The WebSocket URL when it is not `{baseUrl}/realtime` (a gateway): `wss://…` (`ws://` only
   * for loopback). `intent=transcription` and the instance's `query` are added.
   */
  url: z
    .string()
    .trim()
    .superRefine((value, ctx) => {
      const problem = urlProblem(value, SOCKET_URL_RULES);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
      // The kernel refuses such a socket when it opens; better said when the config loads.
      else if (isInsecureRemote(value))
        ctx.addIssue({ code: 'custom', message: 'must be wss:// (plain ws:// only for a loopback host): the key and audio travel in it' });
    })
    .optional(),
  /** `off` (push-to-talk: one segment, committed at stop) or server VAD (hands-free). */
  turnDetection: z.union([z.literal('off'), z.literal('server_vad'), serverVadSchema]).default('off'),
  /** Server-side noise reduction before transcription (`near_field`: headset; `far_field`: laptop mic). */
  noiseReduction: z.enum(['near_field', 'far_field']).optional(),
  /**
   * Longest wait (ms) at stop for the final transcript (socket still connecting, commit, last
   * segment). Past it the recording is uploaded instead.
   */
  finalTimeoutMs: z.number().int().positive().default(15_000),
  /** Audio per `input_audio_buffer.append` event, ms (default 100). */
  chunkMs: z.number().int().min(10).max(1000).default(100),
});

export const realtimeOptionSchema = z.union([z.boolean(), realtimeSettingsSchema]).default(false);

export type RealtimeSettings = z.output<typeof realtimeSettingsSchema>;
export type RealtimeOption = z.output<typeof realtimeOptionSchema>;

/** The settings of an instance's `realtime` option, or undefined when streaming is off. */
export function realtimeSettings(option: RealtimeOption | undefined): RealtimeSettings | undefined {
  if (option === undefined || option === false) return undefined;
  const settings = option === true ? realtimeSettingsSchema.parse({}) : option;
  return settings.enabled ? settings : undefined;
}
