import { lstatSync, type Stats } from 'node:fs';
import path from 'node:path';
import { describe, kotoError } from '../kernel/errors.ts';
import { checkPrivateDir, ensurePrivateDir } from '../kernel/private-dir.ts';

/**
 * What is at the socket path once its folder is known to be private:
 * - `missing`: nothing (no daemon);
 * - `socket`: a socket of ours, mode 0600 (a daemon, or a stale one left by a crash);
 * - `file`: a regular file of ours (only the daemon may remove it; a client refuses it).
 */
export type SocketEntry = 'missing' | 'socket' | 'file';

const uid = typeof process.getuid === 'function' && process.platform !== 'win32' ? process.getuid() : undefined;

/**
 * Before a client sends a single byte: the runtime folder is private (ours, 0700, no symlink,
 * in a folder nobody else can swap it out of) and the socket is a socket of ours, 0600. Another
 * local user who got there first must not receive what the user dictates (issue #17).
 * `missing` when there is nothing to connect to.
 */
export function checkClientSocket(socketPath: string): 'missing' | 'socket' {
  if (!checkPrivateDir(path.dirname(socketPath), 'runtime')) return 'missing';
  const entry = inspectSocket(socketPath);
  if (entry === 'file') throw unsafeSocket(socketPath, 'it is a regular file, not a socket', 'remove');
  return entry;
}

/** The daemon's side: create the runtime folder (private) or refuse the one in the way. */
export function prepareDaemonSocket(socketPath: string): SocketEntry {
  ensurePrivateDir(path.dirname(socketPath), 'runtime');
  return inspectSocket(socketPath);
}

function inspectSocket(socketPath: string): SocketEntry {
  let info: Stats;
  try {
    info = lstatSync(socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw unsafeSocket(socketPath, `Koto cannot inspect it (${describe(err)})`, 'remove');
  }
  // A symlink could lead anywhere, an attacker's socket included: never followed.
  if (info.isSymbolicLink()) throw unsafeSocket(socketPath, 'it is a symbolic link', 'foreign');
  // Windows: no uids or modes, and AF_UNIX sockets do not stat as sockets; nothing more to check.
  if (uid === undefined) return 'socket';
  if (info.uid !== uid) throw unsafeSocket(socketPath, `it is owned by uid ${info.uid}, not by you (uid ${uid})`, 'foreign');
  if (info.isSocket()) {
    if ((info.mode & 0o077) !== 0) {
      throw unsafeSocket(socketPath, `its mode is ${(info.mode & 0o777).toString(8).padStart(4, '0')}, not 0600`, 'remove');
    }
    return 'socket';
  }
  if (info.isFile()) return 'file';
  throw unsafeSocket(socketPath, info.isDirectory() ? 'it is a folder, not a socket' : 'it is not a socket', 'remove');
}

function unsafeSocket(socket: string, problem: string, kind: 'foreign' | 'remove') {
  const remedy =
    kind === 'foreign'
      ? `remove it (\`rm ${socket}\`, as its owner or root; Koto did not put it there), then start the daemon again with \`koto daemon\``
      : `remove it (\`rm -r ${socket}\`), then start the daemon again with \`koto daemon\` (it creates the socket 0600)`;
  return kotoError('KOTO_ERR_UNSAFE_SOCKET', { socket, problem, remedy });
}
