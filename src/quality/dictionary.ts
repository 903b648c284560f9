import { existsSync, readFileSync } from 'node:fs';
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { readConfigSource, type FindConfigOptions } from '../kernel/config/source.ts';
import { parseDictionary } from '../kernel/config/validate.ts';
import { kotoPaths } from '../kernel/paths.ts';
import { qualityError, usageError } from './errors.ts';

export interface DictionaryLocation {
  /** The config file that was read (undefined: no config file, defaults only). */
  readonly configFile: string | undefined;
  /** Absolute path of the configured dictionary, or undefined when `dictionary` is not set. */
  readonly file: string | undefined;
}

/**
 * Where the configured `dictionary` file is, read from the config source alone: no plugins are
 * loaded and a dictionary file that does not exist yet is not an error here (the kernel's config
 * validation refuses a missing one, `koto dict add` creates it).
 */
export async function dictionaryLocation(options: FindConfigOptions = {}): Promise<DictionaryLocation> {
  const source = await readConfigSource(options);
  const value = source.data.dictionary;
  if (value === undefined || value === null || value === '') return { configFile: source.file, file: undefined };
  if (typeof value !== 'string') {
    throw qualityError('KOTO_ERR_NO_DICTIONARY', {
      where: ` (\`dictionary\` in ${source.file ?? 'the config'} is not a path)`,
      config: source.file ?? kotoPaths(options.env ?? process.env).userConfig,
    });
  }
  return { configFile: source.file, file: path.resolve(source.dir, value) };
}

/** The terms of a dictionary file; none when it does not exist. */
export function readDictionary(file: string | undefined): string[] {
  if (!file || !existsSync(file)) return [];
  return parseDictionary(readFileSync(file, 'utf8'));
}

/** Checks and tidies the terms given to `koto dict add` (trimmed, duplicates dropped, order kept). */
export function cleanTerms(terms: readonly string[]): string[] {
  const out: string[] = [];
  for (const given of terms) {
    const term = given.trim();
    if (!term) throw usageError('an empty term cannot be added to the dictionary');
    if (/[\r\n]/.test(term)) throw usageError(`"${term.replace(/[\r\n]+/g, ' ')}" spans lines; the dictionary has one term per line`);
    if (/(^|\s)#/.test(term)) throw usageError(`"${term}" would be read as a comment: in the dictionary, # starts a comment`);
    if (!out.includes(term)) out.push(term);
  }
  if (out.length === 0) throw usageError('give at least one term: `koto dict add TERM...`');
  return out;
}

export interface AddPlan {
  readonly file: string;
  /** Terms to append. */
  readonly add: readonly string[];
  /** Terms already in the dictionary (exact match). */
  readonly present: readonly string[];
}

/** Which of the terms a dictionary file lacks. */
export async function planAdd(file: string, terms: readonly string[]): Promise<AddPlan> {
  const existing = new Set(readDictionary(file));
  return { file, add: terms.filter((t) => !existing.has(t)), present: terms.filter((t) => existing.has(t)) };
}

/**
 * Appends terms, one per line. Existing lines (comments included) are never rewritten; a file
 * without a final newline gets one first, the file ends with a newline, and its line endings
 * (LF or CRLF) are kept. Creates the file (and its folder) when it does not exist.
 */
export async function appendTerms(file: string, terms: readonly string[]): Promise<void> {
  if (terms.length === 0) return;
  let before = '';
  if (existsSync(file)) before = await readFile(file, 'utf8');
  else await mkdir(path.dirname(file), { recursive: true });
  const eol = before.includes('\r\n') ? '\r\n' : '\n';
  const lead = before && !before.endsWith('\n') ? eol : '';
  await appendFile(file, lead + terms.map((t) => t + eol).join(''), 'utf8');
}
