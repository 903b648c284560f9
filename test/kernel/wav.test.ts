import wavefile from 'wavefile';
import { describe, expect, it } from 'vitest';
import { encodeWav, parseWav } from '../../src/index.ts';

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
