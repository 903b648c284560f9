import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createKernel, definePlugin, type AudioFrame, type Kernel } from '../../src/index.ts';
import { startOpenAIServer, type OpenAIServer } from '../support/index.ts';
import { startRealtimeServer, type RealtimeServer, type RealtimeServerOptions } from './server.ts';

export const API_KEY = 'sk-test-realtime-123456';

/** 16-bit samples of a sine: `seconds` long at `rate`, peak `amplitude` of full scale. */
export function tone(frequency: number, seconds: number, rate: number, amplitude = 0.5): Int16Array {
  const out = new Int16Array(Math.round(seconds * rate));
  for (let i = 0; i < out.length; i++) out[i] = Math.round(Math.sin((2 * Math.PI * frequency * i) / rate) * amplitude * 32_767);
  return out;
}

/** Amplitude (peak, 0..1 of full scale) of the `frequency` component of `samples` (a Hann-windowed single-bin DFT). */
export function amplitudeAt(samples: Int16Array | Float64Array, rate: number, frequency: number): number {
  const n = samples.length;
  let re = 0;
  let im = 0;
  let windowSum = 0;
  for (let i = 0; i < n; i++) {
    const w = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (n - 1));
    const x = (samples[i]! / 32_767) * w;
    const phase = (2 * Math.PI * frequency * i) / rate;
    re += x * Math.cos(phase);
    im -= x * Math.sin(phase);
    windowSum += w;
  }
  return (2 * Math.hypot(re, im)) / windowSum;
}

export function rms(samples: Int16Array): number {
  let sum = 0;
  for (const s of samples) sum += (s / 32_767) ** 2;
  return Math.sqrt(sum / samples.length);
}

/** Little-endian 16-bit PCM bytes as samples. */
export function samplesOf(bytes: Buffer): Int16Array {
  const out = new Int16Array(bytes.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = bytes.readInt16LE(i * 2);
  return out;
}

/**
 * An audio source (`test-mic`) that captures `pcm` at 16 kHz in 20 ms frames, then keeps the
 * device open until stop(), like a microphone whose user has not released the key yet.
 */
export interface MicOptions {
  /** Capture rate (default 16 kHz). */
  readonly rate?: number | undefined;
  /** Put the rate on each frame (`frame.sampleRate`, the kernel change this plugin asks for). */
  readonly tagRate?: boolean | undefined;
}

export function micPlugin(pcm: () => Int16Array, { rate = 16_000, tagRate = false }: MicOptions = {}) {
  return definePlugin({
    name: 'test-mic',
    audioSources: ['test-mic'],
    apply(api) {
      api.hooks.audioSource.for('test-mic').tapPromise('test-mic', async ({ signal }) => {
        const samples = pcm();
        const frameSamples = (rate * 20) / 1000;
        let stopped = false;
        let wake: (() => void) | undefined;
        const stop = () => {
          stopped = true;
          wake?.();
        };
        signal.addEventListener('abort', stop, { once: true });
        async function* frames(): AsyncGenerator<AudioFrame> {
          for (let offset = 0; offset < samples.length && !signal.aborted; offset += frameSamples) {
            const frame = samples.slice(offset, offset + frameSamples);
            yield { samples: frame, timestamp: (offset * 1000) / rate, rms: 0.3, ...(tagRate ? { sampleRate: rate } : {}) } as AudioFrame;
          }
          while (!stopped) await new Promise<void>((resolve) => (wake = resolve));
        }
        return { frames: frames(), sampleRate: rate, device: 'test', stop: async () => stop() };
      });
    },
  });
}

export interface LiveHarness {
  kernel: Kernel;
  openai: OpenAIServer;
  realtime: RealtimeServer;
  logs: { level: string; message: string }[];
  close(): Promise<void>;
}

/**
 * A kernel with the built-in openai-compatible plugin and a test microphone: provider `main`
 * uploads to a loopback OpenAI server and streams to a loopback realtime server.
 */
export async function liveHarness(
  pcm: () => Int16Array,
  server: RealtimeServerOptions = {},
  /** Realtime settings (the loopback server's URL is added), or false for none. */
  realtimeSettings: Record<string, unknown> | false = {},
  mic: MicOptions = {},
): Promise<LiveHarness> {
  const openai = await startOpenAIServer({ apiKey: API_KEY });
  const realtime = await startRealtimeServer(server);
  const home = await mkdtemp(path.join(os.tmpdir(), 'koto-realtime-test-'));
  const logs: { level: string; message: string }[] = [];
  const kernel = await createKernel({
    search: false,
    builtins: ['openai-compatible'],
    plugins: [micPlugin(pcm, mic)],
    env: { KOTO_HOME: home },
    logLevel: 'debug',
    logSink: (entry) => logs.push({ level: entry.level, message: entry.message }),
    config: {
      providers: {
        main: {
          use: 'openai-compatible',
          baseUrl: openai.baseUrl,
          apiKey: API_KEY,
          realtime: realtimeSettings === false ? false : { url: realtime.url, ...realtimeSettings },
        },
      },
      asr: { model: 'gpt-4o-mini-transcribe', retries: 0 },
      correction: { enabled: false },
      audio: { source: 'test-mic' },
      // Both loopback servers use the process's one test certificate.
      transport: { ca: openai.ca },
    },
  });
  return {
    kernel,
    openai,
    realtime,
    logs,
    async close() {
      await kernel.close();
      await realtime.close();
      await openai.close();
      await rm(home, { recursive: true, force: true });
    },
  };
}
