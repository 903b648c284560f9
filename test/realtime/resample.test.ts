import { describe, expect, it } from 'vitest';
import { StreamingResampler } from '../../src/audio/resample.ts';
import { amplitudeAt, rms, tone } from './helpers.ts';

const IN = 16_000;
const OUT = 24_000;

/** The middle of a signal, away from the edges where the filter meets the implied silence. */
function middle(samples: Int16Array, edge = 200): Int16Array {
  return samples.subarray(edge, samples.length - edge);
}

/** Resampling by linear interpolation without a low-pass: what the filter must beat. */
function linear(samples: Int16Array, inRate: number, outRate: number): Int16Array {
  const out = new Int16Array(Math.ceil((samples.length * outRate) / inRate));
  for (let n = 0; n < out.length; n++) {
    const t = (n * inRate) / outRate;
    const i = Math.floor(t);
    const f = t - i;
    out[n] = Math.round((samples[i] ?? 0) * (1 - f) + (samples[i + 1] ?? 0) * f);
  }
  return out;
}

/** Frequency of the strongest component between lo and hi, to 1 Hz. */
function peak(samples: Int16Array, rate: number, lo: number, hi: number): number {
  let best = lo;
  let bestAmp = -1;
  for (let step = 10; step >= 1; step /= 10) {
    const from = step === 10 ? lo : best - 10;
    const to = step === 10 ? hi : best + 10;
    for (let f = from; f <= to; f += step) {
      const amp = amplitudeAt(samples, rate, f);
      if (amp > bestAmp) {
        bestAmp = amp;
        best = f;
      }
    }
  }
  return best;
}

describe('StreamingResampler 16 kHz → 24 kHz', () => {
  it('reduces the ratio to 3/2 and gives exactly 3/2 as many samples', () => {
    const r = new StreamingResampler(IN, OUT);
    expect([r.up, r.down]).toEqual([3, 2]);
    expect(StreamingResampler.convert(tone(1000, 1, IN), IN, OUT)).toHaveLength(24_000);
    for (const n of [0, 1, 2, 3, 319, 320, 16_001]) {
      expect(StreamingResampler.convert(new Int16Array(n), IN, OUT)).toHaveLength(Math.ceil((n * 3) / 2));
      expect(StreamingResampler.outputLength(n, IN, OUT)).toBe(Math.ceil((n * 3) / 2));
    }
  });

  it('keeps a 1 kHz tone at 1 kHz with its amplitude', () => {
    const input = tone(1000, 1, IN, 0.5);
    const output = StreamingResampler.convert(input, IN, OUT);
    const body = middle(output);
    expect(peak(body, OUT, 500, 2000)).toBe(1000);
    expect(amplitudeAt(body, OUT, 1000)).toBeCloseTo(0.5, 2);
    // RMS of a sine of peak 0.5 is 0.5/√2, within 0.2 %.
    expect(rms(body) / (0.5 / Math.SQRT2)).toBeGreaterThan(0.998);
    expect(rms(body) / (0.5 / Math.SQRT2)).toBeLessThan(1.002);
    // Sample for sample it is the same sine, evaluated at the 24 kHz instants (no delay).
    let worst = 0;
    for (let n = 200; n < output.length - 200; n++) {
      const ideal = Math.sin((2 * Math.PI * 1000 * n) / OUT) * 0.5 * 32_767;
      worst = Math.max(worst, Math.abs(output[n]! - ideal));
    }
    expect(worst).toBeLessThan(0.001 * 32_767);
  });

  it('streams in frames of any size with exactly the one-shot result (no clicks at frame boundaries)', () => {
    const input = tone(1000, 0.5, IN, 0.6);
    const oneShot = StreamingResampler.convert(input, IN, OUT);
    const r = new StreamingResampler(IN, OUT);
    const parts: Int16Array[] = [];
    let seed = 7;
    for (let offset = 0; offset < input.length;) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      const size = [1, 2, 3, 17, 160, 320, 333, 1000][seed % 8]!;
      parts.push(r.push(input.subarray(offset, offset + size)));
      offset += size;
    }
    parts.push(r.flush());
    const streamed = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const part of parts) {
      streamed.set(part, at);
      at += part.length;
    }
    expect(streamed).toEqual(oneShot);
    // And the tone is smooth everywhere: no step larger than the sine's own steepest slope.
    const maxStep = 2 * Math.PI * (1000 / OUT) * 0.6 * 32_767 * 1.01;
    for (let n = 200; n < streamed.length - 200; n++) expect(Math.abs(streamed[n]! - streamed[n - 1]!)).toBeLessThan(maxStep);
  });

  it('20 ms capture frames come out as 30 ms frames, with only the filter look-ahead held back', () => {
    const r = new StreamingResampler(IN, OUT);
    const first = r.push(new Int16Array(320));
    const second = r.push(new Int16Array(320));
    expect(first.length + second.length).toBe(960 - Math.ceil((r.halfWidth * 3) / 2));
  });

  it('suppresses the image a naive resampler leaves (6 kHz in → nothing at 10 kHz)', () => {
    const input = tone(6000, 1, IN, 0.5);
    const filtered = middle(StreamingResampler.convert(input, IN, OUT));
    const naive = middle(linear(input, IN, OUT));
    const db = (x: number) => 20 * Math.log10(x);
    // The tone itself is kept (flat pass band up to ~6.8 kHz)...
    expect(amplitudeAt(filtered, OUT, 6000)).toBeCloseTo(0.5, 2);
    // ...and its image at 16 − 6 = 10 kHz is at least 70 dB down, where linear interpolation leaves it at about −20 dB.
    expect(db(amplitudeAt(filtered, OUT, 10_000) / 0.5)).toBeLessThan(-70);
    expect(db(amplitudeAt(naive, OUT, 10_000) / 0.5)).toBeGreaterThan(-30);
  });

  it('has unity gain at DC', () => {
    const out = middle(StreamingResampler.convert(new Int16Array(4000).fill(-12_345), IN, OUT));
    expect(Math.min(...out)).toBe(-12_345);
    expect(Math.max(...out)).toBe(-12_345);
  });

  it('also downsamples (48 kHz → 24 kHz) with an anti-alias filter, and passes 24 kHz through unchanged', () => {
    const down = middle(StreamingResampler.convert(tone(1000, 0.5, 48_000), 48_000, OUT));
    expect(amplitudeAt(down, OUT, 1000)).toBeCloseTo(0.5, 2);
    // 15 kHz is above the new Nyquist (12 kHz): it must not fold back to 9 kHz.
    const aliased = middle(StreamingResampler.convert(tone(15_000, 0.5, 48_000), 48_000, OUT));
    expect(20 * Math.log10(amplitudeAt(aliased, OUT, 9000) / 0.5)).toBeLessThan(-70);
    const same = tone(440, 0.1, OUT);
    expect(StreamingResampler.convert(same, OUT, OUT)).toEqual(same);
  });

  it('clamps instead of wrapping on a full-scale square wave (filter overshoot)', () => {
    const square = new Int16Array(3200);
    const high = (i: number) => Math.floor(i / 40) % 2 === 1;
    for (let i = 0; i < square.length; i++) square[i] = high(i) ? 32_767 : -32_768;
    const out = StreamingResampler.convert(square, IN, OUT);
    // The Gibbs overshoot right after each edge exceeds the 16-bit range: it must saturate at
    // the rail of the input's sign, never wrap around to the other one.
    let checked = 0;
    for (let n = 150; n < out.length - 150; n++) {
      const t = (n * 2) / 3;
      const distance = Math.min(t % 40, 40 - (t % 40));
      if (distance < 2) continue;
      expect(Math.sign(out[n]!)).toBe(high(Math.floor(t)) ? 1 : -1);
      checked += 1;
    }
    expect(checked).toBeGreaterThan(3000);
    expect(Math.max(...out)).toBe(32_767);
    expect(Math.min(...out)).toBe(-32_768);
  });
});
