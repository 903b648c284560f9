import type { z } from 'zod';
import type { PluginErrorSpec } from './errors.ts';
import type { KotoConfig } from './config/validate.ts';
import type { PluginHooks } from './hooks.ts';
import type { Logger } from './logger.ts';
import type { KotoPaths } from './paths.ts';
import type { KotoHttp } from './transport.ts';
import type { FocusedWindow, SessionContext } from './types.ts';

/** What a plugin declares before it runs; the kernel reads it to validate config. */
export interface PluginDefinition<Options extends z.ZodType = z.ZodType> {
  /** Unique name; also the tap name of everything the plugin taps. */
  readonly name: string;
  readonly version?: string | undefined;
  /** Range of koto-voice versions the plugin works with (semver, e.g. `^0.1`). */
  readonly koto?: string | undefined;
  /** Schema of the plugin's own options (`plugins: [{ use, options }]` or `pluginOptions.<name>`). */
  readonly options?: Options | undefined;
  /** Plugins that must be applied first, by name. */
  readonly dependencies?: readonly string[] | undefined;
  /** Schema of a provider instance whose `use` names this plugin. */
  readonly provider?: z.ZodType | undefined;
  /** What provider instances of this plugin can do, for `koto plugins` and clear errors. */
  readonly capabilities?: readonly ('asr' | 'correction')[] | undefined;
  /** Outputs this plugin serves, each with the schema of its options. */
  readonly outputs?: Readonly<Record<string, z.ZodType>> | undefined;
  /** Audio sources this plugin serves. */
  readonly audioSources?: readonly string[] | undefined;
  /**
   * The plugin's own error codes, `<NAME>_ERR_<WHAT>` (e.g. `ACME_ERR_QUOTA` for `koto-plugin-acme`),
   * each with a message and fix template and whether a retry may help. Throw them with
   * `kotoError('ACME_ERR_QUOTA', params)`; `koto plugins --json` lists them.
   */
  readonly errors?: Readonly<Record<string, PluginErrorSpec>> | undefined;
  /**
   * Provider instances derived from the environment when the config names none
   * (e.g. OPENAI_API_KEY → an `openai` instance), in order of preference.
   */
  readonly defaultProviders?: ((env: NodeJS.ProcessEnv) => { readonly [name: string]: Record<string, unknown> | undefined }) | undefined;
  /**
   * Among plugins offering default providers, the lowest number is preferred (default 50).
   * An offline fallback uses a high number, so a configured cloud key wins.
   */
  readonly defaultPriority?: number | undefined;
  readonly apply: (api: PluginApi, options: Readonly<z.output<Options>>) => void | Promise<void>;
}

/** The plugin's window onto the kernel. Everything here is the public plugin API. */
export interface PluginApi {
  readonly name: string;
  readonly hooks: PluginHooks;
  /** The kernel's shared HTTP client (an undici Dispatcher). Never build another. */
  readonly http: KotoHttp;
  readonly log: Logger;
  readonly paths: KotoPaths;
  /** The environment the kernel was created with (`createKernel({ env })`, else process.env). */
  readonly env: Readonly<NodeJS.ProcessEnv>;
  /** The current config; a running session uses its own snapshot (`session.config`). */
  config(): KotoConfig;
  /** Generic value-to-secret registration: anything passed here is scrubbed from logs and errors. */
  registerSecret(value: string): void;
  /**
   * Reports interim text for a session outside a hook call — a realtime stream transcribing
   * while the user still speaks — to the `interim` hook and the caller's listener.
   */
  interim(session: SessionContext, stage: 'asr' | 'correction', text: string): void;
  /** Replaces every registered secret in a string (for error details built from upstream text). */
  scrub(text: string): string;
  /**
   * The window that has the keyboard focus now, through the `focusedWindow` hook (bounded by a
   * deadline); undefined when unknown. Never throws.
   */
  focusedWindow(signal?: AbortSignal): Promise<FocusedWindow | undefined>;
}

export const PLUGIN = Symbol.for('koto-voice.plugin');

export type KotoPlugin<Options extends z.ZodType = z.ZodType> = PluginDefinition<Options> & { readonly [PLUGIN]: true };
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- options are checked at runtime by the plugin's own schema
export type AnyKotoPlugin = KotoPlugin<any>;

/** Declares a plugin. The returned object is frozen; the kernel validates options before apply. */
export function definePlugin<Options extends z.ZodType = z.ZodType>(definition: PluginDefinition<Options>): KotoPlugin<Options> {
  return Object.freeze({ ...definition, [PLUGIN]: true as const });
}

export function isPlugin(value: unknown): value is KotoPlugin {
  return (
    typeof value === 'object' &&
    value !== null &&
    ((value as Record<symbol, unknown>)[PLUGIN] === true ||
      (typeof (value as { name?: unknown }).name === 'string' && typeof (value as { apply?: unknown }).apply === 'function'))
  );
}
