/**
 * Corrects one long text in a worker thread, so the event loop stays free and the correction can
 * be stopped at its deadline (terminating the thread interrupts the rules mid-way).
 *
 * Node runs this file directly (from source it strips the types, built it is .js): it imports
 * Node and correct.ts only, never `koto-voice`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { correctText } from './correct.ts';
import type { CorrectionOptions } from './options.ts';

export interface CorrectJob {
  readonly text: string;
  readonly dictionary: readonly string[];
  readonly options: CorrectionOptions;
}

export type CorrectReply = { readonly ok: true; readonly text: string } | { readonly ok: false; readonly message: string };

const job = workerData as CorrectJob;
let reply: CorrectReply;
try {
  reply = { ok: true, text: correctText(job.text, job.dictionary, job.options) };
} catch (err) {
  reply = { ok: false, message: err instanceof Error ? err.message : String(err) };
}
parentPort!.postMessage(reply);
