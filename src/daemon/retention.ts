import { readdirSync, statSync, unlinkSync } from 'node:fs';
import path from 'node:path';

/** Keeps at most `recordings` files and none older than `days` days (0 = no limit). Returns what it removed. */
export function applyRetention(dir: string, limits: { recordings: number; days: number }): string[] {
  let files: { file: string; mtime: number }[];
  try {
    files = readdirSync(dir)
      .filter((name) => /\.(wav|flac|mp3|ogg|webm|m4a)$/i.test(name))
      .map((name) => {
        const file = path.join(dir, name);
        return { file, mtime: statSync(file).mtimeMs };
      })
      .sort((a, b) => b.mtime - a.mtime);
  } catch {
    return [];
  }
  const cutoff = limits.days > 0 ? Date.now() - limits.days * 86_400_000 : -Infinity;
  const removed: string[] = [];
  files.forEach(({ file, mtime }, index) => {
    if ((limits.recordings > 0 && index >= limits.recordings) || mtime < cutoff) {
      try {
        unlinkSync(file);
        removed.push(file);
      } catch {
        // already gone
      }
    }
  });
  return removed;
}
