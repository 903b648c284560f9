import { lstat, readdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { kotoError } from './errors.ts';

/** The `daemon.retention` section: retention's own settings, composed into the config schema by the daemon's section. */
export const retentionSchema = z.strictObject({
  recordings: z.number().int().nonnegative().default(500),
  days: z.number().int().nonnegative().default(30),
});

export interface RetentionLimits {
  /** Keep at most this many recordings (0: no limit by count). */
  readonly recordings: number;
  /** Delete recordings older than this many days (0: no limit by age). */
  readonly days: number;
}

const AUDIO = /\.(wav|flac|mp3|ogg|webm|m4a)$/i;

/**
 * Bounded retention of the recordings folder (`daemon.retention`): deletes the oldest recordings
 * in `dir` so that, with `reserve` new ones about to be written, at most `limits.recordings`
 * remain, and those older than `limits.days`. Returns the deleted paths. Only regular audio
 * files directly in `dir` are considered — never a symlink (Koto does not make them, and its
 * target may be the user's own file) — and a `dir` that is itself a symlink is refused: it could
 * point at a folder of the user's own audio. A missing folder is nothing to do.
 */
export async function pruneRecordings(dir: string, limits: RetentionLimits, reserve = 1, now = Date.now()): Promise<string[]> {
  let names: string[];
  try {
    const info = await lstat(dir);
    if (!info.isDirectory()) {
      throw kotoError('KOTO_ERR_UNSAFE_FOLDER', {
        role: 'data',
        dir,
        problem: info.isSymbolicLink() ? 'it is a symbolic link' : 'it is not a folder',
        remedy: `remove it and let Koto create the recordings folder (\`rm ${dir}\`), or set XDG_DATA_HOME (or KOTO_HOME) to a private folder`,
      });
    }
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const files: { file: string; mtimeMs: number }[] = [];
  for (const name of names) {
    if (!AUDIO.test(name)) continue;
    const file = path.join(dir, name);
    try {
      const info = await lstat(file);
      if (info.isFile()) files.push({ file, mtimeMs: info.mtimeMs });
    } catch {
      // vanished meanwhile
    }
  }
  files.sort((a, b) => b.mtimeMs - a.mtimeMs || (a.file < b.file ? 1 : -1)); // newest first
  const doomed = new Set<string>();
  if (limits.days > 0) {
    const cutoff = now - limits.days * 86_400_000;
    for (const f of files) if (f.mtimeMs < cutoff) doomed.add(f.file);
  }
  if (limits.recordings > 0) {
    const keep = Math.max(0, limits.recordings - reserve);
    for (const f of files.slice(keep)) doomed.add(f.file);
  }
  const deleted: string[] = [];
  for (const file of doomed) {
    try {
      await unlink(file);
      deleted.push(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return deleted;
}
