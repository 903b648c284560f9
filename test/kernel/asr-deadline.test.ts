import { describe, expect, it } from 'vitest';
import { asrTimeoutMs } from '../../src/kernel/session.ts';

const pcm = (seconds: number, sampleRate = 16_000) => ({ sampleRate, samples: new Int16Array(Math.round(seconds * sampleRate)) });

describe('the transcription deadline grows with the audio', () => {
  it('is asr.timeoutMs per started 10 minutes of PCM audio', () => {
    const data = new Uint8Array(0);
    expect(asrTimeoutMs(120_000, { data, pcm: pcm(5) })).toBe(120_000);
    expect(asrTimeoutMs(120_000, { data, pcm: pcm(600) })).toBe(120_000);
    expect(asrTimeoutMs(120_000, { data, pcm: pcm(601) })).toBe(240_000);
    expect(asrTimeoutMs(120_000, { data, pcm: pcm(7200, 8000) })).toBe(12 * 120_000);
  });

  it('estimates compressed audio from its size (128 kbit/s)', () => {
    expect(asrTimeoutMs(1000, { data: new Uint8Array(100_000) })).toBe(1000);
    // 230 MB ≈ 4 hours at 128 kbit/s → 24 blocks of 10 minutes
    expect(asrTimeoutMs(1000, { data: new Uint8Array(230_000_000) })).toBe(24_000);
  });
});
