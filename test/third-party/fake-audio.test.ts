import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { createKernel, parseWav } from 'koto-voice';
import {
  fakeAudioSource,
  fakeAudioSourcePlugin,
  rms,
  silencePcm,
  silenceWav,
  startOpenAIServer,
  tonePcm,
  toneWav,
  type FakeAudioSourceHandle,
} from 'koto-voice/testing';

let cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  cleanups = [];
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'koto-fake-audio-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function collect(handle: FakeAudioSourceHandle) {
  const frames = [];
  for await (const frame of handle.frames) frames.push(frame);
  return frames;
}

describe('WAV bytes', () => {
  test('toneWav is 16-bit mono PCM of a sine at the asked level', () => {
    const wav = toneWav({ seconds: 0.25, frequency: 1000, amplitude: 0.5, sampleRate: 8000 });
    const parsed = parseWav(wav);
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed).toMatchObject({ sampleRate: 8000, channels: 1, bitDepth: '16' });
    const samples = parsed.pcm!.samples;
    expect(samples.length).toBe(2000);
    expect(Math.max(...samples)).toBeGreaterThan(16_000);
    expect(Math.max(...samples)).toBeLessThanOrEqual(16_384);
    expect(rms(samples)).toBeCloseTo(0.5 / Math.SQRT2, 2);
  });

  test('silenceWav is all zeros at 16 kHz by default', () => {
    const parsed = parseWav(silenceWav({ seconds: 0.1 }));
    expect(parsed.ok && parsed.sampleRate).toBe(16_000);
    expect(parsed.ok && parsed.pcm!.samples.every((s) => s === 0)).toBe(true);
    expect(rms(silencePcm({ seconds: 0.1 }))).toBe(0);
  });

  test('a negative length is refused', () => {
    expect(() => tonePcm({ seconds: -1 })).toThrow(/seconds must be a non-negative number/);
  });
});

describe('fakeAudioSource', () => {
  test('yields 20 ms frames with timestamps and levels, then ends with the PCM', async () => {
    const pcm = tonePcm({ seconds: 0.1 });
    const handle = fakeAudioSource(pcm);
    const frames = await collect(handle);
    expect(frames).toHaveLength(5);
    expect(frames.map((f) => f.timestamp)).toEqual([0, 20, 40, 60, 80]);
    expect(frames.every((f) => f.samples.length === 320)).toBe(true);
    expect(frames[0]!.rms).toBeCloseTo(0.4 / Math.SQRT2, 1);
    expect(handle.framesYielded).toBe(5);
    expect(handle.sampleRate).toBe(16_000);
  });

  test('realtime frames come at the pace of capture; stop() ends a held-open stream and writes the WAV', async () => {
    const file = path.join(await tempDir(), 'rec.wav');
    const handle = fakeAudioSource(tonePcm({ seconds: 0.1 }), { realtime: true, holdOpen: true, path: file });
    const started = performance.now();
    const frames: number[] = [];
    const done = (async () => {
      for await (const frame of handle.frames) frames.push(frame.timestamp);
    })();
    while (frames.length < 5) await new Promise((r) => setTimeout(r, 5));
    expect(performance.now() - started).toBeGreaterThanOrEqual(90);
    expect(handle.stopped).toBe(false);
    await handle.stop();
    await done;
    expect(handle.stopped).toBe(true);
    const saved = parseWav(await readFile(file));
    expect(saved.ok && saved.pcm!.samples.length).toBe(1600);
  });

  test('a failing device ends the stream with its error after the given frames', async () => {
    const handle = fakeAudioSource(tonePcm({ seconds: 0.1 }), { error: new Error('device unplugged'), failAfterFrames: 2 });
    const seen: number[] = [];
    await expect(
      (async () => {
        for await (const frame of handle.frames) seen.push(frame.timestamp);
      })(),
    ).rejects.toThrow('device unplugged');
    expect(seen).toEqual([0, 20]);
  });

  test('the signal stops the stream', async () => {
    const controller = new AbortController();
    const handle = fakeAudioSource(tonePcm({ seconds: 0.1 }), { holdOpen: true, signal: controller.signal });
    const done = collect(handle);
    controller.abort();
    expect((await done).length).toBeLessThanOrEqual(5);
    expect(handle.stopped).toBe(true);
  });
});

describe('fakeAudioSourcePlugin', () => {
  test('kernel.record() runs the whole pipeline from the fake source, without a sound card', async () => {
    const server = await startOpenAIServer({
      apiKey: 'sk-fake-audio-1234',
      transcribe: (req) => `heard ${req.form?.files['file']?.data.length ?? 0} bytes`,
    });
    cleanups.push(() => server.close());
    const home = await tempDir();
    let opened: FakeAudioSourceHandle | undefined;
    const kernel = await createKernel({
      search: false,
      builtins: ['openai-compatible'],
      plugins: [fakeAudioSourcePlugin({ pcm: () => tonePcm({ seconds: 0.5 }), onOpen: (handle) => (opened = handle) })],
      env: { KOTO_HOME: home },
      logLevel: 'silent',
      config: {
        providers: { main: { use: 'openai-compatible', baseUrl: server.baseUrl, apiKey: 'sk-fake-audio-1234' } },
        asr: { model: 'whisper-1' },
        correction: { enabled: false },
        audio: { source: 'fake', device: 'test-mic' },
        output: [],
        transport: { ca: server.ca },
      },
    });
    cleanups.push(() => kernel.close());
    expect(await kernel.devices()).toEqual([
      { name: 'fake', description: 'fake audio source (koto-voice/testing)', isDefault: true, backend: 'fake' },
    ]);
    const recording = await kernel.record();
    const result = await recording.stop();
    expect(result.state).toBe('done');
    // 0.5 s of 16-bit mono at 16 kHz, plus the 44-byte WAV header.
    expect(result.text).toBe(`heard ${16_000 + 44} bytes`);
    expect(opened?.stopped).toBe(true);
    expect(opened?.device).toBe('test-mic');
  });
});
