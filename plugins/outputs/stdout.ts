import { once } from 'node:events';
import { z } from 'zod';
import { describeError, kotoError, type OutputRequest } from 'koto-voice';

export const stdoutOptions = z.strictObject({
  /** Print the raw transcript instead of the corrected text. */
  raw: z.boolean().default(false),
});

const closedFix = "stdout was closed: keep the program reading Koto's output running, or choose another output";

export async function writeStdout(req: OutputRequest): Promise<void> {
  const { raw } = stdoutOptions.parse(req.options);
  const text = raw ? req.raw : req.text;
  const aborted = () => kotoError('KOTO_ERR_ABORTED', { what: 'writing to stdout' });
  if (req.signal.aborted) throw aborted();
  const out = process.stdout;
  // A pipe whose reader stopped reading: wait before writing, so a cancel here means nothing
  // was written (once written, the text is in the pipe's hands and will reach the reader).
  if (out.writableNeedDrain) {
    try {
      await once(out, 'drain', { signal: req.signal });
    } catch {
      throw aborted();
    }
  }
  await new Promise<void>((resolve, reject) => {
    const onAbort = () => {
      // Written, not yet taken by the reader: delivered as far as Koto can tell, and never twice.
      req.warn('the text is queued on stdout; the program reading it has not taken it yet');
      resolve();
    };
    req.signal.addEventListener('abort', onAbort, { once: true });
    out.write(`${text}\n`, (err) => {
      req.signal.removeEventListener('abort', onAbort);
      if (!err) resolve();
      else reject(kotoError('KOTO_ERR_OUTPUT', { output: 'stdout', detail: describeError(err) }, { fix: closedFix, cause: err }));
    });
  });
}
