import { appendFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { describeError, kotoError, type OutputRequest } from 'koto-voice';

export const fileOptions = z.strictObject({
  /** Appended to; relative paths are relative to the config file. */
  path: z.string().min(1),
  /** `text`: one line per dictation; `jsonl`: one JSON object per dictation (id, time, raw, text). */
  format: z.enum(['text', 'jsonl']).default('text'),
});

export async function appendToFile(req: OutputRequest, configDir: string): Promise<void> {
  const options = fileOptions.parse(req.options);
  const target = path.resolve(configDir, options.path);
  if (req.signal.aborted) throw kotoError('KOTO_ERR_ABORTED', { what: `appending to ${target}` });
  const line =
    options.format === 'jsonl'
      ? JSON.stringify({ id: req.session.id, time: new Date().toISOString(), raw: req.raw, text: req.text })
      : req.text;
  try {
    await mkdir(path.dirname(target), { recursive: true });
    // Dictations can be private: the file is created readable by its owner only.
    await appendFile(target, `${line}\n`, { mode: 0o600 });
  } catch (err) {
    // A catalogue error, so the user reads which file and what to do (a plain Error reads "report it to the plugin's author").
    throw kotoError(
      'KOTO_ERR_OUTPUT',
      { output: 'file', detail: `cannot append to ${target}: ${describeError(err)}` },
      { fix: "point the file output's path at a file in a folder you can write to", cause: err },
    );
  }
}
