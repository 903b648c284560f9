/**
 * The daemon as most tests run it: in-process, against a loopback upstream, with a tone as its
 * microphone, no watcher, quiet logs. Tests pass only what differs.
 */
import { Daemon, type DaemonOptions } from '../../src/daemon/daemon.ts';
import { definePlugin, type AudioFrame } from '../../src/index.ts';

/** Session ids whose tone capture was stopped, in order. */
export const toneStopped: string[] = [];

/** An audio source (`audio.source: tone`) that "captures" a 440 Hz tone in 20 ms frames until stopped. */
export const toneSource = definePlugin({
  name: 'tone-source',
  audioSources: ['tone'],
  apply(api) {
    api.hooks.audioSource.for('tone').tapPromise('tone-source', async (request) => {
      let stopped = false;
      let t = 0;
      async function* frames(): AsyncGenerator<AudioFrame> {
        while (!stopped) {
          const samples = new Int16Array(320).map((_, i) => Math.round(8000 * Math.sin((2 * Math.PI * 440 * (t * 320 + i)) / 16000)));
          yield { samples, timestamp: t * 20, rms: 0.17 };
          t += 1;
          await new Promise((r) => setTimeout(r, 5));
        }
      }
      const stop = async () => {
        if (!stopped) toneStopped.push(request.session.id);
        stopped = true;
      };
      return { frames: frames(), sampleRate: 16000, device: 'tone', stop };
    });
  },
});

export function testDaemon(options: DaemonOptions): Promise<Daemon> {
  return Daemon.start({
    builtins: ['openai-compatible', 'outputs'],
    plugins: [toneSource],
    logLevel: 'silent',
    watch: false,
    shutdownTimeoutMs: 5000,
    ...options,
  });
}
