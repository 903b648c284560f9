import type { AudioFrame } from 'koto-voice';

/** Root-mean-square level of 16-bit samples, 0..1. */
export function rms(samples: Int16Array): number {
  if (samples.length === 0) return 0;
  let sum = 0;
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i]!;
    sum += s * s;
  }
  return Math.sqrt(sum / samples.length) / 32768;
}

/**
 * Cuts a stream of sample chunks of any length into frames of `frameLength` samples,
 * numbering them by the position of their first sample.
 */
export class Framer {
  readonly #frameLength: number;
  #pending: Int16Array;
  #filled = 0;

  constructor(frameLength: number) {
    this.#frameLength = frameLength;
    this.#pending = new Int16Array(frameLength);
  }

  /** Calls `emit` for every complete frame. */
  push(chunk: Int16Array, emit: (frame: Int16Array) => void): void {
    let offset = 0;
    if (this.#filled === 0 && chunk.length === this.#frameLength) {
      emit(chunk);
      return;
    }
    while (offset < chunk.length) {
      const take = Math.min(this.#frameLength - this.#filled, chunk.length - offset);
      this.#pending.set(chunk.subarray(offset, offset + take), this.#filled);
      this.#filled += take;
      offset += take;
      if (this.#filled === this.#frameLength) {
        emit(this.#pending);
        this.#pending = new Int16Array(this.#frameLength);
        this.#filled = 0;
      }
    }
  }

  /** The last, shorter frame, if samples are left over. */
  flush(emit: (frame: Int16Array) => void): void {
    if (this.#filled > 0) emit(this.#pending.slice(0, this.#filled));
    this.#filled = 0;
  }
}

/** Joins byte chunks (s16le) into whole samples; an odd trailing byte waits for the next chunk. */
export class S16Decoder {
  #carry: Buffer | undefined;

  decode(chunk: Buffer): Int16Array {
    const data = this.#carry ? Buffer.concat([this.#carry, chunk]) : chunk;
    const whole = data.length & ~1;
    this.#carry = whole < data.length ? Buffer.from(data.subarray(whole)) : undefined;
    // Copy into a fresh, aligned buffer (Buffer pool slices may be unaligned); little-endian hosts.
    const out = new Int16Array(whole / 2);
    Buffer.from(out.buffer).set(data.subarray(0, whole));
    if (BIG_ENDIAN) for (let i = 0; i < out.length; i++) out[i] = ((out[i]! & 0xff) << 8) | ((out[i]! >> 8) & 0xff);
    return out;
  }
}

const BIG_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 0;

/**
 * A single-consumer async queue of frames: the capture pushes, the session iterates. Ends after
 * `end()`, or throws the error given to `fail()` once the frames before it are consumed.
 */
export class FrameQueue implements AsyncIterable<AudioFrame> {
  #items: AudioFrame[] = [];
  #done = false;
  #error: unknown;
  #waiter: (() => void) | undefined;
  #detached = false;

  push(frame: AudioFrame): void {
    if (this.#done || this.#detached) return;
    this.#items.push(frame);
    this.#wake();
  }

  end(): void {
    this.#done = true;
    this.#wake();
  }

  fail(error: unknown): void {
    if (this.#done) return;
    this.#error = error;
    this.#done = true;
    this.#wake();
  }

  get ended(): boolean {
    return this.#done;
  }

  #wake(): void {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<AudioFrame, void, undefined> {
    try {
      for (;;) {
        const next = this.#items.shift();
        if (next) {
          yield next;
          continue;
        }
        if (this.#done) {
          if (this.#error !== undefined) throw this.#error;
          return;
        }
        await new Promise<void>((resolve) => (this.#waiter = resolve));
      }
    } finally {
      // A consumer that stops iterating early no longer receives frames (the file still does).
      if (!this.#done) {
        this.#detached = true;
        this.#items = [];
      }
    }
  }
}
