/**
 * Cuts a stream of 16 kHz 16-bit mono audio into utterances at pauses, from frame energy
 * against an adaptive noise floor. Each utterance keeps a little silence on both sides, as the
 * decoder expects. Audio in which no speech is found at all comes back whole, so quiet speech
 * the detector misses is still decoded.
 */

export interface SegmenterOptions {
  readonly rate: number;
  /** A pause at least this long ends an utterance. */
  readonly pauseMs: number;
  /** Silence kept before and after each utterance. */
  readonly padMs: number;
  /** Speech must last this long to start an utterance (clicks do not). */
  readonly minSpeechMs: number;
  /** An utterance is cut here even without a pause. */
  readonly maxUtteranceMs: number;
  /** Speech is this many dB above the noise floor… */
  readonly marginDb: number;
  /** …and above this absolute level (dB re one 16-bit step). */
  readonly minDb: number;
}

export const DEFAULT_SEGMENTER: SegmenterOptions = {
  rate: 16000,
  pauseMs: 600,
  padMs: 250,
  minSpeechMs: 60,
  maxUtteranceMs: 30000,
  marginDb: 12,
  minDb: 30,
};

const FRAME_MS = 10;

export function concat(parts: readonly Int16Array[]): Int16Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

export class Segmenter {
  readonly #o: SegmenterOptions;
  readonly #frame: number;
  /** Audio not yet handed out, starting at sample #base of the stream. */
  #buffer: Int16Array = new Int16Array(0);
  #base = 0;
  /** Next sample to analyse. */
  #analysed = 0;
  #floor: number | undefined;
  #speechRun = 0;
  #silenceRun = 0;
  /** Stream sample where the current utterance's speech began, if one is open. */
  #start: number | undefined;
  #lastSpeechEnd = 0;
  #found = false;
  #all: Int16Array[] = [];

  constructor(options: Partial<SegmenterOptions> = {}) {
    this.#o = { ...DEFAULT_SEGMENTER, ...options };
    this.#frame = Math.round((this.#o.rate * FRAME_MS) / 1000);
  }

  #frames(ms: number): number {
    return Math.max(1, Math.round(ms / FRAME_MS));
  }

  #slice(from: number, to: number): Int16Array {
    return this.#buffer.slice(Math.max(0, from - this.#base), Math.max(0, to - this.#base));
  }

  /** Drops buffered audio before `sample` (keeping the padding an utterance may need). */
  #trim(sample: number): void {
    const keep = Math.max(this.#base, sample);
    this.#buffer = this.#buffer.slice(keep - this.#base);
    this.#base = keep;
  }

  /** Feeds audio; returns the utterances it completed. */
  push(chunk: Int16Array): Int16Array[] {
    if (!this.#found) this.#all.push(chunk);
    const merged = new Int16Array(this.#buffer.length + chunk.length);
    merged.set(this.#buffer);
    merged.set(chunk, this.#buffer.length);
    this.#buffer = merged;
    const out: Int16Array[] = [];
    const pad = Math.round((this.#o.padMs * this.#o.rate) / 1000);
    const end = this.#base + this.#buffer.length;
    while (this.#analysed + this.#frame <= end) {
      const from = this.#analysed - this.#base;
      let energy = 0;
      for (let i = from; i < from + this.#frame; i++) energy += this.#buffer[i]! * this.#buffer[i]!;
      const db = 10 * Math.log10(energy / this.#frame + 1);
      this.#floor = this.#floor === undefined || db < this.#floor ? db : this.#floor + (db - this.#floor) * 0.002;
      const speech = db > Math.max(this.#floor + this.#o.marginDb, this.#o.minDb);
      const frameStart = this.#analysed;
      this.#analysed += this.#frame;
      if (speech) {
        this.#speechRun++;
        this.#silenceRun = 0;
        this.#lastSpeechEnd = this.#analysed;
        if (this.#start === undefined && this.#speechRun >= this.#frames(this.#o.minSpeechMs)) {
          this.#start = frameStart - (this.#speechRun - 1) * this.#frame;
          this.#found = true;
          this.#all = [];
        }
      } else {
        this.#speechRun = 0;
        this.#silenceRun++;
      }
      if (this.#start !== undefined) {
        const long = this.#analysed - this.#start >= (this.#o.maxUtteranceMs * this.#o.rate) / 1000;
        if (this.#silenceRun >= this.#frames(this.#o.pauseMs) || long) {
          const stop = long ? this.#analysed : Math.min(this.#lastSpeechEnd + pad, this.#analysed);
          out.push(this.#slice(this.#start - pad, stop));
          this.#start = undefined;
          this.#trim(stop - pad);
        }
      } else {
        this.#trim(this.#analysed - pad - this.#frames(this.#o.minSpeechMs) * this.#frame);
      }
    }
    return out;
  }

  /** Ends the stream: the open utterance, or the whole audio when no speech was found. */
  end(): Int16Array[] {
    const pad = Math.round((this.#o.padMs * this.#o.rate) / 1000);
    if (!this.#found) {
      const all = concat(this.#all);
      this.#all = [];
      return all.length ? [all] : [];
    }
    if (this.#start === undefined) return [];
    const segment = this.#slice(this.#start - pad, this.#base + this.#buffer.length);
    this.#start = undefined;
    return [segment];
  }
}
