/**
 * Streaming sample-rate conversion for realtime transcription: the capture runs at 16 kHz, the
 * Realtime API takes 24 kHz PCM (`audio/pcm`, rate 24000).
 *
 * A rational polyphase resampler (L/M = out/in reduced by their gcd; 3/2 for 16 → 24 kHz) with a
 * Kaiser-windowed sinc low-pass. Output sample `n` sits at input time `t = n·M/L`, so it needs
 * one of `L` fractional phases; each phase's `2H` taps are precomputed and normalised to unity
 * DC gain (no phase-dependent gain ripple, hence no spur at the phase rate). The filter cutoff
 * is a fraction of the lower of the two Nyquist frequencies, so the same code anti-images when
 * upsampling and anti-aliases when downsampling (48 kHz capture → 24 kHz).
 *
 * Streaming: the resampler keeps the input history the next outputs need, so feeding a signal
 * in frames of any size produces exactly the samples a one-shot conversion would (no clicks at
 * frame boundaries). The filter is centred (zero delay): an output is emitted once the `H`
 * input samples after it have arrived, and `flush()` treats the signal as ending in silence, so
 * the total output is `ceil(inputLength · L / M)` samples, aligned with the input.
 */

export interface ResamplerOptions {
  /**
   * Taps on each side of an output sample, counted at the lower of the two rates (default 32:
   * a transition band of about 1.3 kHz at 16 kHz, ~80 dB stop-band with the default beta).
   */
  readonly halfTaps?: number | undefined;
  /** Pass-band edge as a fraction of the lower Nyquist frequency: the -6 dB point (default 0.925). */
  readonly cutoff?: number | undefined;
  /** Kaiser window beta: stop-band attenuation against transition width (default 8 ≈ 80 dB). */
  readonly beta?: number | undefined;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** Zeroth-order modified Bessel function of the first kind (series; converges fast for beta ≤ 20). */
function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  const half = x / 2;
  for (let k = 1; k < 64; k++) {
    term *= (half / k) * (half / k);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum;
}

function sinc(x: number): number {
  if (x === 0) return 1;
  const px = Math.PI * x;
  return Math.sin(px) / px;
}

function clamp16(value: number): number {
  const rounded = Math.round(value);
  return rounded > 32_767 ? 32_767 : rounded < -32_768 ? -32_768 : rounded;
}

/** A stateful resampler from `inRate` to `outRate` for 16-bit mono PCM. */
export class StreamingResampler {
  readonly inRate: number;
  readonly outRate: number;
  /** Upsampling factor and downsampling factor after reduction (16 k → 24 k: 3 and 2). */
  readonly up: number;
  readonly down: number;
  /** Input samples on each side of an output position. */
  readonly halfWidth: number;
  readonly #phases: Float64Array[];
  /** Input samples still needed, as floats, starting at absolute input index `#base`. */
  #buffer = new Float64Array(0);
  #base = 0;
  /** Absolute count of input samples received. */
  #received = 0;
  /** Index of the next output sample. */
  #next = 0;
  #flushed = false;

  constructor(inRate: number, outRate: number, options: ResamplerOptions = {}) {
    if (!Number.isInteger(inRate) || !Number.isInteger(outRate) || inRate <= 0 || outRate <= 0) {
      throw new RangeError(`sample rates must be positive integers, got ${inRate} → ${outRate}`);
    }
    this.inRate = inRate;
    this.outRate = outRate;
    const g = gcd(inRate, outRate);
    this.up = outRate / g;
    this.down = inRate / g;
    const halfTaps = options.halfTaps ?? 32;
    const cutoff = options.cutoff ?? 0.925;
    const beta = options.beta ?? 8;
    // Cutoff in cycles per *input* sample; when downsampling, the kernel is stretched so the
    // transition band keeps its width relative to the output rate.
    const ratio = Math.min(1, outRate / inRate);
    const fc = (cutoff * ratio) / 2;
    this.halfWidth = Math.ceil(halfTaps / ratio);
    const H = this.halfWidth;
    const i0beta = besselI0(beta);
    this.#phases = [];
    for (let p = 0; p < this.up; p++) {
      // Output at input time k + p/L uses inputs k + j for j in [-H+1, H]; tap index j + H - 1.
      const frac = p / this.up;
      const taps = new Float64Array(2 * H);
      let sum = 0;
      for (let j = -H + 1; j <= H; j++) {
        const distance = frac - j; // in input samples, within (-H, H)
        const w = distance / H;
        const window = Math.abs(w) >= 1 ? 0 : besselI0(beta * Math.sqrt(1 - w * w)) / i0beta;
        const value = 2 * fc * sinc(2 * fc * distance) * window;
        taps[j + H - 1] = value;
        sum += value;
      }
      for (let i = 0; i < taps.length; i++) taps[i]! /= sum;
      this.#phases.push(taps);
    }
  }

  /** Output samples the input so far determines completely. */
  push(samples: Int16Array): Int16Array {
    if (this.#flushed) throw new Error('the resampler was flushed; create a new one');
    if (this.up === 1 && this.down === 1) {
      // Same rate: nothing to filter.
      this.#received += samples.length;
      this.#next += samples.length;
      return samples.slice();
    }
    if (samples.length > 0) {
      // Keep only the history the next output can reach, then append.
      const firstNeeded = this.#firstInputOf(this.#next);
      const drop = Math.max(0, Math.min(firstNeeded - this.#base, this.#buffer.length));
      const kept = this.#buffer.length - drop;
      const next = new Float64Array(kept + samples.length);
      next.set(this.#buffer.subarray(drop));
      for (let i = 0; i < samples.length; i++) next[kept + i] = samples[i]!;
      this.#buffer = next;
      this.#base += drop;
      this.#received += samples.length;
    }
    // An output at input position k needs inputs up to k + H.
    return this.#emit((n) => this.#centreOf(n) + this.halfWidth < this.#received);
  }

  /** The rest of the output, treating the signal as ending in silence. The resampler is then done. */
  flush(): Int16Array {
    if (this.#flushed) return new Int16Array(0);
    this.#flushed = true;
    if (this.up === 1 && this.down === 1) return new Int16Array(0);
    const total = Math.ceil((this.#received * this.up) / this.down);
    return this.#emit((n) => n < total);
  }

  /** Output length for `inputLength` input samples (after flush). */
  static outputLength(inputLength: number, inRate: number, outRate: number): number {
    const g = gcd(inRate, outRate);
    return Math.ceil((inputLength * (outRate / g)) / (inRate / g));
  }

  /** One-shot conversion of a whole signal. */
  static convert(samples: Int16Array, inRate: number, outRate: number, options?: ResamplerOptions): Int16Array {
    const resampler = new StreamingResampler(inRate, outRate, options);
    const head = resampler.push(samples);
    const tail = resampler.flush();
    const out = new Int16Array(head.length + tail.length);
    out.set(head);
    out.set(tail, head.length);
    return out;
  }

  /** floor(n·M / L): the input sample at or before output n. */
  #centreOf(n: number): number {
    return Math.floor((n * this.down) / this.up);
  }

  #firstInputOf(n: number): number {
    return this.#centreOf(n) - this.halfWidth + 1;
  }

  #emit(ready: (n: number) => boolean): Int16Array {
    const out: number[] = [];
    const H = this.halfWidth;
    const buffer = this.#buffer;
    const base = this.#base;
    const end = base + buffer.length;
    while (ready(this.#next)) {
      const n = this.#next;
      const k = this.#centreOf(n);
      const taps = this.#phases[(n * this.down) % this.up]!;
      let acc = 0;
      const first = k - H + 1;
      for (let t = 0; t < taps.length; t++) {
        const index = first + t;
        // Before the start and after the end the signal is silence.
        if (index < base || index >= end) continue;
        acc += taps[t]! * buffer[index - base]!;
      }
      out.push(clamp16(acc));
      this.#next += 1;
    }
    return Int16Array.from(out);
  }
}

/** One-shot conversion of 16-bit mono PCM between any two rates (returns the input when they match). */
export function resample(samples: Int16Array, inRate: number, outRate: number): Int16Array {
  if (!(inRate > 0) || !(outRate > 0)) throw new RangeError(`cannot resample from ${inRate} Hz to ${outRate} Hz`);
  if (inRate === outRate || samples.length === 0) return samples;
  return StreamingResampler.convert(samples, inRate, outRate);
}
