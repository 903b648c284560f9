import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import semver from 'semver';
import { describe, kotoError, KotoError } from './errors.ts';
import { isPlugin, type AnyKotoPlugin, type KotoPlugin } from './plugin.ts';
import { scrubError, scrubSecrets } from './secrets.ts';
import { KOTO_VERSION } from './version.ts';

/** Where built-in plugins live: `plugins/<name>` beside `src/` (or `dist/plugins` when built). */
const BUILTIN_DIR = fileURLToPath(new URL('../../plugins/', import.meta.url));
const ENTRY_FILES = ['index.js', 'index.ts'];

export type PluginSpec = string | AnyKotoPlugin | { use: string; options?: Record<string, unknown> | undefined };

export interface LoadedPlugin {
  readonly plugin: KotoPlugin;
  /** How it was found: a built-in short name, an npm package, a file path, or passed in code. */
  readonly source: 'builtin' | 'package' | 'path' | 'inline';
  readonly specifier: string;
  readonly options: Record<string, unknown> | undefined;
  /** The file it was imported from (undefined for a plugin passed in code). */
  readonly location?: string | undefined;
}

export function builtinPluginNames(): string[] {
  if (!existsSync(BUILTIN_DIR)) return [];
  return readdirSync(BUILTIN_DIR)
    .filter((name) => ENTRY_FILES.some((entry) => existsSync(path.join(BUILTIN_DIR, name, entry))))
    .sort();
}

function isPathSpecifier(spec: string): boolean {
  return spec.startsWith('.') || spec.startsWith('/') || spec.startsWith('file:') || /^[A-Za-z]:[\\/]/.test(spec);
}

async function importPlugin(url: string, name: string): Promise<KotoPlugin> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(url)) as Record<string, unknown>;
  } catch (err) {
    throw kotoError('KOTO_ERR_PLUGIN_INVALID', { plugin: name, detail: `it failed to load: ${describe(err)}` }, { cause: err });
  }
  const candidate = mod.default ?? mod.plugin;
  // A CommonJS module or a bundler may nest the default once more.
  const plugin = isPlugin(candidate) ? candidate : (candidate as { default?: unknown } | undefined)?.default;
  if (!isPlugin(plugin)) {
    throw kotoError('KOTO_ERR_PLUGIN_INVALID', {
      plugin: name,
      detail: `its default export is ${candidate === undefined ? 'missing' : typeof candidate}`,
    });
  }
  return plugin;
}

function entryOf(dir: string): string | undefined {
  for (const entry of ENTRY_FILES) {
    const file = path.join(dir, entry);
    if (existsSync(file)) return file;
  }
  return undefined;
}

/**
 * Resolves one plugin by built-in short name, npm package name, or path. Errors are scrubbed
 * of `secrets` (and of anything shaped like a credential): a plugin's import error can echo a
 * config value, and a specifier or a path tried can carry a token.
 */
export async function resolvePlugin(spec: PluginSpec, baseDir: string, secrets: readonly string[] = []): Promise<LoadedPlugin> {
  try {
    return await resolveUnscrubbed(spec, baseDir);
  } catch (err) {
    throw scrubError(err, (text) => scrubSecrets(text, secrets));
  }
}

async function resolveUnscrubbed(spec: PluginSpec, baseDir: string): Promise<LoadedPlugin> {
  if (typeof spec === 'object' && !('use' in spec && typeof spec.use === 'string' && !isPlugin(spec))) {
    if (!isPlugin(spec)) throw kotoError('KOTO_ERR_PLUGIN_INVALID', { plugin: '(inline)', detail: 'not a plugin object' });
    return { plugin: spec, source: 'inline', specifier: spec.name, options: undefined };
  }
  const name = typeof spec === 'string' ? spec : spec.use;
  const options = typeof spec === 'string' ? undefined : spec.options;
  const tried: string[] = [];

  if (isPathSpecifier(name)) {
    const target = name.startsWith('file:') ? fileURLToPath(name) : path.resolve(baseDir, name);
    tried.push(target);
    const file = existsSync(target) && statSync(target).isDirectory() ? entryOf(target) : existsSync(target) ? target : undefined;
    if (!file) throw kotoError('KOTO_ERR_PLUGIN_NOT_FOUND', { plugin: name, tried: tried.join(', ') });
    return { plugin: await importPlugin(pathToFileURL(file).href, name), source: 'path', specifier: name, options, location: file };
  }

  if (/^[a-z0-9-]+$/.test(name)) {
    const builtin = entryOf(path.join(BUILTIN_DIR, name));
    tried.push(`built-in plugins/${name}`);
    if (builtin)
      return {
        plugin: await importPlugin(pathToFileURL(builtin).href, name),
        source: 'builtin',
        specifier: name,
        options,
        location: builtin,
      };
  }

  // npm packages: from the config's folder (where the user installed them), then Koto's own.
  // Never from the working directory: a trusted per-user config naming `koto-plugin-x` would
  // otherwise run whatever an untrusted project put in its node_modules under that name.
  const candidates = name.startsWith('koto-plugin-') || name.startsWith('@') ? [name] : [name, `koto-plugin-${name}`];
  for (const pkg of candidates) {
    for (const from of [baseDir, fileURLToPath(import.meta.url)]) {
      tried.push(`${pkg} from ${from}`);
      try {
        const resolved = createRequire(path.join(from, 'noop.js')).resolve(pkg);
        return {
          plugin: await importPlugin(pathToFileURL(resolved).href, pkg),
          source: 'package',
          specifier: pkg,
          options,
          location: resolved,
        };
      } catch (err) {
        if (KotoError.is(err)) throw err;
        const code = (err as { code?: string }).code;
        if (code !== 'MODULE_NOT_FOUND' && code !== 'ERR_PACKAGE_PATH_NOT_EXPORTED') throw err;
        // ESM-only packages without a `require` condition: find package.json, import its entry.
        if (code === 'ERR_PACKAGE_PATH_NOT_EXPORTED') {
          try {
            const url = import.meta.resolve(pkg, pathToFileURL(path.join(from, 'noop.js')).href);
            return { plugin: await importPlugin(url, pkg), source: 'package', specifier: pkg, options, location: fileURLToPath(url) };
          } catch (inner) {
            if (KotoError.is(inner)) throw inner;
          }
        }
      }
    }
  }
  throw kotoError('KOTO_ERR_PLUGIN_NOT_FOUND', { plugin: name, tried: dedupe(tried).join('; ') });
}

function dedupe(items: string[]): string[] {
  return [...new Set(items)];
}

/** Checks names, versions and dependencies, and returns the plugins in apply order. */
export function orderPlugins(loaded: readonly LoadedPlugin[]): LoadedPlugin[] {
  const byName = new Map<string, LoadedPlugin>();
  for (const entry of loaded) {
    const { plugin } = entry;
    if (byName.has(plugin.name)) throw kotoError('KOTO_ERR_PLUGIN_DUPLICATE', { plugin: plugin.name });
    if (plugin.koto && !semver.satisfies(KOTO_VERSION, plugin.koto, { includePrerelease: true })) {
      throw kotoError('KOTO_ERR_PLUGIN_INCOMPATIBLE', { plugin: entry.specifier, range: plugin.koto, version: KOTO_VERSION });
    }
    byName.set(plugin.name, entry);
  }
  const ordered: LoadedPlugin[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (entry: LoadedPlugin, chain: string[]) => {
    const name = entry.plugin.name;
    if (state.get(name) === 'done') return;
    if (state.get(name) === 'visiting') {
      throw kotoError('KOTO_ERR_PLUGIN_DEPENDENCY', { plugin: name, dependency: `${[...chain, name].join(' → ')} (a cycle)` });
    }
    state.set(name, 'visiting');
    for (const dep of entry.plugin.dependencies ?? []) {
      const target = byName.get(dep);
      if (!target) throw kotoError('KOTO_ERR_PLUGIN_DEPENDENCY', { plugin: name, dependency: dep });
      visit(target, [...chain, name]);
    }
    state.set(name, 'done');
    ordered.push(entry);
  };
  for (const entry of loaded) visit(entry, []);
  return ordered;
}
