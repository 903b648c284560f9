import { z } from 'koto-voice';

/**
 * The plugin's name. It is the package name on purpose: a config names the plugin by package
 * (`plugins: [koto-plugin-deepgram]`) and a provider instance says `use: koto-plugin-deepgram`;
 * the kernel matches `use` against plugin names.
 */
export const NAME = 'koto-plugin-deepgram';
/** Keep in step with package.json. */
export const VERSION = '0.1.0';

export const DEFAULT_BASE_URL = 'https://api.deepgram.com';
export const DEFAULT_MODEL = 'nova-3';

/** One provider instance: `providers.<name>` with `use: koto-plugin-deepgram`. */
export const providerSchema = z.strictObject({
  /** Where the API lives; `/v1/listen` is appended (a path prefix is kept, for proxies). */
  baseUrl: z.url().default(DEFAULT_BASE_URL),
  /** Sent as `Authorization: Token <apiKey>`; usually `${DEEPGRAM_API_KEY}`. */
  apiKey: z.string().min(1, 'the API key is empty'),
  /** Model used when `asr.model` is not set. */
  model: z.string().min(1).default(DEFAULT_MODEL),
  /** `smart_format`: punctuation, numerals, paragraphs. */
  smartFormat: z.boolean().default(true),
  /** Extra query parameters for every transcription (they win over the plugin's own). */
  query: z.record(z.string(), z.string()).default({}),
});

export type ProviderOptions = z.output<typeof providerSchema>;

/** Plugin-wide options: `plugins: [{ use: koto-plugin-deepgram, options: { … } }]`. */
export const pluginOptionsSchema = z.strictObject({
  /** Open the connection when a session starts, while the user is still speaking. */
  prewarm: z.boolean().default(true),
  /** Audio larger than this goes through the kernel's upload client (`api.http.uploads`). */
  uploadThresholdBytes: z
    .number()
    .int()
    .positive()
    .default(4 * 1024 * 1024),
});

export type PluginOptions = z.output<typeof pluginOptionsSchema>;
