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

/**
 * Linear in the length of the stream, however it is fed (one call with a 10-minute recording, or
 * 10 ms frames): the unhanded audio sits in one growable buffer read through an offset, so
 * dropping audio moves the offset instead of copying what remains, and a copy (compaction or
 * growth) only happens after at least as many samples were appended or dropped since the last.
 */
export class Segmenter {
  readonly #o: SegmenterOptions;
  readonly #frame: number;
  /** Storage; the audio not yet handed out is `#store[#head … #head + #size)`, stream samples from #base. */
  #store: Int16Array = new Int16Array(0);
  #head = 0;
  #size = 0;
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

  /** A copy of stream samples [from, to) still held (the decoder keeps it while the buffer moves on). */
  #slice(from: number, to: number): Int16Array {
    const a = Math.min(this.#size, Math.max(0, from - this.#base));
    const b = Math.min(this.#size, Math.max(a, to - this.#base));
    return this.#store.slice(this.#head + a, this.#head + b);
  }

  /** Drops buffered audio before `sample` (keeping the padding an utterance may need). */
  #trim(sample: number): void {
    const drop = Math.min(this.#size, Math.max(0, sample - this.#base));
    this.#head += drop;
    this.#size -= drop;
    this.#base += drop;
  }

  #append(chunk: Int16Array): void {
    const need = this.#size + chunk.length;
    if (this.#head + need > this.#store.length) {
      const live = this.#store.subarray(this.#head, this.#head + this.#size);
      // Compact in place only when the dropped part is at least as large as what is kept (the
      // copy is then paid for by the drops); otherwise grow, doubling, so appends pay for it.
      if (need <= this.#store.length && this.#head >= this.#size) {
        this.#store.copyWithin(0, this.#head, this.#head + this.#size);
      } else {
        const next = new Int16Array(Math.max(need, 2 * this.#size + chunk.length, 1024));
        next.set(live);
        this.#store = next;
      }
      this.#head = 0;
    }
    this.#store.set(chunk, this.#head + this.#size);
    this.#size = need;
  }

  /** Feeds audio; returns the utterances it completed. */
  push(chunk: Int16Array): Int16Array[] {
    if (!this.#found) this.#all.push(chunk);
    this.#append(chunk);
    const out: Int16Array[] = [];
    const pad = Math.round((this.#o.padMs * this.#o.rate) / 1000);
    const frame = this.#frame;
    const end = this.#base + this.#size;
    while (this.#analysed + frame <= end) {
      const store = this.#store;
      const from = this.#head + (this.#analysed - this.#base);
      let energy = 0;
      for (let i = from; i < from + frame; i++) energy += store[i]! * store[i]!;
      const db = 10 * Math.log10(energy / frame + 1);
      this.#floor = this.#floor === undefined || db < this.#floor ? db : this.#floor + (db - this.#floor) * 0.002;
      const speech = db > Math.max(this.#floor + this.#o.marginDb, this.#o.minDb);
      const frameStart = this.#analysed;
      this.#analysed += frame;
      if (speech) {
        this.#speechRun++;
        this.#silenceRun = 0;
        this.#lastSpeechEnd = this.#analysed;
        if (this.#start === undefined && this.#speechRun >= this.#frames(this.#o.minSpeechMs)) {
          this.#start = frameStart - (this.#speechRun - 1) * frame;
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
        this.#trim(this.#analysed - pad - this.#frames(this.#o.minSpeechMs) * frame);
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
    const segment = this.#slice(this.#start - pad, this.#base + this.#size);
    this.#start = undefined;
    return [segment];
  }
}

/** Longest audio the engine decodes in one native call: 30 s at 16 kHz (about 6 s of CPU that nothing can interrupt). */
export const MAX_UTTERANCE_SAMPLES = 30 * 16000;

/** A segment longer than `max` in consecutive parts of at most `max` (the no-speech-found case hands back everything). */
export function* bounded(segment: Int16Array, max: number): Generator<Int16Array> {
  if (segment.length <= max) {
    yield segment;
    return;
  }
  for (let at = 0; at < segment.length; at += max) yield segment.subarray(at, Math.min(segment.length, at + max));
}

/**
 * A recording as the pieces batch decoding hands the engine: whole when it fits in `max`
 * samples; otherwise cut at pauses, consecutive utterances joined up to `max`. Lazy and fed
 * to the segmenter a second at a time, so a caller can stop (or yield) between pieces.
 */
export function* pieces(samples: Int16Array, max: number = MAX_UTTERANCE_SAMPLES, rate = 16000): Generator<Int16Array> {
  if (samples.length <= max) {
    if (samples.length) yield samples;
    return;
  }
  const segmenter = new Segmenter({ rate, maxUtteranceMs: (max / rate) * 1000 * 0.9 });
  let current: Int16Array[] = [];
  let length = 0;
  function* take(segments: readonly Int16Array[]): Generator<Int16Array> {
    for (const whole of segments) {
      for (const segment of bounded(whole, max)) {
        if (length > 0 && length + segment.length > max) {
          yield concat(current);
          current = [];
          length = 0;
        }
        current.push(segment);
        length += segment.length;
      }
    }
  }
  for (let at = 0; at < samples.length; at += rate) yield* take(segmenter.push(samples.subarray(at, Math.min(samples.length, at + rate))));
  yield* take(segmenter.end());
  if (current.length) yield concat(current);
}
