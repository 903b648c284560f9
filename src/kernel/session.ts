import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { audioFromBytes, audioFromFile } from '../audio/input.ts';
import { encodeWav } from '../audio/wav.ts';
import { findSpeech } from '../audio/trim-silence.ts';
import type { AudioSourceHandle } from './hooks.ts';
import type { KotoConfig } from './config/validate.ts';
import { describe, KotoError, kotoError } from './errors.ts';
import { scrubError } from './secrets.ts';
import type { HistoryStore } from '../history/store.ts';
import { ensureDataDirs } from './owned-files.ts';
import { withRetry } from './retry.ts';
import { ChainFailure, runChain, type ChainAttempt } from './failover.ts';
import { costOf, priceFor } from './pricing.ts';
import type { KernelHooks } from './hooks.ts';
import type { Logger } from './logger.ts';
import type { KotoPaths } from './paths.ts';
import type {
  AsrResult,
  AudioData,
  CorrectionResult,
  FocusedWindow,
  ProviderAttempt,
  ProviderRef,
  RecordingEvent,
  SessionContext,
  SessionRecord,
  SessionState,
} from './types.ts';
import { matchProfile, profileNamed, type ResolvedProfile } from './profiles.ts';
import { correctionProviderOptions, correctionSettings } from './correction-settings.ts';

/** A file path, raw bytes (stdin, an upload), or audio already prepared. */
export type AudioInput = string | { readonly path: string } | { readonly data: Uint8Array; readonly name?: string | undefined } | AudioData;

export interface StageOptions {
  /** Use this provider instance (a key of `providers`) instead of the configured one. */
  provider?: string | undefined;
  signal?: AbortSignal | undefined;
  /** false: only the chosen provider, no `fallback` chain (a benchmark measuring one provider). */
  fallback?: boolean | undefined;
  /** Interim text as it streams in. */
  onInterim?: ((text: string, stage: 'asr' | 'correction') => void) | undefined;
}

export type TranscribeOptions = StageOptions;

export interface TranscribeResult {
  readonly id: string;
  readonly input: string;
  readonly text: string;
  readonly provider: string;
  readonly model: string | undefined;
  readonly audioPath: string | undefined;
  readonly timings: Readonly<Record<string, number>>;
  /** Failover, budget: what the user should know. */
  readonly warnings: readonly string[];
  readonly attempts: readonly ProviderAttempt[];
  /** Estimated cost (USD); null when unknown. */
  readonly cost: number | null | undefined;
}

export interface CorrectOptions extends StageOptions {
  interimHistory?: readonly string[] | undefined;
  /** Overrides for a second-pass prompt (rewrite templates) instead of the configured correction. */
  systemPrompt?: string | undefined;
  userPrompt?: string | undefined;
  model?: string | undefined;
  temperature?: number | undefined;
  /** Deadline of this call instead of `correction.timeoutMs` (long rewrites). */
  timeoutMs?: number | undefined;
}

export interface CorrectResult {
  readonly raw: string;
  readonly text: string;
  /** True when the raw text was delivered because correction failed, timed out or was empty. */
  readonly fallback: boolean;
  readonly provider: string | undefined;
  readonly model: string | undefined;
  readonly warnings: readonly string[];
  readonly timings: Readonly<Record<string, number>>;
  readonly attempts: readonly ProviderAttempt[];
  readonly cost: number | null | undefined;
}

export interface RunOptions extends StageOptions {
  /** false skips correction (`--no-correct`). */
  correct?: boolean | undefined;
  correctionProvider?: string | undefined;
  /** Outputs to use when the config selects none. */
  defaultOutputs?: readonly string[] | undefined;
  /** Outputs to leave out (the CLI prints results itself, in input order, instead of `stdout`). */
  excludeOutputs?: readonly string[] | undefined;
  /** The history id of the session this run re-runs (`koto retry`): kept on the new row. */
  retryOf?: string | undefined;
  /** Use this profile (`profiles[].name`) whatever the window: `koto run --profile`. Unknown: KOTO_ERR_PROFILE_UNKNOWN. */
  profile?: string | undefined;
  /**
   * The window focused when the dictation was asked for (the daemon asks at key-down): the first
   * profile that matches it applies. Recorded with the session; later focus changes do not matter.
   */
  window?: FocusedWindow | undefined;
}

export interface RunResult extends SessionRecord {}

export interface RecordOptions extends RunOptions {
  /** Audio source name (default `audio.source`). */
  source?: string | undefined;
  /** Device name (default `audio.device`). */
  device?: string | undefined;
  /** Level (RMS 0..1) of each captured frame. */
  onLevel?: ((rms: number) => void) | undefined;
  /**
   * Called when `daemon.maxRecordingMs` ended the capture. Without it the session finishes by
   * itself; with it the caller decides when (the daemon queues it behind earlier sessions).
   */
  onMaxLength?: (() => void) | undefined;
}

/**
 * A session that is recording. stop() finishes it through the pipeline; cancel() discards it
 * while it records, or aborts its requests once it is being finished (the session ends
 * `cancelled`, the recording kept).
 */
export interface Recording {
  readonly id: string;
  readonly state: SessionState;
  /** RMS of the last captured frame. */
  readonly level: number;
  /** Where the audio source writes the recording as it captures. */
  readonly audioPath: string | undefined;
  readonly device: string | undefined;
  /** Audio from before the request that the recording starts with (pre-roll), ms; 0 without. */
  readonly preRollMs: number;
  /** When the recording's first sample was captured (ms since the epoch), if the source knows. */
  readonly firstSampleAt: number | undefined;
  /** The profile the session uses (chosen from the window at its start), or undefined for the base config. */
  readonly profile: string | undefined;
  stop(): Promise<RunResult>;
  /** Ends the capture now (the device is released) without finishing the session yet. */
  stopCapture(): Promise<void>;
  cancel(): Promise<void>;
  /** The finishing promise once stop() or the maximum length ended the recording. */
  done(): Promise<RunResult> | undefined;
}

function concat(chunks: readonly Int16Array[]): Int16Array {
  const out = new Int16Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

interface PipelineDeps {
  readonly hooks: KernelHooks;
  readonly log: Logger;
  readonly paths: KotoPaths;
  readonly config: () => KotoConfig;
  readonly scrub: (text: string) => string;
  /** The session history (opened on first use), or undefined when the caller opted out. */
  readonly history?: (() => HistoryStore) | undefined;
}

/** Mutable session bookkeeping; hooks see it through the read-only SessionContext. */
class Session implements SessionContext {
  readonly id: string;
  readonly config: KotoConfig;
  readonly startedAt = Date.now();
  readonly timings: Record<string, number> = {};
  readonly controller = new AbortController();
  readonly signal: AbortSignal;
  readonly warnings: string[] = [];
  /** Set on a retry: the session this one re-runs. */
  retryOf: string | undefined;
  interimWarned = false;
  /** The caller's interim listener, for text that arrives while recording (realtime streaming). */
  onInterim: StageOptions['onInterim'];
  frameTapFailed = false;
  #state: SessionState = 'idle';
  /** Told of every change of state (the kernel's `sessionState` hook). */
  onState: ((state: SessionState) => void) | undefined;
  mode: 'live' | 'file' = 'file';
  providers: { asr?: ProviderRef | undefined; correction?: ProviderRef | undefined; hedges?: readonly ProviderRef[] | undefined } = {};
  /** Every provider call, in the order they ended (failover, hedging, usage). */
  readonly attempts: ProviderAttempt[] = [];
  profile: string | undefined;
  window: FocusedWindow | undefined;

  constructor(config: KotoConfig, signal: AbortSignal | undefined) {
    this.id = sessionId();
    this.config = config;
    this.signal = signal ? AbortSignal.any([signal, this.controller.signal]) : this.controller.signal;
  }

  get state(): SessionState {
    return this.#state;
  }

  set state(next: SessionState) {
    if (next === this.#state) return;
    this.#state = next;
    this.onState?.(next);
  }

  async time<T>(stage: string, fn: () => Promise<T>): Promise<T> {
    const start = performance.now();
    try {
      return await fn();
    } finally {
      this.timings[stage] = Math.round(performance.now() - start);
    }
  }
}

export function sessionId(): string {
  const now = new Date();
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, '')
    .replace('T', '-');
  return `${stamp}-${randomBytes(3).toString('hex')}`;
}

function inputLabel(input: AudioInput): string {
  if (typeof input === 'string') return input;
  if ('path' in input && typeof input.path === 'string' && !('data' in input)) return input.path;
  if ('filename' in input) return input.path ?? input.filename;
  if ('name' in input && input.name) return input.name;
  return '-';
}

/** Deadline + caller's cancel, with the reason kept so errors can say which one fired. */
/**
 * `asr.timeoutMs` is the deadline for each started 10 minutes of audio: a dictation gets the
 * configured deadline, a two-hour meeting (uploaded in parts) twelve times it, so the deadline
 * stays proportional to the work instead of failing every long file. Without PCM the length is
 * estimated from the size at 128 kbit/s, which over-estimates compressed audio only mildly.
 */
export function asrTimeoutMs(timeoutMs: number, audio: Pick<AudioData, 'data' | 'pcm'>): number {
  const seconds = audio.pcm ? audio.pcm.samples.length / audio.pcm.sampleRate : audio.data.byteLength / 16_000;
  return timeoutMs * Math.max(1, Math.ceil(seconds / 600));
}

function deadline(parent: AbortSignal, ms: number): AbortSignal {
  return AbortSignal.any([parent, AbortSignal.timeout(ms)]);
}

/**
 * Interim text of one provider at a time: during a hedge both stream, and a live display fed by
 * both would flicker between two texts. The first to speak keeps it until it fails.
 */
function interimGate(): { take(provider: ProviderRef): boolean; release(provider: ProviderRef): void } {
  let owner: ProviderRef | undefined;
  return {
    take: (provider) => (owner ??= provider) === provider,
    release: (provider) => {
      if (owner === provider) owner = undefined;
    },
  };
}

/** The provider whose answer a stage used, when a chain ran. */
function answered(session: Session, stage: 'asr' | 'correction'): string | undefined {
  return session.attempts.find((a) => a.stage === stage && a.outcome === 'answered')?.provider;
}

/** The session's estimated cost: the sum of its calls, null when one of them has no known price. */
export function sessionCost(attempts: readonly ProviderAttempt[]): number | null | undefined {
  if (attempts.length === 0) return undefined;
  let sum = 0;
  for (const a of attempts) {
    if (a.cost === null || a.cost === undefined) return null;
    sum += a.cost;
  }
  return Math.round(sum * 1e6) / 1e6;
}

/** The first instant of the current month (UTC), and its `YYYY-MM` name. */
export function monthStart(now = new Date()): { since: string; month: string } {
  const start = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
  return { since: start.toISOString(), month: start.toISOString().slice(0, 7) };
}

/**
 * Runs sessions through the hooks: audio → asr → transcript → correction → output → sessionEnd.
 * The kernel owns the order and the guarantees (audio saved first, raw-text fallback); plugins
 * own every provider and output detail.
 */
export class Pipeline {
  readonly #deps: PipelineDeps;

  constructor(deps: PipelineDeps) {
    this.#deps = deps;
  }

  #provider(config: KotoConfig, capability: 'asr' | 'correction', override: string | undefined): ProviderRef | undefined {
    const name = override ?? (capability === 'asr' ? config.resolved.asrProvider : config.resolved.correctionProvider);
    if (!name) return undefined;
    // Own keys only: `--provider constructor` must not find Object.prototype.constructor.
    const ref = Object.hasOwn(config.resolved.providers, name) ? config.resolved.providers[name] : undefined;
    if (!ref) {
      throw kotoError('KOTO_ERR_PROVIDER_UNKNOWN', {
        section: capability,
        provider: name,
        known: Object.keys(config.resolved.providers).join(', ') || 'none',
      });
    }
    return ref;
  }

  /** Audio is written to the recordings folder before anything is sent, so a failure can be retried. */
  async #prepareAudio(session: Session, input: AudioInput): Promise<AudioData> {
    if (typeof input === 'string') return input === '-' ? this.#fromBytes(session, new Uint8Array(), '-') : audioFromFile(input);
    if ('filename' in input && 'data' in input) {
      return input.path ? input : { ...input, path: await this.#save(session, input.data, path.extname(input.filename)) };
    }
    if ('data' in input) return this.#fromBytes(session, input.data, input.name ?? '-');
    return audioFromFile(input.path);
  }

  async #fromBytes(session: Session, data: Uint8Array, label: string): Promise<AudioData> {
    const audio = await audioFromBytes(data, label, undefined);
    const saved = await this.#save(session, audio.data, path.extname(audio.filename));
    return { ...audio, path: saved };
  }

  async #save(session: Session, data: Uint8Array, ext: string): Promise<string> {
    ensureDataDirs(this.#deps.paths);
    const file = path.join(this.#deps.paths.recordings, `${session.id}${ext || '.wav'}`);
    await writeFile(file, data, { mode: 0o600 });
    return file;
  }

  /**
   * The history row is written once the audio is known and before anything is sent, so a
   * process that dies from here on leaves a row pointing at the audio (`koto retry`). A data
   * folder that is not private refuses the session; any other history failure is a warning:
   * the dictation matters more than its log.
   */
  #historyBegin(session: Session, label: string, audioPath: string | undefined, state: SessionState): void {
    const open = this.#deps.history;
    if (!open) return;
    try {
      open().begin({ id: session.id, input: label, audioPath, state, retryOf: session.retryOf, profile: session.profile });
    } catch (err) {
      if (KotoError.is(err) && err.code === 'KOTO_ERR_UNSAFE_FOLDER') throw err;
      session.warnings.push(`the session is not in the history: ${this.#deps.scrub(describe(err))}`);
    }
  }

  #historyFinish(session: Session, record: RunResult): void {
    const open = this.#deps.history;
    if (!open) return;
    try {
      open().finish(record, session.retryOf);
    } catch (err) {
      // An unsafe data folder was already the session's error; anything else is worth a line.
      if (!(KotoError.is(err) && err.code === 'KOTO_ERR_UNSAFE_FOLDER'))
        this.#deps.log.warn(`history: session ${session.id} not recorded: ${describe(err)}`);
    }
  }

  /**
   * Notes the session's provider calls in the usage table and warns, once a month, when the
   * month's estimated spend passes `budget.monthly`. Bookkeeping never fails a dictation.
   */
  #recordUsage(session: Session): void {
    const open = this.#deps.history;
    if (!open || session.attempts.length === 0) return;
    try {
      const store = open();
      store.addUsage(session.id, session.attempts);
      const monthly = session.config.budget.monthly;
      if (monthly === undefined) return;
      const { since, month } = monthStart();
      const spend = store.spend(since);
      if (spend.cost >= monthly && store.claim('budget-warned', month)) {
        const unknown = spend.unknown > 0 ? ` (plus ${spend.unknown} call(s) of unknown price)` : '';
        session.warnings.push(
          `this month's estimated provider spend is $${spend.cost.toFixed(2)}${unknown}, past budget.monthly ($${monthly}); \`koto usage\` shows where it went (this warning comes once a month)`,
        );
      }
    } catch (err) {
      if (!(KotoError.is(err) && err.code === 'KOTO_ERR_UNSAFE_FOLDER'))
        this.#deps.log.warn(`usage: session ${session.id} not recorded: ${describe(err)}`);
    }
  }

  /** A cancel that arrives while a plugin ignores the signal still stops the session at the next stage. */
  #checkCancelled(session: Session, what: string): void {
    if (session.signal.aborted) throw kotoError('KOTO_ERR_ABORTED', { what });
  }

  async #start(session: Session): Promise<void> {
    // Pre-warm taps fire their requests and return; a failed pre-warm never fails the session.
    try {
      await this.#deps.hooks.sessionStart.promise(session);
    } catch (err) {
      this.#deps.log.warn(`sessionStart: ${describe(err)}`);
    }
  }

  async #asr(
    session: Session,
    audio: AudioData,
    options: StageOptions,
  ): Promise<{ text: string; provider: ProviderRef; model: string | undefined; interimHistory: readonly string[] }> {
    const { hooks } = this.#deps;
    const config = session.config;
    const primary = session.providers.asr;
    if (!primary) throw kotoError('KOTO_ERR_NO_PROVIDER', { capability: 'asr' });
    const chain = options.fallback === false ? [primary] : this.#chain(config, primary, config.resolved.asrFallback);
    session.state = 'transcribing';
    const timeoutMs = asrTimeoutMs(config.asr.timeoutMs, audio);
    const sentSeconds = audio.pcm ? audio.pcm.samples.length / audio.pcm.sampleRate : undefined;
    const interims = interimGate();
    const call = async (provider: ProviderRef, parent: AbortSignal): Promise<AsrResult> => {
      const hook = hooks.asr.get(provider.use);
      if (!hook?.isUsed()) throw kotoError('KOTO_ERR_PROVIDER_UNSERVED', { capability: 'asr', provider: provider.name, use: provider.use });
      const signal = deadline(parent, timeoutMs);
      const retry = {
        retries: config.asr.retries,
        signal,
        deadline: Date.now() + timeoutMs,
        onRetry: this.#onRetry(session, chain.length > 1 ? `transcription by "${provider.name}"` : 'transcription'),
      };
      try {
        const result = await withRetry(
          () =>
            hook.promise({
              session,
              provider,
              audio,
              // `asr.model` belongs to the configured provider; a fallback uses its own default.
              model: provider === primary ? config.asr.model : undefined,
              language: config.asr.language,
              prompt: config.asr.prompt,
              temperature: config.asr.temperature,
              stream: config.asr.stream,
              dictionary: config.resolved.dictionary,
              signal,
              deadline: retry.deadline,
              onInterim: (text) => {
                if (interims.take(provider)) this.#interim(session, 'asr', text, options);
              },
            }),
          retry,
        );
        if (!result) throw kotoError('KOTO_ERR_PROVIDER_UNSERVED', { capability: 'asr', provider: provider.name, use: provider.use });
        return result;
      } catch (err) {
        interims.release(provider);
        throw this.#attemptError(
          err,
          parent,
          signal,
          session,
          chain.length > 1 ? `transcription by provider "${provider.name}"` : 'transcription',
          timeoutMs,
        );
      }
    };
    const { result, provider } = await session.time('asr', () =>
      this.#runChain(
        session,
        'asr',
        chain,
        config.asr.hedgeAfterMs,
        call,
        (p, r) => r?.model ?? (p === primary ? config.asr.model : undefined),
        sentSeconds,
      ),
    );
    for (const warning of result.warnings ?? []) session.warnings.push(this.#deps.scrub(warning));
    const transformed = await session.time('transcript', () => hooks.transcript.promise({ session, text: result.text }));
    return {
      text: transformed.text.trim(),
      provider,
      model: result.model ?? (provider === primary ? config.asr.model : undefined),
      interimHistory: result.interimHistory ?? [],
    };
  }

  /** The primary, then its fallbacks (each once; a `--provider` override keeps the configured fallbacks). */
  #chain(config: KotoConfig, primary: ProviderRef, fallback: readonly string[]): ProviderRef[] {
    const chain = [primary];
    for (const name of fallback) {
      const ref = Object.hasOwn(config.resolved.providers, name) ? config.resolved.providers[name] : undefined;
      if (ref && !chain.some((p) => p.name === name)) chain.push(ref);
    }
    return chain;
  }

  /**
   * Runs one stage over its provider chain and notes every attempt on the session (who answered,
   * who failed and why, who lost a hedge, what each used and cost). A failover is a warning.
   */
  async #runChain<T extends AsrResult | CorrectionResult>(
    session: Session,
    stage: 'asr' | 'correction',
    chain: readonly ProviderRef[],
    hedgeAfterMs: number | undefined,
    call: (provider: ProviderRef, signal: AbortSignal) => Promise<T>,
    modelOf: (provider: ProviderRef, result: T | undefined) => string | undefined,
    sentSeconds: number | undefined,
  ): Promise<{ result: T; provider: ProviderRef }> {
    const note = (attempts: readonly ChainAttempt<T>[]) => {
      for (const attempt of attempts)
        session.attempts.push(this.#attempt(session, stage, attempt, modelOf(attempt.provider, attempt.result), sentSeconds));
    };
    try {
      const outcome = await runChain({
        providers: chain,
        hedgeAfterMs,
        signal: session.signal,
        call: (provider, signal) => call(provider, signal),
      });
      note(outcome.attempts);
      const failed = outcome.attempts.filter((a) => a.outcome === 'failed');
      if (failed.length > 0) {
        const why = failed.map((a) => `"${a.provider.name}" failed: ${this.#deps.scrub(describe(a.error))}`).join('; ');
        session.warnings.push(`${stage === 'asr' ? 'transcribed' : 'corrected'} by fallback provider "${outcome.provider.name}": ${why}`);
      }
      return { result: outcome.result, provider: outcome.provider };
    } catch (err) {
      if (err instanceof ChainFailure) {
        note(err.attempts as readonly ChainAttempt<T>[]);
        if (chain.length > 1) {
          const why = (err.attempts as readonly ChainAttempt<T>[])
            .filter((a) => a.outcome === 'failed')
            .map((a) => `"${a.provider.name}": ${this.#deps.scrub(describe(a.error))}`)
            .join('; ');
          session.warnings.push(`every ${stage === 'asr' ? 'transcription' : 'correction'} provider failed: ${why}`);
        }
        throw err.error;
      }
      throw err;
    }
  }

  /** One attempt as the record keeps it: scrubbed error, usage, and its estimated cost. */
  #attempt<T extends AsrResult | CorrectionResult>(
    session: Session,
    stage: 'asr' | 'correction',
    attempt: ChainAttempt<T>,
    model: string | undefined,
    sentSeconds: number | undefined,
  ): ProviderAttempt {
    const usage = attempt.result?.usage;
    const audioSeconds =
      stage === 'asr' ? (sentSeconds ?? usage?.audioSeconds ?? (attempt.result as AsrResult | undefined)?.durationSec) : undefined;
    const price = priceFor(session.config.pricing, { provider: attempt.provider.name, use: attempt.provider.use, model });
    // A failed call is not billed; a hedge loser may be (the upload went out): its cost is what is known.
    const cost =
      attempt.outcome === 'failed'
        ? 0
        : costOf(price, usage, attempt.outcome === 'aborted' && !price?.perMinute ? undefined : audioSeconds);
    const error =
      attempt.error === undefined
        ? undefined
        : KotoError.is(attempt.error)
          ? attempt.error
          : kotoError('KOTO_ERR_INTERNAL', { detail: describe(attempt.error) });
    return {
      stage,
      provider: attempt.provider.name,
      model,
      outcome: attempt.outcome,
      hedged: attempt.hedged,
      ms: attempt.ms,
      ...(error ? { error: { code: error.code, message: this.#deps.scrub(error.message) } } : {}),
      ...(usage ? { usage } : {}),
      ...(audioSeconds !== undefined ? { audioSeconds } : {}),
      cost,
    };
  }

  /**
   * What one provider's failure was: its own deadline → KOTO_ERR_TIMEOUT naming it; the user's
   * cancel → KOTO_ERR_ABORTED; a lost hedge → KOTO_ERR_ABORTED (never reported); else as thrown.
   */
  #attemptError(err: unknown, parent: AbortSignal, signal: AbortSignal, session: Session, what: string, ms: number): unknown {
    if (session.signal.aborted)
      return KotoError.is(err) && err.code === 'KOTO_ERR_ABORTED' ? err : kotoError('KOTO_ERR_ABORTED', { what }, { cause: err });
    if (parent.aborted) return kotoError('KOTO_ERR_ABORTED', { what }, { cause: err });
    if (signal.aborted)
      return kotoError('KOTO_ERR_TIMEOUT', { what, ms }, { cause: err, details: { retryable: false, stageDeadline: true } });
    return err;
  }

  #onRetry(session: Session, what: string) {
    return (attempt: number, delayMs: number, err: KotoError) => {
      this.#deps.log.info(
        `session ${session.id}: ${what} attempt ${attempt + 1} in ${Math.round(delayMs)} ms after: ${this.#deps.scrub(err.message)}`,
      );
    };
  }

  /** Interim text a plugin reports outside a hook call (e.g. a realtime stream while recording). */
  reportInterim(session: SessionContext, stage: 'asr' | 'correction', text: string): void {
    if (session instanceof Session) this.#interim(session, stage, text, { onInterim: session.onInterim });
  }

  // A broken live-display listener must never fail the provider call that feeds it.
  #interim(session: Session, stage: 'asr' | 'correction', text: string, options: StageOptions): void {
    try {
      options.onInterim?.(text, stage);
      this.#deps.hooks.interim.call({ session, stage, text });
    } catch (err) {
      if (!session.interimWarned) this.#deps.log.warn(`an interim listener threw (ignored; the dictation goes on): ${describe(err)}`);
      session.interimWarned = true;
    }
  }

  async #correct(
    session: Session,
    raw: string,
    options: CorrectOptions,
  ): Promise<{ text: string; fallback: boolean; provider: ProviderRef | undefined; model: string | undefined }> {
    const { hooks } = this.#deps;
    const config = session.config;
    const primary = session.providers.correction;
    const fallback = (why: string, provider = primary) => {
      const warning = `correction skipped, raw transcript delivered: ${this.#deps.scrub(why)}`;
      // Recorded, not logged: the caller (CLI, daemon) reports it once, where the user looks.
      session.warnings.push(warning);
      return { text: raw, fallback: true, provider, model: config.correction.model };
    };
    if (!primary) return fallback('no correction provider is configured');
    // A rewrite names its own provider and prompt: the dictation's fallbacks are not its chain.
    const chain =
      options.systemPrompt === undefined && options.fallback !== false
        ? this.#chain(config, primary, config.resolved.correctionFallback)
        : [primary];
    session.state = 'correcting';
    const timeoutMs = options.timeoutMs ?? config.correction.timeoutMs;
    const modelFor = (provider: ProviderRef) =>
      // `correction.model` belongs to the configured correction provider; another one uses its own default.
      options.model ?? (provider.name === config.resolved.correctionProvider ? config.correction.model : undefined);
    const interims = interimGate();
    const started = performance.now();
    const call = async (provider: ProviderRef, parent: AbortSignal): Promise<CorrectionResult> => {
      const hook = hooks.correction.get(provider.use);
      if (!hook?.isUsed())
        throw kotoError('KOTO_ERR_PROVIDER_UNSERVED', { capability: 'correction', provider: provider.name, use: provider.use });
      const signal = deadline(parent, timeoutMs);
      const retry = {
        retries: config.correction.retries,
        signal,
        deadline: Date.now() + timeoutMs,
        onRetry: this.#onRetry(session, chain.length > 1 ? `correction by "${provider.name}"` : 'correction'),
      };
      try {
        const result = await withRetry(
          () =>
            hook.promise({
              session,
              provider,
              text: raw,
              model: modelFor(provider),
              dictionary: config.resolved.dictionary,
              interimHistory: options.interimHistory ?? [],
              settings: correctionSettings(config.correction, options.temperature),
              providerOptions: correctionProviderOptions(config, provider.use),
              systemPrompt: options.systemPrompt ?? config.resolved.systemPrompt,
              userPrompt: options.userPrompt ?? config.resolved.userPrompt,
              signal,
              deadline: retry.deadline,
              onDelta: (text) => {
                // Time to first token (of whichever provider speaks first): when the user starts seeing the correction.
                session.timings.correctionFirstToken ??= Math.round(performance.now() - started);
                if (interims.take(provider)) this.#interim(session, 'correction', text, options);
              },
            }),
          retry,
        );
        return result ?? { text: null, reason: `no plugin answered for provider "${provider.name}"` };
      } catch (err) {
        interims.release(provider);
        const mapped = this.#attemptError(
          err,
          parent,
          signal,
          session,
          chain.length > 1 ? `the correction by provider "${provider.name}"` : 'the correction',
          timeoutMs,
        );
        throw mapped;
      }
    };
    try {
      const { result, provider } = await session.time('correction', () =>
        this.#runChain(session, 'correction', chain, config.correction.hedgeAfterMs, call, (p, r) => r?.model ?? modelFor(p), undefined),
      );
      const text = result.text?.trim();
      if (!text) return fallback(result.reason ? `no usable correction (${result.reason})` : 'the correction was empty', provider);
      return { text, fallback: false, provider, model: result.model ?? modelFor(provider) };
    } catch (err) {
      if (session.signal.aborted) throw kotoError('KOTO_ERR_ABORTED', { what: 'correction' }, { cause: err });
      if (KotoError.is(err) && err.details.stageDeadline === true && chain.length === 1)
        return fallback(`the correction took longer than ${timeoutMs} ms`);
      const line = KotoError.is(err) ? err.message : describe(err);
      return fallback(line);
    }
  }

  #newSession(
    options: StageOptions &
      Pick<RunOptions, 'correctionProvider' | 'correct' | 'profile' | 'window'> & { systemPrompt?: string | undefined },
    needs: { asr: boolean; correction: boolean },
  ): Session {
    const base = this.#deps.config();
    // A forced profile first (scripts), else the first that matches the window of the key-down.
    const profile: ResolvedProfile | undefined =
      options.profile !== undefined ? profileNamed(base, options.profile) : matchProfile(base.resolved.profiles, options.window);
    const config = profile?.config ?? base;
    const session = new Session(config, options.signal);
    session.profile = profile?.name;
    session.window = options.window;
    session.onInterim = options.onInterim;
    session.onState = (state) => {
      // A live view's failure must never fail the dictation it watches.
      try {
        this.#deps.hooks.sessionState.call(session, state);
      } catch (err) {
        this.#deps.log.warn(`sessionState: ${describe(err)}`);
      }
    };
    // An explicit second-pass prompt (a rewrite) is asked for by name: `correction.enabled` governs
    // only the automatic correction of dictations.
    const explicit = options.systemPrompt !== undefined;
    session.providers = {
      asr: needs.asr ? this.#provider(config, 'asr', options.provider) : undefined,
      correction:
        needs.correction && (config.correction.enabled || explicit) && options.correct !== false
          ? this.#provider(config, 'correction', options.correctionProvider ?? (needs.asr ? undefined : options.provider))
          : undefined,
    };
    // A hedge has to answer fast: its connection is opened while the user speaks, like the primary's.
    if (options.fallback !== false) {
      const hedges: ProviderRef[] = [];
      const { asr, correction } = session.providers;
      if (asr && config.asr.hedgeAfterMs !== undefined) hedges.push(...this.#chain(config, asr, config.resolved.asrFallback).slice(1, 2));
      if (correction && config.correction.hedgeAfterMs !== undefined)
        hedges.push(...this.#chain(config, correction, config.resolved.correctionFallback).slice(1, 2));
      if (hedges.length) session.providers = { ...session.providers, hedges };
    }
    return session;
  }

  async transcribe(input: AudioInput, options: TranscribeOptions): Promise<TranscribeResult> {
    const session = this.#newSession(options, { asr: true, correction: false });
    const label = inputLabel(input);
    const total = performance.now();
    const audio = await this.#prepareAudio(session, input);
    await this.#start(session);
    let asr: { text: string; provider: ProviderRef; model: string | undefined };
    try {
      asr = await this.#asr(session, audio, options);
    } finally {
      this.#recordUsage(session);
    }
    const { text, provider, model } = asr;
    session.timings.total = Math.round(performance.now() - total);
    return {
      id: session.id,
      input: label,
      text,
      provider: provider.name,
      model,
      audioPath: audio.path,
      timings: { ...session.timings },
      warnings: [...session.warnings],
      attempts: [...session.attempts],
      cost: sessionCost(session.attempts),
    };
  }

  async correct(text: string, options: CorrectOptions): Promise<CorrectResult> {
    const session = this.#newSession(options, { asr: false, correction: true });
    const total = performance.now();
    await this.#start(session);
    const wanted = session.config.correction.enabled || options.systemPrompt !== undefined;
    const result = session.providers.correction
      ? await this.#correct(session, text, options)
      : { text, fallback: wanted, provider: undefined, model: undefined };
    if (!session.providers.correction && wanted) {
      session.warnings.push('correction skipped, raw text delivered: no correction provider is configured');
    }
    this.#recordUsage(session);
    session.timings.total = Math.round(performance.now() - total);
    return {
      raw: text,
      text: result.text,
      fallback: result.fallback,
      provider: result.provider?.name,
      model: result.model,
      warnings: [...session.warnings],
      timings: { ...session.timings },
      attempts: [...session.attempts],
      cost: sessionCost(session.attempts),
    };
  }

  async run(input: AudioInput, options: RunOptions): Promise<RunResult> {
    const session = this.#newSession(options, { asr: true, correction: true });
    session.retryOf = options.retryOf;
    const total = performance.now();
    let audio: AudioData | undefined;
    try {
      audio = await this.#prepareAudio(session, input);
      this.#historyBegin(session, inputLabel(input), audio.path, 'transcribing');
      this.#deps.hooks.sessionBegin.call(session, audio.path);
      await this.#start(session);
    } catch (err) {
      return this.#end(session, inputLabel(input), audio, total, {}, err);
    }
    return this.#process(session, audio, inputLabel(input), total, options);
  }

  /**
   * A live recording: the session starts (pre-warming providers while the user speaks), the
   * audio source captures until stop(), then the same pipeline as run() finishes the session.
   */
  async record(options: RecordOptions): Promise<Recording> {
    const { hooks } = this.#deps;
    const session = this.#newSession(options, { asr: true, correction: true });
    const total = performance.now();
    const config = session.config;
    const sourceName = options.source ?? config.audio.source;
    const hook = hooks.audioSource.get(sourceName);
    if (!hook?.isUsed()) throw kotoError('KOTO_ERR_AUDIO_SOURCE_UNKNOWN', { source: sourceName, known: 'see `koto plugins`' });
    // The recording lands in the recordings folder (written by the source, or saved at stop):
    // refuse before the microphone opens if that folder is not private.
    ensureDataDirs(this.#deps.paths);
    session.state = 'recording';
    session.mode = 'live';
    const started = this.#start(session);
    let handle: AudioSourceHandle | undefined;
    try {
      handle = await hook.promise({ session, device: options.device ?? config.audio.device, signal: session.signal });
      if (!handle) throw kotoError('KOTO_ERR_AUDIO_SOURCE_UNKNOWN', { source: sourceName, known: 'none answered' });
    } catch (err) {
      // sessionStart already fired (pre-warm, realtime sockets): end the session so its taps clean
      // up, then abort what it started. Ended first, so the record says `failed`, not `cancelled`.
      await started;
      const failure: unknown = await this.#end(session, 'microphone', undefined, total, {}, err).catch((e: unknown) => e);
      session.controller.abort();
      return Promise.reject(failure);
    }
    const source: AudioSourceHandle = handle;
    try {
      this.#historyBegin(session, source.path ?? 'microphone', source.path, 'recording');
    } catch (err) {
      await source.stop().catch(() => undefined);
      await started;
      const failure: unknown = await this.#end(session, 'microphone', undefined, total, {}, err).catch((e: unknown) => e);
      session.controller.abort();
      return Promise.reject(failure);
    }
    hooks.sessionBegin.call(session, source.path);
    this.#recordingEvent({ session, state: 'started', preRollMs: source.preRollMs });
    const chunks: Int16Array[] = [];
    let level = 0;
    let captureError: unknown;
    const captured = (async () => {
      try {
        for await (const frame of source.frames) {
          chunks.push(frame.samples);
          level = frame.rms;
          options.onLevel?.(frame.rms);
          try {
            hooks.audioFrame.call(session, frame.sampleRate ? frame : { ...frame, sampleRate: source.sampleRate });
          } catch (err) {
            // A streaming consumer failing must not stop the capture: the recording is the source of truth.
            if (!session.frameTapFailed) this.#deps.log.warn(`audioFrame: ${describe(err)}`);
            session.frameTapFailed = true;
          }
        }
      } catch (err) {
        // A source's own KotoError says what happened; anything else is still "the device was lost", named.
        captureError = KotoError.is(err)
          ? err
          : kotoError(
              'KOTO_ERR_AUDIO_DEVICE_LOST',
              {
                device: source.device ?? sourceName,
                atMs: Math.round(performance.now() - total),
                detail: describe(err),
                path: source.path ?? 'memory',
              },
              { cause: err, plugin: hook.taps[0]?.name },
            );
      }
    })();
    let halted: Promise<void> | undefined;
    const halt = (): Promise<void> => {
      halted ??= (async () => {
        clearTimeout(limit);
        if (!cancelling) this.#recordingEvent({ session, state: 'stopped' });
        await source.stop().catch((err: unknown) => (captureError ??= err));
        await captured;
        await started;
        session.timings.recording = Math.round(performance.now() - total);
      })();
      return halted;
    };
    let finished: Promise<RunResult> | undefined;
    let cancelling = false;
    const finish = (cancelled: boolean): Promise<RunResult> => {
      if (!finished && cancelled && !halted) {
        cancelling = true;
        this.#recordingEvent({ session, state: 'cancelled' });
      }
      finished ??= (async () => {
        await halt();
        const samples = concat(chunks);
        const data = encodeWav(samples, source.sampleRate);
        const full: AudioData = {
          data,
          filename: `${session.id}.wav`,
          mimeType: 'audio/wav',
          path: source.path ?? (samples.length ? await this.#save(session, data, '.wav') : undefined),
          pcm: { sampleRate: source.sampleRate, samples },
        };
        const audio = cancelled || !config.audio.trimSilence ? full : this.#trimmed(session, full);
        if (cancelled) {
          session.controller.abort();
          return this.#end(session, audio.path ?? 'microphone', audio, total, {}, kotoError('KOTO_ERR_ABORTED', { what: 'the recording' }));
        }
        if (samples.length === 0) {
          return this.#end(
            session,
            'microphone',
            audio,
            total,
            {},
            captureError ?? kotoError('KOTO_ERR_AUDIO_INPUT', { input: 'microphone', detail: 'no audio was captured' }),
          );
        }
        if (captureError) session.warnings.push(`the recording ended early: ${describe(captureError)}`);
        return this.#process(session, audio, audio.path ?? 'microphone', total, options);
      })();
      return finished;
    };
    const limit = setTimeout(() => {
      const onMaxLength = options.onMaxLength;
      if (!onMaxLength) return void finish(false).catch(() => undefined);
      halt()
        .then(onMaxLength)
        .catch((err: unknown) =>
          this.#deps.log.warn(`session ${session.id}: ending the recording at its maximum length: ${describe(err)}`),
        );
    }, config.daemon.maxRecordingMs);
    limit.unref();
    return {
      id: session.id,
      get state() {
        return session.state;
      },
      get level() {
        return level;
      },
      audioPath: source.path,
      device: source.device,
      preRollMs: source.preRollMs ?? 0,
      firstSampleAt: source.firstSampleAt,
      profile: session.profile,
      stop: () => finish(false),
      stopCapture: halt,
      cancel: async () => {
        if (finished) {
          // Already being finished: abort its requests; the session ends `cancelled`, the audio kept.
          session.controller.abort();
          await finished.catch(() => undefined);
          return;
        }
        await finish(true).catch(() => undefined);
      },
      done: () => finished,
    };
  }

  /**
   * The upload without the recording's leading and trailing silence (`audio.trimSilence`); the
   * path still names the full recording, which stays on disk for `koto retry`.
   */
  #trimmed(session: Session, audio: AudioData): AudioData {
    const pcm = audio.pcm;
    const speech = pcm ? findSpeech(pcm.samples, pcm.sampleRate) : undefined;
    if (!pcm || !speech) return audio;
    const samples = pcm.samples.slice(speech.start, speech.end);
    session.timings.trimmedMs = Math.round((speech.removed / pcm.sampleRate) * 1000);
    this.#deps.log.debug(`session ${session.id}: ${session.timings.trimmedMs} ms of silence trimmed from the upload (kept on disk)`);
    return {
      ...audio,
      data: encodeWav(samples, pcm.sampleRate),
      pcm: { sampleRate: pcm.sampleRate, samples },
      trimmed: { start: speech.start, end: speech.end, captured: pcm.samples.length },
    };
  }

  /** Cues and meters must never break a recording: a failing tap is logged once per session. */
  #recordingEvent(event: RecordingEvent): void {
    try {
      this.#deps.hooks.recording.call(event);
    } catch (err) {
      this.#deps.log.warn(`recording (${event.state}): ${describe(err)}`);
    }
  }

  /**
   * Delivers a finished session's text again through the outputs only (`koto paste ID`): no ASR,
   * no correction. A new history row (retry of the old one) records whether it landed.
   */
  async deliver(
    previous: { id: string; text: string; raw?: string | undefined; audioPath?: string | undefined },
    options: RunOptions,
  ): Promise<RunResult> {
    const session = this.#newSession(options, { asr: false, correction: false });
    session.retryOf = previous.id;
    const total = performance.now();
    const label = `session ${previous.id}`;
    const audio = previous.audioPath ? ({ path: previous.audioPath } as Pick<AudioData, 'path'>) : undefined;
    const outcome = { raw: previous.raw ?? previous.text, text: previous.text, fallback: false };
    try {
      this.#historyBegin(session, label, previous.audioPath, 'output');
      session.state = 'output';
      await session.time('output', () => this.#output(session, previous.text, outcome.raw, options));
      session.state = 'done';
      return await this.#end(session, label, audio, total, outcome, undefined);
    } catch (err) {
      return this.#end(session, label, audio, total, outcome, err);
    }
  }

  async #process(session: Session, audio: AudioData, label: string, total: number, options: RunOptions): Promise<RunResult> {
    const outcome: Partial<{ raw: string; text: string; fallback: boolean; asrModel: string; correctionModel: string }> = {};
    try {
      this.#checkCancelled(session, 'the transcription');
      const asr = await this.#asr(session, audio, options);
      outcome.raw = asr.text;
      outcome.asrModel = asr.model;
      this.#checkCancelled(session, 'the transcription');
      if (!asr.text) throw kotoError('KOTO_ERR_NO_TEXT', { input: label });
      if (session.providers.correction) {
        const corrected = await this.#correct(session, asr.text, { ...options, interimHistory: asr.interimHistory });
        outcome.text = corrected.text;
        outcome.fallback = corrected.fallback;
        outcome.correctionModel = corrected.model;
      } else {
        outcome.text = asr.text;
      }
      this.#checkCancelled(session, 'the session');
      session.state = 'output';
      await session.time('output', () => this.#output(session, outcome.text!, outcome.raw!, options));
      session.state = 'done';
      return await this.#end(session, label, audio, total, outcome, undefined);
    } catch (err) {
      return this.#end(session, label, audio, total, outcome, err);
    }
  }

  /** Builds the record, runs sessionEnd, and throws (with the record attached) on failure. */
  async #end(
    session: Session,
    label: string,
    audio: Pick<AudioData, 'path'> | undefined,
    total: number,
    outcome: Partial<{ raw: string; text: string; fallback: boolean; asrModel: string; correctionModel: string }>,
    failure: unknown,
  ): Promise<RunResult> {
    const error =
      failure === undefined
        ? undefined
        : KotoError.is(failure)
          ? failure
          : kotoError('KOTO_ERR_INTERNAL', { detail: describe(failure) }, { cause: failure });
    if (error) session.state = session.signal.aborted ? 'cancelled' : 'failed';
    session.timings.total = Math.round(performance.now() - total);
    this.#recordUsage(session);
    const record: RunResult = {
      id: session.id,
      state: session.state,
      input: label,
      raw: outcome.raw,
      text: outcome.text,
      fallback: outcome.fallback ?? false,
      asrProvider: answered(session, 'asr') ?? session.providers.asr?.name,
      asrModel: outcome.asrModel,
      correctionProvider: answered(session, 'correction') ?? session.providers.correction?.name,
      correctionModel: outcome.correctionModel,
      audioPath: audio?.path,
      timings: { ...session.timings },
      error: error ? { code: error.code, message: this.#deps.scrub(error.message) } : undefined,
      warnings: [...session.warnings],
      attempts: [...session.attempts],
      cost: sessionCost(session.attempts),
      profile: session.profile,
    };
    this.#historyFinish(session, record);
    try {
      await this.#deps.hooks.sessionEnd.promise(record);
    } catch (err) {
      this.#deps.log.warn(`sessionEnd: ${describe(err)}`);
    }
    // A tap's message can echo a credential: the caller gets what the record keeps, scrubbed.
    if (error) throw Object.assign(scrubError(error, this.#deps.scrub) as KotoError, { record });
    return record;
  }

  async #output(session: Session, text: string, raw: string, options: RunOptions): Promise<void> {
    const { hooks } = this.#deps;
    const selected = (
      session.config.resolved.outputs.length
        ? session.config.resolved.outputs
        : (options.defaultOutputs ?? []).map((name) => ({ name, plugin: '', options: {} }))
    ).filter((output) => !options.excludeOutputs?.includes(output.name));
    const results = await Promise.allSettled(
      selected.map(async (output) => {
        const hook = hooks.output.get(output.name);
        if (!hook?.isUsed()) {
          throw kotoError('KOTO_ERR_OUTPUT_UNKNOWN', { output: output.name, known: 'see `koto plugins`' });
        }
        await hook.promise({
          session,
          name: output.name,
          text,
          raw,
          options: output.options,
          signal: session.signal,
          warn: (message) => void session.warnings.push(this.#deps.scrub(message)),
        });
      }),
    );
    const failures: { message: string; error: unknown }[] = [];
    for (const [i, result] of results.entries()) {
      if (result.status === 'rejected') {
        const err = result.reason as unknown;
        const own = KotoError.is(err) && (err.code === 'KOTO_ERR_OUTPUT_UNKNOWN' || err.code === 'KOTO_ERR_OUTPUT');
        const message = own ? err.message : kotoError('KOTO_ERR_OUTPUT', { output: selected[i]?.name, detail: describe(err) }).message;
        failures.push({ message: this.#deps.scrub(message), error: err });
      }
    }
    if (results.length > 0 && failures.length === results.length) {
      // The error itself says why (a daemon client may print nothing else), with the output's own
      // fix when there is one output to fix; a partial failure stays a warning.
      const only = failures.length === 1 && KotoError.is(failures[0]!.error) ? failures[0]!.error : undefined;
      throw kotoError(
        'KOTO_ERR_OUTPUT',
        { output: selected.map((o) => o.name).join(', '), detail: 'every output failed' },
        {
          message: failures.map((f) => f.message).join('; '),
          fix: only && only.code !== 'KOTO_ERR_OUTPUT_UNKNOWN' ? this.#deps.scrub(only.fix) : undefined,
          plugin: only?.plugin,
        },
      );
    }
    for (const failure of failures) session.warnings.push(failure.message);
  }
}
