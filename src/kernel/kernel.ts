import { readFileSync, statSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import { HistoryStore } from '../history/store.ts';
import { ConfigStore, type ConfigInput, type ReloadOutcome } from './config-store.ts';
import { ConfigWatcher, type WatchOptions } from './config/watch.ts';
import { changedSections, formatIssues, type KotoConfig } from './config/validate.ts';
import { describe, KotoError, kotoError, pluginErrorCodes, registerPluginErrors } from './errors.ts';
import { createHooks, instrumentHooks, pluginHooks, type AudioDevice, type KernelHooks } from './hooks.ts';
import { createLogger, SecretScrubber, stderrSink, type Logger, type LogLevel, type LogSink } from './logger.ts';
import { kotoPaths, type KotoPaths } from './paths.ts';
import type { KotoPlugin, PluginApi } from './plugin.ts';
import { provideApi } from './provider-spec.ts';
import { scrubError } from './secrets.ts';
import { builtinManifest, neededBuiltins } from './builtins.ts';
import type { ConfigSource } from './config/source.ts';
import { builtinPluginNames, orderPlugins, resolvePlugin, type LoadedPlugin, type PluginSpec } from './plugin-loader.ts';
import {
  Pipeline,
  type Recording,
  type RecordOptions,
  type AudioInput,
  type CorrectOptions,
  type RunOptions,
  type RunResult,
  type TranscribeOptions,
  type TranscribeResult,
  type CorrectResult,
} from './session.ts';
import { Transport, type KotoHttp, type PreparedTransport } from './transport.ts';
import type { TransportStats } from './transport-stats.ts';
import type { DaemonHost, FocusedWindow, ProbeResult, ProviderRef, ReadyContext, SessionContext } from './types.ts';

export interface KernelOptions extends ConfigInput {
  /** Extra plugins: objects made with definePlugin, npm names or paths. */
  plugins?: readonly PluginSpec[] | undefined;
  /**
   * Load the built-in plugins (default true: those the config needs, when it needs them), or
   * only the named ones.
   */
  builtins?: boolean | readonly string[] | undefined;
  /** What runs this kernel: `daemon` also loads the built-ins only a long-running host uses (the hotkey). */
  host?: 'daemon' | undefined;
  logLevel?: LogLevel | undefined;
  logSink?: LogSink | undefined;
  /** How long a plugin's apply() may take (default 10 s). */
  pluginTimeoutMs?: number | undefined;
  /** Watch the config file and the files it references, reloading on change (the daemon does). */
  watch?: boolean | WatchOptions | undefined;
  /**
   * Record every `run()` and `record()` session in the history (the data folder's
   * history.sqlite), so a failure can be retried with `koto retry ID`. Default true.
   */
  history?: boolean | undefined;
}

export type KernelState = 'starting' | 'ready' | 'closing' | 'closed';

export interface PluginInfo {
  readonly name: string;
  readonly version: string | undefined;
  readonly source: LoadedPlugin['source'];
  readonly specifier: string;
  readonly capabilities: readonly string[];
  readonly outputs: readonly string[];
  /** Hook names this plugin tapped. */
  readonly taps: readonly string[];
  /** The error codes it declared (`definePlugin({ errors })`). */
  readonly errors: readonly string[];
  /** The file it was loaded from (undefined for a plugin passed in code). */
  readonly location: string | undefined;
}

export interface KernelDiagnostics {
  readonly state: KernelState;
  readonly configFile: string | undefined;
  readonly configGeneration: number;
  readonly transportGeneration: number;
  /** Files the config watcher watches (empty when not watching). */
  readonly watching: readonly string[];
  readonly lastConfigError: { code: string; message: string } | undefined;
  /** Sections changed since start that only a restart applies (`plugins`, `pluginOptions`). */
  readonly restartNeeded: readonly string[];
  readonly transport: TransportStats;
  readonly plugins: readonly PluginInfo[];
}

const PLUGIN_TIMEOUT_MS = 10_000;
/** Bounds a focused-window lookup: it runs at key-down and before a paste, and unknown only costs the profile. */
export const FOCUS_TIMEOUT_MS = 1500;

/**
 * The kernel: hooks, config, the shared HTTP client and the plugins that tap them.
 * State machine: starting → ready → closing → closed. Create one with `createKernel`.
 */
export class Kernel {
  readonly hooks: KernelHooks;
  readonly log: Logger;
  readonly paths: KotoPaths;
  readonly #scrubber: SecretScrubber;
  readonly #store: ConfigStore;
  readonly #options: KernelOptions;
  #transport: Transport | undefined;
  #plugins: LoadedPlugin[] = [];
  #taps = new Map<string, Set<string>>();
  #state: KernelState = 'starting';
  #pipeline: Pipeline | undefined;
  #reloading: Promise<ReloadOutcome> | undefined;
  /** The config the plugins were loaded and applied with. */
  #startConfig: KotoConfig | undefined;
  #watcher: ConfigWatcher | undefined;
  #history: HistoryStore | undefined;
  /** Built-ins are imported when the config needs them (at start, or by a reload), not all at start. */
  #lazy = false;
  /** How each plugin was asked for (`deepgram`, a path) → its name; grows when a reload loads one. */
  #aliases = new Map<string, string>();
  /** Plugins imported for a config that was then refused: a later reload reuses them instead of importing again. */
  #imported = new Map<string, LoadedPlugin>();
  /** The loader's entry of each plugin a reload may add (the config store deals in plugins only). */
  #entries = new WeakMap<KotoPlugin, LoadedPlugin>();
  /** What the `daemon` hook was called with, once a host serves: a plugin a reload applies later starts with it too. */
  #daemonHost: DaemonHost | undefined;
  /** Plugins applied by a reload whose `ready` / `daemon` taps have not run yet: they run once a config that needs them is in use. */
  #unstarted = { ready: new Set<string>(), daemon: new Set<string>() };
  /** Plugins whose apply() failed after start: never applied again in this process, as some of their taps may already be in place. */
  #failed = new Map<string, KotoError>();
  /** pluginOptions as the loaded plugins were applied with them (start, or the reload that applied one): what a restart would change. */
  #appliedOptions: Record<string, unknown> = {};

  constructor(options: KernelOptions) {
    this.#options = options;
    this.hooks = createHooks();
    instrumentHooks(this.hooks);
    this.#scrubber = new SecretScrubber();
    this.log = createLogger({ level: options.logLevel ?? 'warn', sink: options.logSink ?? stderrSink, scrubber: this.#scrubber });
    this.#store = new ConfigStore(options);
    this.paths = kotoPaths(options.env ?? process.env);
    this.#recordTaps();
  }

  get state(): KernelState {
    return this.#state;
  }

  /** The current config snapshot (frozen). A running session keeps the one it started with. */
  get config(): KotoConfig {
    return this.#store.current;
  }

  get configGeneration(): number {
    return this.#store.generation;
  }

  get lastConfigError(): KotoError | undefined {
    return this.#store.lastError;
  }

  /** The shared client. Stable across transport rebuilds. */
  get http(): KotoHttp {
    return this.#requireTransport().http;
  }

  get transportGeneration(): number {
    return this.#requireTransport().generation;
  }

  /**
   * The session history, opened on first use (a kernel that only transcribes never creates the
   * data folder). Throws KOTO_ERR_UNSAFE_FOLDER when the data folder is not private.
   */
  get history(): HistoryStore {
    if (this.#state === 'closed') throw kotoError('KOTO_ERR_CLOSED', { state: this.#state });
    this.#history ??= new HistoryStore(this.paths.history);
    return this.#history;
  }

  /** Removes every known secret from a string; for anything printed outside the logger. */
  scrub(text: string): string {
    return this.#scrubber.text(text);
  }

  #requireTransport(): Transport {
    if (!this.#transport) throw kotoError('KOTO_ERR_CLOSED', { state: this.#state });
    return this.#transport;
  }

  // Remember which plugin tapped which hook, for `koto plugins`.
  #recordTaps(): void {
    const note = (hookName: string) => ({
      register: (tap: { name: string }) => {
        let set = this.#taps.get(tap.name);
        if (!set) this.#taps.set(tap.name, (set = new Set()));
        set.add(hookName);
        return tap;
      },
    });
    for (const [key, hook] of Object.entries(this.hooks)) {
      const h = hook as { intercept(i: unknown): void; name?: string };
      if ('for' in hook) {
        h.intercept({
          factory: (k: string, created: { intercept(i: unknown): void }) => (created.intercept(note(`${key}:${k}`)), created),
        });
      } else {
        h.intercept(note(key));
      }
    }
  }

  async start(): Promise<this> {
    const source = await this.#store.readSource();
    for (const warning of source.warnings) this.log.warn(warning);
    const baseDir = source.dir;
    const rawPlugins = (source.data.plugins ?? []) as PluginSpec[];
    const providerUses = Object.values((source.data.providers ?? {}) as Record<string, { use?: unknown }>)
      .map((p) => p?.use)
      .filter((u): u is string => typeof u === 'string');
    const builtins = this.#options.builtins ?? true;
    this.#lazy = builtins === true;
    const builtinNames =
      builtins === true
        ? neededBuiltins(source.data, builtinPluginNames(), { daemon: this.#isDaemon })
        : builtins === false
          ? []
          : [...builtins];

    const specs: PluginSpec[] = [...builtinNames, ...(this.#options.plugins ?? []), ...(Array.isArray(rawPlugins) ? rawPlugins : [])];
    const loaded: LoadedPlugin[] = [];
    const seen = new Set<string>();
    for (const spec of specs) {
      const entry = await resolvePlugin(spec, baseDir, source.secrets);
      loaded.push(entry);
      seen.add(entry.plugin.name);
      seen.add(entry.specifier);
    }
    // A provider's `use` may name a plugin not listed in `plugins`: load it too.
    for (const use of providerUses) {
      if (!seen.has(use)) {
        const entry = await resolvePlugin(use, baseDir, source.secrets);
        if (!seen.has(entry.plugin.name)) loaded.push(entry);
        seen.add(use);
        seen.add(entry.plugin.name);
      }
    }
    // A plugin may depend on a built-in this config does not otherwise need.
    if (this.#lazy) loaded.push(...(await this.#builtinDependencies(loaded, seen, baseDir, source.secrets)));
    this.#plugins = orderPlugins(loaded);
    // Before anything runs: a plugin's own codes must exist by the time its first error is made.
    for (const { plugin } of this.#plugins) if (plugin.errors) registerPluginErrors(plugin.name, plugin.errors);
    const aliases = new Map<string, string>();
    for (const entry of this.#plugins) aliases.set(entry.specifier, entry.plugin.name);
    for (const spec of [...(Array.isArray(rawPlugins) ? rawPlugins : []), ...providerUses]) {
      const asked = typeof spec === 'string' ? spec : typeof spec === 'object' && 'use' in spec ? spec.use : undefined;
      const entry = asked ? loaded.find((l) => l.specifier === asked || l.specifier === `koto-plugin-${asked}`) : undefined;
      if (asked && entry) aliases.set(asked, entry.plugin.name);
    }
    this.#aliases = aliases;
    const config = await this.#store.init(
      source,
      this.#plugins.map((p) => p.plugin),
      aliases,
    );
    for (const secret of config.resolved.secrets) this.#scrubber.add(secret);
    warnIfSecretsExposed(config, this.log);

    this.#startConfig = config;
    this.#appliedOptions = { ...config.pluginOptions };
    this.#transport = new Transport(config.transport, this.hooks, this.log.child('transport'));
    for (const entry of this.#plugins) await this.#apply(entry, config);
    // The first client is built now, so every plugin's transportOptions tap shapes it.
    this.#transport.start();
    this.#pipeline = new Pipeline({
      hooks: this.hooks,
      log: this.log,
      paths: this.paths,
      config: () => this.#store.current,
      scrub: (text) => this.#scrubber.text(text),
      history: this.#options.history === false ? undefined : () => this.history,
    });
    this.#state = 'ready';
    await this.hooks.ready.promise({ config });
    return this;
  }

  get #isDaemon(): boolean {
    return this.#options.host === 'daemon';
  }

  /** Built-ins named in `dependencies` of the plugins loaded so far and not loaded yet, transitively. */
  async #builtinDependencies(
    loaded: readonly LoadedPlugin[],
    seen: Set<string>,
    baseDir: string,
    secrets: readonly string[],
  ): Promise<LoadedPlugin[]> {
    const available = new Set(builtinPluginNames());
    const added: LoadedPlugin[] = [];
    const queue = [...loaded];
    for (let entry = queue.shift(); entry; entry = queue.shift()) {
      for (const dep of entry.plugin.dependencies ?? []) {
        if (seen.has(dep) || !available.has(dep)) continue;
        const found = this.#imported.get(dep) ?? (await resolvePlugin(dep, baseDir, secrets));
        this.#imported.set(dep, found);
        seen.add(dep);
        seen.add(found.plugin.name);
        added.push(found);
        queue.push(found);
      }
    }
    return added;
  }

  /**
   * The plugins a new config needs that are not loaded: built-ins it now uses (a provider, an
   * output, the audio source) and any provider `use` naming a plugin not loaded yet. Imported,
   * not applied: the config is validated with them, and a reload applies them before the swap.
   */
  async #pluginsFor(source: ConfigSource, builtinsOnly = false): Promise<{ plugins: KotoPlugin[]; aliases: Map<string, string> }> {
    const have = new Set<string>([...this.#aliases.keys(), ...this.#plugins.flatMap((e) => [e.plugin.name, e.specifier])]);
    const builtin = new Set(builtinPluginNames());
    const uses = Object.values((source.data.providers ?? {}) as Record<string, { use?: unknown } | null>)
      .map((p) => p?.use)
      .filter((u): u is string => typeof u === 'string' && (!builtinsOnly || builtin.has(u)));
    const wanted = [...(this.#lazy ? neededBuiltins(source.data, builtinPluginNames(), { daemon: this.#isDaemon }) : []), ...uses];
    const added: LoadedPlugin[] = [];
    const aliases = new Map<string, string>();
    for (const spec of wanted) {
      if (have.has(spec)) continue;
      const entry = this.#imported.get(spec) ?? (await resolvePlugin(spec, source.dir, source.secrets));
      this.#imported.set(spec, entry);
      aliases.set(spec, entry.plugin.name);
      const known = have.has(entry.plugin.name);
      have.add(spec);
      have.add(entry.plugin.name);
      if (!known) added.push(entry);
    }
    if (this.#lazy) added.push(...(await this.#builtinDependencies(added, have, source.dir, source.secrets)));
    const failed = added.map((entry) => this.#failed.get(entry.plugin.name)).find((err) => err !== undefined);
    if (failed) throw failed;
    for (const entry of added) this.#entries.set(entry.plugin, entry);
    return { plugins: added.map((e) => e.plugin), aliases };
  }

  /** Applies plugins a reload needs, before its config is swapped in; each one applied joins the kernel at once. */
  async #applyAdded(plugins: readonly KotoPlugin[], config: KotoConfig, aliases: ReadonlyMap<string, string>): Promise<void> {
    if (plugins.length === 0) return;
    const added = plugins.map((plugin) => this.#entries.get(plugin)).filter((e): e is LoadedPlugin => e !== undefined);
    const names = new Set(plugins.map((p) => p.name));
    const ordered = orderPlugins([...this.#plugins, ...added]).filter((e) => names.has(e.plugin.name));
    for (const entry of ordered) {
      const { name } = entry.plugin;
      if (entry.plugin.errors) registerPluginErrors(name, entry.plugin.errors);
      try {
        await this.#apply(entry, config);
      } catch (err) {
        // Options refused before apply() ran: nothing tapped, so a corrected edit may apply it.
        if (KotoError.is(err) && err.code === 'KOTO_ERR_PLUGIN_OPTIONS') throw err;
        // Its taps so far cannot be taken back: applying it again would double them.
        this.#failed.set(name, KotoError.is(err) ? err : kotoError('KOTO_ERR_PLUGIN_APPLY', { plugin: name, detail: describe(err) }));
        throw err;
      }
      // Applied is loaded, even if a later step rejects this reload: never applied twice.
      this.#plugins.push(entry);
      this.#unstarted.ready.add(name);
      this.#unstarted.daemon.add(name);
      for (const key of [name, entry.specifier]) {
        if (Object.hasOwn(config.pluginOptions, key)) this.#appliedOptions[key] = config.pluginOptions[key];
        else delete this.#appliedOptions[key];
      }
      for (const [asked, name] of aliases) if (name === entry.plugin.name) this.#aliases.set(asked, name);
      this.#aliases.set(entry.specifier, entry.plugin.name);
      this.#store.addPlugins([entry.plugin], this.#aliases);
      this.log.info(`plugin ${entry.plugin.name} loaded: the new config uses it`);
    }
  }

  #pluginOptions(entry: LoadedPlugin, config: KotoConfig): unknown {
    const { plugin } = entry;
    const given = entry.options ?? config.pluginOptions[plugin.name] ?? config.pluginOptions[entry.specifier] ?? {};
    const schema = plugin.options ?? z.object({}).loose();
    const checked = schema.safeParse(given);
    if (!checked.success) {
      const issue = checked.error.issues[0];
      throw kotoError('KOTO_ERR_PLUGIN_OPTIONS', {
        plugin: plugin.name,
        path: issue?.path.length ? issue.path.join('.') : '(options)',
        detail: formatIssues(checked.error).replace(/^[^:]*: /, ''),
      });
    }
    return Object.freeze(checked.data);
  }

  async #apply(entry: LoadedPlugin, config: KotoConfig): Promise<void> {
    const { plugin } = entry;
    const options = this.#pluginOptions(entry, config);
    const api = this.#apiFor(plugin);
    const timeoutMs = this.#options.pluginTimeoutMs ?? PLUGIN_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(kotoError('KOTO_ERR_PLUGIN_TIMEOUT', { plugin: plugin.name, ms: timeoutMs })), timeoutMs);
    });
    try {
      await Promise.race([Promise.resolve().then(() => plugin.apply(api, options as never)), timeout]);
    } catch (err) {
      if (
        KotoError.is(err) &&
        (err.code === 'KOTO_ERR_PLUGIN_TIMEOUT' || err.code === 'KOTO_ERR_PLUGIN_INVALID' || err.code.startsWith('KOTO_ERR_CONFIG'))
      )
        throw err;
      throw kotoError('KOTO_ERR_PLUGIN_APPLY', { plugin: plugin.name, detail: describe(err) }, { plugin: plugin.name, cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  #apiFor(plugin: KotoPlugin): PluginApi {
    const transport = this.#requireTransport();
    const hooks = pluginHooks(this.hooks, plugin.name);
    return Object.freeze({
      name: plugin.name,
      hooks,
      provide: provideApi(plugin, hooks),
      instances: (config: KotoConfig = this.#store.current) =>
        Object.values(config.resolved.providers).filter((ref) => ref.use === plugin.name),
      ownInstance: (ref: ProviderRef | undefined) => (ref?.use === plugin.name ? ref : undefined),
      http: transport.http,
      log: this.log.child(plugin.name),
      paths: this.paths,
      env: this.#store.env,
      config: () => this.#store.current,
      registerSecret: (value: string) => this.#scrubber.add(value),
      scrub: (text: string) => this.#scrubber.text(text),
      interim: (session: SessionContext, stage: 'asr' | 'correction', text: string) => this.#pipeline?.reportInterim(session, stage, text),
      focusedWindow: (signal?: AbortSignal) => this.focusedWindow(signal),
    });
  }

  #requirePipeline(): Pipeline {
    if (this.#state !== 'ready' || !this.#pipeline) throw kotoError('KOTO_ERR_CLOSED', { state: this.#state });
    return this.#pipeline;
  }

  /** Speech to text (ASR and transcript transforms only). */
  async transcribe(input: AudioInput, options: TranscribeOptions = {}): Promise<TranscribeResult> {
    return this.#requirePipeline()
      .transcribe(input, options)
      .catch((err: unknown) => {
        throw scrubError(err, (text) => this.scrub(text));
      });
  }

  /** Text to corrected text; never throws for a failed correction: it falls back to the input. */
  async correct(text: string, options: CorrectOptions = {}): Promise<CorrectResult> {
    return this.#requirePipeline().correct(text, options);
  }

  /** The whole pipeline: audio → ASR → transforms → correction → outputs. */
  async run(input: AudioInput, options: RunOptions = {}): Promise<RunResult> {
    return this.#requirePipeline().run(input, options);
  }

  /**
   * Delivers the text of history session `id` again through the outputs (no ASR, no
   * correction): the last mile failed, the text did not. Used by `koto paste ID`.
   */
  async deliver(id: string, options: RunOptions = {}): Promise<RunResult> {
    const entry = this.history.get(id);
    if (!entry) throw kotoError('KOTO_ERR_HISTORY_NOT_FOUND', { id });
    const text = entry.text ?? entry.raw;
    if (!text)
      throw kotoError('KOTO_ERR_NOTHING_TO_DELIVER', {
        id,
        reason:
          entry.state === 'failed'
            ? ` (it failed before a transcript: ${entry.errorMessage ?? 'see koto history'})`
            : ` (state ${entry.state})`,
      });
    return this.#requirePipeline().deliver({ id, text, raw: entry.raw ?? undefined, audioPath: entry.audioPath ?? undefined }, options);
  }

  /** Starts recording from the configured audio source; stop() runs the rest of the pipeline. */
  async record(options: RecordOptions = {}): Promise<Recording> {
    return this.#requirePipeline().record(options);
  }

  /**
   * Re-reads the config. Request-level changes apply from the next session; a changed
   * `transport` section rebuilds the shared client (build new → swap → drain old).
   * An invalid config keeps the old one and is reported in the outcome and `lastConfigError`.
   */
  reload(): Promise<ReloadOutcome> {
    // Reloads are serialised: the last edit wins, and no two rebuilds overlap.
    const run = async (): Promise<ReloadOutcome> => {
      try {
        return await this.#reload();
      } catch (err) {
        // Nothing may escape a reload unseen (the file watcher has no one to tell): recorded and logged.
        const error = this.#store.reject(
          KotoError.is(err) ? err : kotoError('KOTO_ERR_INTERNAL', { detail: describe(err) }, { cause: err }),
        );
        this.log.error(`config not reloaded: ${error.message}; the previous config stays in use`);
        return { ok: false, changed: [], transportChanged: false, generation: this.#store.generation, error };
      }
    };
    const next = (this.#reloading ?? Promise.resolve()).then(run, run);
    this.#reloading = next;
    return next;
  }

  /**
   * Build new → validate → swap → drain, for config and transport together: the new config is
   * validated and (when its transport section changed) the new client built, the configChanged
   * taps run, and only then are both swapped in. Any failure before the swap leaves both old.
   */
  async #reload(): Promise<ReloadOutcome> {
    const prepared = await this.#store.prepare((source) => this.#pluginsFor(source));
    if (!prepared.ok) {
      this.log.error(`config not reloaded: ${prepared.error?.message}${prepared.error?.fix ? `. Fix: ${prepared.error.fix}` : ''}`);
      return prepared;
    }
    const { previous, next } = prepared;
    if (!previous || !next) return { ok: true, changed: [], transportChanged: false, generation: this.#store.generation };
    // Known before anything runs with the new config, so no log line or error can show them.
    for (const secret of next.resolved.secrets) this.#scrubber.add(secret);
    let transport: PreparedTransport | undefined;
    try {
      if (prepared.transportChanged) transport = this.#requireTransport().prepare(next.transport);
      // A plugin the new config needs (a provider it now uses) is applied now, not after a restart.
      await this.#applyAdded(prepared.added ?? [], next, prepared.aliases ?? new Map());
      this.hooks.configChanged.call({ config: next, previous, sections: prepared.changed, generation: this.#store.generation + 1 });
    } catch (err) {
      await transport?.discard();
      const error = this.#store.reject(
        KotoError.is(err)
          ? err
          : kotoError('KOTO_ERR_CONFIG_INVALID', { file: next.resolved.file ?? '<config>', detail: describe(err) }, { cause: err }),
      );
      this.log.error(`config not reloaded: ${error.message}; the previous config and client stay in use`);
      return { ok: false, changed: [], transportChanged: false, generation: this.#store.generation, error };
    }
    const generation = this.#store.commit(next);
    const restart = this.restartNeeded;
    if (restart.length > 0) {
      this.log.warn(
        `${restart.map((s) => `\`${s}\``).join(' and ')} changed: plugins are loaded at start, so restart Koto to apply ${restart.length > 1 ? 'them' : 'it'}`,
      );
    }
    await transport?.commit();
    await this.#startLatePlugins(next);
    this.log.info(`config reloaded (generation ${generation}; changed: ${prepared.changed.join(', ')})`);
    return { ok: true, changed: prepared.changed, transportChanged: prepared.transportChanged, generation };
  }

  /**
   * Runs for plugins a reload applied the lifecycle taps that ran before they came: `ready`, and
   * `daemon` when a host serves. Only theirs: the other plugins' taps already ran. A failing tap
   * is logged, as the daemon does at start; the config is in use by then, nothing to undo.
   */
  async #startLatePlugins(config: KotoConfig): Promise<void> {
    // The config the plugin was applied with and joins: the start config may not even name it.
    const context: ReadyContext = { config };
    await this.#runTapsOf(this.hooks.ready, this.#unstarted.ready, [context]);
    if (this.#daemonHost) await this.#runTapsOf(this.hooks.daemon, this.#unstarted.daemon, [this.#daemonHost]);
  }

  async #runTapsOf(hook: { taps: readonly unknown[] }, plugins: Set<string>, args: unknown[]): Promise<void> {
    if (plugins.size === 0) return;
    // Series hooks, in tap order; the taps are the instrumented ones, so errors name their plugin.
    const taps = (hook.taps as { name: string; type: 'sync' | 'async' | 'promise'; fn: (...a: unknown[]) => unknown }[]).filter((tap) =>
      plugins.has(tap.name),
    );
    plugins.clear();
    for (const tap of taps) {
      try {
        if (tap.type === 'sync') tap.fn(...args);
        else if (tap.type === 'promise') await tap.fn(...args);
        else await new Promise<void>((resolve, reject) => tap.fn(...args, (err?: unknown) => (err ? reject(err) : resolve())));
      } catch (err) {
        this.log.error(describe(err));
      }
    }
  }

  /**
   * Calls the `daemon` hook: a long-running host serves requests (trigger plugins and warm
   * sources start). The kernel keeps the host, so a plugin a later reload applies starts with it.
   */
  async serveDaemon(host: DaemonHost): Promise<void> {
    // A reload applying a plugin now would leave it between "tapped" and "started": let it finish.
    for (let pending = this.#reloading; pending; pending = pending === this.#reloading ? undefined : this.#reloading) await pending;
    this.#daemonHost = host;
    // Every daemon tap in place now runs in this call; later ones run when their reload commits.
    this.#unstarted.daemon.clear();
    await this.hooks.daemon.promise(host);
  }

  /**
   * Sections that differ from what the loaded plugins were applied with but only apply at start
   * (the plugins and their options): a reload takes them in, a restart makes them work. A plugin
   * a reload applied counts with the options it got; one that failed to apply needs a restart.
   */
  get restartNeeded(): string[] {
    if (!this.#startConfig || this.#state === 'closed') return [];
    const current = this.#store.current;
    const keys = new Set([...Object.keys(this.#appliedOptions), ...Object.keys(current.pluginOptions)]);
    const optionsChanged = [...keys].some((key) => !isDeepStrictEqual(this.#appliedOptions[key], current.pluginOptions[key]));
    const pluginsChanged = this.#failed.size > 0 || changedSections(this.#startConfig, current).includes('plugins');
    return [...(pluginsChanged ? ['plugins'] : []), ...(optionsChanged ? ['pluginOptions'] : [])];
  }

  /**
   * The window that has the keyboard focus, asked through the `focusedWindow` hook; undefined
   * when no plugin knows (GNOME on Wayland, no display), past `timeoutMs`, or when a tap fails.
   * Never throws: an unknown window means "no profile", never a failed dictation.
   */
  async focusedWindow(signal?: AbortSignal, timeoutMs = FOCUS_TIMEOUT_MS): Promise<FocusedWindow | undefined> {
    if (!this.hooks.focusedWindow.isUsed() || signal?.aborted) return undefined;
    const stop = new AbortController();
    const timer = setTimeout(() => stop.abort(), timeoutMs);
    const bounded = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
    const stopped = new Promise<undefined>((resolve) => bounded.addEventListener('abort', () => resolve(undefined), { once: true }));
    try {
      const asked = this.hooks.focusedWindow.promise({ env: this.#store.env, signal: bounded }).catch((err: unknown) => {
        this.log.debug(`focusedWindow: ${describe(err)}`);
        return undefined;
      });
      return validWindow(await Promise.race([asked, stopped]));
    } finally {
      clearTimeout(timer);
      // Ends whatever a tap still runs (an X connection, a helper process).
      stop.abort();
    }
  }

  /** Validates data as the config file's next content without applying it (throws the load's KotoError). */
  async checkConfig(data: Record<string, unknown>): Promise<KotoConfig> {
    // Built-ins only: a check (the control panel's, before it saves) never runs code a file or package named in an unsaved edit holds.
    return this.#store.check(data, (source) => this.#pluginsFor(source, true));
  }

  /** Asks the plugin serving a provider instance whether it is reachable and its credentials work. */
  async probe(providerName: string, timeoutMs = 10_000): Promise<ProbeResult> {
    // Own keys only: `--provider constructor` must not find Object.prototype.constructor.
    const provider = Object.hasOwn(this.config.resolved.providers, providerName) ? this.config.resolved.providers[providerName] : undefined;
    if (!provider) return { ok: false, detail: `no provider named "${providerName}"` };
    const hook = this.hooks.probe.get(provider.use);
    if (!hook?.isUsed()) return { ok: true, detail: `plugin "${provider.use}" offers no check; not probed` };
    try {
      const result = await hook.promise({ provider, signal: AbortSignal.timeout(timeoutMs) });
      return result ?? { ok: true, detail: 'not probed' };
    } catch (err) {
      return { ok: false, detail: KotoError.is(err) ? `${err.message}. Fix: ${err.fix}` : describe(err) };
    }
  }

  /** Input devices of the configured audio source (`audio.source`). */
  async devices(source = this.config.audio.source): Promise<AudioDevice[]> {
    const hook = this.hooks.audioDevices.get(source);
    if (!hook?.isUsed()) {
      throw kotoError('KOTO_ERR_AUDIO_SOURCE_UNKNOWN', { source, known: this.#audioSources().join(', ') || 'none' });
    }
    return (await hook.promise({ config: this.config })) ?? [];
  }

  #audioSources(): string[] {
    const loaded = this.#plugins.flatMap((p) => [...(p.plugin.audioSources ?? [])]);
    // Built-ins not loaded serve sources too: the config has only to name one.
    const builtin = this.#lazy ? builtinPluginNames().flatMap((name) => [...(builtinManifest(name)?.audioSources ?? [])]) : [];
    return [...new Set([...loaded, ...builtin])];
  }

  /**
   * Watches the config file and the files it references (dictionary, prompts) and reloads on
   * change, debounced. Does nothing for an in-code config. Stopped by close().
   */
  async watch(options: WatchOptions = {}): Promise<void> {
    if (this.#watcher || !this.config.resolved.file) return;
    const watcher = new ConfigWatcher(async () => {
      await this.reload();
      try {
        await watcher.setFiles(this.#watchedFiles());
      } catch (err) {
        this.log.error(
          `the config files are no longer watched for changes: ${describe(err)}; run \`koto reload\` after editing, or restart`,
        );
      }
    }, options);
    this.#watcher = watcher;
    await watcher.setFiles(this.#watchedFiles());
  }

  #watchedFiles(): string[] {
    const { file, files } = this.config.resolved;
    return [...(file ? [file] : []), ...files];
  }

  /** Resolves once no file-triggered reload is pending (for tests and orderly shutdown). */
  async settled(): Promise<void> {
    await this.#watcher?.idle();
    await this.#reloading;
  }

  /** Rebuilds the shared client with the current transport settings (explicit reload). */
  async rebuildTransport(): Promise<void> {
    await this.#requireTransport().rebuild(this.config.transport);
  }

  plugins(): PluginInfo[] {
    return this.#plugins.map(({ plugin, source, specifier, location }) => ({
      name: plugin.name,
      version: plugin.version,
      source,
      specifier,
      capabilities: [...(plugin.capabilities ?? [])],
      outputs: Object.keys(plugin.outputs ?? {}),
      taps: [...(this.#taps.get(plugin.name) ?? [])].sort(),
      errors: pluginErrorCodes(plugin.name),
      location,
    }));
  }

  diagnostics(): KernelDiagnostics {
    const error = this.#store.lastError;
    return {
      state: this.#state,
      configFile: this.#store.current.resolved.file,
      configGeneration: this.#store.generation,
      transportGeneration: this.#requireTransport().generation,
      watching: this.#watcher?.files ?? [],
      lastConfigError: error ? { code: error.code, message: error.message } : undefined,
      restartNeeded: this.restartNeeded,
      transport: this.#requireTransport().stats(),
      plugins: this.plugins(),
    };
  }

  /** Idempotent: finishes in-flight requests (with a deadline), runs close hooks in reverse order. */
  async close(): Promise<void> {
    if (this.#state === 'closing' || this.#state === 'closed') return;
    const wasReady = this.#state === 'ready';
    this.#state = 'closing';
    try {
      await this.#watcher?.close();
      if (wasReady) await this.hooks.close.promise();
    } finally {
      await this.#transport?.close();
      this.#history?.close();
      this.#state = 'closed';
    }
  }
}

/** A tap's answer, if it has the shape promised (a third-party tap may return anything). */
function validWindow(value: unknown): FocusedWindow | undefined {
  if (!value || typeof value !== 'object') return undefined;
  const w = value as Record<string, unknown>;
  if (typeof w.app !== 'string' || !w.app || typeof w.desktop !== 'string') return undefined;
  return Object.freeze({
    app: w.app,
    instance: typeof w.instance === 'string' && w.instance ? w.instance : undefined,
    title: typeof w.title === 'string' ? w.title : '',
    pid: typeof w.pid === 'number' && Number.isInteger(w.pid) && w.pid > 0 ? w.pid : undefined,
    id: typeof w.id === 'string' && w.id ? w.id : undefined,
    desktop: w.desktop,
  });
}

/** A config file that holds a key in plain text should be readable by its owner only. */
function warnIfSecretsExposed(config: KotoConfig, log: Logger): void {
  const file = config.resolved.file;
  if (!file || process.platform === 'win32') return;
  try {
    const mode = statSync(file).mode & 0o777;
    if ((mode & 0o077) === 0) return;
    const text = readFileSync(file, 'utf8');
    if (config.resolved.secrets.some((secret) => text.includes(secret))) {
      log.warn(
        `${file} holds an API key and is readable by other users (mode ${mode.toString(8)}): run \`chmod 600 ${file}\`, or use \${ENV_VAR} references`,
      );
    }
  } catch {
    // unreadable now: the next load reports it
  }
}

/** Builds and starts a kernel: reads config, loads plugins, builds the shared client. */
export async function createKernel(options: KernelOptions | Record<string, unknown> = {}): Promise<Kernel> {
  const opts = isKernelOptions(options) ? options : { config: options };
  const kernel = new Kernel(opts);
  try {
    await kernel.start();
    if (opts.watch) await kernel.watch(opts.watch === true ? {} : opts.watch);
    return kernel;
  } catch (err) {
    await kernel.close().catch(() => undefined);
    // A plugin's apply() error can echo its key; the caller has no kernel to scrub with.
    throw scrubError(err, (text) => kernel.scrub(text));
  }
}

const OPTION_KEYS = new Set([
  'config',
  'configPath',
  'cwd',
  'env',
  'search',
  'plugins',
  'builtins',
  'host',
  'logLevel',
  'logSink',
  'pluginTimeoutMs',
  'watch',
  'history',
]);
function isKernelOptions(value: object): value is KernelOptions {
  const keys = Object.keys(value);
  // A bare config object (`createKernel({ providers: … })`) has none of the option keys,
  // or has `plugins` as its only overlap, which both shapes accept.
  return keys.length === 0 || keys.some((k) => OPTION_KEYS.has(k) && k !== 'plugins');
}
