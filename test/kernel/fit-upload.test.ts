import { describe, expect, test } from 'vitest';
import { fitUpload, splitPoints } from '../../src/audio/fit-upload.ts';
import { encodeWav, pcm16Mono } from '../../src/audio/wav.ts';
import { KotoError } from '../../src/index.ts';

/** Deterministic "speech": 0.5 s bursts every 0.8 s, silence between. */
function bursts(seconds: number, rate = 16_000): Int16Array {
  const out = new Int16Array(Math.round(seconds * rate));
  for (let i = 0; i < out.length; i++) {
    const t = (i / rate) % 0.8;
    out[i] = t < 0.5 ? Math.round(Math.sin(i / 3) * 9000) : 0;
  }
  return out;
}

describe('splitPoints', () => {
  test('every part is at most maxLen, few parts, no short tail, each cut in a pause', () => {
    const rate = 16_000;
    const samples = bursts(200, rate);
    for (const maxLen of [rate * 7, rate * 13, rate * 31, rate * 60]) {
      const points = splitPoints(samples, rate, maxLen);
      const lengths = points.slice(1).map((p, i) => p - points[i]!);
      expect(points[0]).toBe(0);
      expect(points.at(-1)).toBe(samples.length);
      // As few parts as leave each cut room to find a pause (5 s, or a quarter part).
      expect(lengths.length).toBe(Math.ceil(samples.length / (maxLen - Math.min(maxLen / 4, 5 * rate))));
      for (const length of lengths) expect(length).toBeLessThanOrEqual(maxLen);
      // Balanced: no short tail part (it would lose the context before it).
      expect(lengths.at(-1)!).toBeGreaterThan(0.5 * (samples.length / lengths.length));
      for (const cut of points.slice(1, -1)) {
        expect((cut / rate) % 0.8).toBeGreaterThanOrEqual(0.5);
        expect(samples[cut]).toBe(0);
      }
    }
  });

  test('a recording that fits is one part; no pause at all still gives parts under the limit', () => {
    const rate = 16_000;
    expect(splitPoints(bursts(5, rate), rate, rate * 10)).toEqual([0, rate * 5]);
    const tone = new Int16Array(rate * 20).map((_, i) => Math.round(Math.sin(i / 3) * 9000));
    const points = splitPoints(tone, rate, rate * 6);
    for (let i = 1; i < points.length; i++) expect(points[i]! - points[i - 1]!).toBeLessThanOrEqual(rate * 6);
  });
});

describe('pcm16Mono', () => {
  test('averages the channels of a stereo file', () => {
    const frames = 4;
    const bytes = Buffer.alloc(44 + frames * 4);
    bytes.write('RIFF', 0, 'latin1');
    bytes.writeUInt32LE(36 + frames * 4, 4);
    bytes.write('WAVEfmt ', 8, 'latin1');
    bytes.writeUInt32LE(16, 16);
    bytes.writeUInt16LE(1, 20);
    bytes.writeUInt16LE(2, 22);
    bytes.writeUInt32LE(8000, 24);
    bytes.writeUInt32LE(32000, 28);
    bytes.writeUInt16LE(4, 32);
    bytes.writeUInt16LE(16, 34);
    bytes.write('data', 36, 'latin1');
    bytes.writeUInt32LE(frames * 4, 40);
    for (let i = 0; i < frames; i++) {
      bytes.writeInt16LE(1000, 44 + i * 4);
      bytes.writeInt16LE(3000, 46 + i * 4);
    }
    expect(pcm16Mono(bytes)).toEqual({ sampleRate: 8000, samples: new Int16Array([2000, 2000, 2000, 2000]) });
  });

  test('reads WAVE_FORMAT_EXTENSIBLE with a PCM sub-format; refuses float', () => {
    const fmt = Buffer.alloc(40);
    fmt.writeUInt16LE(0xfffe, 0);
    fmt.writeUInt16LE(1, 2);
    fmt.writeUInt32LE(16000, 4);
    fmt.writeUInt32LE(32000, 8);
    fmt.writeUInt16LE(2, 12);
    fmt.writeUInt16LE(16, 14);
    fmt.writeUInt16LE(22, 16);
    fmt.writeUInt16LE(16, 18);
    fmt.writeUInt16LE(1, 24); // KSDATAFORMAT_SUBTYPE_PCM
    const data = Buffer.alloc(8);
    data.writeInt16LE(-5, 0);
    data.writeInt16LE(7, 2);
    const file = Buffer.concat([
      Buffer.from('RIFF\0\0\0\0WAVEfmt ', 'latin1'),
      Buffer.from([40, 0, 0, 0]),
      fmt,
      Buffer.from('data', 'latin1'),
      Buffer.from([4, 0, 0, 0]),
      data.subarray(0, 4),
    ]);
    expect(Array.from(pcm16Mono(file)!.samples)).toEqual([-5, 7]);
    fmt.writeUInt16LE(3, 24); // IEEE float
    const float = Buffer.concat([
      Buffer.from('RIFF\0\0\0\0WAVEfmt ', 'latin1'),
      Buffer.from([40, 0, 0, 0]),
      fmt,
      Buffer.from('data', 'latin1'),
      Buffer.from([4, 0, 0, 0]),
      data.subarray(0, 4),
    ]);
    expect(pcm16Mono(float)).toBeUndefined();
  });
});

describe('fitUpload', () => {
  test('under the limit: the recording as it is', async () => {
    const wav = encodeWav(bursts(1), 16_000);
    const plan = await fitUpload(
      { data: wav, filename: 'a.wav', mimeType: 'audio/wav', path: undefined },
      { maxBytes: wav.length, provider: 'p' },
    );
    expect(plan.how).toBe('whole');
    expect(plan.parts[0]!.data()).toBe(wav);
  });

  test('a limit too small to split for is refused with the catalogue error', async () => {
    const wav = encodeWav(bursts(3), 16_000);
    const err = await fitUpload(
      { data: wav, filename: 'a.wav', mimeType: 'audio/wav', path: undefined },
      { maxBytes: 10_000, provider: 'p' },
    ).catch((e: unknown) => e);
    expect(KotoError.is(err) && err.code).toBe('KOTO_ERR_UPLOAD_TOO_LARGE');
    expect((err as KotoError).message).toMatch(/a limit this small leaves no room to split it/);
  });
});
