import { chmod, mkdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { pruneRecordings, type AudioFrame, type AudioSourceHandle, type Logger, type RetentionLimits } from 'koto-voice';
import { audioServerProblem, openDevice, SAMPLE_RATE, type DeviceCapture } from './backends/index.ts';
import { isMicError, micError } from './errors.ts';
import { FrameQueue, Framer, rms } from './frames.ts';
import { DEFAULT_OPTIONS, type BackendName, type MicOptions } from './options.ts';
import { SilenceDetector } from './silence.ts';
import { WavWriter } from './wav-writer.ts';

type LogLike = Pick<Logger, 'debug' | 'info' | 'warn'>;

export interface OpenOptions extends Partial<MicOptions> {
  /** Device name (`audio.device`); `default` (or empty) is the system default. */
  readonly device?: string | undefined;
  readonly log?: LogLike | undefined;
}

export interface StartOptions {
  /** Write the recording here as a WAV file (its folder is created, mode 0700; the file 0600). */
  readonly file?: string | undefined;
  /** Delete old recordings in the file's folder first. */
  readonly retention?: RetentionLimits | undefined;
  /** Stop by itself after this much audio. */
  readonly maxDurationMs?: number | undefined;
  /** Aborting stops the recording (as stop() does). */
  readonly signal?: AbortSignal | undefined;
}

/** A stall while the sound server still answers gets this much longer before it is an error. */
const STALL_GRACE_MS = 2500;

type State = 'armed' | 'starting' | 'recording' | 'stopping' | 'done';

const silentLog: LogLike = { debug: () => undefined, info: () => undefined, warn: () => undefined };

/**
 * One open microphone. `Microphone.open()` opens the device and keeps the last `preRollMs` of
 * audio until `start()`, which returns the handle of the recording (frames, WAV file, stop).
 * Guards run from the first frame: digital silence, a device that stops delivering, a dead server.
 */
export class Microphone {
  readonly options: MicOptions;
  readonly #log: LogLike;
  readonly #framer: Framer;
  readonly #silence: SilenceDetector;
  #capture: DeviceCapture | undefined;
  #state: State = 'armed';
  #keepAllBeforeStart = false;
  #ring: Int16Array[] = [];
  #ringSamples = 0;
  #error: unknown;
  #recording: Recording | undefined;
  #watchdog: NodeJS.Timeout | undefined;
  #lastProgress = -1;
  #lastProgressAt = 0;
  #checking = false;
  #finishing: Promise<void> | undefined;
  #openedAt = 0;
  /** When the first sample the device delivered was captured (ms since the epoch). */
  #firstSampleAt: number | undefined;
  /** Milliseconds from open() to the first audio. */
  firstAudioMs = 0;

  private constructor(options: MicOptions, log: LogLike) {
    this.options = options;
    this.#log = log;
    this.#framer = new Framer(options.frameLength);
    this.#silence = new SilenceDetector(options.silenceMs, SAMPLE_RATE);
  }

  /** Opens the device; resolves once audio flows. */
  static async open(options: OpenOptions = {}): Promise<Microphone> {
    const { device, log, ...rest } = options;
    const mic = new Microphone({ ...DEFAULT_OPTIONS, ...rest }, log ?? silentLog);
    await mic.#open(device ?? 'default');
    return mic;
  }

  /** Opens the device and starts recording at once (no audio is dropped before start). */
  static async record(options: OpenOptions & StartOptions = {}): Promise<Recording> {
    const { device, log, file, retention, maxDurationMs, signal, ...rest } = options;
    const mic = new Microphone({ ...DEFAULT_OPTIONS, ...rest }, log ?? silentLog);
    mic.#keepAllBeforeStart = true;
    await mic.#open(device ?? 'default');
    return mic.start({ file, retention, maxDurationMs, signal });
  }

  /** The backend in use (the option's value until the device is open). */
  get backend(): BackendName | 'auto' {
    return this.#capture?.backend ?? this.options.backend;
  }

  /** The device opened, as the backend names it. */
  get device(): string {
    return this.#capture?.device ?? 'default';
  }

  get sampleRate(): number {
    return SAMPLE_RATE;
  }

  /** Why the device failed before start (start() rejects with it), if it did. */
  get error(): unknown {
    return this.#error;
  }

  get state(): State {
    return this.#state;
  }

  async #open(device: string): Promise<void> {
    this.#openedAt = performance.now();
    const { capture, skipped } = await openDevice(
      this.options.backend,
      {
        device,
        frameLength: this.options.frameLength,
        openTimeoutMs: this.options.openTimeoutMs,
        latencyMs: this.options.latencyMs,
        onData: (samples) => this.#onData(samples),
        onError: (err) => void this.#lost(err),
      },
      (msg) => this.#log.info(msg),
    );
    this.#capture = capture;
    this.firstAudioMs = Math.round(performance.now() - this.#openedAt);
    this.#log.debug(`opened "${capture.device}" with ${capture.backend} (first audio after ${this.firstAudioMs} ms)`, {
      ...(skipped.length ? { skipped } : {}),
    });
    this.#lastProgressAt = performance.now();
    this.#watchdog = setInterval(() => this.#check(), 100);
    this.#watchdog.unref();
  }

  #onData(samples: Int16Array): void {
    if (this.#state === 'done') return;
    this.#firstSampleAt ??= epochNow() - (samples.length * 1000) / SAMPLE_RATE;
    this.#framer.push(samples, (frame) => this.#onFrame(frame));
  }

  #onFrame(frame: Int16Array): void {
    if (this.#state === 'done') return;
    // A microphone kept open for pre-roll may hear digital silence for hours (a muted or idle
    // device): that is only an error for the audio of a recording, so it is checked from start().
    const standby = this.#state === 'armed' && !this.#keepAllBeforeStart;
    if (!standby && this.#silence.push(frame)) {
      void this.#fail(micError('silence', { device: this.device, ms: this.options.silenceMs }), 'stop');
      // The silent frame still belongs to the recording.
    }
    if (this.#state === 'armed' || this.#state === 'starting') {
      this.#ring.push(frame);
      this.#ringSamples += frame.length;
      if (this.#state === 'armed' && !this.#keepAllBeforeStart) this.#trimRing();
      return;
    }
    this.#recording?.push(frame);
  }

  #trimRing(): void {
    const limit = Math.ceil((this.options.preRollMs * SAMPLE_RATE) / 1000);
    while (this.#ring.length > 0 && this.#ringSamples - this.#ring[0]!.length >= limit) {
      this.#ringSamples -= this.#ring.shift()!.length;
    }
    if (limit === 0) {
      this.#ring = [];
      this.#ringSamples = 0;
    }
  }

  /** Starts the recording; the audio kept from before (pre-roll) comes first. */
  async start(options: StartOptions = {}): Promise<Recording> {
    if (this.#error !== undefined) {
      await this.close();
      throw this.#error;
    }
    if (this.#state !== 'armed') throw new Error(`this microphone was already started (${this.#state})`);
    if (!this.#keepAllBeforeStart) this.#trimRing();
    this.#state = 'starting'; // keeps everything from here on while the file is prepared
    let wav: WavWriter | undefined;
    try {
      if (options.file) wav = await createWav(options.file, options.retention, this.options.headerIntervalMs, this.#log);
    } catch (err) {
      await this.close();
      throw micError('write-failed', { path: options.file, detail: err instanceof Error ? err.message : String(err) }, err);
    }
    const ringMs = (this.#ringSamples * 1000) / SAMPLE_RATE;
    const timing = this.#keepAllBeforeStart
      ? { preRollMs: 0, firstSampleAt: this.#firstSampleAt }
      : { preRollMs: Math.round(ringMs), firstSampleAt: epochNow() - ringMs };
    const recording = new Recording(this, wav, options.maxDurationMs, timing);
    this.#recording = recording;
    this.#state = 'recording';
    const before = this.#ring;
    this.#ring = [];
    this.#ringSamples = 0;
    for (const frame of before) {
      recording.push(frame);
      if (!this.#keepAllBeforeStart && this.#silence.push(frame)) {
        void this.#fail(micError('silence', { device: this.device, ms: this.options.silenceMs }), 'stop');
      }
    }
    if (this.#error !== undefined) recording.fail(this.#error);
    if (options.signal) {
      if (options.signal.aborted) void recording.stop();
      else options.signal.addEventListener('abort', () => void recording.stop(), { once: true });
    }
    return recording;
  }

  /** Closes a microphone that was opened but not started (or abandons a recording). */
  async close(): Promise<void> {
    if (this.#state === 'done') return;
    this.#state = 'done';
    clearInterval(this.#watchdog);
    await this.#capture?.stop().catch(() => undefined);
  }

  /** Stops the device and flushes its last audio into the recording. Used by Recording.stop(). */
  finish(): Promise<void> {
    this.#finishing ??= (async () => {
      if (this.#state === 'done') return;
      this.#state = 'stopping';
      clearInterval(this.#watchdog);
      await this.#capture?.stop().catch((err: unknown) => this.#log.warn(`stopping the device: ${String(err)}`));
      this.#framer.flush((frame) => this.#recording?.push(frame));
      this.#state = 'done';
    })();
    return this.#finishing;
  }

  #check(): void {
    if (this.#state === 'done' || this.#state === 'stopping' || this.#checking) return;
    const error = this.#recording?.writeError;
    if (error !== undefined) {
      void this.#fail(
        micError('write-failed', { path: this.#recording?.path, detail: error instanceof Error ? error.message : String(error) }, error),
        'stop',
      );
      return;
    }
    if (!this.#capture) return;
    const progress = this.#capture.progress();
    const now = performance.now();
    if (progress !== this.#lastProgress) {
      this.#lastProgress = progress;
      this.#lastProgressAt = now;
      return;
    }
    if (now - this.#lastProgressAt < this.options.stallMs) return;
    // Audio that already arrived may wait behind a busy event loop: let pending I/O run, then look again.
    this.#checking = true;
    setImmediate(() => void this.#stalled());
  }

  /**
   * No audio for stallMs. A dead sound server is reported at once; while the server still answers
   * (a starved CPU, a slow device) the stall gets STALL_GRACE_MS more before it counts as lost.
   */
  async #stalled(): Promise<void> {
    try {
      if (this.#capture?.progress() !== this.#lastProgress || this.#state === 'done' || this.#state === 'stopping') return;
      const server = await audioServerProblem();
      if (this.#capture?.progress() !== this.#lastProgress) return;
      const silentMs = Math.round(performance.now() - this.#lastProgressAt);
      if (server === undefined && silentMs < this.options.stallMs + STALL_GRACE_MS) return;
      void this.#lost(new Error(server ?? `no audio for ${silentMs} ms`));
    } finally {
      this.#checking = false;
    }
  }

  async #lost(cause: unknown): Promise<void> {
    if (this.#state === 'done' || this.#state === 'stopping' || this.#error !== undefined) return;
    this.#capture?.kill();
    const server = await audioServerProblem();
    const detail = server ?? (cause instanceof Error ? cause.message : String(cause));
    const atMs = Math.round(((this.#recording?.samples ?? this.#ringSamples) * 1000) / SAMPLE_RATE);
    await this.#fail(
      micError('device-lost', { device: this.device, atMs, detail, path: this.#recording?.path ?? '(not saved)' }, cause),
      'kill',
    );
  }

  async #fail(err: unknown, how: 'stop' | 'kill'): Promise<void> {
    if (this.#error !== undefined || this.#state === 'done' || this.#state === 'stopping') return;
    this.#error = err;
    this.#log.warn(isMicError(err) ? err.message : String(err));
    if (how === 'kill') this.#capture?.kill();
    if (this.#recording) {
      const recording = this.#recording;
      await this.finish();
      recording.fail(err);
    } else {
      // Not started yet: start() reports it.
      await this.close();
    }
  }
}

async function createWav(file: string, retention: RetentionLimits | undefined, headerIntervalMs: number, log: LogLike): Promise<WavWriter> {
  const dir = path.dirname(file);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  if (retention) {
    const deleted = await pruneRecordings(dir, retention, 1);
    if (deleted.length) log.debug(`retention: deleted ${deleted.length} old recording(s)`);
  }
  return WavWriter.create(file, SAMPLE_RATE, Math.max(1, Math.round((headerIntervalMs * SAMPLE_RATE) / 1000)));
}

/**
 * A recording in progress: the AudioSourceHandle the session gets. Frames are stamped by their
 * position (milliseconds since the first sample, pre-roll included) and written to the WAV file
 * as they arrive. `stop()` resolves once the file is complete; `frames` ends after it.
 */
export class Recording implements AudioSourceHandle {
  readonly frames: FrameQueue;
  readonly sampleRate = SAMPLE_RATE;
  readonly #mic: Microphone;
  readonly #wav: WavWriter | undefined;
  readonly #maxSamples: number;
  #samples = 0;
  #stopping: Promise<void> | undefined;
  #error: unknown;
  #released!: () => void;
  /** Resolves once the device is released (stopped or failed): a kept-open microphone re-arms then. */
  readonly released = new Promise<void>((resolve) => (this.#released = resolve));

  /** Audio from before start() (a kept-open device's pre-roll), ms. */
  readonly preRollMs: number;
  /** When the recording's first sample was captured (ms since the epoch), if known. */
  readonly firstSampleAt: number | undefined;

  constructor(
    mic: Microphone,
    wav: WavWriter | undefined,
    maxDurationMs: number | undefined,
    timing: { preRollMs: number; firstSampleAt: number | undefined },
  ) {
    this.preRollMs = timing.preRollMs;
    this.firstSampleAt = timing.firstSampleAt;
    this.#mic = mic;
    this.#wav = wav;
    this.frames = new FrameQueue();
    this.#maxSamples = maxDurationMs ? Math.round((maxDurationMs * SAMPLE_RATE) / 1000) : Infinity;
  }

  get path(): string | undefined {
    return this.#wav?.path;
  }

  get device(): string {
    return this.#mic.device;
  }

  get backend(): BackendName | 'auto' {
    return this.#mic.backend;
  }

  /** Milliseconds from opening the device to its first audio. */
  get firstAudioMs(): number {
    return this.#mic.firstAudioMs;
  }

  /** Samples recorded so far. */
  get samples(): number {
    return this.#samples;
  }

  /** Why the recording ended early, if it did (the frames iterable throws the same). */
  get error(): unknown {
    return this.#error;
  }

  get writeError(): unknown {
    return this.#wav?.error;
  }

  /** @internal the microphone hands over each frame. */
  push(samples: Int16Array): void {
    if (this.#samples >= this.#maxSamples) return;
    if (this.#samples + samples.length > this.#maxSamples) samples = samples.slice(0, this.#maxSamples - this.#samples);
    const frame: AudioFrame = { samples, timestamp: (this.#samples * 1000) / SAMPLE_RATE, rms: rms(samples) };
    this.#samples += samples.length;
    void this.#wav?.write(samples);
    this.frames.push(frame);
    if (this.#samples >= this.#maxSamples) void this.stop();
  }

  /** @internal the device failed: the frames end with `err`, the file is completed. */
  fail(err: unknown): void {
    this.#error ??= err;
    this.frames.fail(err);
    void this.stop().catch(() => undefined);
  }

  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      await this.#mic.finish().finally(() => this.#released());
      try {
        await this.#wav?.close();
      } catch (err) {
        const error = micError('write-failed', { path: this.path, detail: err instanceof Error ? err.message : String(err) }, err);
        this.frames.fail(error);
        throw error;
      } finally {
        this.frames.end();
      }
    })();
    return this.#stopping;
  }
}

/** Removes a recording file (e.g. after a failed start); missing files are fine. */
export async function removeRecording(file: string): Promise<void> {
  await unlink(file).catch(() => undefined);
}

function epochNow(): number {
  return performance.timeOrigin + performance.now();
}
