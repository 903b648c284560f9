import { Worker } from 'node:worker_threads';
import type { WorkerJob, WorkerReply } from './decode-worker.ts';
import { AbortedError, LibraryUnavailable } from './library.ts';

// The worker is a sibling file: .ts when running from source (Node strips the types), .js when built.
const WORKER_URL = new URL(`./decode-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

/** How long close() waits for the worker to free its model before ending the thread. */
const CLOSE_WAIT_MS = 10_000;

export interface DecodeOptions {
  /**
   * `batch`: the whole recording is one utterance, or pieces of at most `maxUtteranceSamples`
   * cut at pauses. `continuous`: utterances are cut at pauses; each is reported through `onText`.
   */
  readonly mode: 'batch' | 'continuous';
  readonly signal: AbortSignal;
  /** The text so far, whenever an utterance is finished. */
  readonly onText?: ((text: string) => void) | undefined;
  /** Longest piece decoded in one native call (default 30 s). */
  readonly maxUtteranceSamples?: number | undefined;
}

export interface WordsRequest {
  readonly dictionary: readonly string[];
  readonly weight: number;
  readonly flite: string | false;
  readonly max: number;
  readonly signal: AbortSignal;
}

export interface WordsResult {
  readonly added: readonly { word: string; phones: string }[];
  readonly skipped: readonly string[];
  readonly refused: readonly string[];
}

type Settle = (reply: WorkerReply | Error) => void;

/** One worker thread holding one loaded model. */
class ModelWorker {
  readonly worker: Worker;
  readonly #control: Int32Array;
  readonly ready: Promise<void>;
  readonly exited: Promise<void>;
  #dead = false;
  /** The job in progress, told about every reply and about the worker's death. */
  #job: { id: number; settle: Settle } | undefined;
  #holds = 0;
  #retired = false;

  constructor(library: string | undefined, argv: readonly string[]) {
    const control = new SharedArrayBuffer(4);
    this.#control = new Int32Array(control);
    this.worker = new Worker(WORKER_URL, { workerData: { library, argv: [...argv], control } });
    this.worker.unref();
    let loaded: (err?: Error) => void;
    this.ready = new Promise<void>((resolve, reject) => (loaded = (err) => (err ? reject(err) : resolve())));
    this.ready.catch(() => undefined);
    this.exited = new Promise((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.on('message', (reply: WorkerReply) => {
      if (reply.type === 'ready') loaded();
      else if (reply.type === 'unavailable') loaded(new LibraryUnavailable(reply.reason));
      else if (reply.type === 'load-failed') loaded(new Error(reply.message));
      else if (this.#job?.id === reply.id) this.#job.settle(reply);
    });
    const die = (err: Error) => {
      this.#dead = true;
      loaded(err);
      this.#job?.settle(err);
    };
    this.worker.on('error', (err) => die(err instanceof Error ? err : new Error(String(err))));
    this.worker.on('exit', (code) => die(new Error(`the pocketsphinx worker ended (exit code ${code})`)));
  }

  get usable(): boolean {
    return !this.#dead && Atomics.load(this.#control, 0) === 0;
  }

  /** Keeps the process alive while someone waits on this worker. */
  hold(): () => void {
    if (this.#holds++ === 0 && !this.#retired) this.worker.ref();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--this.#holds === 0) this.worker.unref();
    };
  }

  /** Sends a job; `settle` hears its replies (and the worker's death) until `finish()`. */
  start(job: WorkerJob & { id: number }, settle: Settle): () => void {
    if (this.#dead || this.#retired) {
      settle(new Error('the pocketsphinx worker ended before the job started'));
      return () => {};
    }
    this.#job = { id: job.id, settle };
    this.worker.postMessage(job);
    return () => {
      if (this.#job?.id === job.id) this.#job = undefined;
    };
  }

  /** A job is in progress. */
  get busy(): boolean {
    return this.#job !== undefined;
  }

  /**
   * Retires the worker at once: its thread stops at the next piece (native code cannot be
   * interrupted mid-call), frees the model and ends by itself. Nothing waits for it; the job in
   * progress, if any, hears `reason`.
   */
  retire(reason: Error): void {
    Atomics.store(this.#control, 0, 1);
    this.#retired = true;
    const job = this.#job;
    this.#job = undefined;
    this.worker.unref();
    job?.settle(reason);
  }

  async close(): Promise<void> {
    if (this.#dead) return;
    this.worker.postMessage({ type: 'close' } satisfies WorkerJob);
    const release = this.hold();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), CLOSE_WAIT_MS)));
    try {
      if ((await Promise.race([this.exited, late])) === 'late') await this.worker.terminate();
    } finally {
      clearTimeout(timer);
      release();
    }
  }
}

/**
 * A pocketsphinx model decoding in a worker thread, reused by every session of a kernel. Jobs
 * run one at a time. An aborted job (cancel or deadline) rejects at once with AbortedError and
 * retires its worker; the next job starts a fresh one (the model loads again, about 0.4 s), so
 * a cancelled 10-minute decode never delays the next dictation by more than that.
 */
export class LibraryDecoder {
  readonly #library: string | undefined;
  readonly #argv: readonly string[];
  #worker: ModelWorker | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;
  #ids = 0;
  /**
   * Pronunciations made so far (by the word as written), kept across workers so flite runs once
   * per word, even when a deadline retired the worker half-way through a long dictionary.
   */
  readonly #plans = new Map<string, string | null>();

  private constructor(library: string | undefined, argv: readonly string[]) {
    this.#library = library;
    this.#argv = argv;
  }

  /**
   * Loads the model in a worker; rejects with LibraryUnavailable or the engine's load error.
   * `library` is a path (or the binding loadBinding returned); undefined tries the defaults.
   */
  static async create(library: string | { readonly path: string } | undefined, argv: readonly string[]): Promise<LibraryDecoder> {
    const decoder = new LibraryDecoder(typeof library === 'object' ? library.path : library, argv);
    await decoder.#ready(undefined);
    return decoder;
  }

  /** Starts loading the model if no worker holds it (after a retirement); never throws. */
  warm(): void {
    if (this.#closed) return;
    this.#current().ready.catch(() => undefined);
  }

  #current(): ModelWorker {
    if (!this.#worker?.usable) this.#worker = new ModelWorker(this.#library, this.#argv);
    return this.#worker;
  }

  /** The loaded worker; an abort while it loads rejects without harming it (the next job uses it). */
  async #ready(signal: AbortSignal | undefined): Promise<ModelWorker> {
    const worker = this.#current();
    const release = worker.hold();
    try {
      await untilAborted(worker.ready, signal);
    } catch (err) {
      if (this.#worker === worker && !(err instanceof AbortedError)) this.#worker = undefined;
      throw err;
    } finally {
      release();
    }
    return worker;
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(() => {
      if (this.#closed) throw new Error('the pocketsphinx decoder was closed');
      return fn();
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** Runs one job; resolves with its final reply. On abort: rejects at once and retires the worker. */
  #job<R extends WorkerReply>(job: WorkerJob & { id: number }, signal: AbortSignal, onReply?: (reply: WorkerReply) => void): Promise<R> {
    // A job still queued behind another rejects at its deadline too (and is skipped when its turn comes).
    return untilAborted(
      this.#exclusive(async () => {
        if (signal.aborted) throw new AbortedError();
        const worker = await this.#ready(signal);
        if (this.#closed) throw new Error('the pocketsphinx decoder was closed');
        if (signal.aborted) throw new AbortedError();
        const release = worker.hold();
        const onAbort = () => {
          if (this.#worker === worker) this.#worker = undefined;
          worker.retire(new AbortedError());
        };
        let finish = () => {};
        try {
          return await new Promise<R>((resolve, reject) => {
            signal.addEventListener('abort', onAbort, { once: true });
            finish = worker.start(job, (reply) => {
              if (reply instanceof Error) {
                // A worker that died (not one retired on purpose) is replaced by the next job.
                if (this.#worker === worker) this.#worker = undefined;
                reject(reply);
              } else if (reply.type === 'failed') reject(new Error(reply.message));
              else if (reply.type === 'text' || reply.type === 'plan') onReply?.(reply);
              else resolve(reply as R);
            });
          });
        } finally {
          signal.removeEventListener('abort', onAbort);
          finish();
          release();
        }
      }),
      signal,
    );
  }

  /** Decodes 16 kHz 16-bit mono audio; resolves with the text (empty when nothing was heard). */
  async decode(chunks: AsyncIterable<Int16Array> | Iterable<Int16Array>, options: DecodeOptions): Promise<string> {
    const parts: Int16Array[] = [];
    let length = 0;
    for await (const chunk of chunks) {
      if (options.signal.aborted) throw new AbortedError();
      parts.push(chunk);
      length += chunk.length;
    }
    const samples = parts.length === 1 ? parts[0]! : new Int16Array(length);
    if (parts.length !== 1) {
      let at = 0;
      for (const part of parts) {
        samples.set(part, at);
        at += part.length;
      }
    }
    const job = { type: 'decode', id: ++this.#ids, samples, mode: options.mode, maxUtteranceSamples: options.maxUtteranceSamples } as const;
    const reply = await this.#job<Extract<WorkerReply, { type: 'done' }>>(job, options.signal, (r) => {
      if (r.type === 'text') options.onText?.(r.text);
    });
    return reply.text;
  }

  /**
   * Adds the dictionary's words the engine does not know, with pronunciations made from its own
   * dictionary, spelling and flite. Each worker is given them once.
   */
  async addWords(request: WordsRequest): Promise<WordsResult> {
    const job = {
      type: 'words',
      id: ++this.#ids,
      dictionary: [...request.dictionary],
      weight: request.weight,
      flite: request.flite,
      max: request.max,
      known: [...this.#plans],
    } as const;
    const reply = await this.#job<Extract<WorkerReply, { type: 'words' }>>(job, request.signal, (r) => {
      if (r.type === 'plan') this.#plans.set(r.word, r.phones);
    });
    return { added: reply.added, skipped: reply.skipped, refused: reply.refused };
  }

  /**
   * Frees the model. A job still in progress (the kernel closing under a long decode) is failed
   * and its worker retired rather than waited for; an idle worker frees its model before this resolves.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const worker = this.#worker;
    this.#worker = undefined;
    if (!worker) return;
    if (worker.busy) worker.retire(new Error('the pocketsphinx decoder was closed'));
    else await worker.close().catch(() => undefined);
  }
}

/** Resolves like `work`, but rejects at once when `signal` aborts. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  if (signal.aborted) return Promise.reject(new AbortedError());
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(new AbortedError());
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
