import { chmodSync, lstatSync, mkdirSync, statSync, type Stats } from 'node:fs';
import path from 'node:path';
import { describe, kotoError } from './errors.ts';

export type PrivateRole = 'runtime' | 'data';

export interface PrivateDirOptions {
  /**
   * A folder we own whose mode is merely loose (an old umask) is chmod-ed to 0700 instead of
   * refused. Only for folders whose contents cannot have been planted to our harm.
   */
  tighten?: boolean | undefined;
  /** The fix to print instead of the role's default. */
  remedy?: string | undefined;
  /**
   * Also check the folder that holds it: its owner (or anyone who may write into it without a
   * sticky bit) could swap our folder for theirs after we checked it. Default: for `runtime`.
   */
  parent?: boolean | undefined;
}

/** Ownership and modes mean nothing on Windows (and there is no uid to compare with). */
const uid = typeof process.getuid === 'function' && process.platform !== 'win32' ? process.getuid() : undefined;

/**
 * The runtime folder (control socket) and the data folder (history, recordings) hold what a
 * person dictates: another local user who owns, or can write into, either one could read or
 * answer for the daemon. So before Koto creates or connects to anything inside, the folder
 * must be a real directory (not a symlink), owned by the current user, with no group/other
 * access. A folder we create ourselves is made 0700; anything else found in the way is refused
 * with what is wrong and how to fix it, never silently reused (and never chmod-ed: that is what
 * turned a hijacked folder into an internal EPERM).
 */
export function ensurePrivateDir(dir: string, role: PrivateRole, options: PrivateDirOptions = {}): void {
  if (wantsParent(role, options)) checkParent(dir, role, options);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    // EEXIST: something that is not a folder is in the way; the check below names it.
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw unsafe(role, dir, `Koto cannot create it (${describe(err)})`, options.remedy ?? remedyFor(role, dir, 'other'));
    }
  }
  if (!checkPrivateDir(dir, role, { ...options, parent: false })) {
    throw unsafe(role, dir, 'it disappeared while Koto created it', options.remedy ?? remedyFor(role, dir, 'other'));
  }
}

/**
 * The same checks without creating anything (a client about to connect): `false` when the
 * folder does not exist, so nothing can be listening in it; throws when it is unsafe.
 */
export function checkPrivateDir(dir: string, role: PrivateRole, options: PrivateDirOptions = {}): boolean {
  if (wantsParent(role, options) && !checkParent(dir, role, options)) return false;
  let info: Stats;
  try {
    info = lstatSync(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw unsafe(role, dir, `Koto cannot inspect it (${describe(err)})`, options.remedy ?? remedyFor(role, dir, 'other'));
  }
  const refuse = (problem: string, kind: 'foreign' | 'mode') => unsafe(role, dir, problem, options.remedy ?? remedyFor(role, dir, kind));
  if (info.isSymbolicLink()) throw refuse('it is a symbolic link', 'foreign');
  if (!info.isDirectory()) throw refuse('it is not a folder', 'foreign');
  if (uid === undefined) return true;
  if (info.uid !== uid) throw refuse(`it is owned by uid ${info.uid}, not by you (uid ${uid})`, 'foreign');
  if ((info.mode & 0o077) !== 0) {
    if (!options.tighten) throw refuse(`its mode is ${modeOf(info)}, not 0700`, 'mode');
    chmodSync(dir, 0o700);
  }
  return true;
}

function wantsParent(role: PrivateRole, options: PrivateDirOptions): boolean {
  return uid !== undefined && (options.parent ?? role === 'runtime');
}

/**
 * The folder we create ours in ($XDG_RUNTIME_DIR, $TMPDIR, $KOTO_HOME) may be shared, like
 * /tmp, but then it must carry the sticky bit so nobody else can rename or delete our folder;
 * and it must belong to us or root. Symlinks are followed here (macOS's /tmp is one).
 * `false` when it does not exist yet.
 */
function checkParent(dir: string, role: PrivateRole, options: PrivateDirOptions): boolean {
  const parent = path.dirname(path.resolve(dir));
  let info: Stats;
  try {
    info = statSync(parent);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return false;
    throw unsafeParent(role, parent, `Koto cannot inspect it (${describe(err)})`, options);
  }
  if (!info.isDirectory()) throw unsafeParent(role, parent, 'it is not a folder', options);
  if (info.uid !== uid && info.uid !== 0) {
    throw unsafeParent(role, parent, `it is owned by uid ${info.uid}, who could replace Koto's folder in it`, options);
  }
  const sticky = (info.mode & 0o1000) !== 0;
  if ((info.mode & 0o022) !== 0 && !sticky) {
    throw unsafeParent(
      role,
      parent,
      `its mode is ${modeOf(info)}: other users may write into it and it has no sticky bit, so they could replace Koto's folder in it`,
      options,
    );
  }
  return true;
}

function unsafe(role: PrivateRole, dir: string, problem: string, remedy: string) {
  return kotoError('KOTO_ERR_UNSAFE_FOLDER', { role, dir, problem, remedy });
}

function unsafeParent(role: PrivateRole, parent: string, problem: string, options: PrivateDirOptions) {
  const remedy =
    options.remedy ??
    (role === 'runtime'
      ? 'set XDG_RUNTIME_DIR to a folder that only you can write (e.g. /run/user/$(id -u)), or fix the owner and mode of that folder'
      : 'set XDG_DATA_HOME (or KOTO_HOME) to a folder that only you can write, or fix the owner and mode of that folder');
  return kotoError(
    'KOTO_ERR_UNSAFE_FOLDER',
    { role, dir: parent, problem, remedy },
    { message: `the folder ${parent}, which holds the ${role} folder, is not safe: ${problem}` },
  );
}

function modeOf(info: Stats): string {
  return (info.mode & 0o7777).toString(8).padStart(4, '0');
}

function remedyFor(role: PrivateRole, dir: string, kind: 'foreign' | 'mode' | 'other'): string {
  if (role === 'data') return `make it yours and private (\`chmod 700 ${dir}\`), or set XDG_DATA_HOME (or KOTO_HOME) to a private folder`;
  const elsewhere = 'or set XDG_RUNTIME_DIR to a private folder (e.g. /run/user/$(id -u))';
  if (kind === 'mode') return `make it private again (\`chmod 700 ${dir}\`; Koto creates it 0700, so check what changed it), ${elsewhere}`;
  if (kind === 'foreign') return `remove it if it is not yours (\`rm -rf ${dir}\`, as its owner or root), ${elsewhere}`;
  return `set XDG_RUNTIME_DIR to a private folder you can write (e.g. /run/user/$(id -u))`;
}
