import { existsSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { definePlugin, parseWav, type AudioFrame, type Kernel } from '../../src/index.ts';
import { tempHome, testKernel } from '../support/index.ts';

const home = tempHome('koto-record-');
let kernel: Kernel | undefined;
afterEach(async () => {
  await kernel?.close();
  kernel = undefined;
});

/** Set once the ramp source has thrown its device error (tests wait for it, not for a guessed delay). */
let deviceFailed = false;

/** 20 ms frames of a counting ramp, until stopped (or a fixed number, then the device "fails"). */
function source(failAfter?: number) {
  deviceFailed = false;
  return definePlugin({
    name: 'ramp-source',
    audioSources: ['ramp'],
    apply(api) {
      api.hooks.audioSource.for('ramp').tapPromise('ramp-source', async () => {
        let stopped = false;
        async function* frames(): AsyncGenerator<AudioFrame> {
          for (let n = 0; !stopped; n++) {
            if (failAfter !== undefined && n === failAfter) {
              deviceFailed = true;
              throw new Error('device unplugged');
            }
            yield { samples: new Int16Array(320).fill(n + 1), timestamp: n * 20, rms: 0.5 };
            await new Promise((r) => setTimeout(r, 2));
          }
        }
        return { frames: frames(), sampleRate: 16000, device: 'ramp', stop: async () => void (stopped = true) };
      });
    },
  });
}

/** An ASR provider that reports what it received: sample count and the session mode. */
const counter = definePlugin({
  name: 'counter',
  capabilities: ['asr'],
  provider: z.object({}),
  apply(api) {
    api.hooks.asr
      .for('counter')
      .tapPromise('counter', async (req) => ({ text: `${req.audio.pcm?.samples.length} samples ${req.session.mode}` }));
  },
});

const config = { providers: { c: { use: 'counter' } }, audio: { source: 'ramp' }, correction: { enabled: false } };

describe('live recording sessions', () => {
  it('starts the session before frames flow, feeds every frame to audioFrame, and runs the pipeline at stop', async () => {
    const events: string[] = [];
    let frames = 0;
    const observer = definePlugin({
      name: 'observer',
      apply(api) {
        api.hooks.sessionStart.tap('observer', (s) => void events.push(`start:${s.mode}:${s.state}`));
        api.hooks.audioFrame.tap('observer', () => void (frames += 1));
        api.hooks.sessionEnd.tap('observer', (r) => void events.push(`end:${r.state}`));
      },
    });
    ({ kernel } = await testKernel(config, { plugins: [source(), counter, observer], env: { KOTO_HOME: home.dir } }));
    const recording = await kernel.record();
    expect(recording.state).toBe('recording');
    await expect.poll(() => frames, { timeout: 30_000 }).toBeGreaterThan(3);
    const record = await recording.stop();
    expect(events).toEqual(['start:live:recording', 'end:done']);
    expect(frames).toBeGreaterThan(3);
    expect(record.text).toBe(`${frames * 320} samples live`);
    // The audio was saved, and it is exactly what was captured.
    expect(existsSync(record.audioPath!)).toBe(true);
    const wav = parseWav(readFileSync(record.audioPath!));
    expect(wav.ok && wav.pcm?.samples.length).toBe(frames * 320);
  });

  it('cancel discards the session without transcribing', async () => {
    ({ kernel } = await testKernel(config, { plugins: [source(), counter], env: { KOTO_HOME: home.dir } }));
    const recording = await kernel.record();
    await recording.cancel();
    expect(recording.state).toBe('cancelled');
  });

  it('stops by itself at daemon.maxRecordingMs', async () => {
    ({ kernel } = await testKernel(
      { ...config, daemon: { maxRecordingMs: 50 } },
      { plugins: [source(), counter], env: { KOTO_HOME: home.dir } },
    ));
    const recording = await kernel.record();
    await expect.poll(() => recording.done(), { timeout: 30_000 }).toBeDefined();
    expect((await recording.done())?.state).toBe('done');
  });

  it('a device that fails mid-recording keeps what was captured and still transcribes it, with a warning', async () => {
    ({ kernel } = await testKernel(config, { plugins: [source(5), counter], env: { KOTO_HOME: home.dir } }));
    const recording = await kernel.record();
    await expect.poll(() => deviceFailed, { timeout: 30_000 }).toBe(true);
    const record = await recording.stop();
    expect(record.text).toBe('1600 samples live');
    expect(record.warnings.join(' ')).toContain('device unplugged');
  });
});
