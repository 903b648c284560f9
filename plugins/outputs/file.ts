import { appendFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import type { OutputRequest } from 'koto-voice';

export const fileOptions = z.strictObject({
  /** Appended to; relative paths are relative to the config file. */
  path: z.string().min(1),
  /** `text`: one line per dictation; `jsonl`: one JSON object per dictation (id, time, raw, text). */
  format: z.enum(['text', 'jsonl']).default('text'),
});

export async function appendToFile(req: OutputRequest, configDir: string): Promise<void> {
  const options = fileOptions.parse(req.options);
  const target = path.resolve(configDir, options.path);
  await mkdir(path.dirname(target), { recursive: true });
  const line =
    options.format === 'jsonl'
      ? JSON.stringify({ id: req.session.id, time: new Date().toISOString(), raw: req.raw, text: req.text })
      : req.text;
  // Dictations can be private: the file is created readable by its owner only.
  await appendFile(target, `${line}\n`, { mode: 0o600 });
}
