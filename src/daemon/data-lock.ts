import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import { sqlite } from '../history/sqlite.ts';
import { kotoError } from '../kernel/errors.ts';
import { ensurePrivateDir } from '../kernel/private-dir.ts';

/**
 * One daemon per data folder. Two daemons with different runtime folders (two sockets) but one
 * history would each take the other's live session for a crashed one and mark it `interrupted`,
 * and both would prune the same recordings.
 *
 * The lock is an exclusive SQLite transaction held open on `daemon.lock` for the daemon's life:
 * SQLite takes an OS file lock (fcntl on POSIX), which the OS drops when the process dies, so a
 * daemon killed with -9 leaves no stale lock behind — nothing to detect, no pid to trust, no race
 * between two daemons both "removing a stale lock". It also refuses a second lock in the same
 * process. `daemon.pid` next to it is only for the message naming the daemon in the way.
 */
export class DataFolderLock {
  readonly #db: DatabaseSync;
  readonly #pidFile: string;
  #released = false;

  private constructor(db: DatabaseSync, pidFile: string) {
    this.#db = db;
    this.#pidFile = pidFile;
  }

  static acquire(dataDir: string): DataFolderLock {
    ensurePrivateDir(dataDir, 'data', { tighten: true });
    const file = path.join(dataDir, 'daemon.lock');
    const pidFile = path.join(dataDir, 'daemon.pid');
    // Never open `daemon.lock` with node:fs: closing any descriptor of a file drops every POSIX
    // lock this process holds on it, so a look from a second daemon in the same process (tests)
    // would silently unlock the first. Only SQLite, which knows this, touches the file.
    const db = new (sqlite().DatabaseSync)(file);
    try {
      // No busy wait: a held lock means another daemon, now.
      db.exec('PRAGMA busy_timeout = 0; PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE');
    } catch (err) {
      db.close();
      if (/locked|busy/i.test(String((err as Error).message))) {
        throw kotoError('KOTO_ERR_DATA_FOLDER_IN_USE', { owner: ownerOf(pidFile), dir: dataDir });
      }
      throw err;
    }
    const tmp = `${pidFile}.${process.pid}`;
    writeFileSync(tmp, `${process.pid}\n`, { mode: 0o600 });
    renameSync(tmp, pidFile);
    return new DataFolderLock(db, pidFile);
  }

  /** Idempotent. The pid file goes first, while the lock still guarantees it is ours. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    rmSync(this.#pidFile, { force: true });
    try {
      this.#db.exec('ROLLBACK');
    } finally {
      this.#db.close();
    }
  }
}

function ownerOf(pidFile: string): string {
  try {
    const pid = Number.parseInt(readFileSync(pidFile, 'utf8'), 10);
    if (Number.isInteger(pid) && pid > 0) return `pid ${pid}`;
  } catch {
    // written a moment after the lock is taken; the lock is the truth
  }
  return 'pid unknown';
}
