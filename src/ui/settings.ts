import { createHash } from 'node:crypto';
import { readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { isMap, isScalar, parseDocument, type Document } from 'yaml';
import { baseConfigSchema } from '../kernel/config/schema.ts';
import { KotoError } from '../kernel/errors.ts';
import type { Kernel } from '../kernel/kernel.ts';
import { isSecretName } from '../kernel/secrets.ts';

/**
 * Settings as the panel edits them. The file stays the one source of truth: the page reads the
 * YAML document, sends changes by key path, and the server applies them to the parsed
 * `yaml` Document (comments, order and formatting of everything else kept), validates the
 * result exactly as a load would, writes the file, and the daemon's watcher reloads it.
 * Secrets go one way: the page sees "set"/"not set", never a value.
 */

/** Sections the panel may change: request-level, no code (plugins), no network exposure (daemon.ui). */
const EDITABLE = new Set(['asr', 'correction', 'dictionary', 'output', 'hotkey', 'rewrite', 'providers', 'audio', 'feedback']);
/** Files named in the config whose text the panel edits too. */
const TEXT_FILES = [['dictionary'], ['correction', 'systemPrompt'], ['correction', 'userPrompt']] as const;
const MAX_TEXT_FILE = 256 * 1024;

export type KeyPath = readonly (string | number)[];
export interface SettingsChange {
  readonly path: KeyPath;
  /** undefined / null: remove the key. */
  readonly value?: unknown;
}
export interface FieldError {
  readonly path: string;
  readonly message: string;
}

export class SettingsError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly errors: readonly FieldError[] = [],
  ) {
    super(message);
  }
}

const SECRET_MARK = '$hidden';

/** The current file as the page sees it (secrets replaced by whether they are set). */
export async function readSettings(kernel: Kernel): Promise<Record<string, unknown>> {
  const file = editableFile(kernel);
  const text = await readFile(file, 'utf8');
  const doc = parseDocument(text);
  const values = mask(doc.toJS() ?? {}, false);
  const files: Record<string, { path: string; text: string } | null> = {};
  for (const key of TEXT_FILES) {
    const target = doc.getIn(key);
    if (typeof target !== 'string') {
      files[key.join('.')] = null;
      continue;
    }
    const full = path.resolve(path.dirname(file), target);
    files[key.join('.')] = { path: target, text: await readFile(full, 'utf8').catch(() => '') };
  }
  return { file, hash: hash(text), values, files, generation: kernel.configGeneration, lastError: kernel.lastConfigError?.message };
}

/**
 * Applies the changes to the document, validates the whole result as the next load would, and
 * writes it (and the edited text files) atomically. The watcher's reload applies it.
 */
export async function writeSettings(
  kernel: Kernel,
  body: { hash?: unknown; changes?: unknown; files?: unknown },
): Promise<{ hash: string; changed: boolean }> {
  const file = editableFile(kernel);
  const text = await readFile(file, 'utf8');
  if (typeof body.hash === 'string' && body.hash !== hash(text)) {
    throw new SettingsError(409, 'the config file changed on disk since the page loaded it: reload the page to see the new version');
  }
  let changes = parseChanges(body.changes);
  const textFiles = parseFiles(body.files);
  const doc = parseDocument(text);
  if (doc.errors.length) throw new SettingsError(422, `the file does not parse (${doc.errors[0]!.message}); fix it in an editor first`);
  // A map or list sent back whole (headers as JSON) carries its secrets as masks: keep the real ones.
  changes = changes.map((change) => ({ path: change.path, value: unmask(change.value, doc.getIn(change.path)) }));
  const patches = changes.map((change) => patchOf(doc, change));
  for (const change of changes) apply(doc, change);
  const data = (doc.toJS() ?? {}) as Record<string, unknown>;
  const next = render(text, doc, patches, data);
  const errors = fieldErrors(data);
  if (errors.length) throw new SettingsError(422, 'the settings are not valid', errors);
  const fileWrites: [string, string][] = [];
  for (const [key, content] of textFiles) {
    const target = doc.getIn(key.split('.'));
    if (typeof target !== 'string') throw new SettingsError(422, `${key} names no file`, [{ path: key, message: 'set a file path first' }]);
    fileWrites.push([path.resolve(path.dirname(file), target), content]);
  }
  try {
    await kernel.checkConfig(data);
  } catch (err) {
    if (err instanceof SettingsError) throw err;
    if (KotoError.is(err)) throw new SettingsError(422, kernel.scrub(err.message), [fieldOf(kernel.scrub(err.message))]);
    throw err;
  }
  for (const [target, content] of fileWrites) await atomicWrite(target, content);
  const changed = next !== text;
  if (changed) await atomicWrite(file, next);
  return { hash: hash(next), changed };
}

function editableFile(kernel: Kernel): string {
  const { file, origin } = kernel.config.resolved;
  if (!file)
    throw new SettingsError(409, 'the daemon runs without a config file: create one (e.g. ~/.config/koto/config.yaml) and restart it');
  if (!/\.ya?ml$/i.test(file))
    throw new SettingsError(409, `${path.basename(file)} is not YAML: the panel edits YAML configs only (edit this one in an editor)`);
  if (origin.kind === 'project') {
    // A project config is trusted by its hash: an edit here would make the daemon refuse it.
    throw new SettingsError(409, `${file} is a project config, trusted by its content: edit it in an editor and run \`koto trust\``);
  }
  return file;
}

function hash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 32);
}

function parseChanges(value: unknown): SettingsChange[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.length > 200) throw new SettingsError(400, '"changes" must be a list of { path, value }');
  return value.map((change: unknown, i) => {
    const c = change as { path?: unknown; value?: unknown } | null;
    if (!c || !Array.isArray(c.path) || c.path.length === 0 || c.path.length > 8)
      throw new SettingsError(400, `changes[${i}].path must be a non-empty key path`);
    const keyPath = c.path as unknown[];
    for (const key of keyPath) {
      if (!(typeof key === 'string' || (typeof key === 'number' && Number.isInteger(key) && key >= 0)))
        throw new SettingsError(400, `changes[${i}].path holds a key that is not a name or index`);
      if (key === '__proto__' || key === 'constructor' || key === 'prototype')
        throw new SettingsError(400, `changes[${i}].path: "${key}" is not a key`);
    }
    const top = String(keyPath[0]);
    const where = keyPath.join('.');
    if (!EDITABLE.has(top))
      throw new SettingsError(
        403,
        `${where}: the panel does not change "${top}" (edit the file: it needs a restart or concerns security)`,
        [{ path: where, message: 'not editable here' }],
      );
    // `use` chooses which code serves a provider: never from a browser.
    if (top === 'providers' && keyPath.length >= 2 && (keyPath.length === 2 || keyPath[2] === 'use')) {
      throw new SettingsError(403, `${where}: providers are added, removed and pointed at plugins in the file`, [
        { path: where, message: 'not editable here' },
      ]);
    }
    return { path: keyPath as KeyPath, value: c.value ?? undefined };
  });
}

function parseFiles(value: unknown): [string, string][] {
  if (value === undefined || value === null) return [];
  if (typeof value !== 'object' || Array.isArray(value)) throw new SettingsError(400, '"files" must map a key to its new text');
  const allowed = new Set(TEXT_FILES.map((k) => k.join('.')));
  return Object.entries(value).map(([key, text]) => {
    if (!allowed.has(key)) throw new SettingsError(403, `"${key}" is not a file the panel edits`);
    if (typeof text !== 'string' || Buffer.byteLength(text) > MAX_TEXT_FILE)
      throw new SettingsError(400, `${key}: text of at most ${MAX_TEXT_FILE} bytes`);
    return [key, text];
  });
}

interface Patch {
  readonly start: number;
  readonly end: number;
  readonly text: string;
}

/**
 * A new value for an existing scalar, as an edit of exactly its characters in the file: the
 * rest of the file stays byte for byte (re-serialising the document would re-wrap long lines
 * and rewrite escapes the user chose). Undefined when the change is not that simple.
 */
function patchOf(doc: Document, change: SettingsChange): Patch | undefined {
  if (change.value === undefined || (typeof change.value === 'object' && change.value !== null)) return undefined;
  const node = doc.getIn(change.path, true);
  if (!isScalar(node) || !node.range) return undefined;
  const value = change.value;
  // A one-line JSON-compatible scalar: YAML reads JSON strings, numbers, booleans and null as such.
  const textOf =
    typeof value === 'string'
      ? /^[A-Za-z0-9_./@+:-][\w ./@+:,-]*$/.test(value) &&
        !/[ :]$|: | #|^(?:true|false|null|yes|no|on|off|~|[-+]?[\d.]+(?:e[-+]?\d+)?)$/i.test(value)
        ? value
        : JSON.stringify(value)
      : JSON.stringify(value);
  if (textOf === undefined || textOf.includes('\n')) return undefined;
  return { start: node.range[0], end: node.range[1], text: textOf };
}

/** The file's next text: the surgical edits when every change is one and they read back right, else the re-serialised document. */
function render(text: string, doc: Document, patches: readonly (Patch | undefined)[], expected: unknown): string {
  if (patches.length > 0 && patches.every((p): p is Patch => p !== undefined)) {
    let next = text;
    for (const patch of [...patches].sort((a, b) => b.start - a.start))
      next = next.slice(0, patch.start) + patch.text + next.slice(patch.end);
    const check = parseDocument(next);
    if (check.errors.length === 0 && JSON.stringify(check.toJS()) === JSON.stringify(expected)) return next;
  }
  // Structure changed (a key added or removed, a list replaced): comments and order are kept by
  // the Document; no line is re-wrapped and "\n" escapes stay escapes (the default would fold
  // both). What still changes: the spaces before a comment become one.
  return doc.toString({ lineWidth: 0, doubleQuotedAsJSON: true });
}

function apply(doc: Document, change: SettingsChange): void {
  if (change.value === undefined) {
    doc.deleteIn(change.path);
    return;
  }
  const existing = doc.getIn(change.path, true);
  // A scalar keeps its node (and so its comment and quoting); anything else is a new node.
  if (isScalar(existing) && (typeof change.value !== 'object' || change.value === null)) {
    existing.value = change.value;
    return;
  }
  if (isMap(doc.contents) || doc.contents === null) {
    doc.setIn(change.path, doc.createNode(change.value));
    return;
  }
  throw new SettingsError(422, 'the config file is not a mapping of keys to values');
}

/** The kernel schema's issues, each on its field, before the full (plugin-aware) check. */
function fieldErrors(data: Record<string, unknown>): FieldError[] {
  const parsed = baseConfigSchema.safeParse(data);
  if (parsed.success) return [];
  // Plugins declare more `correction` keys (`correctionOptions`: protocol, topP, …): the full
  // check that follows judges those with every loaded plugin's schema.
  const issues = parsed.error.issues.filter((issue) => !(issue.code === 'unrecognized_keys' && issue.path.join('.') === 'correction'));
  return issues.map((issue) => ({
    path: issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0]].join('.') : issue.path.join('.'),
    message: issue.code === 'unrecognized_keys' ? 'unknown key' : issue.message,
  }));
}

/** Load errors read `file: key.path: what`; the key path puts the message on its field. */
function fieldOf(message: string): FieldError {
  const detail = message.replace(/^[^:]*\.(?:ya?ml|json): /, '');
  const match = /^([A-Za-z0-9_.-]+): (.*)$/.exec(detail);
  return match ? { path: match[1]!, message: match[2]! } : { path: '', message: detail };
}

function isMask(value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.keys(value).length === 1 && SECRET_MARK in value;
}

/** Puts the file's current values back where a change still holds a mask (a secret the page never saw). */
function unmask(value: unknown, current: unknown): unknown {
  const plain = toPlain(current);
  if (isMask(value)) return plain ?? undefined;
  if (Array.isArray(value)) return value.map((v, i) => unmask(v, Array.isArray(plain) ? plain[i] : undefined));
  if (value && typeof value === 'object') {
    const base = plain && typeof plain === 'object' && !Array.isArray(plain) ? (plain as Record<string, unknown>) : {};
    return Object.fromEntries(
      Object.entries(value)
        .map(([k, v]) => [k, unmask(v, Object.hasOwn(base, k) ? base[k] : undefined)] as const)
        .filter(([, v]) => v !== undefined),
    );
  }
  return value;
}

function toPlain(node: unknown): unknown {
  return node && typeof node === 'object' && 'toJSON' in node && typeof (node as { toJSON: unknown }).toJSON === 'function'
    ? (node as { toJSON(): unknown }).toJSON()
    : node;
}

/** Secret values become { $hidden: set|not set }: the page can say whether a key is there, never what it is. */
function mask(value: unknown, secret: boolean): unknown {
  if (secret) return { [SECRET_MARK]: value === undefined || value === null || value === '' ? 'not set' : 'set' };
  if (Array.isArray(value)) return value.map((v) => mask(v, false));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, mask(v, isSecretName(k))]));
  }
  return value;
}

async function atomicWrite(file: string, text: string): Promise<void> {
  // Same mode as before (a 0600 file with a key in it stays 0600); rename: no half-written file
  // for the watcher to read.
  const mode = await stat(file).then(
    (s) => s.mode & 0o777,
    () => 0o600,
  );
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.koto-ui-${process.pid}.tmp`);
  await writeFile(temp, text, { mode });
  await rename(temp, file);
}
