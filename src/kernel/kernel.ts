import { readFileSync, statSync } from 'node:fs';
import { z } from 'zod';
import { HistoryStore } from '../history/store.ts';
import { ConfigStore, type ConfigInput, type ReloadOutcome } from './config-store.ts';
import { ConfigWatcher, type WatchOptions } from './config/watch.ts';
import type { KotoConfig } from './config/validate.ts';
import { formatIssues } from './config/validate.ts';
import { describe, KotoError, kotoError } from './errors.ts';
import { createHooks, instrumentHooks, pluginHooks, type AudioDevice, type KernelHooks } from './hooks.ts';
import { createLogger, SecretScrubber, stderrSink, type Logger, type LogLevel, type LogSink } from './logger.ts';
import { kotoPaths, type KotoPaths } from './paths.ts';
import type { KotoPlugin, PluginApi } from './plugin.ts';
import { scrubError } from './secrets.ts';
import { builtinPluginNames, orderPlugins, resolvePlugin, type LoadedPlugin, type PluginSpec } from './plugin-loader.ts';
import { Pipeline, type Recording, type RecordOptions, type AudioInput, type CorrectOptions, type RunOptions, type RunResult, type TranscribeOptions, type TranscribeResult, type CorrectResult } from './session.ts';
import { Transport, type KotoHttp } from './transport.ts';
import type { TransportStats } from './transport-stats.ts';
import type { ProbeResult, SessionContext } from './types.ts';

export interface KernelOptions extends ConfigInput {
  /** Extra plugins: objects made with definePlugin, npm names or paths. */
  plugins?: readonly PluginSpec[] | undefined;
  /** Load the built-in plugins (default true), or only the named ones. */
  builtins?: boolean | readonly string[] | undefined;
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
}

export interface KernelDiagnostics {
  readonly state: KernelState;
  readonly configFile: string | undefined;
  readonly configGeneration: number;
  readonly transportGeneration: number;
  /** Files the config watcher watches (empty when not watching). */
  readonly watching: readonly string[];
  readonly lastConfigError: { code: string; message: string } | undefined;
  readonly transport: TransportStats;
  readonly plugins: readonly PluginInfo[];
}

const PLUGIN_TIMEOUT_MS = 10_000;

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
  #watcher: ConfigWatcher | undefined;
  #history: HistoryStore | undefined;

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
        h.intercept({ factory: (k: string, created: { intercept(i: unknown): void }) => (created.intercept(note(`${key}:${k}`)), created) });
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
    const builtinNames = builtins === true ? builtinPluginNames() : builtins === false ? [] : [...builtins];

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
    this.#plugins = orderPlugins(loaded);
    const aliases = new Map<string, string>();
    for (const entry of this.#plugins) aliases.set(entry.specifier, entry.plugin.name);
    for (const spec of [...(Array.isArray(rawPlugins) ? rawPlugins : []), ...providerUses]) {
      const asked = typeof spec === 'string' ? spec : typeof spec === 'object' && 'use' in spec ? spec.use : undefined;
      const entry = asked ? loaded.find((l) => l.specifier === asked || l.specifier === `koto-plugin-${asked}`) : undefined;
      if (asked && entry) aliases.set(asked, entry.plugin.name);
    }
    const config = await this.#store.init(
      source,
      this.#plugins.map((p) => p.plugin),
      aliases,
    );
    for (const secret of config.resolved.secrets) this.#scrubber.add(secret);
    warnIfSecretsExposed(config, this.log);

    this.#transport = new Transport(config.transport, this.hooks, this.log.child('transport'));
    for (const entry of this.#plugins) await this.#apply(entry, config);
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
      if (KotoError.is(err) && (err.code === 'KOTO_ERR_PLUGIN_TIMEOUT' || err.code.startsWith('KOTO_ERR_CONFIG'))) throw err;
      throw kotoError('KOTO_ERR_PLUGIN_APPLY', { plugin: plugin.name, detail: describe(err) }, { plugin: plugin.name, cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  #apiFor(plugin: KotoPlugin): PluginApi {
    const transport = this.#requireTransport();
    return Object.freeze({
      name: plugin.name,
      hooks: pluginHooks(this.hooks, plugin.name),
      http: transport.http,
      log: this.log.child(plugin.name),
      paths: this.paths,
      env: this.#store.env,
      config: () => this.#store.current,
      registerSecret: (value: string) => this.#scrubber.add(value),
      scrub: (text: string) => this.#scrubber.text(text),
      interim: (session: SessionContext, stage: 'asr' | 'correction', text: string) => this.#pipeline?.reportInterim(session, stage, text),
    });
  }

  #requirePipeline(): Pipeline {
    if (this.#state !== 'ready' || !this.#pipeline) throw kotoError('KOTO_ERR_CLOSED', { state: this.#state });
    return this.#pipeline;
  }

  /** Speech to text (ASR and transcript transforms only). */
  async transcribe(input: AudioInput, options: TranscribeOptions = {}): Promise<TranscribeResult> {
    return this.#requirePipeline().transcribe(input, options);
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
    if (!text) throw kotoError('KOTO_ERR_NOTHING_TO_DELIVER', { id, reason: entry.state === 'failed' ? ` (it failed before a transcript: ${entry.errorMessage ?? 'see koto history'})` : ` (state ${entry.state})` });
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
      const outcome = await this.#store.reload();
      if (!outcome.ok) {
        this.log.error(`config not reloaded: ${outcome.error?.message}`);
        return outcome;
      }
      if (outcome.next && outcome.previous) {
        for (const secret of outcome.next.resolved.secrets) this.#scrubber.add(secret);
        if (outcome.changed.includes('plugins')) {
          this.log.warn('the `plugins` list changed: plugins are loaded at start, so restart Koto to apply it');
        }
        if (outcome.transportChanged) await this.#requireTransport().rebuild(outcome.next.transport);
        this.hooks.configChanged.call({
          config: outcome.next,
          previous: outcome.previous,
          sections: outcome.changed,
          generation: outcome.generation,
        });
        this.log.info(`config reloaded (generation ${outcome.generation}; changed: ${outcome.changed.join(', ')})`);
      }
      return { ok: outcome.ok, changed: outcome.changed, transportChanged: outcome.transportChanged, generation: outcome.generation };
    };
    const next = (this.#reloading ?? Promise.resolve()).then(run, run);
    this.#reloading = next;
    return next;
  }

  /** Validates data as the config file's next content without applying it (throws the load's KotoError). */
  async checkConfig(data: Record<string, unknown>): Promise<KotoConfig> {
    return this.#store.check(data);
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
    return this.#plugins.flatMap((p) => [...(p.plugin.audioSources ?? [])]);
  }

  /**
   * Watches the config file and the files it references (dictionary, prompts) and reloads on
   * change, debounced. Does nothing for an in-code config. Stopped by close().
   */
  async watch(options: WatchOptions = {}): Promise<void> {
    if (this.#watcher || !this.config.resolved.file) return;
    const watcher = new ConfigWatcher(async () => {
      await this.reload();
      await watcher.setFiles(this.#watchedFiles());
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
    return this.#plugins.map(({ plugin, source, specifier }) => ({
      name: plugin.name,
      version: plugin.version,
      source,
      specifier,
      capabilities: [...(plugin.capabilities ?? [])],
      outputs: Object.keys(plugin.outputs ?? {}),
      taps: [...(this.#taps.get(plugin.name) ?? [])].sort(),
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

/** A config file that holds a key in plain text should be readable by its owner only. */
function warnIfSecretsExposed(config: KotoConfig, log: Logger): void {
  const file = config.resolved.file;
  if (!file || process.platform === 'win32') return;
  try {
    const mode = statSync(file).mode & 0o777;
    if ((mode & 0o077) === 0) return;
    const text = readFileSync(file, 'utf8');
    if (config.resolved.secrets.some((secret) => text.includes(secret))) {
      log.warn(`${file} holds an API key and is readable by other users (mode ${mode.toString(8)}): run \`chmod 600 ${file}\`, or use \${ENV_VAR} references`);
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

const OPTION_KEYS = new Set(['config', 'configPath', 'cwd', 'env', 'search', 'plugins', 'builtins', 'logLevel', 'logSink', 'pluginTimeoutMs', 'watch', 'history']);
function isKernelOptions(value: object): value is KernelOptions {
  const keys = Object.keys(value);
  // A bare config object (`createKernel({ providers: … })`) has none of the option keys,
  // or has `plugins` as its only overlap, which both shapes accept.
  return keys.length === 0 || keys.some((k) => OPTION_KEYS.has(k) && k !== 'plugins');
}
