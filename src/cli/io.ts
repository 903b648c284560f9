import { escapeLine, forStdout } from './terminal.ts';

/** Reads all of stdin (audio bytes or text). */
export async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Writes a line to stdout and waits for it to flush (so piping into `head` etc. behaves). */
export function printLine(line: string): Promise<void> {
  return new Promise((resolve) => {
    process.stdout.write(`${forStdout(line)}\n`, () => resolve());
  });
}

/** One line of diagnostics on stderr, with control characters (and line breaks) shown escaped. */
export function printErr(line: string): void {
  process.stderr.write(`${escapeLine(line)}\n`);
}

/**
 * Emits results in input order while they complete in any order: scripts reading
 * `koto transcribe a.wav b.wav` get line N for input N.
 */
export class OrderedPrinter<T> {
  readonly #pending = new Map<number, T>();
  #next = 0;
  readonly #emit: (value: T) => Promise<void>;

  constructor(emit: (value: T) => Promise<void>) {
    this.#emit = emit;
  }

  async add(index: number, value: T): Promise<void> {
    this.#pending.set(index, value);
    while (this.#pending.has(this.#next)) {
      const item = this.#pending.get(this.#next) as T;
      this.#pending.delete(this.#next);
      this.#next += 1;
      await this.#emit(item);
    }
  }
}
