import { existsSync } from 'node:fs';
import { chmod, unlink } from 'node:fs/promises';
import { deleteIfOwned, ensureDataDirs } from '../kernel/owned-files.ts';
import { DataFolderLock } from './data-lock.ts';
import net from 'node:net';
import path from 'node:path';
import type { HistoryStore } from '../history/store.ts';
import { describe, KotoError, kotoError } from '../kernel/errors.ts';
import { createKernel, type Kernel, type KernelOptions } from '../kernel/kernel.ts';
import type { Recording, RunResult } from '../kernel/session.ts';
import type { TriggerEvent } from '../kernel/types.ts';
import { sendCommand } from './client.ts';
import {
  controlError,
  encodeResponse,
  lineParser,
  parseArgs,
  parseRequest,
  type DaemonArgs,
  type DaemonRequest,
  type DaemonResponse,
} from './protocol.ts';
import { pruneRecordings } from '../kernel/retention.ts';
import { rewriteRequest } from '../quality/rewrite.ts';
import { lstat, readFile, rm } from 'node:fs/promises';
import { prepareDaemonSocket } from './socket-guard.ts';
import { kotoPaths } from '../kernel/paths.ts';
import { profileNamed, retryProfile } from '../kernel/profiles.ts';
import { EndOfSpeech } from '../audio/end-of-speech.ts';
import type { UiServer } from '../ui/server.ts';

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
  readonly recording:
    { id: string; device: string | undefined; level: number; audioPath: string | undefined; profile: string | undefined } | undefined;
  readonly pending: number;
  readonly lastSession:
    | {
        id: string;
        state: string;
        text: string | undefined;
        error: string | undefined;
        profile: string | undefined;
        warnings?: readonly string[];
      }
    | undefined;
  readonly configFile: string | undefined;
  readonly configGeneration: number;
  readonly lastConfigError: { code: string; message: string } | undefined;
  /** Config sections changed since start that take a restart (`plugins`, `pluginOptions`). */
  readonly restartNeeded?: readonly string[];
  readonly transportGeneration: number;
  readonly transport: ReturnType<Kernel['http']['stats']>;
  readonly interrupted: readonly string[];
  readonly pid: number;
  /** What plugins serving the daemon report (`hotkey`: the grabbed combination; `mic-native`: the microphone kept open). */
  readonly plugins: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  readonly audio: {
    readonly preRollMs: number;
    /** The last recording's start: who triggered it and how its first audio relates to the trigger. */
    readonly lastStart: LastStart | undefined;
  };
  /** The control panel: its address (no token: `koto ui` asks for a login link), or why it is not served. */
  readonly ui: { readonly url: string | undefined; readonly error: string | undefined };
}

export interface LastStart {
  readonly id: string;
  readonly source: string;
  /**
   * First captured sample minus the trigger time, ms: negative = the recording holds audio from
   * before the key press (pre-roll); positive = this much speech after the key press was lost.
   */
  readonly keyToAudioMs: number | undefined;
  /** Trigger → the recording started (the control path and opening the device), ms. */
  readonly keyToStartMs: number | undefined;
  readonly preRollMs: number;
  /** When the recording started (ms since the epoch). */
  readonly startedAt: number;
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
  #lock: DataFolderLock | undefined;
  /** Dictations being finished (stopped recordings, retries), oldest first: what `cancel` reaches. */
  #dictations: { id: string; label: string; cancel: () => Promise<void>; cancelled?: boolean }[] = [];
  /** Aborted at close: trigger plugins stop listening, warm sources close. */
  readonly #host = new AbortController();
  #pluginReports = new Map<string, Readonly<Record<string, unknown>>>();
  #lastStart: LastStart | undefined;
  /** The hands-free recording's end-of-speech detector (`koto start --vad`, `hotkey.mode: vad`). */
  #vad: { id: string; detector: EndOfSpeech } | undefined;
  /** A start in progress: a second trigger during it joins it instead of opening the device twice. */
  #starting: Promise<{ state: string; id: string; message: string }> | undefined;
  #ui: UiServer | undefined;
  #uiError: KotoError | undefined;

  private constructor(kernel: Kernel, options: DaemonOptions) {
    this.kernel = kernel;
    this.#options = options;
    this.socketPath = options.socketPath ?? kernel.paths.socket;
    // The kernel writes every session's row (kernel.ts); the daemon reads it and marks the dead.
    this.history = kernel.history;
  }

  static async start(options: DaemonOptions = {}): Promise<Daemon> {
    // An unsafe runtime folder (issue #17) is refused before any plugin loads; #listen checks again.
    prepareDaemonSocket(options.socketPath ?? kotoPaths(options.env ?? process.env).socket);
    const kernel = await createKernel({ host: 'daemon', ...options, history: true, watch: options.watch ?? true });
    let daemon: Daemon | undefined;
    try {
      // History and recordings: refused at start if not private, not at the first dictation.
      ensureDataDirs(kernel.paths);
      daemon = new Daemon(kernel, options);
      await daemon.#listen();
      // One daemon per data folder, or each would take the other's live session for a dead one.
      daemon.#lock = DataFolderLock.acquire(kernel.paths.dataDir);
      daemon.#recordHistory();
      daemon.#interrupted = daemon.history.markInterrupted().map((e) => e.id);
      if (daemon.#interrupted.length) {
        kernel.log.warn(`interrupted sessions from a previous run, retry with \`koto retry ID\`: ${daemon.#interrupted.join(', ')}`);
      }
      await daemon.#retention();
      daemon.#listenForSilence();
      if (options.signals) daemon.#handleSignals();
      await daemon.#startHostedPlugins();
      await daemon.#startUi();
      daemon.#watchUiSettings();
      kernel.log.info(`daemon listening on ${daemon.socketPath} (pid ${process.pid})`);
      return daemon;
    } catch (err) {
      if (daemon) {
        daemon.#lock?.release();
        if (daemon.#server) {
          // Our own socket only: a failure before listening may be another daemon's socket.
          daemon.#server.close();
          await unlink(daemon.socketPath).catch(() => undefined);
        }
      }
      await kernel.close();
      throw err;
    }
  }

  #recordHistory(): void {
    // keepAudio: false deletes the recording once the session succeeded; failures keep it for
    // retry. Only a file of the recordings folder: a delegated `koto run ~/meeting.wav` has the
    // user's own file as its audio.
    this.kernel.hooks.sessionEnd.tapPromise('daemon', async (record) => {
      if (this.kernel.config.daemon.keepAudio || record.state !== 'done' || !record.audioPath) return;
      if (await deleteIfOwned(record.audioPath, this.kernel.paths.recordings).catch(() => false))
        this.history.clearAudio([record.audioPath]);
    });
  }

  async #retention(): Promise<void> {
    try {
      // pruneRecordings touches only regular files directly in the recordings folder (retention.ts).
      const removed = await pruneRecordings(this.kernel.paths.recordings, this.kernel.config.daemon.retention, 0);
      if (removed.length) this.history.clearAudio(removed);
    } catch (err) {
      this.kernel.log.warn(`retention: ${describe(err)}`);
    }
  }

  /**
   * Trigger plugins (the hotkey) and warm sources (pre-roll) start here. A plugin failing here is
   * reported, not fatal: the socket and signals still work.
   */
  async #startHostedPlugins(): Promise<void> {
    try {
      await this.kernel.serveDaemon({
        dispatch: (action, event) => this.command(action, { source: event.source, at: event.at, ...(event.vad ? { vad: true } : {}) }),
        report: (plugin, status) => {
          if (status === undefined) this.#pluginReports.delete(plugin);
          else this.#pluginReports.set(plugin, status);
        },
        signal: this.#host.signal,
      });
    } catch (err) {
      this.kernel.log.error(describe(err));
    }
  }

  /** The control panel (src/ui): not being able to serve it is reported, never fatal. */
  async #startUi(): Promise<void> {
    const settings = this.kernel.config.daemon.ui;
    if (!settings.enabled) return;
    try {
      const { UiServer } = await import('../ui/server.ts');
      this.#ui = await UiServer.start(this, settings);
      this.kernel.log.info(`control panel on ${this.#ui.url} (open it with \`koto ui\`)`);
    } catch (err) {
      this.#uiError = KotoError.is(err)
        ? err
        : kotoError('KOTO_ERR_UI_UNAVAILABLE', { reason: describe(err), remedy: 'run the daemon with --debug and report it' });
      this.kernel.log.error(describe(this.#uiError));
    }
  }

  /** The panel's address is fixed while the daemon runs: a changed `daemon.ui` is said to need a restart. */
  #watchUiSettings(): void {
    this.kernel.hooks.configChanged.tap('daemon', (change) => {
      if (JSON.stringify(change.config.daemon.ui) !== JSON.stringify(change.previous.daemon.ui)) {
        this.kernel.log.warn('daemon.ui changed: the control panel keeps its address until the daemon restarts');
      }
    });
  }

  /** `koto ui`: a single-use login link, asked for over the private socket. */
  #uiLogin(): { url: string; panel: string } {
    if (this.#ui) return { url: this.#ui.loginUrl(), panel: this.#ui.url };
    throw (
      this.#uiError ??
      kotoError('KOTO_ERR_UI_UNAVAILABLE', {
        reason: 'it is turned off (daemon.ui.enabled: false)',
        remedy: 'set daemon.ui.enabled: true in the config and restart the daemon',
      })
    );
  }

  async #listen(): Promise<void> {
    // The runtime folder must be ours, 0700, no symlink (issue #17: under $TMPDIR another user
    // may have created it first); whatever is in the way is refused, never chmod-ed or reused.
    const entry = prepareDaemonSocket(this.socketPath);
    if (entry === 'socket') {
      // Either another daemon answers on it, or it is stale (a crash).
      try {
        await sendCommand(this.socketPath, 'ping', {}, 500);
        throw kotoError('KOTO_ERR_DAEMON_RUNNING', { socket: this.socketPath });
      } catch (err) {
        if (KotoError.is(err) && (err.code === 'KOTO_ERR_DAEMON_RUNNING' || err.code.startsWith('KOTO_ERR_UNSAFE_'))) throw err;
      }
    }
    // Only an entry of ours inside our private folder gets here (prepareDaemonSocket refused the rest).
    if (entry !== 'missing') await rm(this.socketPath, { force: true });
    // Half-open: a client may send its requests, end its side, and still read every answer.
    const server = net.createServer({ allowHalfOpen: true }, (socket) => this.#connection(socket));
    // The socket is created with the process umask; tighten it before anyone can connect.
    const oldUmask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.socketPath, () => resolve());
      });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw code === 'EADDRINUSE'
        ? kotoError('KOTO_ERR_DAEMON_RUNNING', { socket: this.socketPath })
        : kotoError('KOTO_ERR_UNSAFE_FOLDER', {
            role: 'runtime',
            dir: path.dirname(this.socketPath),
            problem: `Koto cannot create its socket there (${describe(err)})`,
            remedy: 'set XDG_RUNTIME_DIR to a private folder you can write (e.g. /run/user/$(id -u))',
          });
    } finally {
      process.umask(oldUmask);
    }
    await chmod(this.socketPath, 0o600);
    this.#server = server;
  }

  /**
   * Anything may arrive here (the socket is private, but a buggy script is still a client): every
   * line gets an answer, a malformed one a KOTO_ERR_CONTROL_MESSAGE reply; nothing a client sends
   * can throw out of this handler or leave a rejected promise behind.
   */
  #connection(socket: net.Socket): void {
    socket.on('error', () => undefined);
    let pending = 0;
    let ended = false;
    const reply = (response: DaemonResponse) => {
      if (socket.writable) socket.write(encodeResponse(response));
    };
    const answered = (response: DaemonResponse) => {
      pending -= 1;
      reply(response);
      if (ended && pending === 0) socket.end();
    };
    const parser = lineParser(
      (message) => {
        const parsed = parseRequest(message);
        if (!parsed.ok) return reply(this.#failure(parsed.id, parsed.error));
        pending += 1;
        this.#handle(parsed.request).then(answered, (err: unknown) => answered(this.#failure(parsed.request.id, err)));
      },
      (err, fatal) => {
        reply(this.#failure(null, err));
        if (fatal) {
          // The framing is lost (an oversized line): answer, stop reading, close.
          socket.pause();
          socket.end(() => socket.destroy());
        }
      },
    );
    socket.on('data', parser);
    socket.on('end', () => {
      parser.end();
      ended = true;
      if (pending === 0) socket.end();
    });
  }

  async #handle(request: DaemonRequest): Promise<DaemonResponse> {
    try {
      return { id: request.id, ok: true, result: await this.command(request.cmd, request.args ?? {}) };
    } catch (err) {
      return this.#failure(request.id, err);
    }
  }

  #failure(id: number | null, err: unknown): DaemonResponse {
    const error = KotoError.is(err) ? err : kotoError('KOTO_ERR_INTERNAL', { detail: describe(err) });
    // A session that failed at the last mile still has its text: the client prints it (stop --wait).
    const record = (err as { record?: RunResult }).record;
    return {
      id,
      ok: false,
      error: {
        code: error.code,
        message: this.kernel.scrub(error.message),
        fix: this.kernel.scrub(error.fix),
        exitCode: error.exitCode,
        ...(record ? { record } : {}),
      },
    };
  }

  /** Every control command; the socket, the signals and tests all come through here. */
  async command(cmd: DaemonRequest['cmd'], args: Record<string, unknown>): Promise<unknown> {
    // Typed and bounded before anything acts on them (protocol.ts ARGS); unknown keys dropped.
    const checked = parseArgs(cmd, args) as Record<string, unknown>;
    switch (cmd) {
      case 'ping':
        return { pid: process.pid };
      case 'start':
        return this.startRecording(trigger(checked));
      case 'stop':
        return this.stopRecording(Boolean(checked.wait));
      case 'toggle':
        return this.#recording ? this.stopRecording(Boolean(checked.wait)) : this.startRecording(trigger(checked));
      case 'cancel':
        return this.cancelRecording();
      case 'status':
        return this.status();
      case 'ui':
        return this.#uiLogin();
      case 'reload': {
        const outcome = await this.kernel.reload();
        if (!outcome.ok && outcome.error) throw outcome.error;
        return outcome;
      }
      case 'transcribe': {
        const a = checked as DaemonArgs<'transcribe'>;
        const input = await this.#inputOf(a);
        return this.kernel.transcribe(input, { provider: this.#provider(a.provider, 'asr') });
      }
      case 'run': {
        const a = checked as DaemonArgs<'run'>;
        const input = await this.#inputOf(a);
        const provider = this.#provider(a.provider, 'asr');
        // A delegated run returns its text to the caller's stdout: it never types into a window.
        // A forced profile (`koto run --profile`) is checked before the audio is queued.
        if (a.profile !== undefined) profileNamed(this.kernel.config, a.profile);
        return this.#enqueue(() =>
          this.kernel.run(input, { provider, correct: a.correct, profile: a.profile, excludeOutputs: this.#allOutputs() }),
        );
      }
      case 'correct': {
        const a = checked as DaemonArgs<'correct'>;
        return this.kernel.correct(a.text ?? '', { provider: this.#provider(a.provider, 'correction') });
      }
      case 'retry':
        return this.retry((checked as DaemonArgs<'retry'>).id);
      case 'deliver': {
        // The text again through the outputs (`koto paste ID`), in order with the dictations.
        const id = (checked as DaemonArgs<'deliver'>).id;
        return this.#enqueue(() => this.kernel.deliver(id, { defaultOutputs: ['paste'], excludeOutputs: ['stdout'] }));
      }
      case 'rewrite':
        // "The last result" must include a dictation that is still finishing.
        if (typeof checked.text !== 'string' && typeof checked.id !== 'string') await this.#queue.catch(() => undefined);
        return rewriteRequest(this.kernel, this.history, checked);
      default:
        throw kotoError('KOTO_ERR_USAGE', { detail: `unknown daemon command "${String(cmd)}"` });
    }
  }

  /** A provider name from a client must name a configured provider (own key: not "constructor"). */
  #provider(name: string | undefined, section: 'asr' | 'correction'): string | undefined {
    const providers = this.kernel.config.resolved.providers;
    if (name === undefined || Object.hasOwn(providers, name)) return name;
    throw kotoError('KOTO_ERR_PROVIDER_UNKNOWN', { section, provider: name, known: Object.keys(providers).join(', ') || 'none' });
  }

  async #inputOf(a: DaemonArgs<'transcribe'>): Promise<string | { data: Uint8Array; name: string }> {
    if (a.path !== undefined) return a.path;
    if (a.data !== undefined) return { data: Buffer.from(a.data, 'base64'), name: a.name ?? '-' };
    return { data: await this.#readUpload(a.upload!, a.name ?? '-'), name: a.name ?? '-' };
  }

  /**
   * Audio too large for one control line arrives as a file the client wrote next to the socket
   * (client.ts). Only such files are read, and removed once read: the kernel saves its own copy
   * to the recordings folder, exactly as for inline audio.
   */
  async #readUpload(file: string, name: string): Promise<Buffer> {
    if (path.dirname(file) !== path.dirname(this.socketPath) || !/^upload-[\w-]+\.audio$/.test(path.basename(file))) {
      throw controlError('"upload" must name a file the client wrote next to the control socket');
    }
    try {
      // Not a FIFO or a device: reading must end.
      if (!(await lstat(file)).isFile()) throw new Error('not a regular file');
      return await readFile(file);
    } catch (err) {
      throw kotoError('KOTO_ERR_AUDIO_INPUT', { input: name, detail: describe(err) });
    } finally {
      await rm(file, { force: true });
    }
  }

  #allOutputs(): string[] {
    return [...this.kernel.config.resolved.outputs.map((o) => o.name), 'paste', 'type', 'clipboard', 'stdout'];
  }

  /**
   * Hands-free mode: the frames of a recording started with `vad` go through an end-of-speech
   * detector; silence after speech stops it (like `koto stop`), no speech at all cancels it.
   */
  #listenForSilence(): void {
    this.kernel.hooks.audioFrame.tap('koto-daemon', (session, frame) => {
      const vad = this.#vad;
      if (!vad || vad.id !== session.id || this.#recording?.id !== session.id) return;
      const verdict = vad.detector.push(frame.rms, frame.timestamp);
      if (!verdict) return;
      this.#vad = undefined;
      const audio = this.kernel.config.audio;
      if (verdict === 'speech-ended') {
        this.kernel.log.info(`recording ${session.id}: ${audio.silenceMs} ms of silence after speech, stopping (hands-free)`);
        void this.stopRecording(false);
      } else {
        this.kernel.log.warn(`recording ${session.id}: no speech within ${audio.noSpeechMs} ms, cancelled (hands-free; audio.noSpeechMs)`);
        void this.cancelRecording();
      }
    });
  }

  async startRecording(event: TriggerEvent = { source: 'api' }): Promise<{ state: string; id: string; message: string }> {
    if (this.#recording) {
      return { state: 'recording', id: this.#recording.id, message: 'already recording (no change)' };
    }
    // A hotkey press and a `koto start` at once: one recording, not two devices opened.
    if (this.#starting) return this.#starting;
    this.#starting = this.#start(event);
    try {
      return await this.#starting;
    } finally {
      this.#starting = undefined;
    }
  }

  async #start(event: TriggerEvent): Promise<{ state: string; id: string; message: string }> {
    const at = event.at ?? Date.now();
    // The window the user dictates into is the one focused now, at the trigger: the profile is
    // chosen from it (and recorded), whatever gets the focus while they speak. Asked only when
    // profiles are configured: the lookup is on the way to the first captured sample.
    const window = this.kernel.config.resolved.profiles.length > 0 ? await this.kernel.focusedWindow() : undefined;
    const recording: Recording = await this.kernel.record({
      window,
      defaultOutputs: ['paste'],
      // A recording that ends by itself (maximum length) is finished in order, like a stop.
      onMaxLength: () => {
        if (this.#recording === recording) void this.stopRecording(false);
      },
    });
    this.#recording = recording;
    const { silenceMs, noSpeechMs } = this.kernel.config.audio;
    this.#vad = event.vad ? { id: recording.id, detector: new EndOfSpeech({ silenceMs, noSpeechMs }) } : undefined;
    const startedAt = performance.timeOrigin + performance.now();
    this.#lastStart = {
      id: recording.id,
      source: event.source,
      keyToAudioMs: recording.firstSampleAt === undefined ? undefined : Math.round(recording.firstSampleAt - at),
      keyToStartMs: Math.round(startedAt - at),
      preRollMs: recording.preRollMs,
      startedAt: Math.round(startedAt),
    };
    const audio = this.#lastStart.keyToAudioMs;
    this.kernel.log.info(
      `recording ${recording.id} from ${recording.device ?? 'the default device'} (${event.source}` +
        `${audio === undefined ? '' : audio <= 0 ? `; audio from ${-audio} ms before the trigger` : `; first audio ${audio} ms after the trigger`}` +
        // The application's name, not its title: titles hold mail subjects and page names.
        `${recording.profile ? `; profile ${recording.profile} for ${window?.app}` : window ? `; no profile for ${window.app}` : ''})`,
    );
    return {
      state: 'recording',
      id: recording.id,
      message: `recording (${recording.id}${recording.profile ? `, profile ${recording.profile}` : ''}${event.vad ? `; ends after ${silenceMs} ms of silence` : ''})`,
    };
  }

  async stopRecording(wait: boolean): Promise<unknown> {
    const recording = this.#recording;
    if (!recording) return { state: 'idle', message: 'not recording (no change)' };
    this.#recording = undefined;
    // The device is released now; the session waits its turn to be finished, so texts land in order.
    void recording.stopCapture();
    const finished = this.#dictation(
      recording.id,
      `session ${recording.id}`,
      () => recording.cancel(),
      () => recording.stop(),
    );
    finished.then(
      (record) =>
        this.kernel.log.info(
          `session ${record.id} done: ${record.text?.length ?? 0} characters${record.fallback ? ' (raw text: correction failed)' : ''}`,
        ),
      (err: unknown) =>
        KotoError.is(err) && err.code === 'KOTO_ERR_ABORTED'
          ? this.kernel.log.info(`session ${recording.id} cancelled; the recording is kept, retry with \`koto retry ${recording.id}\``)
          : (err as { record?: RunResult }).record?.text !== undefined
            ? // Transcribed and corrected, then no output took it: the text is kept, not the ASR to redo.
              this.kernel.log.error(
                `session ${recording.id}: ${describe(err)}; the text is in the history, deliver it again with \`koto paste ${recording.id}\``,
              )
            : this.kernel.log.error(
                `session ${recording.id} failed: ${describe(err)}; the recording is kept, retry with \`koto retry ${recording.id}\``,
              ),
    );
    if (wait) return finished;
    return { state: 'transcribing', id: recording.id, message: `stopped; transcribing (${recording.id})` };
  }

  /**
   * The recording, else the oldest dictation still being finished: its requests are aborted, it
   * ends `cancelled` with nothing delivered, its recording kept (`koto retry ID`). Sessions queued
   * behind it keep their order. Delegated runs (scripts) are not the hotkey's to cancel.
   */
  async cancelRecording(): Promise<{ state: string; id?: string; message: string }> {
    const recording = this.#recording;
    if (recording) {
      this.#recording = undefined;
      await recording.cancel();
      return { state: 'idle', id: recording.id, message: `cancelled (${recording.id})` };
    }
    // One already cancelled may still wait for its turn in the queue: the next one is meant.
    const dictation = this.#dictations.find((d) => !d.cancelled);
    if (!dictation) return { state: this.status().state, message: 'nothing to cancel' };
    dictation.cancelled = true;
    const cancelled = dictation.cancel().then(() => true);
    // A provider that ignores the abort must not hang the control command.
    const settled = await Promise.race([cancelled, new Promise<false>((r) => setTimeout(() => r(false), 5000).unref())]);
    const state = this.status().state;
    return settled
      ? { state, id: dictation.id, message: `cancelled ${dictation.label}; the recording is kept (koto retry ${dictation.id})` }
      : { state, id: dictation.id, message: `cancelling ${dictation.label}` };
  }

  /** A dictation finished through the queue, reachable by `cancel` until it settles. */
  #dictation<T>(id: string, label: string, cancel: () => Promise<void>, job: () => Promise<T>): Promise<T> {
    const entry = { id, label, cancel };
    this.#dictations.push(entry);
    const result = this.#enqueue(job);
    const remove = () => {
      this.#dictations = this.#dictations.filter((d) => d !== entry);
    };
    result.then(remove, remove);
    return result;
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
    if (!entry.audioPath || !existsSync(entry.audioPath))
      throw kotoError('KOTO_ERR_NO_RECORDING', { id, reason: entry.audioPath ? ' (the file was removed)' : '' });
    const audioPath = entry.audioPath;
    const controller = new AbortController();
    let finished: Promise<RunResult> | undefined;
    const cancel = async () => {
      controller.abort();
      await finished?.catch(() => undefined);
    };
    finished = this.#dictation(id, `the retry of ${id}`, cancel, () =>
      // The dictation was for the application of its profile: the retry is too.
      this.kernel.run(audioPath, {
        defaultOutputs: ['paste'],
        excludeOutputs: ['stdout'],
        retryOf: id,
        signal: controller.signal,
        profile: retryProfile(this.kernel.config, entry.profile),
      }),
    );
    return finished;
  }

  status(): DaemonStatus {
    const diagnostics = this.kernel.diagnostics();
    const last = this.#last;
    return {
      state: this.#recording ? 'recording' : this.#pending > 0 ? 'busy' : 'idle',
      recording: this.#recording
        ? {
            id: this.#recording.id,
            device: this.#recording.device,
            level: this.#recording.level,
            audioPath: this.#recording.audioPath,
            profile: this.#recording.profile,
          }
        : undefined,
      pending: this.#pending,
      lastSession: last
        ? { id: last.id, state: last.state, text: last.text, error: last.error?.message, profile: last.profile, warnings: last.warnings }
        : undefined,
      configFile: diagnostics.configFile,
      configGeneration: diagnostics.configGeneration,
      lastConfigError: diagnostics.lastConfigError,
      restartNeeded: diagnostics.restartNeeded,
      transportGeneration: diagnostics.transportGeneration,
      transport: diagnostics.transport,
      interrupted: this.#interrupted,
      pid: process.pid,
      plugins: Object.fromEntries(this.#pluginReports),
      audio: { preRollMs: this.kernel.config.audio.preRollMs, lastStart: this.#lastStart },
      ui: { url: this.#ui?.url, error: this.#uiError?.message },
    };
  }

  #handleSignals(): void {
    const on = (signal: NodeJS.Signals, fn: () => void) => {
      process.on(signal, fn);
      this.#signalHandlers.push([signal, fn]);
    };
    on('SIGHUP', () => void this.kernel.reload());
    on('SIGUSR2', () => void this.command('toggle', { source: 'signal' }).catch((err: unknown) => this.kernel.log.error(describe(err))));
    const shutdown = () => void this.close().then(() => process.exit(0));
    on('SIGINT', shutdown);
    on('SIGTERM', shutdown);
  }

  /** Graceful: stop accepting, finish (or save) the current session within a deadline, close. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      for (const [signal, fn] of this.#signalHandlers) process.off(signal, fn);
      this.#host.abort();
      this.#server?.close();
      await this.#ui?.close().catch(() => undefined);
      const recording = this.#recording;
      this.#recording = undefined;
      if (recording) {
        void recording.stopCapture();
        this.#enqueue(() => recording.stop()).catch(() => undefined);
      }
      const deadline = this.#options.shutdownTimeoutMs ?? 30_000;
      await Promise.race([this.#queue, new Promise((r) => setTimeout(r, deadline).unref())]);
      await this.kernel.close();
      this.history.close();
      this.#lock?.release();
      await unlink(this.socketPath).catch(() => undefined);
    })();
    return this.#closing;
  }
}

function trigger(args: Record<string, unknown>): TriggerEvent {
  return {
    source: typeof args.source === 'string' ? args.source : 'socket',
    at: typeof args.at === 'number' ? args.at : undefined,
    vad: args.vad === true || undefined,
  };
}
