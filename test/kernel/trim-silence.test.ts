/**
 * Silence trimming of live recordings (`audio.trimSilence`): a recording with 2 s of room noise
 * before the speech and 1 s after goes up without them (fewer bytes at a real loopback server),
 * the transcript of a real engine is the same, and the full recording stays on disk. Files given
 * to `transcribe` / `run` are never trimmed.
 */
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { definePlugin, parseWav, type AudioFrame, type Kernel } from '../../src/index.ts';
import { findSpeech } from '../../src/audio/trim-silence.ts';
import { encodeWav } from '../../src/audio/wav.ts';
import { seededNoise } from './trim-support.ts';
import { startOpenAIServer, tempHome, testKernel } from '../support/index.ts';
import { hasPocketsphinx, pcmOf, SAMPLE } from '../offline/support.ts';

const RATE = 16_000;
const home = tempHome('koto-trim-');
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

/** 2 s of room noise, the sample dictation, 1 s of room noise. */
function padded(): Int16Array {
  const speech = pcmOf(SAMPLE);
  expect(speech.sampleRate).toBe(RATE);
  return Int16Array.from([...seededNoise(2 * RATE, 40, 1), ...speech.samples, ...seededNoise(RATE, 40, 2)]);
}

/** A live source that plays `samples` in 20 ms frames, then waits to be stopped. */
function player(samples: Int16Array, state: { sent: number }) {
  return definePlugin({
    name: 'player-source',
    audioSources: ['player'],
    apply(api) {
      api.hooks.audioSource.for('player').tapPromise('player-source', async () => {
        let stopped = false;
        let release: () => void = () => undefined;
        const done = new Promise<void>((r) => (release = r));
        async function* frames(): AsyncGenerator<AudioFrame> {
          for (let i = 0; i < samples.length && !stopped; i += 320) {
            const frame = samples.slice(i, i + 320);
            state.sent += frame.length;
            yield { samples: frame, timestamp: (i / RATE) * 1000, rms: 0.1 };
            await new Promise((r) => setImmediate(r));
          }
          await done;
        }
        return {
          frames: frames(),
          sampleRate: RATE,
          device: 'player',
          stop: async () => {
            stopped = true;
            release();
          },
        };
      });
    },
  });
}

async function liveKernel(
  config: Record<string, unknown>,
  samples: Int16Array,
  state: { sent: number },
  builtins: string[],
): Promise<Kernel> {
  const { kernel } = await testKernel(config, { plugins: [player(samples, state)], builtins, env: { KOTO_HOME: home.dir } });
  cleanups.push(() => kernel.close());
  return kernel;
}

async function dictate(kernel: Kernel, state: { sent: number }, total: number) {
  const recording = await kernel.record();
  await expect.poll(() => state.sent, { timeout: 60_000 }).toBe(total);
  return recording.stop();
}

describe('audio.trimSilence', () => {
  it('uploads fewer bytes for a recording with 2 s of leading noise; the full recording stays on disk', async () => {
    const server = await startOpenAIServer({ apiKey: 'sk-trim' });
    cleanups.push(() => server.close());
    const samples = padded();
    const sizes: Record<string, number> = {};
    for (const trimSilence of [false, true]) {
      const state = { sent: 0 };
      const kernel = await liveKernel(
        {
          providers: { main: { use: 'openai-compatible', baseUrl: server.baseUrl, apiKey: 'sk-trim' } },
          asr: { model: 'whisper-1' },
          correction: { enabled: false },
          audio: { source: 'player', trimSilence },
          transport: { ca: server.ca },
        },
        samples,
        state,
        ['openai-compatible'],
      );
      server.reset();
      const record = await dictate(kernel, state, samples.length);
      const upload = server.requests.find((r) => r.path.endsWith('/audio/transcriptions'))!.form!.files.file!.data;
      sizes[String(trimSilence)] = upload.length;
      const onDisk = parseWav(readFileSync(record.audioPath!));
      expect(onDisk.ok && onDisk.pcm?.samples.length).toBe(samples.length);
      if (trimSilence) {
        expect(record.timings.trimmedMs).toBeGreaterThan(2000);
        const sent = parseWav(upload);
        // Cut from both ends, speech and its margins kept.
        expect(sent.ok && sent.pcm!.samples.length).toBeLessThan(samples.length - 2 * RATE);
        expect(record.attempts?.[0]?.audioSeconds).toBeCloseTo((sent.ok ? sent.pcm!.samples.length : 0) / RATE, 3);
      } else {
        expect(record.timings.trimmedMs).toBeUndefined();
      }
      await kernel.close();
    }
    expect(sizes.true!).toBeLessThan(sizes.false! - 2 * RATE * 2);
  });

  it.skipIf(!hasPocketsphinx)('the offline engine hears the same words in the trimmed upload', async () => {
    const samples = padded();
    const texts: Record<string, string | undefined> = {};
    for (const trimSilence of [false, true]) {
      const state = { sent: 0 };
      const kernel = await liveKernel({ audio: { source: 'player', trimSilence }, correction: { enabled: false } }, samples, state, [
        'pocketsphinx',
      ]);
      const record = await dictate(kernel, state, samples.length);
      texts[String(trimSilence)] = record.text;
      await kernel.close();
    }
    expect(texts.true).toBeTruthy();
    expect(texts.true).toBe(texts.false);
  });

  it('files given to run() are sent whole, whatever the setting', async () => {
    const server = await startOpenAIServer({ apiKey: 'sk-trim' });
    cleanups.push(() => server.close());
    const { kernel } = await testKernel(
      {
        providers: { main: { use: 'openai-compatible', baseUrl: server.baseUrl, apiKey: 'sk-trim' } },
        asr: { model: 'whisper-1' },
        correction: { enabled: false },
        audio: { trimSilence: true },
        transport: { ca: server.ca },
      },
      { builtins: ['openai-compatible'], env: { KOTO_HOME: home.dir } },
    );
    cleanups.push(() => kernel.close());
    const wav = encodeWav(padded(), RATE);
    await kernel.run({ data: wav, name: 'file.wav' });
    expect(server.requests.find((r) => r.path.endsWith('/audio/transcriptions'))!.form!.files.file!.data.length).toBe(wav.length);
  });
});

describe('findSpeech', () => {
  it('leaves noise-only, too-short and nothing-to-gain recordings alone', () => {
    expect(findSpeech(seededNoise(3 * RATE, 40, 3), RATE)).toBeUndefined();
    expect(findSpeech(new Int16Array(3 * RATE), RATE)).toBeUndefined();
    expect(findSpeech(new Int16Array(100), RATE)).toBeUndefined();
    expect(findSpeech(pcmOf(SAMPLE).samples, RATE)).toBeUndefined();
  });

  it('a click in the silence is not speech', () => {
    const samples = padded();
    samples.fill(20_000, RATE / 2, RATE / 2 + 100);
    const found = findSpeech(samples, RATE)!;
    expect(found.start).toBeGreaterThan(RATE);
  });
});
