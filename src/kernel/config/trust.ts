/**
 * Workspace trust: which project config files (found by searching from the working directory)
 * the user has reviewed and allowed. A cloned repository, a downloaded archive or a shared
 * folder can hold a `.kotorc.yaml` that points `baseUrl` at someone else's server with
 * `apiKey: ${OPENAI_API_KEY}`, or a `koto.config.js` / `plugins:` list that runs code; such a
 * file is used only once `koto trust` has recorded its real path and content hash here.
 *
 * The store is a small JSON file beside the per-user config (`trust.json`), written 0600 by
 * atomic rename. It sits in the same folder as `config.yaml`, which is trusted by definition:
 * whoever can write that folder can already run code as the user, so the store is exactly as
 * safe as the per-user config — and is refused (nothing trusted) when it is a symbolic link,
 * not owned by the user, or writable by group or others, or when its folder is.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
  type Stats,
} from 'node:fs';
import path from 'node:path';
import { kotoError } from '../errors.ts';
import { kotoPaths } from '../paths.ts';

export interface TrustRecord {
  /** SHA-256 (hex) of what was trusted: the file's bytes (the `koto` key of a package.json). */
  readonly sha256: string;
  readonly trustedAt: string;
}

export interface TrustStore {
  readonly file: string;
  /** Real path → record. */
  readonly entries: ReadonlyMap<string, TrustRecord>;
  /** Why the store was not used (unsafe permissions, a symlink); then nothing is trusted. */
  readonly problem: { readonly problem: string; readonly remedy: string } | undefined;
  /** The store exists but is not valid JSON of the expected shape (it is rewritten on the next `koto trust`). */
  readonly corrupt: boolean;
}

export type TrustVerdict = 'trusted' | 'untrusted' | 'changed' | 'store-unsafe';

export function trustStorePath(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(path.dirname(kotoPaths(env).userConfig), 'trust.json');
}

const uid = typeof process.getuid === 'function' ? process.getuid() : undefined;

function mode(stats: Stats): string {
  return (stats.mode & 0o777).toString(8).padStart(4, '0');
}

/** What makes the store's folder unsafe, if anything (checked only on POSIX). */
function folderProblem(dir: string): TrustStore['problem'] {
  if (uid === undefined) return undefined;
  let stats: Stats;
  try {
    stats = statSync(dir);
  } catch {
    return undefined; // no folder yet: no store
  }
  if (stats.uid !== uid && stats.uid !== 0) {
    return {
      problem: `its folder ${dir} is owned by uid ${stats.uid}, not by you (uid ${uid})`,
      remedy: `set XDG_CONFIG_HOME (or KOTO_HOME) to a folder of your own`,
    };
  }
  // A sticky bit does not help: the store's name is fixed, so anyone could create it first.
  if ((stats.mode & 0o022) !== 0) {
    return { problem: `its folder ${dir} is writable by other users (mode ${mode(stats)})`, remedy: `run \`chmod go-w ${dir}\`` };
  }
  return undefined;
}

function fileProblem(file: string, stats: Stats): TrustStore['problem'] {
  if (stats.isSymbolicLink())
    return {
      problem: 'it is a symbolic link',
      remedy: `remove the link (\`rm ${file}\`) and trust your project configs again with \`koto trust\``,
    };
  if (!stats.isFile())
    return { problem: 'it is not a regular file', remedy: `remove it and trust your project configs again with \`koto trust\`` };
  if (uid === undefined) return undefined;
  if (stats.uid !== uid)
    return {
      problem: `it is owned by uid ${stats.uid}, not by you (uid ${uid})`,
      remedy: `remove it (as its owner or root) and trust your project configs again`,
    };
  if ((stats.mode & 0o022) !== 0)
    return {
      problem: `it is writable by other users (mode ${mode(stats)})`,
      remedy: `check its entries (\`koto trust --list\`), then run \`chmod 600 ${file}\``,
    };
  return undefined;
}

/** Reads the store; never throws. An unsafe store trusts nothing and says why. */
export function readTrustStore(env: NodeJS.ProcessEnv = process.env): TrustStore {
  const file = trustStorePath(env);
  const empty = (problem?: TrustStore['problem'], corrupt = false): TrustStore => ({ file, entries: new Map(), problem, corrupt });
  const dirProblem = folderProblem(path.dirname(file));
  let stats: Stats;
  try {
    stats = lstatSync(file);
  } catch {
    return empty(dirProblem);
  }
  const problem = dirProblem ?? fileProblem(file, stats);
  if (problem) return empty(problem);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return empty(undefined, true);
  }
  const trusted = (parsed as { trusted?: unknown } | null)?.trusted;
  if (!trusted || typeof trusted !== 'object' || Array.isArray(trusted)) return empty(undefined, true);
  const entries = new Map<string, TrustRecord>();
  for (const [real, record] of Object.entries(trusted)) {
    const { sha256, trustedAt } = (record ?? {}) as Partial<TrustRecord>;
    if (typeof sha256 === 'string' && /^[0-9a-f]{64}$/.test(sha256))
      entries.set(real, { sha256, trustedAt: typeof trustedAt === 'string' ? trustedAt : '' });
  }
  return { file, entries, problem: undefined, corrupt: false };
}

/** Whether the file at this real path, with this content hash, is trusted. */
export function trustVerdict(realPath: string, sha256: string, store: TrustStore): TrustVerdict {
  if (store.problem) return 'store-unsafe';
  const record = store.entries.get(realPath);
  if (!record) return 'untrusted';
  return record.sha256 === sha256 ? 'trusted' : 'changed';
}

function unsafe(file: string, problem: NonNullable<TrustStore['problem']>) {
  return kotoError('KOTO_ERR_TRUST_STORE_UNSAFE', { file, problem: problem.problem, remedy: problem.remedy });
}

/** Writes the whole store: a private temp file in the same folder, fsync, rename over. */
function writeStore(env: NodeJS.ProcessEnv, update: (entries: Map<string, TrustRecord>) => void): TrustStore {
  const file = trustStorePath(env);
  const dir = path.dirname(file);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const current = readTrustStore(env);
  if (current.problem) throw unsafe(file, current.problem);
  const entries = new Map(current.entries);
  update(entries);
  const body = `${JSON.stringify({ version: 1, trusted: Object.fromEntries([...entries].sort(([a], [b]) => a.localeCompare(b))) }, null, 2)}\n`;
  const temp = path.join(dir, `.trust.json.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  // 'wx': never follow or reuse something planted at the temp name.
  const fd = openSync(temp, 'wx', 0o600);
  try {
    writeSync(fd, body);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(temp, file);
  } catch (err) {
    rmSync(temp, { force: true });
    throw err;
  }
  return { file, entries, problem: undefined, corrupt: false };
}

/** Records (or refreshes) trust in one file. Throws KOTO_ERR_TRUST_STORE_UNSAFE for an unsafe store. */
export function addTrust(realPath: string, sha256: string, env: NodeJS.ProcessEnv = process.env): TrustStore {
  return writeStore(env, (entries) => entries.set(realPath, { sha256, trustedAt: new Date().toISOString() }));
}

/** Forgets a file; false when it was not in the store. */
export function removeTrust(realPath: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const store = readTrustStore(env);
  if (store.problem) throw unsafe(store.file, store.problem);
  if (!store.entries.has(realPath)) return false;
  writeStore(env, (entries) => entries.delete(realPath));
  return true;
}

/** A path as it can be pasted into a POSIX shell. */
export function shellQuote(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replaceAll("'", `'\\''`)}'`;
}

/** The command that trusts a file, for messages. */
export function trustCommand(file: string): string {
  return `koto trust ${shellQuote(file)}`;
}
