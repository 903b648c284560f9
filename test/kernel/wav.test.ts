import wavefile from 'wavefile';
import { describe, expect, it } from 'vitest';
import { encodeWav, parseWav } from '../../src/index.ts';
import { pcm16Mono } from '../../src/audio/wav.ts';

describe('WAV codec', () => {
  const samples = new Int16Array(4001).map((_, i) => Math.round(30000 * Math.sin(i / 9)));

  it('encodes exactly what wavefile writes, and reads it back', () => {
    const reference = new wavefile.WaveFile();
    reference.fromScratch(1, 16000, '16', samples);
    const ours = encodeWav(samples, 16000);
    expect(Buffer.from(ours).equals(Buffer.from(reference.toBuffer()))).toBe(true);
    const parsed = parseWav(ours);
    expect(parsed.ok && parsed.pcm?.samples).toEqual(samples);
  });

  it('reads the first channel of stereo, skips extra chunks, and leaves other encodings to wavefile', () => {
    const stereo = new wavefile.WaveFile();
    const interleaved = new Int16Array(samples.length * 2).map((_, i) => (i % 2 === 0 ? samples[i / 2]! : -1));
    stereo.fromScratch(2, 22050, '16', interleaved);
    stereo.setTag('INAM', 'title');
    const parsed = parseWav(stereo.toBuffer());
    expect(parsed).toMatchObject({ ok: true, channels: 2, sampleRate: 22050 });
    expect(parsed.ok && parsed.pcm?.samples).toEqual(samples);
    const float = new wavefile.WaveFile();
    float.fromScratch(1, 16000, '32f', [0, 0.5, -0.5]);
    expect(parseWav(float.toBuffer())).toMatchObject({ ok: true, bitDepth: '32f', pcm: undefined });
    expect(parseWav(new TextEncoder().encode('RIFF....WAVEnot really a wav file at all'))).toMatchObject({ ok: false });
  });
});

describe('a truncated or hostile WAV header', () => {
  it('is "not a valid WAV", never a RangeError', () => {
    const bytes = new Uint8Array(48);
    const ascii = (at: number, text: string) => [...text].forEach((c, i) => (bytes[at + i] = c.charCodeAt(0)));
    const view = new DataView(bytes.buffer);
    ascii(0, 'RIFF');
    view.setUint32(4, 40, true);
    ascii(8, 'WAVE');
    ascii(12, 'JUNK');
    view.setUint32(16, 16, true);
    ascii(36, 'fmt ');
    view.setUint32(40, 16, true); // the fmt body would run past the end of the file
    expect(() => parseWav(bytes)).not.toThrow();
    expect(parseWav(bytes).ok).toBe(false);
    expect(pcm16Mono(bytes)).toBeUndefined();
  });
});
