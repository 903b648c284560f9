import { KotoError, kotoError, describe } from './errors.ts';
import type { KotoPlugin } from './plugin.ts';
import { changedSections, validateConfig, type KotoConfig } from './config/validate.ts';
import { fromData, readConfigSource, type ConfigSource, type FindConfigOptions } from './config/source.ts';
import { reloadLevelOf } from './config/schema.ts';
import { scrubError, scrubSecrets } from './secrets.ts';

export interface ConfigInput extends FindConfigOptions {
  /** An in-code config (Node API); when given, no file is searched. */
  config?: Record<string, unknown> | undefined;
}

/**
 * Plugins a config needs beyond the loaded ones (imported on demand, not applied yet), and how
 * they were asked for: the kernel's answer when a reload or a check meets a provider it has not loaded.
 */
export type MorePlugins = (source: ConfigSource) => Promise<{ plugins: readonly KotoPlugin[]; aliases: ReadonlyMap<string, string> }>;

export interface ReloadOutcome {
  readonly ok: boolean;
  readonly changed: readonly string[];
  readonly transportChanged: boolean;
  readonly generation: number;
  readonly error?: KotoError | undefined;
}

/**
 * Holds the current frozen config and swaps in new ones. A reload builds and validates the
 * whole new config first; if anything is wrong the old one stays and the error is kept as
 * `lastError` until a later valid load clears it.
 */
export class ConfigStore {
  readonly #input: ConfigInput;
  #plugins: readonly KotoPlugin[] = [];
  #aliases: ReadonlyMap<string, string> = new Map();
  #current: KotoConfig | undefined;
  #generation = 0;
  #lastError: KotoError | undefined;

  constructor(input: ConfigInput) {
    this.#input = input;
  }

  get env(): NodeJS.ProcessEnv {
    return this.#input.env ?? process.env;
  }

  /**
   * Reads the source only (phase one: which plugins to load, before any schema is known).
   * After the first load the file is pinned: a reload reads the same file rather than searching
   * again, so deleting it mid-edit is an error (old config kept), never a silent reset to defaults.
   * A pinned project config keeps needing trust: edited after `koto trust`, its hash no longer
   * matches and the reload fails like an invalid edit (KOTO_ERR_CONFIG_UNTRUSTED, old config kept).
   */
  async readSource(): Promise<ConfigSource> {
    if (this.#input.config) return fromData(this.#input.config, undefined, this.#input.cwd ?? process.cwd(), this.env);
    const origin = this.#current?.resolved.origin;
    return readConfigSource(origin?.file ? { ...this.#input, pinned: origin } : this.#input);
  }

  /** Phase two: validate with every plugin's schema contributions. */
  async init(source: ConfigSource, plugins: readonly KotoPlugin[], aliases: ReadonlyMap<string, string> = new Map()): Promise<KotoConfig> {
    this.#plugins = plugins;
    this.#aliases = aliases;
    this.#current = await validateConfig(source, plugins, this.env, aliases);
    this.#generation = 1;
    return this.#current;
  }

  get current(): KotoConfig {
    if (!this.#current) throw kotoError('KOTO_ERR_INTERNAL', { detail: 'config read before the kernel started' });
    return this.#current;
  }

  get generation(): number {
    return this.#generation;
  }

  get lastError(): KotoError | undefined {
    return this.#lastError;
  }

  /**
   * Validates candidate data as if it were the current file's new content (the control panel
   * checks an edit before writing it): same plugins, schemas, interpolation and referenced files.
   */
  async check(data: Record<string, unknown>, more?: MorePlugins): Promise<KotoConfig> {
    const { file, dir, origin } = this.current.resolved;
    const source = fromData(data, file, dir, this.env, origin);
    const extra = await more?.(source);
    return validateConfig(
      source,
      [...this.#plugins, ...(extra?.plugins ?? [])],
      this.env,
      new Map([...this.#aliases, ...(extra?.aliases ?? [])]),
    );
  }

  /** Plugins applied after start (a reload needed them): later loads validate with them too. */
  addPlugins(plugins: readonly KotoPlugin[], aliases: ReadonlyMap<string, string>): void {
    this.#plugins = [...this.#plugins, ...plugins];
    this.#aliases = new Map(aliases);
  }

  /**
   * Re-reads and validates without swapping (a reload's "build new" step). An invalid config is
   * recorded as `lastError` at once; a valid one is only returned: commit() swaps it in once the
   * rest of the reload (new transport, configChanged taps) has worked, or reject() records why not.
   */
  async prepare(more?: MorePlugins): Promise<PreparedConfig> {
    const previous = this.current;
    let next: KotoConfig;
    let extra: Awaited<ReturnType<MorePlugins>> | undefined;
    try {
      const source = await this.readSource();
      extra = await more?.(source);
      next = await validateConfig(
        source,
        [...this.#plugins, ...(extra?.plugins ?? [])],
        this.env,
        new Map([...this.#aliases, ...(extra?.aliases ?? [])]),
      );
    } catch (err) {
      const error = KotoError.is(err)
        ? err
        : kotoError('KOTO_ERR_CONFIG_INVALID', { file: previous.resolved.file ?? '<config>', detail: describe(err) });
      return { ok: false, changed: [], transportChanged: false, generation: this.#generation, error: this.reject(error) };
    }
    const changed = changedSections(previous, next);
    if (changed.length === 0) this.#lastError = undefined;
    const transportChanged = changed.some((section) => reloadLevelOf(section) === 'transport');
    return {
      ok: true,
      changed,
      transportChanged,
      generation: this.#generation,
      previous,
      next,
      added: extra?.plugins ?? [],
      aliases: extra?.aliases,
    };
  }

  /** Swaps in a prepared config; returns its generation. */
  commit(next: KotoConfig): number {
    this.#current = next;
    this.#generation += 1;
    this.#lastError = undefined;
    return this.#generation;
  }

  /** Records why a reload did not happen (kept for `koto status`), never with a secret in it. */
  reject(error: KotoError): KotoError {
    const previous = this.current;
    this.#lastError = scrubError(error, (text) => scrubSecrets(text, previous.resolved.secrets)) as KotoError;
    return this.#lastError;
  }
}

export interface PreparedConfig extends ReloadOutcome {
  readonly previous?: KotoConfig;
  readonly next?: KotoConfig;
  /** Plugins the new config needs that were not loaded: applied by the kernel before the swap. */
  readonly added?: readonly KotoPlugin[];
  readonly aliases?: ReadonlyMap<string, string> | undefined;
}
