import { chmod, open, type FileHandle } from 'node:fs/promises';

const HEADER_BYTES = 44;

/** A canonical 44-byte header for 16-bit mono PCM holding `dataBytes` of samples. */
export function wavHeader(sampleRate: number, dataBytes: number): Buffer {
  const h = Buffer.alloc(HEADER_BYTES);
  h.write('RIFF', 0, 'ascii');
  h.writeUInt32LE(36 + dataBytes, 4);
  h.write('WAVE', 8, 'ascii');
  h.write('fmt ', 12, 'ascii');
  h.writeUInt32LE(16, 16); // fmt chunk size
  h.writeUInt16LE(1, 20); // PCM
  h.writeUInt16LE(1, 22); // mono
  h.writeUInt32LE(sampleRate, 24);
  h.writeUInt32LE(sampleRate * 2, 28); // byte rate
  h.writeUInt16LE(2, 32); // block align
  h.writeUInt16LE(16, 34); // bits per sample
  h.write('data', 36, 'ascii');
  h.writeUInt32LE(dataBytes, 40);
  return h;
}

/**
 * Writes 16-bit mono PCM to a WAV file as it arrives. The header's sizes are rewritten every
 * `headerIntervalSamples` and at close, so the file is a playable WAV at any moment (missing at
 * most the audio since the last rewrite). Writes are queued in order; created with mode 0600.
 */
export class WavWriter {
  readonly path: string;
  readonly sampleRate: number;
  readonly #fh: FileHandle;
  readonly #headerInterval: number;
  #queue: Promise<void> = Promise.resolve();
  #dataBytes = 0;
  #sinceHeader = 0;
  #error: unknown;
  #closed: Promise<void> | undefined;

  private constructor(path: string, fh: FileHandle, sampleRate: number, headerIntervalSamples: number) {
    this.path = path;
    this.#fh = fh;
    this.sampleRate = sampleRate;
    this.#headerInterval = headerIntervalSamples;
  }

  static async create(path: string, sampleRate: number, headerIntervalSamples = sampleRate): Promise<WavWriter> {
    const fh = await open(path, 'wx', 0o600);
    try {
      await chmod(path, 0o600); // in case the umask was stricter than needed or looser than wanted
      await fh.write(wavHeader(sampleRate, 0), 0, HEADER_BYTES, 0);
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
    return new WavWriter(path, fh, sampleRate, headerIntervalSamples);
  }

  /** Samples written (queued) so far. */
  get samples(): number {
    return this.#dataBytes / 2;
  }

  /** The first write error, if any (the writer stops writing after it). */
  get error(): unknown {
    return this.#error;
  }

  /** Queues samples; returns the queue's promise (rejects only with a write error). */
  write(samples: Int16Array): Promise<void> {
    if (this.#closed || samples.length === 0) return this.#queue;
    const bytes = Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength);
    const position = HEADER_BYTES + this.#dataBytes;
    this.#dataBytes += bytes.length;
    this.#sinceHeader += samples.length;
    const patch = this.#sinceHeader >= this.#headerInterval;
    if (patch) this.#sinceHeader = 0;
    const total = this.#dataBytes;
    this.#enqueue(async () => {
      await this.#fh.write(bytes, 0, bytes.length, position);
      if (patch) await this.#patch(total);
    });
    return this.#queue;
  }

  #enqueue(task: () => Promise<void>): void {
    this.#queue = this.#queue.then(async () => {
      if (this.#error !== undefined) return;
      try {
        await task();
      } catch (err) {
        this.#error = err;
      }
    });
  }

  async #patch(dataBytes: number): Promise<void> {
    const sizes = Buffer.alloc(4);
    sizes.writeUInt32LE(36 + dataBytes, 0);
    await this.#fh.write(sizes, 0, 4, 4);
    sizes.writeUInt32LE(dataBytes, 0);
    await this.#fh.write(sizes, 0, 4, 40);
  }

  /** Writes the final header, syncs and closes. Idempotent. Rejects with a write error, if any. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      const total = this.#dataBytes;
      this.#enqueue(async () => {
        await this.#patch(total);
        await this.#fh.datasync();
      });
      await this.#queue;
      await this.#fh.close();
      if (this.#error !== undefined) throw this.#error;
    })();
    return this.#closed;
  }
}
