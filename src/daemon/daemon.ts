import { existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { chmod, unlink } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { HistoryStore } from '../history/store.ts';
import { describe, KotoError, kotoError } from '../kernel/errors.ts';
import { createKernel, type Kernel, type KernelOptions } from '../kernel/kernel.ts';
import type { Recording, RunResult } from '../kernel/session.ts';
import { sendCommand } from './client.ts';
import { lineParser, type DaemonRequest, type DaemonResponse } from './protocol.ts';
import { pruneRecordings } from '../kernel/retention.ts';
import { rewriteRequest } from '../quality/rewrite.ts';

export interface DaemonOptions extends KernelOptions {
  /** Override the control socket path (tests). */
  socketPath?: string | undefined;
  /** Handle SIGHUP / SIGUSR2 / SIGINT / SIGTERM (the `koto daemon` command does; tests don't). */
  signals?: boolean | undefined;
  /** How long shutdown waits for the current session to finish. */
  shutdownTimeoutMs?: number | undefined;
}

export interface DaemonStatus {
  readonly state: 'idle' | 'recording' | 'busy';
  readonly recording: { id: string; device: string | undefined; level: number; audioPath: string | undefined } | undefined;
  readonly pending: number;
  readonly lastSession: { id: string; state: string; text: string | undefined; error: string | undefined } | undefined;
  readonly configFile: string | undefined;
  readonly configGeneration: number;
  readonly lastConfigError: { code: string; message: string } | undefined;
  readonly transportGeneration: number;
  readonly transport: ReturnType<Kernel['http']['stats']>;
  readonly interrupted: readonly string[];
  readonly pid: number;
}

/**
 * The long-running mode: one kernel (config watched, one warm HTTP/2 client), a control
 * socket private to the user, a recording at a time, sessions finishing in order, history.
 */
export class Daemon {
  readonly kernel: Kernel;
  readonly history: HistoryStore;
  readonly socketPath: string;
  readonly #options: DaemonOptions;
  #server: net.Server | undefined;
  #recording: Recording | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #pending = 0;
  #last: RunResult | undefined;
  #interrupted: string[] = [];
  #closing: Promise<void> | undefined;
  #signalHandlers: [NodeJS.Signals, () => void][] = [];
  #retryOf = new Map<string, string>();

  private constructor(kernel: Kernel, options: DaemonOptions) {
    this.kernel = kernel;
    this.#options = options;
    this.socketPath = options.socketPath ?? kernel.paths.socket;
    this.history = new HistoryStore(kernel.paths.history);
  }

  static async start(options: DaemonOptions = {}): Promise<Daemon> {
    const kernel = await createKernel({ ...options, watch: options.watch ?? true });
    let daemon: Daemon | undefined;
    try {
      daemon = new Daemon(kernel, options);
      await daemon.#listen();
      daemon.#recordHistory();
      daemon.#interrupted = daemon.history.markInterrupted().map((e) => e.id);
      if (daemon.#interrupted.length) {
        kernel.log.warn(`interrupted sessions from a previous run, retry with \`koto retry ID\`: ${daemon.#interrupted.join(', ')}`);
      }
      await daemon.#retention();
      if (options.signals) daemon.#handleSignals();
      kernel.log.info(`daemon listening on ${daemon.socketPath} (pid ${process.pid})`);
      return daemon;
    } catch (err) {
      daemon?.history.close();
      await kernel.close();
      throw err;
    }
  }

  #recordHistory(): void {
    const { hooks } = this.kernel;
    hooks.sessionBegin.tap('daemon', (session, audioPath) => {
      this.history.begin({ id: session.id, input: audioPath ?? 'microphone', audioPath, retryOf: this.#retryOf.get(session.id) });
    });
    hooks.sessionEnd.tapPromise('daemon', async (record) => {
      this.history.finish(record);
      // keepAudio: false deletes the recording once the session succeeded; failures keep it for retry.
      if (!this.kernel.config.daemon.keepAudio && record.state === 'done' && record.audioPath?.startsWith(this.kernel.paths.recordings)) {
        await unlink(record.audioPath).catch(() => undefined);
        this.history.clearAudio([record.audioPath]);
      }
    });
  }

  async #retention(): Promise<void> {
    try {
      const removed = await pruneRecordings(this.kernel.paths.recordings, this.kernel.config.daemon.retention, 0);
      if (removed.length) this.history.clearAudio(removed);
    } catch (err) {
      this.kernel.log.warn(`retention: ${describe(err)}`);
    }
  }

  async #listen(): Promise<void> {
    const dir = path.dirname(this.socketPath);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
    if (existsSync(this.socketPath)) {
      // A socket file exists: either another daemon answers on it, or it is stale.
      try {
        await sendCommand(this.socketPath, 'ping', {}, 500);
        throw kotoError('KOTO_ERR_DAEMON_RUNNING', { socket: this.socketPath });
      } catch (err) {
        if (KotoError.is(err) && err.code === 'KOTO_ERR_DAEMON_RUNNING') throw err;
        unlinkSync(this.socketPath);
      }
    }
    const server = net.createServer((socket) => this.#connection(socket));
    // The socket is created with the process umask; tighten it before anyone can connect.
    const oldUmask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.socketPath, () => resolve());
      });
    } finally {
      process.umask(oldUmask);
    }
    await chmod(this.socketPath, 0o600);
    this.#server = server;
  }

  #connection(socket: net.Socket): void {
    socket.on('error', () => undefined);
    socket.on(
      'data',
      lineParser(
        (message) => void this.#handle(message as DaemonRequest).then((response) => socket.write(`${JSON.stringify(response)}\n`)),
        () => socket.destroy(),
      ),
    );
  }

  async #handle(request: DaemonRequest): Promise<DaemonResponse> {
    try {
      return { id: request.id, ok: true, result: await this.command(request.cmd, request.args ?? {}) };
    } catch (err) {
      const error = KotoError.is(err) ? err : kotoError('KOTO_ERR_INTERNAL', { detail: describe(err) });
      return {
        id: request.id,
        ok: false,
        error: { code: error.code, message: this.kernel.scrub(error.message), fix: this.kernel.scrub(error.fix), exitCode: error.exitCode },
      };
    }
  }

  /** Every control command; the socket, the signals and tests all come through here. */
  async command(cmd: DaemonRequest['cmd'], args: Record<string, unknown>): Promise<unknown> {
    switch (cmd) {
      case 'ping':
        return { pid: process.pid };
      case 'start':
        return this.startRecording();
      case 'stop':
        return this.stopRecording(Boolean(args.wait));
      case 'toggle':
        return this.#recording ? this.stopRecording(Boolean(args.wait)) : this.startRecording();
      case 'cancel':
        return this.cancelRecording();
      case 'status':
        return this.status();
      case 'reload': {
        const outcome = await this.kernel.reload();
        if (!outcome.ok && outcome.error) throw outcome.error;
        return outcome;
      }
      case 'transcribe':
        return this.kernel.transcribe(inputOf(args), { provider: args.provider as string | undefined });
      case 'run':
        // A delegated run returns its text to the caller's stdout: it never types into a window.
        return this.#enqueue(() =>
          this.kernel.run(inputOf(args), {
            provider: args.provider as string | undefined,
            correct: args.correct as boolean | undefined,
            excludeOutputs: this.#allOutputs(),
          }),
        );
      case 'correct':
        return this.kernel.correct(String(args.text ?? ''), { provider: args.provider as string | undefined });
      case 'retry':
        return this.retry(String(args.id ?? ''));
      case 'rewrite':
        // "The last result" must include a dictation that is still finishing.
        if (typeof args.text !== 'string' && typeof args.id !== 'string') await this.#queue.catch(() => undefined);
        return rewriteRequest(this.kernel, this.history, args);
      default:
        throw kotoError('KOTO_ERR_USAGE', { detail: `unknown daemon command "${String(cmd)}"` });
    }
  }

  #allOutputs(): string[] {
    return [...this.kernel.config.resolved.outputs.map((o) => o.name), 'paste', 'type', 'clipboard', 'stdout'];
  }

  async startRecording(): Promise<{ state: string; id: string; message: string }> {
    if (this.#recording) {
      return { state: 'recording', id: this.#recording.id, message: 'already recording (no change)' };
    }
    const recording = await this.kernel.record({ defaultOutputs: ['paste'] });
    this.#recording = recording;
    this.kernel.log.info(`recording ${recording.id} from ${recording.device ?? 'the default device'}`);
    // A recording that ends by itself (maximum length) still finishes in order.
    return { state: 'recording', id: recording.id, message: `recording (${recording.id})` };
  }

  async stopRecording(wait: boolean): Promise<unknown> {
    const recording = this.#recording;
    if (!recording) return { state: 'idle', message: 'not recording (no change)' };
    this.#recording = undefined;
    const finished = this.#enqueue(() => recording.stop());
    finished.then(
      (record) => this.kernel.log.info(`session ${record.id} done: ${record.text?.length ?? 0} characters${record.fallback ? ' (raw text: correction failed)' : ''}`),
      (err: unknown) => this.kernel.log.error(`session ${recording.id} failed: ${describe(err)}; the recording is kept, retry with \`koto retry ${recording.id}\``),
    );
    if (wait) return finished;
    return { state: 'transcribing', id: recording.id, message: `stopped; transcribing (${recording.id})` };
  }

  async cancelRecording(): Promise<{ state: string; message: string }> {
    const recording = this.#recording;
    if (!recording) return { state: 'idle', message: 'nothing to cancel' };
    this.#recording = undefined;
    await recording.cancel();
    return { state: 'idle', message: `cancelled (${recording.id})` };
  }

  /** Sessions finish in the order they were stopped, so their text lands in order. */
  #enqueue<T>(job: () => Promise<T>): Promise<T> {
    this.#pending += 1;
    const result = this.#queue.then(job);
    this.#queue = result
      .then(
        (record) => {
          this.#last = record as RunResult;
        },
        (err: unknown) => {
          this.#last = (err as { record?: RunResult }).record;
        },
      )
      .finally(() => {
        this.#pending -= 1;
      });
    return result;
  }

  /** Re-runs a kept recording through the whole pipeline (its outputs included). */
  async retry(id: string): Promise<RunResult> {
    const entry = this.history.get(id);
    if (!entry) throw kotoError('KOTO_ERR_HISTORY_NOT_FOUND', { id });
    if (!entry.audioPath || !existsSync(entry.audioPath)) throw kotoError('KOTO_ERR_NO_RECORDING', { id, reason: entry.audioPath ? ' (the file was removed)' : '' });
    return this.#enqueue(() => this.kernel.run(entry.audioPath!, { defaultOutputs: ['paste'], excludeOutputs: ['stdout'] }));
  }

  status(): DaemonStatus {
    const diagnostics = this.kernel.diagnostics();
    const last = this.#last;
    return {
      state: this.#recording ? 'recording' : this.#pending > 0 ? 'busy' : 'idle',
      recording: this.#recording
        ? { id: this.#recording.id, device: this.#recording.device, level: this.#recording.level, audioPath: this.#recording.audioPath }
        : undefined,
      pending: this.#pending,
      lastSession: last ? { id: last.id, state: last.state, text: last.text, error: last.error?.message } : undefined,
      configFile: diagnostics.configFile,
      configGeneration: diagnostics.configGeneration,
      lastConfigError: diagnostics.lastConfigError,
      transportGeneration: diagnostics.transportGeneration,
      transport: diagnostics.transport,
      interrupted: this.#interrupted,
      pid: process.pid,
    };
  }

  #handleSignals(): void {
    const on = (signal: NodeJS.Signals, fn: () => void) => {
      process.on(signal, fn);
      this.#signalHandlers.push([signal, fn]);
    };
    on('SIGHUP', () => void this.kernel.reload());
    on('SIGUSR2', () => void this.command('toggle', {}).catch((err: unknown) => this.kernel.log.error(describe(err))));
    const shutdown = () => void this.close().then(() => process.exit(0));
    on('SIGINT', shutdown);
    on('SIGTERM', shutdown);
  }

  /** Graceful: stop accepting, finish (or save) the current session within a deadline, close. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      for (const [signal, fn] of this.#signalHandlers) process.off(signal, fn);
      this.#server?.close();
      const recording = this.#recording;
      this.#recording = undefined;
      if (recording) this.#enqueue(() => recording.stop()).catch(() => undefined);
      const deadline = this.#options.shutdownTimeoutMs ?? 30_000;
      await Promise.race([this.#queue, new Promise((r) => setTimeout(r, deadline).unref())]);
      await this.kernel.close();
      this.history.close();
      await unlink(this.socketPath).catch(() => undefined);
    })();
    return this.#closing;
  }
}

function inputOf(args: Record<string, unknown>): string | { data: Uint8Array; name: string } {
  if (typeof args.path === 'string') return args.path;
  if (typeof args.data === 'string') return { data: Buffer.from(args.data, 'base64'), name: String(args.name ?? '-') };
  throw kotoError('KOTO_ERR_USAGE', { detail: 'the daemon needs a file path or audio data' });
}
