import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { cosmiconfig, type Loader } from 'cosmiconfig';
import { parseDocument, YAMLParseError } from 'yaml';
import { describe, kotoError } from '../errors.ts';
import { kotoPaths } from '../paths.ts';
import { interpolateEnv } from './interpolate.ts';

/** A config as read from disk (or given in code), env-interpolated but not yet validated. */
export interface ConfigSource {
  /** Absolute path of the file, or undefined for an in-code or empty config. */
  readonly file: string | undefined;
  /** Directory that relative paths in the config are resolved against. */
  readonly dir: string;
  readonly data: Record<string, unknown>;
  /** Values that came from `${ENV}` into secret-looking keys, and any key-like values: redacted everywhere. */
  readonly secrets: readonly string[];
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

const yamlLoader: Loader = (filepath, content) => {
  const doc = parseDocument(content, { prettyErrors: true, uniqueKeys: true });
  const problem = doc.errors[0];
  if (problem) throw parseError(filepath, problem);
  return doc.toJS() ?? {};
};

const jsonLoader: Loader = (filepath, content) => {
  try {
    return content.trim() === '' ? {} : JSON.parse(content);
  } catch (err) {
    // V8 reports a character position; turn it into the line a person looks for.
    const pos = /position (\d+)/.exec(describe(err))?.[1];
    const line = pos === undefined ? undefined : content.slice(0, Number(pos)).split('\n').length;
    throw kotoError('KOTO_ERR_CONFIG_PARSE', {
      file: filepath,
      location: line === undefined ? '' : `:${line}`,
      // V8 quotes the text around the error, which may be an unquoted API key: keep only what is wrong.
      detail: `invalid JSON: ${describe(err)
        .replace(/^JSON\.parse: /, '')
        .replace(/, (\.\.\.)?".*"(\.\.\.)? is not valid JSON$/s, '')
        .replace(/ in JSON at position \d+.*$/s, '')}`,
    });
  }
};

const moduleLoader: Loader = async (filepath) => {
  try {
    // Node >= 22.18 strips TypeScript types natively, so koto.config.ts needs no compiler.
    const mod = (await import(`${pathToFileURL(filepath).href}?t=${Date.now()}`)) as { default?: unknown };
    return mod.default ?? mod;
  } catch (err) {
    throw kotoError('KOTO_ERR_CONFIG_PARSE', { file: filepath, location: '', detail: describe(err) }, { cause: err });
  }
};

function parseError(file: string, err: YAMLParseError): Error {
  const pos = err.linePos?.[0];
  return kotoError('KOTO_ERR_CONFIG_PARSE', {
    file,
    location: pos ? `:${pos.line}:${pos.col}` : '',
    detail: `invalid YAML: ${err.message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '')}`,
  });
}

function explorer() {
  return cosmiconfig('koto', {
    searchPlaces: SEARCH_PLACES,
    searchStrategy: 'project',
    cache: false,
    loaders: {
      '.yaml': yamlLoader,
      '.yml': yamlLoader,
      '.json': jsonLoader,
      '.js': moduleLoader,
      '.mjs': moduleLoader,
      '.ts': moduleLoader,
      noExt: yamlLoader,
    },
  });
}

export interface FindConfigOptions {
  /** `--config PATH`: load exactly this file. */
  configPath?: string | undefined;
  cwd?: string | undefined;
  env?: NodeJS.ProcessEnv | undefined;
  /** Skip the search (cwd upwards and the per-user file): used by tests and the Node API. */
  search?: boolean | undefined;
}

/** Finds and reads the config file: `--config`, else cosmiconfig from cwd, else the per-user file. */
export async function readConfigSource(options: FindConfigOptions = {}): Promise<ConfigSource> {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  let file: string | undefined;
  let data: unknown = {};
  if (options.configPath) {
    file = path.resolve(cwd, options.configPath);
    if (!existsSync(file)) throw kotoError('KOTO_ERR_CONFIG_NOT_FOUND', { file });
    data = await loadFile(file);
  } else if (options.search !== false) {
    const found = await explorer().search(cwd);
    if (found) {
      file = found.filepath;
      data = found.config ?? {};
    } else {
      const userFile = kotoPaths(env).userConfig;
      if (existsSync(userFile)) {
        file = userFile;
        data = await loadFile(userFile);
      }
    }
  }
  return fromData(data, file, file ? path.dirname(file) : cwd, env);
}

async function loadFile(file: string): Promise<unknown> {
  try {
    const result = await explorer().load(file);
    return result?.config ?? {};
  } catch (err) {
    if ((err as { code?: string }).code?.startsWith('KOTO_ERR_')) throw err;
    // cosmiconfig picks the loader by extension; report unreadable files the same way.
    let reason = describe(err);
    try {
      await readFile(file);
    } catch (readErr) {
      reason = describe(readErr);
    }
    throw kotoError('KOTO_ERR_CONFIG_PARSE', { file, location: '', detail: reason }, { cause: err });
  }
}

/** Builds a source from an in-memory object (Node API, tests) or a parsed file. */
export function fromData(data: unknown, file: string | undefined, dir: string, env: NodeJS.ProcessEnv = process.env): ConfigSource {
  const label = file ?? '<config>';
  if (data === null || data === undefined) data = {};
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw kotoError('KOTO_ERR_CONFIG_INVALID', { file: label, detail: 'the config must be a mapping of keys to values' });
  }
  const { value, secrets } = interpolateEnv(data as Record<string, unknown>, env, label);
  return Object.freeze({ file, dir, data: value, secrets: Object.freeze(secrets) });
}
