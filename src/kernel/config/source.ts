import { createHash } from 'node:crypto';
import { constants, existsSync, statSync, type Stats } from 'node:fs';
import { open, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { isAlias, isNode, LineCounter, parseDocument, visit, type Node as YamlNode, type YAMLParseError } from 'yaml';
import { describe, kotoError } from '../errors.ts';
import { kotoPaths } from '../paths.ts';
import { builtinPluginNames } from '../plugin-loader.ts';
import { secretsFromEnv } from '../secrets.ts';
import { interpolateEnv } from './interpolate.ts';
import { readTrustStore, trustCommand, trustVerdict, type TrustVerdict } from './trust.ts';

/**
 * How the config in effect was chosen. `explicit` (`--config`, `configPath`), `user` (the
 * per-user file) and `inline` (an object given in code) are trusted by how they were given;
 * `project` (found by searching from the working directory) only through `koto trust`.
 */
export type ConfigKind = 'explicit' | 'project' | 'user' | 'inline' | 'none';

export interface SkippedConfig {
  /** Real path of the project config that was found but not used. */
  readonly file: string;
  readonly reason: Exclude<TrustVerdict, 'trusted'>;
  /** The command that trusts it. */
  readonly fix: string;
}

export interface ConfigOrigin {
  readonly kind: ConfigKind;
  readonly file: string | undefined;
  /** Always true for a config in effect: an untrusted file is never used. */
  readonly trusted: boolean;
  /** A project config found by the search and ignored because it is not trusted. */
  readonly skipped: SkippedConfig | undefined;
}

/** A config as read from disk (or given in code), env-interpolated but not yet validated. */
export interface ConfigSource {
  /** Absolute path of the file, or undefined for an in-code or empty config. */
  readonly file: string | undefined;
  /** Directory that relative paths in the config are resolved against. */
  readonly dir: string;
  readonly data: Record<string, unknown>;
  /** Credential values (config values under secret names, secret env vars): redacted everywhere. */
  readonly secrets: readonly string[];
  readonly origin: ConfigOrigin;
  /** For the user, once: a skipped untrusted config, a config that can run code but others can change. */
  readonly warnings: readonly string[];
}

export const SEARCH_PLACES = [
  'package.json',
  '.kotorc',
  '.kotorc.json',
  '.kotorc.yaml',
  '.kotorc.yml',
  '.kotorc.js',
  '.kotorc.mjs',
  '.kotorc.ts',
  'koto.config.json',
  'koto.config.yaml',
  'koto.config.yml',
  'koto.config.js',
  'koto.config.mjs',
  'koto.config.ts',
];

/** Larger than any real config; parsing stays bounded in time and memory. */
export const MAX_CONFIG_BYTES = 1024 * 1024;
/** Aliases a YAML config may expand (the `yaml` package's guard against "billion laughs"). */
export const MAX_YAML_ALIASES = 100;

type FileKind = 'yaml' | 'json' | 'module' | 'package';

function kindOf(file: string): FileKind | undefined {
  const base = path.basename(file);
  if (base === 'package.json') return 'package';
  const ext = path.extname(base);
  if (ext === '' || ext === '.yaml' || ext === '.yml') return 'yaml';
  if (ext === '.json') return 'json';
  if (['.js', '.mjs', '.cjs', '.ts', '.mts', '.cts'].includes(ext)) return 'module';
  return undefined;
}

function parseFailure(file: string, detail: string, location = '', cause?: unknown, fix?: string) {
  return kotoError('KOTO_ERR_CONFIG_PARSE', { file, location, detail }, { ...(cause === undefined ? {} : { cause }), fix });
}

function parseYaml(file: string, text: string): unknown {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true, lineCounter });
  const problem = doc.errors[0];
  if (problem) throw yamlError(file, problem);
  // An alias inside its own anchor (`a: &a [*a]`) makes a cyclic value: refuse it with its line.
  const anchors = new Map<string, YamlNode>();
  let recursive: { source: string; offset: number } | undefined;
  visit(doc, {
    Node(_key, node) {
      if (isAlias(node)) {
        const target = anchors.get(node.source);
        const at = node.range?.[0];
        if (target?.range && at !== undefined && at >= target.range[0] && at < target.range[2]) {
          recursive = { source: node.source, offset: at };
          return visit.BREAK;
        }
      } else if (isNode(node) && node.anchor) {
        anchors.set(node.anchor, node);
      }
      return undefined;
    },
  });
  if (recursive) {
    const pos = lineCounter.linePos(recursive.offset);
    throw parseFailure(
      file,
      `invalid YAML: the alias *${recursive.source} is used inside its own anchor &${recursive.source} (a recursive alias)`,
      `:${pos.line}:${pos.col}`,
      undefined,
      'an alias cannot refer to the value that contains it: write the value out',
    );
  }
  try {
    return doc.toJS({ maxAliasCount: MAX_YAML_ALIASES }) ?? {};
  } catch (err) {
    // An exponential alias bomb ("billion laughs") and an alias without its anchor land here.
    if (/excessive alias count/i.test(describe(err))) {
      throw parseFailure(
        file,
        `invalid YAML: its aliases expand too far (more than ${MAX_YAML_ALIASES} expansions; nested aliases grow exponentially)`,
        '',
        undefined,
        'write the repeated values out instead of nesting aliases',
      );
    }
    throw parseFailure(file, `invalid YAML: ${describe(err)}`);
  }
}

function yamlError(file: string, err: YAMLParseError) {
  const pos = err.linePos?.[0];
  const message = err.message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '') ?? '';
  // The parser turns its own stack overflow on absurd nesting into an error: say what it means.
  const detail = /maximum call stack/i.test(message) ? 'nested too deeply' : message;
  return parseFailure(file, `invalid YAML: ${detail}`, pos ? `:${pos.line}:${pos.col}` : '');
}

function parseJson(file: string, text: string): unknown {
  try {
    return text.trim() === '' ? {} : JSON.parse(text);
  } catch (err) {
    // V8 reports a character position; turn it into the line a person looks for.
    const pos = /position (\d+)/.exec(describe(err))?.[1];
    const line = pos === undefined ? undefined : text.slice(0, Number(pos)).split('\n').length;
    // V8 quotes the text around the error, which may be an unquoted API key: keep only what is wrong.
    const detail = `invalid JSON: ${describe(err)
      .replace(/^JSON\.parse: /, '')
      .replace(/, (\.\.\.)?".*"(\.\.\.)? is not valid JSON$/s, '')
      .replace(/ in JSON at position \d+.*$/s, '')}`;
    throw parseFailure(file, detail, line === undefined ? '' : `:${line}`);
  }
}

/** Text of a config file as cosmiconfig read it: UTF-16 by BOM, else UTF-8. */
function decode(bytes: Buffer): string {
  if (bytes[0] === 0xff && bytes[1] === 0xfe) return new TextDecoder('utf-16le').decode(bytes);
  if (bytes[0] === 0xfe && bytes[1] === 0xff) return new TextDecoder('utf-16be').decode(bytes);
  return bytes.toString('utf8');
}

function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * One config file, read once: the hash that trust is checked against is the hash of exactly
 * the bytes that are parsed (for package.json, of its `koto` value, so dependency updates do
 * not revoke trust).
 */
export interface ConfigFile {
  /** Real path (symlinks resolved): what trust is recorded for, and what relative paths resolve against. */
  readonly file: string;
  readonly kind: FileKind;
  readonly bytes: Buffer;
  readonly text: string;
  readonly sha256: string;
  /** package.json only: the parsed `koto` value (undefined: the file has none). */
  readonly section?: unknown;
}

/** Reads a config file once (at most MAX_CONFIG_BYTES), resolving symlinks. */
export async function readConfigFile(file: string): Promise<ConfigFile> {
  const real = await realpath(file).catch(() => path.resolve(file));
  const kind = kindOf(real) ?? kindOf(file);
  if (!kind)
    throw parseFailure(file, `not a config file type Koto reads (${path.extname(file)}): use .yaml, .yml, .json, .js, .mjs or .ts`);
  let bytes: Buffer;
  try {
    // O_NONBLOCK: a FIFO or device swapped in after the search looked must not block the open.
    const handle = await open(real, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      const info = await handle.stat();
      if (!info.isFile()) throw parseFailure(file, 'not a regular file');
      const { size } = info;
      const tooLarge = () =>
        parseFailure(
          file,
          `the file is larger than ${MAX_CONFIG_BYTES} bytes, the most a config may be`,
          '',
          undefined,
          'check that this is the right file',
        );
      if (size > MAX_CONFIG_BYTES) throw tooLarge();
      // Read one byte more than allowed: a file that grows while being read is refused too.
      const buffer = Buffer.alloc(MAX_CONFIG_BYTES + 1);
      let bytesRead = 0;
      for (let n = -1; n !== 0 && bytesRead < buffer.length; bytesRead += n) {
        n = (await handle.read(buffer, bytesRead, buffer.length - bytesRead, bytesRead)).bytesRead;
      }
      if (bytesRead > MAX_CONFIG_BYTES) throw tooLarge();
      bytes = Buffer.from(buffer.subarray(0, bytesRead));
    } finally {
      await handle.close();
    }
  } catch (err) {
    if ((err as { code?: string }).code?.startsWith('KOTO_ERR_')) throw err;
    throw parseFailure(file, describe(err), '', err);
  }
  const text = decode(bytes);
  if (kind !== 'package') return { file: real, kind, bytes, text, sha256: sha256(bytes) };
  let section: unknown;
  try {
    section = (JSON.parse(text) as { koto?: unknown } | null)?.koto;
  } catch {
    section = undefined;
  }
  return { file: real, kind, bytes, text, sha256: sha256(`package.json#koto\n${JSON.stringify(section) ?? ''}`), section };
}

/**
 * Parses what readConfigFile read. A module is imported from disk (Node has to resolve its own
 * imports), so for a project config its bytes are hashed again after the import and refused if
 * they changed in between. Residual risk: a process that can write the file could swap it
 * during that instant; the swap is detected, but the swapped code has already run. Only a
 * user who can write the trusted file can do that — and they could edit it anyway.
 */
async function parseConfigFile(config: ConfigFile, verify: boolean): Promise<unknown> {
  const { file, kind, text } = config;
  if (kind === 'yaml') return parseYaml(file, text);
  if (kind === 'json') return parseJson(file, text);
  if (kind === 'package') {
    // The search only stops at a package.json with `koto`; --config package.json must parse.
    if (config.section === undefined) parseJson(file, text);
    return config.section ?? {};
  }
  let mod: { default?: unknown };
  try {
    // Node >= 22.18 strips TypeScript types natively, so koto.config.ts needs no compiler.
    mod = (await import(`${pathToFileURL(file).href}?t=${Date.now()}`)) as { default?: unknown };
  } catch (err) {
    throw parseFailure(file, describe(err), '', err);
  }
  if (verify) {
    const again = await readConfigFile(file);
    if (again.sha256 !== config.sha256) {
      throw kotoError('KOTO_ERR_CONFIG_UNTRUSTED', { file, reason: 'it changed while it was being loaded', command: trustCommand(file) });
    }
  }
  return mod.default ?? mod;
}

/**
 * The parsed content of a YAML/JSON config, without running anything (modules: undefined), for
 * `koto trust` to show what the user is about to trust. Undefined when it does not parse.
 */
export function peekConfig(config: ConfigFile): unknown {
  try {
    if (config.kind === 'yaml') return parseYaml(config.file, config.text);
    if (config.kind === 'json') return parseJson(config.file, config.text);
    if (config.kind === 'package') return config.section;
  } catch {
    // koto config check says what is wrong
  }
  return undefined;
}

async function isFile(file: string): Promise<boolean> {
  try {
    return (await stat(file)).isFile();
  } catch {
    return false; // absent, a dangling link, unreadable folder
  }
}

/**
 * The first project config from `from` upwards, read but not parsed (and nothing executed):
 * the search places of each folder in order, stopping after the folder that holds a
 * package.json (the project root). A package.json counts only with a `koto` key, an empty
 * file not at all (as cosmiconfig searched before trust existed).
 */
export async function findProjectConfig(from: string): Promise<ConfigFile | undefined> {
  let dir = path.resolve(from);
  for (;;) {
    for (const place of SEARCH_PLACES) {
      const candidate = path.join(dir, place);
      if (!(await isFile(candidate))) continue;
      let config: ConfigFile;
      try {
        config = await readConfigFile(candidate);
      } catch (err) {
        // Unreadable (no permission, gone meanwhile): not a config here, as cosmiconfig had it.
        const code = ((err as { cause?: { code?: string } }).cause ?? {}).code;
        if (code === 'EACCES' || code === 'EPERM' || code === 'ENOENT' || code === 'EISDIR' || code === 'ENOTDIR' || code === 'ELOOP')
          continue;
        throw err;
      }
      if (config.kind === 'package' ? config.section === undefined : config.text.trim() === '') continue;
      return config;
    }
    if (existsSync(path.join(dir, 'package.json')) || existsSync(path.join(dir, 'package.yaml'))) return undefined;
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

export interface FindConfigOptions {
  /** `--config PATH`: load exactly this file. */
  configPath?: string | undefined;
  cwd?: string | undefined;
  env?: NodeJS.ProcessEnv | undefined;
  /** Skip the search (cwd upwards and the per-user file): used by tests and the Node API. */
  search?: boolean | undefined;
}

/**
 * Finds and reads the config: `--config`, else the first project config from the cwd upwards
 * if the user trusts it, else the per-user file. An untrusted or changed project config is
 * ignored with one warning that says how to trust it.
 * `pinned` (reloads): read the file that was loaded before, under the same rules.
 */
export async function readConfigSource(options: FindConfigOptions & { pinned?: ConfigOrigin | undefined } = {}): Promise<ConfigSource> {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const pinned = options.pinned;
  if (pinned?.file) {
    if (!existsSync(pinned.file))
      throw kotoError(
        'KOTO_ERR_CONFIG_NOT_FOUND',
        { file: pinned.file },
        { fix: 'restore the file (the last good config stays in effect until then)' },
      );
    const config = await readConfigFile(pinned.file);
    if (pinned.kind === 'project') {
      const verdict = trustVerdict(config.file, config.sha256, readTrustStore(env));
      if (verdict !== 'trusted') {
        throw kotoError('KOTO_ERR_CONFIG_UNTRUSTED', { file: config.file, reason: REASONS[verdict], command: trustCommand(config.file) });
      }
    }
    return fromFile(config, pinned.kind, undefined, env);
  }
  if (options.configPath) {
    const file = path.resolve(cwd, options.configPath);
    if (!existsSync(file)) throw kotoError('KOTO_ERR_CONFIG_NOT_FOUND', { file });
    return fromFile(await readConfigFile(file), 'explicit', undefined, env);
  }
  if (options.search === false) return fromData({}, undefined, cwd, env, NO_CONFIG);

  let skipped: SkippedConfig | undefined;
  let why = '';
  const project = await findProjectConfig(cwd);
  if (project) {
    const store = readTrustStore(env);
    const verdict = trustVerdict(project.file, project.sha256, store);
    if (verdict === 'trusted') return fromFile(project, 'project', undefined, env);
    skipped = { file: project.file, reason: verdict, fix: trustCommand(project.file) };
    why = store.problem
      ? `the trust store ${store.file} is not safe to use: ${store.problem.problem} (fix: ${store.problem.remedy})`
      : REASONS[verdict];
  }
  const userFile = kotoPaths(env).userConfig;
  const source = existsSync(userFile)
    ? await fromFile(await readConfigFile(userFile), 'user', skipped, env)
    : fromData({}, undefined, cwd, env, { ...NO_CONFIG, skipped });
  if (!skipped) return source;
  const instead = source.file ? `using ${source.file} instead` : 'using the defaults instead';
  const warning =
    `ignoring ${skipped.file}: ${why}; ${instead}. ` +
    `A config found in a project folder can send your keys and dictation to another server or run code, so Koto uses it only once you trust it: review it, then run \`${skipped.fix}\``;
  return { ...source, warnings: Object.freeze([warning, ...source.warnings]) };
}

const REASONS: Record<Exclude<TrustVerdict, 'trusted'>, string> = {
  untrusted: 'it is not trusted',
  changed: 'it changed since you trusted it',
  'store-unsafe': 'the trust store cannot be used',
};

const NO_CONFIG: ConfigOrigin = Object.freeze({ kind: 'none', file: undefined, trusted: true, skipped: undefined });

async function fromFile(
  config: ConfigFile,
  kind: ConfigKind,
  skipped: SkippedConfig | undefined,
  env: NodeJS.ProcessEnv,
): Promise<ConfigSource> {
  const data = await parseConfigFile(config, kind === 'project');
  const source = fromData(data, config.file, path.dirname(config.file), env, { kind, file: config.file, trusted: true, skipped });
  const warning = codeRunnerWarning(config, source.data);
  return warning ? { ...source, warnings: Object.freeze([...source.warnings, warning]) } : source;
}

/** Whether loading this config can run code: a JS/TS module, a `plugins:` list, a provider `use` that is not built in. */
export function canRunCode(kind: FileKind, data: Record<string, unknown>): boolean {
  if (kind === 'module') return true;
  if (Array.isArray(data.plugins) && data.plugins.length > 0) return true;
  const builtins = new Set(builtinPluginNames());
  const providers = data.providers && typeof data.providers === 'object' ? Object.values(data.providers) : [];
  return providers.some((p) => {
    const use = (p as { use?: unknown } | null)?.use;
    return typeof use === 'string' && !builtins.has(use);
  });
}

/**
 * A config that can run code is as good as code: warn when someone else could change it (the
 * file or its folder writable by group/others, or owned by another user; root is fine). The
 * trusted per-user file and --config too: trust in a file is trust in whoever can write it.
 */
function codeRunnerWarning(config: ConfigFile, data: Record<string, unknown>): string | undefined {
  if (typeof process.getuid !== 'function' || !canRunCode(config.kind, data)) return undefined;
  const uid = process.getuid();
  const stat = (file: string): Stats | undefined => {
    try {
      return statSync(file);
    } catch {
      return undefined;
    }
  };
  const mode = (s: Stats) => (s.mode & 0o777).toString(8).padStart(4, '0');
  const file = stat(config.file);
  const dirName = path.dirname(config.file);
  const dir = stat(dirName);
  let problem: string | undefined;
  let fix = `chmod go-w ${config.file}`;
  if (file && file.uid !== uid && file.uid !== 0) {
    problem = `is owned by uid ${file.uid}, not by you (uid ${uid})`;
    fix = `review it and take ownership (copy it to a file of your own), or remove it`;
  } else if (file && (file.mode & 0o022) !== 0) {
    problem = `is writable by other users (mode ${mode(file)})`;
  } else if (dir && (dir.mode & 0o022) !== 0 && (dir.mode & 0o1000) === 0) {
    problem = `is in ${dirName}, which is writable by other users (mode ${mode(dir)})`;
    fix = `chmod go-w ${dirName}`;
  } else if (dir && dir.uid !== uid && dir.uid !== 0) {
    problem = `is in ${dirName}, which is owned by uid ${dir.uid}, not by you`;
    fix = `move the config to a folder of your own`;
  }
  if (!problem) return undefined;
  return `${config.file} can load plugins (code that runs as you) and ${problem}: whoever can change it can run code as you. Fix: ${fix.startsWith('chmod') ? `run \`${fix}\`` : fix}`;
}

/** Builds a source from an in-memory object (Node API, tests) or a parsed file. */
export function fromData(
  data: unknown,
  file: string | undefined,
  dir: string,
  env: NodeJS.ProcessEnv = process.env,
  origin: ConfigOrigin = file
    ? { kind: 'explicit', file, trusted: true, skipped: undefined }
    : { kind: 'inline', file: undefined, trusted: true, skipped: undefined },
): ConfigSource {
  const label = file ?? '<config>';
  if (data === null || data === undefined) data = {};
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw kotoError('KOTO_ERR_CONFIG_INVALID', { file: label, detail: 'the config must be a mapping of keys to values' });
  }
  const { value, secrets } = interpolateEnv(data as Record<string, unknown>, env, label);
  const all = [...new Set([...secrets, ...secretsFromEnv(env)])];
  return Object.freeze({ file, dir, data: value, secrets: Object.freeze(all), origin: Object.freeze(origin), warnings: Object.freeze([]) });
}
