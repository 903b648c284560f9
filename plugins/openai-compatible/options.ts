import { z } from 'zod';
import { realtimeOptionSchema } from './realtime-options.ts';
import { DEFAULT_MAX_UPLOAD_BYTES } from './upload.ts';
import { envUrlError, isInsecureRemote, urlProblem, type UrlRules } from './url.ts';

export const DEFAULT_BASE_URL = 'https://api.openai.com/v1';
export const DEFAULT_ASR_MODEL = 'gpt-4o-mini-transcribe';
export const DEFAULT_CORRECTION_MODEL = 'gpt-4.1-mini';

/** Models that accept `stream: true` on /audio/transcriptions unless configured otherwise. */
export const DEFAULT_STREAMING_ASR_MODELS = /^gpt-4o(?:-mini)?-transcribe(?:$|-)/;
/** Models known to accept the `keywords` transcription field (`keywords: 'auto'`). */
export const KEYWORD_MODELS = /^gpt-transcribe(?:$|-)/;
/** Never streams, whatever the configuration says (the API ignores `stream` for it). */
export const NON_STREAMING_MODELS = /^whisper-1$/;

const modelPattern = z.string().min(1);

const BASE_URL_RULES: UrlRules = { schemes: ['https', 'http'], example: DEFAULT_BASE_URL, credentialsGoTo: 'apiKey or headers' };
const INSECURE_MESSAGE = 'plain http is only allowed for loopback hosts; use https, or set allowInsecureHttp: true to accept the risk';

/** Smallest `maxUploadBytes`: parts of about 2 s of audio, and room for the request's fields. */
export const MIN_MAX_UPLOAD_BYTES = 64 * 1024;

/**
 * One provider instance (`providers.<name>` with `use: openai-compatible`).
 * Any server that speaks the OpenAI REST API: OpenAI itself, vLLM, llama.cpp, LocalAI, Groq, …
 */
export const providerSchema = z
  .strictObject({
    baseUrl: z
      .string()
      .trim()
      .superRefine((value, ctx) => {
        const problem = urlProblem(value, BASE_URL_RULES);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      })
      .default(DEFAULT_BASE_URL),
    /** Bearer token; optional for local servers that need none. */
    apiKey: z.string().min(1).optional(),
    /** Extra request headers (e.g. `OpenAI-Organization`, a gateway's key). */
    headers: z.record(z.string().min(1), z.string()).default({}),
    /** Extra query parameters added to every request URL (e.g. `api-version`). */
    query: z.record(z.string().min(1), z.string()).default({}),
    asrModel: z.string().min(1).default(DEFAULT_ASR_MODEL),
    correctionModel: z.string().min(1).default(DEFAULT_CORRECTION_MODEL),
    /** Allow plain http to a non-loopback host (audio and key travel unencrypted). */
    allowInsecureHttp: z.boolean().default(false),
    /**
     * Send dictionary terms as the `keywords` field: `auto` only for models known to accept it,
     * `true` always, `false` never (terms are folded into `prompt` instead).
     */
    keywords: z.union([z.literal('auto'), z.boolean()]).default('auto'),
    /**
     * Models that accept `stream: true` for transcription: a regular expression (string) or a
     * list whose entries are exact model names or `/regex/`. `whisper-1` never streams.
     */
    streamingAsrModels: z.union([modelPattern, z.array(modelPattern)]).optional(),
    /**
     * Largest transcription request (bytes, multipart framing included); default 25 MB, OpenAI's
     * limit. A longer recording is sent as FLAC (ffmpeg), else in parts cut at pauses.
     */
    maxUploadBytes: z.number().int().min(MIN_MAX_UPLOAD_BYTES).default(DEFAULT_MAX_UPLOAD_BYTES),
    /** Upload audio over the HTTP/1.1 upload client (`api.http.uploads`); default: the transport's `uploadsOverHttp1`. */
    uploadsOverHttp1: z.boolean().optional(),
    /**
     * Stream live recordings over the Realtime transcription WebSocket while the user speaks
     * (`true`, or settings: model, url, turnDetection, noiseReduction, finalTimeoutMs, chunkMs).
     * Files, and any recording whose stream fails, use the upload.
     */
    realtime: realtimeOptionSchema,
  })
  .superRefine((value, ctx) => {
    // A malformed baseUrl has its own issue already; this part only judges well-formed ones.
    if (urlProblem(value.baseUrl, BASE_URL_RULES) === undefined && isInsecureRemote(value.baseUrl) && !value.allowInsecureHttp) {
      ctx.addIssue({ code: 'custom', path: ['baseUrl'], message: INSECURE_MESSAGE });
    }
    for (const pattern of patternsOf(value.streamingAsrModels)) {
      if (pattern instanceof Error) ctx.addIssue({ code: 'custom', path: ['streamingAsrModels'], message: pattern.message });
    }
  });

export type ProviderOptions = z.output<typeof providerSchema>;

type Pattern = string | RegExp;

function patternsOf(value: string | readonly string[] | undefined): (Pattern | Error)[] {
  if (value === undefined) return [];
  const compile = (source: string): RegExp | Error => {
    try {
      return new RegExp(source);
    } catch (err) {
      return new Error(`"${source}" is not a valid regular expression (${err instanceof Error ? err.message : String(err)})`);
    }
  };
  if (typeof value === 'string') return [compile(value)];
  return value.map((entry) => {
    const slashed = /^\/(.+)\/([a-z]*)$/.exec(entry);
    if (!slashed) return entry;
    try {
      return new RegExp(slashed[1] ?? '', slashed[2]);
    } catch (err) {
      return new Error(`${entry} is not a valid regular expression (${err instanceof Error ? err.message : String(err)})`);
    }
  });
}

/** Whether `model` may be asked for an SSE transcription by this instance. */
export function isStreamingAsrModel(options: Pick<ProviderOptions, 'streamingAsrModels'>, model: string): boolean {
  if (NON_STREAMING_MODELS.test(model)) return false;
  if (options.streamingAsrModels === undefined) return DEFAULT_STREAMING_ASR_MODELS.test(model);
  return patternsOf(options.streamingAsrModels).some((p) => (typeof p === 'string' ? p === model : p instanceof RegExp && p.test(model)));
}

/** Whether dictionary terms go out as `keywords` (else they are folded into `prompt`). */
export function sendsKeywords(options: Pick<ProviderOptions, 'keywords'>, model: string): boolean {
  return options.keywords === 'auto' ? KEYWORD_MODELS.test(model) : options.keywords;
}

/** The instances derived from OPENAI_API_KEY / OPENAI_BASE_URL when the config names none. */
export function defaultProviders(env: NodeJS.ProcessEnv): Record<string, Record<string, unknown>> {
  const apiKey = env.OPENAI_API_KEY;
  if (!apiKey) return {};
  const baseUrl = env.OPENAI_BASE_URL?.trim() || DEFAULT_BASE_URL;
  // No config file holds this value, so the error must name the variable, not providers.openai.baseUrl.
  const fix = `correct OPENAI_BASE_URL (e.g. export OPENAI_BASE_URL=${DEFAULT_BASE_URL}), or unset it to use OpenAI`;
  const problem = urlProblem(baseUrl, BASE_URL_RULES);
  if (problem) throw envUrlError('OPENAI_BASE_URL', problem, fix);
  if (isInsecureRemote(baseUrl)) {
    throw envUrlError(
      'OPENAI_BASE_URL',
      `is plain http to a host that is not this machine: audio and the API key would travel unencrypted`,
      `${fix}; for a trusted plain-http server configure a provider with allowInsecureHttp: true`,
    );
  }
  return { openai: { baseUrl, apiKey } };
}
