import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, test } from 'vitest';
import { KotoError } from 'koto-voice';
import type { RecordedRequest } from '../support/index.ts';
import { koto } from '../cli/support.ts';
import { caught, everythingShown, harness, requestsTo, type Harness } from './helpers.ts';
import { decodeWithFfmpeg, hear, requireFfmpeg, wordsWav, type BurstKind } from './upload-audio.ts';

const LIMIT = 200_000;

let h: Harness | undefined;
let restorePath: (() => Promise<void>) | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
  await restorePath?.();
  restorePath = undefined;
});

/** PATH without ffmpeg for this test: an empty bin folder of its own. */
async function withoutFfmpeg(): Promise<void> {
  const bin = await mkdtemp(path.join(os.tmpdir(), 'koto-no-ffmpeg-'));
  const saved = process.env.PATH;
  process.env.PATH = bin;
  restorePath = async () => {
    process.env.PATH = saved;
    await rm(bin, { recursive: true, force: true });
  };
}

/** PATH whose only ffmpeg is broken: it fails every conversion with its own reason. */
async function withBrokenFfmpeg(): Promise<void> {
  const bin = await mkdtemp(path.join(os.tmpdir(), 'koto-broken-ffmpeg-'));
  await writeFile(
    path.join(bin, 'ffmpeg'),
    "#!/bin/sh\necho \"[flac @ 0x5598aa01] Unknown encoder 'flac'\" >&2\necho 'Conversion failed!' >&2\nexit 1\n",
    { mode: 0o755 },
  );
  const saved = process.env.PATH;
  process.env.PATH = bin;
  restorePath = async () => {
    process.env.PATH = saved;
    await rm(bin, { recursive: true, force: true });
  };
}

/** A server that hears the words of every upload (FLAC decoded with ffmpeg first). */
function listeningServer(kind: BurstKind, heard: Array<{ seq: number; words: string[]; edges: readonly [number, number] }>) {
  return {
    transcribe: async (req: RecordedRequest) => {
      const file = req.form!.files['file']!;
      const wav = file.contentType === 'audio/flac' ? await decodeWithFfmpeg(file.data) : file.data;
      const result = hear(wav, kind);
      heard.push({ seq: req.seq, words: result.words, edges: result.edges });
      return result.words.join(' ');
    },
  };
}

function uploads(harness: Harness) {
  return requestsTo(harness.server, '/audio/transcriptions');
}

describe('a WAV over the upload limit, without ffmpeg', () => {
  test('is split at pauses into requests under the limit, sent in order, and the transcript is stitched in order', async () => {
    await withoutFfmpeg();
    const audio = wordsWav(30);
    expect(audio.wav.length).toBeGreaterThan(4 * LIMIT);
    const heard: Array<{ seq: number; words: string[]; edges: readonly [number, number] }> = [];
    h = await harness(listeningServer('tone', heard), { provider: { maxUploadBytes: LIMIT }, asr: { model: 'whisper-1' } });
    const file = path.join(h.home, 'meeting.wav');
    await writeFile(file, audio.wav);
    const before = createHash('sha256').update(audio.wav).digest('hex');

    const result = await h.kernel.transcribe(file);

    const posts = uploads(h);
    expect(posts.length).toBeGreaterThanOrEqual(5);
    for (const post of posts) {
      expect(post.body.length).toBeLessThanOrEqual(LIMIT);
      expect(post.formError).toBeUndefined();
    }
    // In order: part N went up after part N-1 was answered, and is named so.
    expect(posts.map((p) => p.form!.files['file']!.filename)).toEqual(posts.map((_, i) => `meeting.part${i + 1}.wav`));
    // Every cut fell in a pause: no part starts or ends inside a word (a word is > 500 RMS).
    for (const part of heard) {
      expect(part.edges[0]).toBeLessThan(200);
      expect(part.edges[1]).toBeLessThan(200);
    }
    // Every word heard once, in order: no word lost, doubled or cut in two.
    expect(result.text).toBe(audio.words.join(' '));
    // Later parts get the end of the text before them as context.
    const firstText = heard[0]!.words.join(' ');
    expect(posts[1]!.form!.fields['prompt']?.[0]).toContain(firstText.slice(-20));
    // The recording on disk is the user's file, untouched.
    expect(result.audioPath).toBe(file);
    expect(
      createHash('sha256')
        .update(await readFile(file))
        .digest('hex'),
    ).toBe(before);
  });

  test('a 44.1 kHz stereo WAV goes up as 16 kHz mono parts (fewer requests), words intact', async () => {
    await withoutFfmpeg();
    const audio = wordsWav(12, { sampleRate: 44_100, channels: 2 });
    const heard: Array<{ seq: number; words: string[]; edges: readonly [number, number] }> = [];
    h = await harness(listeningServer('tone', heard), { provider: { maxUploadBytes: LIMIT }, asr: { model: 'whisper-1' } });
    const result = await h.kernel.transcribe({ data: audio.wav, name: 'stereo.wav' });
    const posts = uploads(h);
    // 12 s at 16 kHz mono is 384 KB: two or three parts, where 44.1 kHz stereo would need eleven.
    expect(posts.length).toBeGreaterThanOrEqual(2);
    expect(posts.length).toBeLessThanOrEqual(3);
    for (const post of posts) {
      expect(post.body.length).toBeLessThanOrEqual(LIMIT);
      const wav = post.form!.files['file']!.data;
      expect(wav.readUInt32LE(24)).toBe(16_000);
      expect(wav.readUInt16LE(22)).toBe(1);
    }
    expect(result.text).toBe(audio.words.join(' '));
  });

  test('a kernel retry resends only the part that failed, not the parts before it', async () => {
    await withoutFfmpeg();
    const audio = wordsWav(20);
    const heard: Array<{ seq: number; words: string[]; edges: readonly [number, number] }> = [];
    const listen = listeningServer('tone', heard);
    h = await harness(
      {
        transcribe: async (req) => {
          const text = await listen.transcribe(req);
          // After the first part is answered, the next upload fails once with a retryable 503.
          if (heard.length === 1) h!.server.inject({ path: '/audio/transcriptions', status: 503 });
          return text;
        },
      },
      { provider: { maxUploadBytes: LIMIT }, asr: { model: 'whisper-1', retries: 1 } },
    );
    const result = await h.kernel.transcribe({ data: audio.wav, name: 'a.wav' });
    const names = uploads(h).map((p) => p.form!.files['file']!.filename);
    const parts = new Set(names).size;
    expect(parts).toBeGreaterThanOrEqual(3);
    expect(names).toEqual(['a.part1.wav', 'a.part2.wav', ...Array.from({ length: parts - 1 }, (_, i) => `a.part${i + 2}.wav`)]);
    expect(result.text).toBe(audio.words.join(' '));
  });

  test('a non-WAV recording over the limit is refused before anything is sent, with the sizes and the fix', async () => {
    await withoutFfmpeg();
    h = await harness({}, { provider: { maxUploadBytes: LIMIT }, asr: { model: 'whisper-1' } });
    // An MP3 (ID3 tag) of 300 KB: Koto passes MP3 through, but cannot split one without ffmpeg.
    const mp3 = Buffer.concat([Buffer.from('ID3\x04\x00\x00\x00\x00\x00\x00', 'latin1'), Buffer.alloc(300_000, 0x55)]);
    const err = await caught(() => h!.kernel.transcribe({ data: mp3, name: 'talk.mp3' }));
    expect(KotoError.is(err)).toBe(true);
    expect(err).toMatchObject({ code: 'KOTO_ERR_UPLOAD_TOO_LARGE', exitCode: 1 });
    const shown = everythingShown(err);
    expect((err as KotoError).message).toContain('293 KB');
    expect((err as KotoError).message).toContain('195 KB');
    expect((err as KotoError).message).toContain('provider "main"');
    expect((err as KotoError).message).toContain('ffmpeg');
    expect((err as KotoError).fix).toContain('install ffmpeg');
    expect((err as KotoError).fix).toContain('providers.main.maxUploadBytes');
    expect(shown).not.toContain('sk-test-canary');
    expect(uploads(h)).toHaveLength(0);
  });
});

describe('the CLI', () => {
  test('a recording that cannot be made to fit: one line with sizes and fix, exit 1, nothing sent', async () => {
    h = await harness();
    const bin = await mkdtemp(path.join(os.tmpdir(), 'koto-no-ffmpeg-'));
    try {
      await writeFile(path.join(h.home, 'ca.pem'), h.server.ca);
      const config = path.join(h.home, 'koto.yaml');
      await writeFile(
        config,
        `providers:\n  main:\n    use: openai-compatible\n    baseUrl: ${h.server.baseUrl}\n    apiKey: sk-test-canary-123456\n    maxUploadBytes: ${LIMIT}\nasr:\n  model: whisper-1\ntransport:\n  ca: ./ca.pem\n`,
        { mode: 0o600 },
      );
      const mp3 = path.join(h.home, 'talk.mp3');
      await writeFile(mp3, Buffer.concat([Buffer.from('ID3\x04\x00\x00\x00\x00\x00\x00', 'latin1'), Buffer.alloc(300_000, 0x55)]));
      const run = await koto(['--config', config, 'transcribe', mp3], {
        env: { PATH: bin, KOTO_HOME: path.join(h.home, 'cli') },
        cwd: h.home,
      });
      expect(run.code).toBe(1);
      const lines = run.stderr.trim().split('\n');
      expect(lines[0]).toMatch(
        /^koto: .*talk\.mp3 is 293 KB, more than provider "main" takes in one request \(195 KB\), and ffmpeg.*is not installed.*Fix: install ffmpeg .*providers\.main\.maxUploadBytes\. \(KOTO_ERR_UPLOAD_TOO_LARGE\)/,
      );
      expect(run.stderr).not.toContain('sk-test-canary');
      expect(uploads(h)).toHaveLength(0);
    } finally {
      await rm(bin, { recursive: true, force: true });
    }
  });
});

describe('with a broken ffmpeg', () => {
  test("a WAV is still split and sent (the failure is logged with ffmpeg's reason)", async () => {
    await withBrokenFfmpeg();
    const audio = wordsWav(12);
    const heard: Array<{ seq: number; words: string[]; edges: readonly [number, number] }> = [];
    h = await harness(listeningServer('tone', heard), { provider: { maxUploadBytes: LIMIT }, asr: { model: 'whisper-1' } });
    const result = await h.kernel.transcribe({ data: audio.wav, name: 'a.wav' });
    expect(result.text).toBe(audio.words.join(' '));
    for (const post of uploads(h)) expect(post.body.length).toBeLessThanOrEqual(LIMIT);
    expect(h.logs.some((l) => l.message.includes("ffmpeg failed (Unknown encoder 'flac'), so WAV parts were sent"))).toBe(true);
  });

  test("any other format is refused with ffmpeg's reason, nothing sent", async () => {
    await withBrokenFfmpeg();
    h = await harness({}, { provider: { maxUploadBytes: LIMIT }, asr: { model: 'whisper-1' } });
    const mp3 = Buffer.concat([Buffer.from('ID3\x04\x00\x00\x00\x00\x00\x00', 'latin1'), Buffer.alloc(300_000, 0x55)]);
    const err = await caught(() => h!.kernel.transcribe({ data: mp3, name: 'talk.mp3' }));
    expect(err).toMatchObject({ code: 'KOTO_ERR_AUDIO_INPUT' });
    expect((err as KotoError).message).toMatch(/ffmpeg could not convert it for upload: Unknown encoder 'flac'$/);
    expect(uploads(h)).toHaveLength(0);
  });
});

describe('with ffmpeg', () => {
  beforeAll(requireFfmpeg);

  test('a WAV over the limit goes up as one FLAC request under it', async () => {
    const audio = wordsWav(12);
    expect(audio.wav.length).toBeGreaterThan(1.5 * LIMIT);
    const heard: Array<{ seq: number; words: string[]; edges: readonly [number, number] }> = [];
    h = await harness(listeningServer('tone', heard), { provider: { maxUploadBytes: LIMIT }, asr: { model: 'whisper-1' } });
    const result = await h.kernel.transcribe({ data: audio.wav, name: 'memo.wav' });
    const posts = uploads(h);
    expect(posts).toHaveLength(1);
    const upload = posts[0]!;
    expect(upload.body.length).toBeLessThanOrEqual(LIMIT);
    const file = upload.form!.files['file']!;
    expect(file.filename).toBe('memo.flac');
    expect(file.contentType).toBe('audio/flac');
    expect(file.data.subarray(0, 4).toString('latin1')).toBe('fLaC');
    expect(result.text).toBe(audio.words.join(' '));
  });

  test('when even FLAC is over the limit: FLAC parts cut at pauses, each under it, stitched in order', async () => {
    // Noise bursts: FLAC saves little on them.
    const audio = wordsWav(14, { kind: 'noise' });
    const heard: Array<{ seq: number; words: string[]; edges: readonly [number, number] }> = [];
    h = await harness(listeningServer('noise', heard), { provider: { maxUploadBytes: LIMIT }, asr: { model: 'whisper-1' } });
    const result = await h.kernel.transcribe({ data: audio.wav, name: 'noisy.wav' });
    const posts = uploads(h);
    expect(posts.length).toBeGreaterThanOrEqual(2);
    for (const post of posts) {
      expect(post.body.length).toBeLessThanOrEqual(LIMIT);
      expect(post.form!.files['file']!.contentType).toBe('audio/flac');
    }
    for (const part of heard) {
      expect(part.edges[0]).toBeLessThan(200);
      expect(part.edges[1]).toBeLessThan(200);
    }
    expect(result.text).toBe(audio.words.join(' '));
  });

  test("a recording ffmpeg cannot read is refused with ffmpeg's own reason, before anything is sent", async () => {
    h = await harness({}, { provider: { maxUploadBytes: LIMIT }, asr: { model: 'whisper-1' } });
    const mp3 = Buffer.concat([Buffer.from('ID3\x04\x00\x00\x00\x00\x00\x00', 'latin1'), Buffer.alloc(300_000, 0x55)]);
    const err = await caught(() => h!.kernel.transcribe({ data: mp3, name: 'broken.mp3' }));
    expect(err).toMatchObject({ code: 'KOTO_ERR_AUDIO_INPUT' });
    const message = (err as KotoError).message;
    // ffmpeg's own words, without its temp file names.
    expect(message).toMatch(/ffmpeg could not convert it for upload: .*(Invalid data|Failed to read)/);
    expect(message).not.toContain('koto-ffmpeg-');
    expect(message.length).toBeLessThan(400);
    expect(uploads(h)).toHaveLength(0);
  });
});
