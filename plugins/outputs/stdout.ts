import { z } from 'zod';
import { describeError, kotoError, type OutputRequest } from 'koto-voice';

export const stdoutOptions = z.strictObject({
  /** Print the raw transcript instead of the corrected text. */
  raw: z.boolean().default(false),
});

export function writeStdout(req: OutputRequest): Promise<void> {
  const { raw } = stdoutOptions.parse(req.options);
  const text = raw ? req.raw : req.text;
  const aborted = () => kotoError('KOTO_ERR_ABORTED', { what: 'writing to stdout' });
  if (req.signal.aborted) return Promise.reject(aborted());
  return new Promise((resolve, reject) => {
    // A full pipe whose reader stopped reading never calls back: a cancelled session must still end.
    const onAbort = () => reject(aborted());
    req.signal.addEventListener('abort', onAbort, { once: true });
    process.stdout.write(`${text}\n`, (err) => {
      req.signal.removeEventListener('abort', onAbort);
      if (!err) resolve();
      else
        reject(
          kotoError(
            'KOTO_ERR_OUTPUT',
            { output: 'stdout', detail: describeError(err) },
            { fix: "stdout was closed: keep the program reading Koto's output running, or choose another output", cause: err },
          ),
        );
    });
  });
}
