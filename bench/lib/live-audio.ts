/**
 * A bench microphone: an audio source plugin that plays PCM in 20 ms frames paced at `speed`×
 * real time (1 = a real microphone), then holds the device open until stop(), like a user who
 * has finished speaking but not yet released the key. `lastFrame()` resolves when the last frame
 * has been handed to the kernel: the moment the bench "releases the key".
 */
import { definePlugin, type KotoPlugin } from '../../src/kernel/plugin.ts';
import type { AudioFrame } from '../../src/kernel/hooks.ts';
import { rms } from '../../src/testing/fake-audio.ts';

export interface PacedMic {
  readonly plugin: KotoPlugin;
  /** Resolves when the current recording's last frame was yielded. */
  lastFrame(): Promise<void>;
}

export function pacedMicPlugin(options: { pcm: () => Int16Array; sampleRate: number; speed: number; source?: string }): PacedMic {
  const source = options.source ?? 'bench-mic';
  const frameSamples = Math.round((options.sampleRate * 20) / 1000);
  let markLast: () => void = () => undefined;
  let last = new Promise<void>((resolve) => (markLast = resolve));
  const plugin = definePlugin({
    name: 'bench-mic',
    audioSources: [source],
    apply(api) {
      api.hooks.audioSource.for(source).tapPromise('bench-mic', async ({ signal }) => {
        const pcm = options.pcm();
        const done = markLast;
        let stopped = false;
        let wake: (() => void) | undefined;
        const stop = () => {
          stopped = true;
          wake?.();
        };
        signal.addEventListener('abort', stop, { once: true });
        const pause = (ms: number) =>
          new Promise<void>((resolve) => {
            if (stopped) return resolve();
            const timer = setTimeout(fire, ms);
            function fire() {
              clearTimeout(timer);
              wake = undefined;
              resolve();
            }
            wake = fire;
          });
        async function* frames(): AsyncGenerator<AudioFrame> {
          const started = performance.now();
          for (let offset = 0; offset < pcm.length && !stopped; offset += frameSamples) {
            const timestamp = (offset / options.sampleRate) * 1000;
            const wait = started + (timestamp + 20) / options.speed - performance.now();
            if (wait > 0) await pause(wait);
            if (stopped) break;
            const samples = pcm.slice(offset, offset + frameSamples);
            yield { samples, timestamp, rms: rms(samples) };
          }
          done();
          while (!stopped) await pause(60_000);
        }
        return { frames: frames(), sampleRate: options.sampleRate, device: 'bench', stop: async () => stop() };
      });
    },
  });
  return {
    plugin,
    lastFrame() {
      const p = last;
      // The next recording gets a fresh promise.
      void p.then(() => {
        last = new Promise<void>((resolve) => (markLast = resolve));
      });
      return p;
    },
  };
}
