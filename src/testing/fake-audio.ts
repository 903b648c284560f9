/**
 * Fake audio for tests: WAV bytes of a tone or of silence, and audio sources that play PCM
 * through the kernel's `audioSource` hook as if a microphone captured it.
 *
 * - {@link toneWav} / {@link silenceWav}: WAV files (16-bit mono PCM, via `encodeWav`) to hand
 *   to `kernel.transcribe()` / `kernel.run()` or to a provider under test.
 * - {@link fakeAudioSource}: an `AudioSourceHandle` that yields frames cut from PCM samples.
 * - {@link fakeAudioSourcePlugin}: a plugin serving that handle as a named audio source, so
 *   `kernel.record()` can be tested without a sound card.
 *
 * No test-framework dependency.
 *
 * @module
 */

import { writeFile } from 'node:fs/promises';
import { encodeWav } from '../audio/wav.ts';
import type { AudioFrame, AudioSourceHandle } from '../kernel/hooks.ts';
import { definePlugin, type KotoPlugin } from '../kernel/plugin.ts';

/** Sample rate of the fake audio unless a caller asks for another (what speech models expect). */
export const FAKE_SAMPLE_RATE = 16_000;

export interface ToneOptions {
  /** Length in seconds (default 0.5). */
  readonly seconds?: number | undefined;
  /** Frequency in Hz (default 440). */
  readonly frequency?: number | undefined;
  /** Peak level, 0..1 of full scale (default 0.4). */
  readonly amplitude?: number | undefined;
  /** Samples per second (default {@link FAKE_SAMPLE_RATE}). */
  readonly sampleRate?: number | undefined;
}

export interface SilenceOptions {
  /** Length in seconds (default 0.5). */
  readonly seconds?: number | undefined;
  /** Samples per second (default {@link FAKE_SAMPLE_RATE}). */
  readonly sampleRate?: number | undefined;
}

function sampleCount(seconds: number | undefined, sampleRate: number): number {
  const s = seconds ?? 0.5;
  if (!(s >= 0) || !Number.isFinite(s)) throw new RangeError(`seconds must be a non-negative number, got ${String(seconds)}`);
  return Math.round(s * sampleRate);
}

/** 16-bit mono PCM of a sine tone. */
export function tonePcm(options: ToneOptions = {}): Int16Array {
  const sampleRate = options.sampleRate ?? FAKE_SAMPLE_RATE;
  const frequency = options.frequency ?? 440;
  const amplitude = Math.min(1, Math.max(0, options.amplitude ?? 0.4));
  const samples = new Int16Array(sampleCount(options.seconds, sampleRate));
  for (let i = 0; i < samples.length; i++) {
    samples[i] = Math.round(Math.sin((2 * Math.PI * frequency * i) / sampleRate) * amplitude * 32_767);
  }
  return samples;
}

/** 16-bit mono PCM of silence (all zeros). */
export function silencePcm(options: SilenceOptions = {}): Int16Array {
  return new Int16Array(sampleCount(options.seconds, options.sampleRate ?? FAKE_SAMPLE_RATE));
}

/** A WAV file (16-bit mono PCM) of a sine tone. */
export function toneWav(options: ToneOptions = {}): Uint8Array {
  return encodeWav(tonePcm(options), options.sampleRate ?? FAKE_SAMPLE_RATE);
}

/** A WAV file (16-bit mono PCM) of silence. */
export function silenceWav(options: SilenceOptions = {}): Uint8Array {
  return encodeWav(silencePcm(options), options.sampleRate ?? FAKE_SAMPLE_RATE);
}

/** Root-mean-square level of 16-bit samples, 0..1 (the `rms` of an {@link AudioFrame}). */
export function rms(samples: Int16Array): number {
  if (samples.length === 0) return 0;
  let sum = 0;
  for (const sample of samples) sum += (sample / 32_768) ** 2;
  return Math.sqrt(sum / samples.length);
}

export interface FakeAudioSourceOptions {
  /** Samples per second of `pcm` (default {@link FAKE_SAMPLE_RATE}). */
  readonly sampleRate?: number | undefined;
  /** Length of each frame in ms (default 20, like most capture backends). */
  readonly frameMs?: number | undefined;
  /**
   * Pace frames at the speed of real capture (a 20 ms frame every 20 ms). Default false: every
   * frame is available at once, which keeps tests fast.
   */
  readonly realtime?: boolean | undefined;
  /**
   * Keep the stream open after the last frame until `stop()`, like a microphone that goes on
   * capturing. Default false: the frames end with the PCM.
   *
   * `stop()` ends the stream after the frames already captured: with `realtime`, those whose
   * time has come; otherwise all of the PCM. The signal ends it at once.
   */
  readonly holdOpen?: boolean | undefined;
  /** Write the played samples to this WAV file on `stop()` (and report it as `path`). */
  readonly path?: string | undefined;
  /** Device name to report (default `fake`). */
  readonly device?: string | undefined;
  /** Fail the stream with this error after `failAfterFrames` frames (a device unplugged mid-recording). */
  readonly error?: Error | undefined;
  readonly failAfterFrames?: number | undefined;
  /** Ends the stream like `stop()` (e.g. the session's signal). */
  readonly signal?: AbortSignal | undefined;
}

/** An audio source handle over fixed PCM, with a few extra facts for assertions. */
export interface FakeAudioSourceHandle extends AudioSourceHandle {
  /** Frames handed out so far. */
  readonly framesYielded: number;
  /** Whether `stop()` was called (or the signal fired). */
  readonly stopped: boolean;
}

/**
 * An `AudioSourceHandle` that yields frames cut from `pcm`. Timestamps and `rms` are computed
 * as a capture backend would; `stop()` ends the stream and, with `path`, writes the samples
 * played so far as a WAV file before it resolves.
 */
export function fakeAudioSource(pcm: Int16Array, options: FakeAudioSourceOptions = {}): FakeAudioSourceHandle {
  const sampleRate = options.sampleRate ?? FAKE_SAMPLE_RATE;
  const frameMs = options.frameMs ?? 20;
  if (!(frameMs > 0)) throw new RangeError('frameMs must be positive');
  const frameSamples = Math.max(1, Math.round((sampleRate * frameMs) / 1000));
  let stopped = false;
  let cancelled = false;
  let yielded = 0;
  let played = 0;
  let wake: (() => void) | undefined;
  let stopping: Promise<void> | undefined;

  const markStopped = () => {
    stopped = true;
    wake?.();
  };
  const onAbort = () => {
    cancelled = true;
    markStopped();
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  if (options.signal?.aborted) onAbort();
  // Frames not delivered yet when stop() is called: in realtime mode they are not captured yet
  // (dropped); otherwise the whole PCM counts as captured and is still delivered.
  const ended = () => cancelled || (stopped && Boolean(options.realtime));

  // Resolves after `ms`, or at once when stop() is called.
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      if (stopped) return resolve();
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      }
      wake = done;
    });

  async function* frames(): AsyncGenerator<AudioFrame> {
    const started = performance.now();
    for (let offset = 0; offset < pcm.length && !ended(); offset += frameSamples) {
      if (options.error && yielded >= (options.failAfterFrames ?? 0)) throw options.error;
      const timestamp = (offset / sampleRate) * 1000;
      if (options.realtime) {
        const due = started + timestamp + frameMs;
        const wait = due - performance.now();
        if (wait > 0) await pause(wait);
        if (ended()) break;
      }
      const samples = pcm.slice(offset, offset + frameSamples);
      yielded += 1;
      played = offset + samples.length;
      yield { samples, timestamp, rms: rms(samples) };
    }
    if (options.error && !ended() && yielded >= (options.failAfterFrames ?? 0)) throw options.error;
    while (options.holdOpen && !stopped) await pause(60_000);
  }

  const iterable = frames();
  return {
    frames: iterable,
    sampleRate,
    path: options.path,
    device: options.device ?? 'fake',
    get framesYielded() {
      return yielded;
    },
    get stopped() {
      return stopped;
    },
    stop(): Promise<void> {
      stopping ??= (async () => {
        markStopped();
        options.signal?.removeEventListener('abort', onAbort);
        const captured = options.realtime || cancelled ? pcm.slice(0, played) : pcm;
        if (options.path) await writeFile(options.path, encodeWav(captured, sampleRate), { mode: 0o600 });
      })();
      return stopping;
    },
  };
}

export interface FakeAudioSourcePluginOptions extends Omit<FakeAudioSourceOptions, 'signal' | 'path'> {
  /** Plugin name (default `fake-audio`). */
  readonly name?: string | undefined;
  /** Audio source name to serve (default `fake`): select it with `audio: { source: 'fake' }`. */
  readonly source?: string | undefined;
  /** What to play; called for each recording (default: 1 s of a 440 Hz tone). */
  readonly pcm?: Int16Array | (() => Int16Array) | undefined;
  /** Called with each handle the plugin hands out, for assertions. */
  readonly onOpen?: ((handle: FakeAudioSourceHandle, device: string) => void) | undefined;
}

/**
 * A plugin that serves {@link fakeAudioSource} as an audio source, so the whole recording path
 * (`kernel.record()` → stop → ASR → outputs) runs without a sound card. The handle follows the
 * session's signal, like a real source should.
 */
export function fakeAudioSourcePlugin(options: FakeAudioSourcePluginOptions = {}): KotoPlugin {
  const name = options.name ?? 'fake-audio';
  const source = options.source ?? 'fake';
  return definePlugin({
    name,
    audioSources: [source],
    apply(api) {
      api.hooks.audioSource.for(source).tapPromise(name, async (request) => {
        const pcm = typeof options.pcm === 'function' ? options.pcm() : (options.pcm ?? tonePcm({ seconds: 1 }));
        const handle = fakeAudioSource(pcm, { ...options, signal: request.signal, device: options.device ?? request.device });
        options.onOpen?.(handle, request.device);
        return handle;
      });
      api.hooks.audioDevices
        .for(source)
        .tapPromise(name, async () => [
          { name: options.device ?? 'fake', description: 'fake audio source (koto-voice/testing)', isDefault: true, backend: 'fake' },
        ]);
    },
  });
}
