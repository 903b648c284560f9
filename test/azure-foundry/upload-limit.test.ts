import { afterEach, expect, test } from 'vitest';
import { caught, harness, type Harness } from './helpers.ts';
import { wordsWav } from '../openai-compatible/upload-audio.ts';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const LIMIT = 200_000;

test('a recording over maxUploadBytes reaches the whisper deployment in parts under the limit, stitched in order', async () => {
  // Noise bursts: over the limit even as FLAC, so parts with or without ffmpeg.
  const audio = wordsWav(14, { kind: 'noise' });
  h = await harness(
    { transcript: (req) => `[${req.form?.file?.filename ?? '?'}]` },
    { provider: { maxUploadBytes: LIMIT }, asr: { retries: 0 } },
  );
  const result = await h.kernel.transcribe({ data: audio.wav, name: 'long.wav' });
  const posts = h.server.to('transcriptions');
  expect(posts.length).toBeGreaterThanOrEqual(2);
  for (const post of posts) expect(post.form!.file!.size).toBeLessThan(LIMIT);
  const names = posts.map((p) => p.form!.file!.filename);
  expect(names).toEqual(names.map((_, i) => expect.stringMatching(new RegExp(`^long\\.part${i + 1}\\.(wav|flac)$`))));
  expect(result.text).toBe(names.map((n) => `[${n}]`).join(' '));
  expect(h.logText()).toMatch(/provider "az": .* is over the 195 KB upload limit: sent in \d+ parts cut at pauses/);
});

test('maxUploadBytes below 64 KB is a config error', async () => {
  const err = await caught(() => harness({}, { provider: { maxUploadBytes: 1000 } }));
  expect(err).toMatchObject({ code: 'KOTO_ERR_CONFIG_INVALID' });
  expect((err as Error).message).toContain('providers.az.maxUploadBytes');
});
