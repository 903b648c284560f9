import { Worker } from 'node:worker_threads';
import { kotoError } from 'koto-voice';
import type { CorrectJob, CorrectReply } from './correct-worker.ts';
import { correctText } from './correct.ts';

// The worker is a sibling file: .ts when running from source (Node strips the types), .js when built.
const WORKER_URL = new URL(`./correct-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

/**
 * Longest text corrected on the event loop (several minutes of dictation): the rules take about a
 * millisecond per kilobyte, so the loop is held about as long as starting a thread would take.
 */
export const INLINE_MAX_CHARS = 8 * 1024;

/**
 * Corrects `job.text`. Short texts inline; longer ones in a worker thread that is terminated
 * when `signal` aborts (correction.timeoutMs or a cancel), so the deadline holds for any size
 * and the kernel delivers the raw text instead.
 */
export async function correctBounded(job: CorrectJob, signal: AbortSignal): Promise<string> {
  if (signal.aborted) throw aborted();
  if (job.text.length <= INLINE_MAX_CHARS) return correctText(job.text, job.dictionary, job.options);
  return new Promise<string>((resolve, reject) => {
    const worker = new Worker(WORKER_URL, { workerData: job });
    let settled = false;
    const finish = (err: Error | undefined, text?: string) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve(text!);
      void worker.terminate();
    };
    const onAbort = () => finish(aborted());
    signal.addEventListener('abort', onAbort, { once: true });
    worker.on('message', (reply: CorrectReply) => (reply.ok ? finish(undefined, reply.text) : finish(new Error(reply.message))));
    worker.on('error', (err) => finish(err instanceof Error ? err : new Error(String(err))));
    worker.on('exit', (code) => finish(new Error(`the correction worker ended without an answer (exit code ${code})`)));
  });
}

function aborted(): Error {
  return kotoError('KOTO_ERR_ABORTED', { what: 'correction' });
}
