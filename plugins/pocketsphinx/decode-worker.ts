/**
 * One pocketsphinx model in a worker thread. Decoding blocks for about 0.2 s per second of
 * audio inside native code; here that blocks this thread only, so the daemon keeps answering.
 *
 * Node runs this file directly (from source it strips the types, built it is .js): it imports
 * Node and the plugin's own koto-voice-free modules only. Protocol (see decoder.ts):
 *   → { type: 'ready' } | { type: 'unavailable', reason } | { type: 'load-failed', message }
 *   ← { type: 'decode', id, samples, mode, maxUtteranceSamples? }
 *       → { type: 'text', id, text }… → { type: 'done', id, text }
 *   ← { type: 'words', id, dictionary, weight, flite, max, known }
 *       → { type: 'plan', id, word, phones }… → { type: 'words', id, added, skipped, refused }
 *   → { type: 'failed', id, message }
 *   ← { type: 'close' }: the model is freed and the thread ends.
 * control[0] = 1 retires the worker: the job in progress stops at the next utterance (native
 * code cannot be interrupted), the model is freed and the thread ends.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { LibraryUnavailable, loadBinding, NativeDecoder } from './library.ts';
import { bounded, MAX_UTTERANCE_SAMPLES, pieces, Segmenter } from './segmenter.ts';
import { engineWords, pronounce } from './words.ts';

export interface WorkerSetup {
  readonly library: string | undefined;
  readonly argv: readonly string[];
  readonly control: SharedArrayBuffer;
}

export type WorkerJob =
  | {
      readonly type: 'decode';
      readonly id: number;
      readonly samples: Int16Array;
      readonly mode: 'batch' | 'continuous';
      readonly maxUtteranceSamples?: number | undefined;
    }
  | {
      readonly type: 'words';
      readonly id: number;
      readonly dictionary: readonly string[];
      readonly weight: number;
      readonly flite: string | false;
      /** Most words added to one decoder (each one grows the search a little). */
      readonly max: number;
      /** Pronunciations made before (by an earlier worker), by the word as written: flite is not asked again. */
      readonly known: readonly (readonly [string, string | null])[];
    }
  | { readonly type: 'close' };

export type WorkerReply =
  | { readonly type: 'ready' }
  | { readonly type: 'unavailable'; readonly reason: string }
  | { readonly type: 'load-failed'; readonly message: string }
  | { readonly type: 'text'; readonly id: number; readonly text: string }
  | { readonly type: 'done'; readonly id: number; readonly text: string }
  /** A pronunciation made (or found impossible), sent at once so a retired worker's progress is kept. */
  | { readonly type: 'plan'; readonly id: number; readonly word: string; readonly phones: string | null }
  | {
      readonly type: 'words';
      readonly id: number;
      readonly added: readonly { word: string; phones: string }[];
      readonly skipped: readonly string[];
      readonly refused: readonly string[];
    }
  | { readonly type: 'failed'; readonly id: number; readonly message: string };

class Retired extends Error {}

const setup = workerData as WorkerSetup;
const port = parentPort!;
const control = new Int32Array(setup.control);
const post = (reply: WorkerReply) => port.postMessage(reply);

function checkRetired(): void {
  if (Atomics.load(control, 0) !== 0) throw new Retired('retired');
}

function decode(decoder: NativeDecoder, job: Extract<WorkerJob, { type: 'decode' }>): string {
  const max = job.maxUtteranceSamples ?? MAX_UTTERANCE_SAMPLES;
  // The text so far grows by appending: reporting it after each utterance stays linear.
  let text = '';
  const utterance = (segment: Int16Array) => {
    checkRetired();
    const heard = segment.length ? decoder.utterance(segment) : '';
    if (!heard) return;
    text = text ? `${text} ${heard}` : heard;
    post({ type: 'text', id: job.id, text });
  };
  if (job.mode === 'batch') {
    for (const piece of pieces(job.samples, max)) utterance(piece);
    return text;
  }
  // Continuous: utterances cut at pauses, fed a second at a time as a live stream would be.
  const segmenter = new Segmenter();
  const { samples } = job;
  for (let at = 0; at < samples.length; at += 16000) {
    for (const segment of segmenter.push(samples.subarray(at, Math.min(samples.length, at + 16000)))) {
      for (const part of bounded(segment, max)) utterance(part);
    }
  }
  for (const segment of segmenter.end()) for (const part of bounded(segment, max)) utterance(part);
  return text;
}

async function words(decoder: NativeDecoder, job: Extract<WorkerJob, { type: 'words' }>): Promise<WorkerReply> {
  const plans = new Map(job.known);
  const wanted = engineWords(job.dictionary).filter(({ word }) => !decoder.offered(word) && decoder.lookup(word) === undefined);
  const planned: { word: string; phones: string }[] = [];
  const skipped: string[] = [];
  for (const { word, original } of wanted.slice(0, job.max)) {
    checkRetired();
    let phones = plans.get(original);
    if (phones === undefined) {
      phones = (await pronounce(original, { lookup: (w) => decoder.lookup(w), flite: job.flite })) ?? null;
      post({ type: 'plan', id: job.id, word: original, phones });
    }
    if (phones) planned.push({ word, phones });
    else skipped.push(original);
  }
  checkRetired();
  const refused = decoder.addWords(planned, job.weight);
  const refusedSet = new Set(refused);
  return { type: 'words', id: job.id, added: planned.filter((p) => !refusedSet.has(p.word)), skipped, refused };
}

function end(decoder: NativeDecoder | undefined): void {
  decoder?.free();
  port.close();
  process.exit(0);
}

async function main(): Promise<void> {
  let decoder: NativeDecoder;
  try {
    decoder = NativeDecoder.create(await loadBinding(setup.library), setup.argv);
  } catch (err) {
    if (err instanceof LibraryUnavailable) post({ type: 'unavailable', reason: err.reason });
    else post({ type: 'load-failed', message: err instanceof Error ? err.message : String(err) });
    return end(undefined);
  }
  if (Atomics.load(control, 0) !== 0) return end(decoder);
  post({ type: 'ready' });
  // Jobs come one at a time (the main thread serialises them); each runs to its end or retirement.
  let queue = Promise.resolve();
  port.on('message', (job: WorkerJob) => {
    queue = queue.then(async () => {
      if (job.type === 'close') return end(decoder);
      try {
        if (job.type === 'decode') post({ type: 'done', id: job.id, text: decode(decoder, job) });
        else post(await words(decoder, job));
      } catch (err) {
        if (err instanceof Retired) return end(decoder);
        post({ type: 'failed', id: job.id, message: err instanceof Error ? err.message : String(err) });
      }
    });
  });
}

await main();
