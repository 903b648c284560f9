import { z } from 'zod';
import type { OutputRequest } from 'koto-voice';

export const stdoutOptions = z.strictObject({
  /** Print the raw transcript instead of the corrected text. */
  raw: z.boolean().default(false),
});

export function writeStdout(req: OutputRequest): Promise<void> {
  const { raw } = stdoutOptions.parse(req.options);
  const text = raw ? req.raw : req.text;
  return new Promise((resolve, reject) => {
    process.stdout.write(`${text}\n`, (err) => (err ? reject(err) : resolve()));
  });
}
