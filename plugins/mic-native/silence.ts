/**
 * Spots a microphone that delivers digital silence: only zero samples from the first frame on
 * for `limitMs`. A real microphone always has some noise, so a run of exact zeros that long
 * means a muted, suspended or null device. Once one non-zero sample arrives it stays quiet.
 */
export class SilenceDetector {
  readonly #limitSamples: number;
  #zeros = 0;
  #heard = false;

  constructor(limitMs: number, sampleRate: number) {
    this.#limitSamples = limitMs > 0 ? Math.round((limitMs * sampleRate) / 1000) : Infinity;
  }

  /** True once the audio so far is all zeros for at least the limit. */
  push(samples: Int16Array): boolean {
    if (this.#heard) return false;
    for (let i = 0; i < samples.length; i++) {
      if (samples[i] !== 0) {
        this.#heard = true;
        return false;
      }
    }
    this.#zeros += samples.length;
    return this.#zeros >= this.#limitSamples;
  }

  get heardSound(): boolean {
    return this.#heard;
  }
}
