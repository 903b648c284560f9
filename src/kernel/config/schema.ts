import { z } from 'zod';
import { daemonSchema } from '../../daemon/config.ts';
import { rewriteSchema } from '../../quality/config.ts';
import { parseKeyCombo } from '../keys.ts';

/**
 * The kernel's part of the config schema. Plugins contribute the schemas of what they read
 * (provider instances, output options, their own options); `buildConfigSchema` merges them.
 * Subsystems outside the kernel own their sections (`daemon`: src/daemon/config.ts, with
 * retention and the control panel; `rewrite`: src/quality/config.ts); this file puts them in place.
 *
 * Reload level is a property of the schema: a section whose schema carries
 * `meta({ reload: 'transport' })` rebuilds the shared HTTP client when it changes; everything
 * else is request-level and applies to the next session.
 */
export type ReloadLevel = 'transport' | 'request';

export const transportSchema = z
  .strictObject({
    http2: z.boolean().default(true),
    connectTimeoutMs: z.number().int().positive().default(5000),
    headersTimeoutMs: z.number().int().positive().default(30000),
    bodyTimeoutMs: z.number().int().positive().default(30000),
    /** Idle HTTP/2 sessions live this long: long enough to span the gaps between dictations. */
    keepAliveMs: z.number().int().positive().default(600000),
    /** Below common server idle timeouts (~30-60 s); equal periods race. 0 disables PING. */
    pingIntervalMs: z.number().int().nonnegative().default(20000),
    maxConnectionsPerOrigin: z.number().int().positive().default(4),
    uploadsOverHttp1: z.boolean().default(false),
    /** auto = honour HTTPS_PROXY / HTTP_PROXY / NO_PROXY; none; or a proxy URL. */
    proxy: z.union([z.literal('auto'), z.literal('none'), z.url()]).default('auto'),
    /**
     * Extra CA certificates to trust, e.g. a company proxy's: PEM text, or the path of a PEM file
     * (absolute, or relative to the config file), read and checked when the config loads.
     */
    ca: z.string().optional(),
    /** Grace period for in-flight requests when the client is rebuilt or closed. */
    drainTimeoutMs: z.number().int().positive().default(10000),
  })
  .meta({ reload: 'transport' satisfies ReloadLevel });

export type TransportConfig = z.output<typeof transportSchema>;

const providerRefSchema = z.string().min(1);

/**
 * Providers asked, in order, when the one before failed in a way retrying does not fix (see
 * `failsOver` in failover.ts). Names of `providers` entries, checked when the config loads.
 */
const fallbackSchema = z.array(providerRefSchema).max(8).default([]);

/** Start the next provider of the chain in parallel when the current one has not answered by then (ms). */
const hedgeSchema = z.number().int().positive().optional();

export const asrSchema = z.strictObject({
  provider: providerRefSchema.optional(),
  model: z.string().min(1).optional(),
  language: z.string().min(2).optional(),
  prompt: z.string().optional(),
  temperature: z.number().min(0).max(1).optional(),
  /** Stream the transcription (SSE) when the model supports it. */
  stream: z.boolean().default(true),
  timeoutMs: z.number().int().positive().default(120000),
  /** Retries of a failed transcription when the error is retryable (429, 5xx, dropped connection). */
  retries: z.number().int().min(0).max(5).default(2),
  fallback: fallbackSchema,
  hedgeAfterMs: hedgeSchema,
});

export const correctionSchema = z.strictObject({
  enabled: z.boolean().default(true),
  provider: providerRefSchema.optional(),
  model: z.string().min(1).optional(),
  // Wire-specific keys (OpenAI's protocol, topP, maxTokensParam, reasoningEffort) are declared by
  // the plugins that read them (`correctionOptions`), merged in by validate.ts.
  stream: z.boolean().default(true),
  temperature: z.number().min(0).max(2).optional(),
  maxTokens: z.number().int().positive().optional(),
  /** Deadline for the correction call; past it the raw transcript is delivered. */
  timeoutMs: z.number().int().positive().default(8000),
  /** Retries within `timeoutMs` when the error is retryable. */
  retries: z.number().int().min(0).max(5).default(1),
  fallback: fallbackSchema,
  hedgeAfterMs: hedgeSchema,
  /** Path to a file (relative to the config file); loaded into `systemPromptText`. */
  systemPrompt: z.string().optional(),
  userPrompt: z.string().optional(),
});

export const audioSchema = z.strictObject({
  source: z.string().default('mic-native'),
  device: z.string().default('default'),
  /**
   * Keep the microphone open while the daemon runs and start every recording with this much of
   * the audio from before the key press, so the first word is never cut. 0 (the default): the
   * microphone is open only while recording. A privacy trade-off: `koto status` shows it open.
   */
  preRollMs: z.number().int().min(0).max(5000).default(0),
  /** Hands-free mode (`koto start --vad`, `hotkey.mode: vad`): this much silence after speech ends the recording. */
  silenceMs: z.number().int().min(300).max(10_000).default(1500),
  /** Hands-free mode: a recording with no speech at all within this long is cancelled. */
  noSpeechMs: z.number().int().min(1000).max(120_000).default(10_000),
  /**
   * Cut leading and trailing silence from live recordings before they are uploaded (the full
   * recording stays on disk). Files given to `koto transcribe` / `koto run` are never trimmed.
   */
  trimSilence: z.boolean().default(true),
});

/**
 * Prices per model (USD): `input`/`output` per 1M tokens, `perMinute` per minute of audio. A key
 * is a model (or Azure deployment) name, `provider/model`, or a provider name; it overrides
 * the dated defaults of src/kernel/pricing.ts.
 */
export const priceSchema = z.strictObject({
  input: z.number().nonnegative().optional(),
  output: z.number().nonnegative().optional(),
  perMinute: z.number().nonnegative().optional(),
});

export const pricingSchema = z.record(z.string().min(1), priceSchema).default({});

/** Warn (once a month) when the month's estimated spend passes `monthly` (USD). */
export const budgetSchema = z.strictObject({
  monthly: z.number().positive().optional(),
});

/** The daemon's built-in global hotkey (a trigger plugin serves it). No `keys`: no hotkey. */
export const hotkeySchema = z.strictObject({
  keys: z
    .string()
    .optional()
    .superRefine((text, ctx) => {
      if (text === undefined) return;
      const parsed = parseKeyCombo(text);
      if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.problem });
    }),
  /**
   * hold: recording while the keys are held; toggle: a press starts, the next press stops; vad
   * (hands-free): a press starts, the recording ends by itself after `audio.silenceMs` of silence
   * (or at the next press).
   */
  mode: z.enum(['hold', 'toggle', 'vad']).default('hold'),
  /** auto: x11 when DISPLAY is set, else evdev. */
  backend: z.enum(['auto', 'x11', 'evdev']).default('auto'),
  /** evdev: the keyboards to read (default: every /dev/input/event* that has keys). */
  devices: z.array(z.string().min(1)).optional(),
});

/** Start/stop/error cues. Off by default: a dictation tool that beeps unasked is not welcome. */
export const feedbackSchema = z.strictObject({
  /** true: built-in short tones; or one WAV file per cue (relative to the config file). */
  sounds: z
    .union([z.boolean(), z.strictObject({ start: z.string().optional(), stop: z.string().optional(), error: z.string().optional() })])
    .default(false),
  /** Desktop notification (notify-send / osascript) when a session fails or falls back. */
  notify: z.boolean().default(false),
});

/**
 * A key pressed after the text was delivered into a window by `paste` or `type` (a coding
 * agent's prompt: Enter sends it). Nothing by default; profiles set it per application.
 */
export const afterSchema = z
  .strictObject({
    enter: z.boolean().default(false),
    tab: z.boolean().default(false),
    /** Wait after a paste before the key: the application reads the clipboard when it gets to the paste key. */
    delayMs: z.number().int().min(0).max(10_000).default(300),
  })
  .refine((after) => !(after.enter && after.tab), { message: 'choose one key: enter or tab' });

const NAME_PATTERN = /^[A-Za-z0-9_.-]+$/;

/**
 * Per-application settings (`profiles`), chosen by the window focused when a dictation starts.
 * Sections are merged over the base config (asr, correction, after: key by key; output: replaced;
 * dictionary: terms added) and validated as a whole in validate.ts, which names the profile in
 * every error; here they are only objects.
 */
export const profileSchema = z.strictObject({
  name: z.string().regex(NAME_PATTERN, 'profile names use letters, digits, _ . -'),
  match: z.strictObject({
    /** Window class / app id (X11 WM_CLASS class or instance, Wayland app id), any case. */
    app: z.union([z.string().trim().min(1), z.array(z.string().trim().min(1))]).optional(),
    /** A regular expression (JavaScript syntax) searched in the window title; "" matches any. */
    title: z.string().optional(),
  }),
  asr: z.record(z.string(), z.unknown()).optional(),
  correction: z.record(z.string(), z.unknown()).optional(),
  /** Terms added to the base dictionary for this profile. */
  dictionary: z.array(z.string().trim().min(1)).optional(),
  output: z.array(z.lazy(() => outputEntrySchema)).optional(),
  after: z.record(z.string(), z.unknown()).optional(),
});

export const pluginEntrySchema = z.union([
  z.string().min(1),
  z.strictObject({ use: z.string().min(1), options: z.record(z.string(), z.unknown()).optional() }),
]);

export const outputEntrySchema = z.union([z.string().min(1), z.looseObject({ use: z.string().min(1) })]);

/** A provider instance before its plugin's schema has checked it. */
export const providerEntrySchema = z.looseObject({ use: z.string().min(1) });

/** The kernel-owned sections; `providers` and `output` entries are refined by plugin schemas. */
export const baseSections = {
  plugins: z.array(pluginEntrySchema).default([]),
  providers: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'provider names use letters, digits, _ . -'), providerEntrySchema).default({}),
  asr: asrSchema.prefault({}),
  correction: correctionSchema.prefault({}),
  dictionary: z.string().optional(),
  audio: audioSchema.prefault({}),
  output: z.array(outputEntrySchema).optional(),
  transport: transportSchema.prefault({}),
  daemon: daemonSchema.prefault({}),
  hotkey: hotkeySchema.prefault({}),
  feedback: feedbackSchema.prefault({}),
  rewrite: rewriteSchema.prefault({}),
  pricing: pricingSchema,
  budget: budgetSchema.prefault({}),
  after: afterSchema.prefault({}),
  profiles: z.array(profileSchema).default([]),
  /** Plugin options by plugin name, for plugins that are built in (listed ones can inline them). */
  pluginOptions: z.record(z.string(), z.record(z.string(), z.unknown())).default({}),
};

export const baseConfigSchema = z.strictObject(baseSections);

export type RawConfig = z.output<typeof baseConfigSchema>;

export function reloadLevelOf(section: string): ReloadLevel {
  const schema = (baseSections as Record<string, z.ZodType>)[section];
  if (!schema) return 'request';
  // prefault/default wrappers don't carry meta; look through them to the inner schema.
  let current: z.ZodType | undefined = schema;
  while (current) {
    const meta = current.meta() as { reload?: ReloadLevel } | undefined;
    if (meta?.reload) return meta.reload;
    const def: { innerType?: z.ZodType } = (current as unknown as { def: { innerType?: z.ZodType } }).def;
    current = def.innerType;
  }
  return 'request';
}
