import type { z } from 'zod';
import type { PluginErrorSpec } from './errors.ts';
import type { KotoConfig } from './config/validate.ts';
import type { PluginHooks } from './hooks.ts';
import type { Logger } from './logger.ts';
import type { KotoPaths } from './paths.ts';
import type { KotoHttp } from './transport.ts';
import type { ProvideApi } from './provider-spec.ts';
import type { FocusedWindow, ProviderOptionsOf, ProviderOptionsRecord, ProviderRef, SessionContext } from './types.ts';

/** Schemas of a plugin's outputs, by output name. */
export type OutputSchemas = Readonly<Record<string, z.ZodType>>;
/** The options of each declared output, as its schema produces them. */
export type OutputOptionsOf<Outputs extends OutputSchemas> = { readonly [K in keyof Outputs]: Readonly<z.output<Outputs[K]>> };

/**
 * What a plugin declares before it runs; the kernel reads it to validate config.
 *
 * The type parameters are inferred by `definePlugin`: `Options` from `options`, `Name` from
 * `name`, `Provider` from `provider` (constrained to the plugin's `ProviderOptionsRegistry`
 * entry when it declares one) and `Outputs` from `outputs`, so `apply` receives typed options
 * and an `api` whose `provide.*` requests carry typed `provider.options`.
 */
export interface PluginDefinition<
  Options extends z.ZodType = z.ZodType,
  Name extends string = string,
  Provider extends z.ZodType<ProviderOptionsOf<Name>> = z.ZodType<ProviderOptionsOf<Name>>,
  Outputs extends OutputSchemas = OutputSchemas,
> {
  /** Unique name; also the tap name of everything the plugin taps. */
  readonly name: Name;
  readonly version?: string | undefined;
  /** Range of koto-voice versions the plugin works with (semver, e.g. `^0.1`). */
  readonly koto?: string | undefined;
  /** Schema of the plugin's own options (`plugins: [{ use, options }]` or `pluginOptions.<name>`). */
  readonly options?: Options | undefined;
  /** Plugins that must be applied first, by name. */
  readonly dependencies?: readonly string[] | undefined;
  /** Schema of a provider instance whose `use` names this plugin. */
  readonly provider?: Provider | undefined;
  /** What provider instances of this plugin can do, for `koto plugins` and clear errors. */
  readonly capabilities?: readonly ('asr' | 'correction')[] | undefined;
  /**
   * Keys this plugin reads from the user's `correction` section (and profiles'), beyond the
   * kernel's own (OpenAI's `protocol`, `topP`, …): merged into the config schema at load, so a
   * typo or a bad value is a config error naming `correction.<key>`; they reach correction
   * requests as `request.providerOptions`. A key several plugins declare is checked by the first.
   */
  readonly correctionOptions?: z.ZodObject | undefined;
  /** Outputs this plugin serves, each with the schema of its options. */
  readonly outputs?: Outputs | undefined;
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
  readonly apply: (
    api: PluginApi<Readonly<z.output<Provider>>, OutputOptionsOf<Outputs>>,
    options: Readonly<z.output<Options>>,
  ) => void | Promise<void>;
}

/**
 * The plugin's window onto the kernel. Everything here is the public plugin API.
 * `ProviderOptions` is the options type of the plugin's own provider instances (what its
 * `provider` schema produces); `OutputOptions` the options of each output it declares.
 */
export interface PluginApi<
  ProviderOptions = ProviderOptionsRecord,
  OutputOptions extends Readonly<Record<string, unknown>> = Readonly<Record<string, ProviderOptionsRecord>>,
> {
  readonly name: string;
  readonly hooks: PluginHooks;
  /** Registers versioned providers (`specificationVersion: 'v1'`) onto the hooks: see provider-spec.ts. */
  readonly provide: ProvideApi<ProviderOptions, OutputOptions>;
  /**
   * This plugin's provider instances in a config (default: the current one), their options
   * typed: the kernel validated each with this plugin's `provider` schema.
   */
  instances(config?: KotoConfig): readonly ProviderRef<ProviderOptions>[];
  /** `ref` with typed options when its `use` is this plugin; undefined for another plugin's instance (or none). */
  ownInstance(ref: ProviderRef | undefined): ProviderRef<ProviderOptions> | undefined;
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

export type KotoPlugin<
  Options extends z.ZodType = z.ZodType,
  Name extends string = string,
  Provider extends z.ZodType<ProviderOptionsOf<Name>> = z.ZodType<ProviderOptionsOf<Name>>,
  Outputs extends OutputSchemas = OutputSchemas,
> = PluginDefinition<Options, Name, Provider, Outputs> & { readonly [PLUGIN]: true };
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- options are checked at runtime by the plugin's own schema
export type AnyKotoPlugin = KotoPlugin<any, string, any, any>;

/** Declares a plugin. The returned object is frozen; the kernel validates options before apply. */
export function definePlugin<
  Options extends z.ZodType = z.ZodType,
  const Name extends string = string,
  Provider extends z.ZodType<ProviderOptionsOf<Name>> = z.ZodType<ProviderOptionsOf<Name>>,
  Outputs extends OutputSchemas = OutputSchemas,
>(definition: PluginDefinition<Options, Name, Provider, Outputs>): KotoPlugin<Options, Name, Provider, Outputs> {
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
