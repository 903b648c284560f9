import { lstat, realpath, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { KotoPaths } from './paths.ts';
import { ensurePrivateDir } from './private-dir.ts';

/**
 * The data folder and its recordings folder must be private before Koto writes what a person
 * dictated into them (see private-dir.ts). Checked on every write, not cached: a folder can be
 * swapped for a symlink between two dictations.
 */
export function ensureDataDirs(paths: Pick<KotoPaths, 'dataDir' | 'recordings'>): void {
  ensurePrivateDir(paths.dataDir, 'data', { tighten: true });
  ensurePrivateDir(paths.recordings, 'data', { tighten: true });
}

/**
 * Whether Koto may delete `file`: a regular file (not a symlink) whose real folder is the real
 * recordings folder. History rows also point at the user's own inputs (`koto run ~/meeting.wav`);
 * retention, `koto history --clear` and `daemon.keepAudio: false` must never reach those, nor
 * follow a symlink or a `..` out of the recordings folder.
 */
export async function isKotoOwned(file: string, recordingsDir: string): Promise<boolean> {
  try {
    // A recordings folder swapped for a symlink would make another folder's files look ours.
    if (!(await lstat(recordingsDir)).isDirectory()) return false;
    const info = await lstat(file);
    if (!info.isFile()) return false;
    const [dir, folder] = await Promise.all([realpath(path.dirname(path.resolve(file))), realpath(recordingsDir)]);
    return dir === folder;
  } catch {
    return false; // missing file or folder: nothing of ours to delete
  }
}

/** Deletes `file` only when Koto owns it (see isKotoOwned). Returns whether it was deleted. */
export async function deleteIfOwned(file: string, recordingsDir: string): Promise<boolean> {
  if (!(await isKotoOwned(file, recordingsDir))) return false;
  try {
    await unlink(file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
