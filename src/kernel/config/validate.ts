import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { describe, KotoError, kotoError } from '../errors.ts';
import type { KotoPlugin } from '../plugin.ts';
import type { ProviderRef } from '../types.ts';
import { badPattern, type ResolvedProfile } from '../profiles.ts';
import { baseConfigSchema, correctionSchema, type RawConfig } from './schema.ts';
import { resolveCa } from './ca.ts';
import type { ConfigOrigin, ConfigSource } from './source.ts';
import { secretValuesIn } from '../secrets.ts';

/** A selected output with its validated options. */
export interface OutputSelection {
  readonly name: string;
  readonly plugin: string;
  readonly options: Readonly<Record<string, unknown>>;
}

/** What the kernel derived from the raw config: files read, providers checked, defaults chosen. */
export interface ResolvedConfig {
  readonly file: string | undefined;
  /** How the file was chosen and whether an untrusted project config was skipped (`koto config print`). */
  readonly origin: ConfigOrigin;
  readonly dir: string;
  /** Files the config references (dictionary, prompts); the watcher watches them too. */
  readonly files: readonly string[];
  readonly dictionary: readonly string[];
  readonly systemPrompt: string | undefined;
  readonly userPrompt: string | undefined;
  readonly providers: Readonly<Record<string, ProviderRef>>;
  readonly asrProvider: string | undefined;
  readonly correctionProvider: string | undefined;
  /** `asr.fallback` / `correction.fallback`: checked provider names, in order. */
  readonly asrFallback: readonly string[];
  readonly correctionFallback: readonly string[];
  readonly outputs: readonly OutputSelection[];
  readonly secrets: readonly string[];
  /** `profiles`, each with its complete config; first match wins (src/kernel/profiles.ts). */
  readonly profiles: readonly ResolvedProfile[];
  /**
   * The `correction` keys plugins declared (`correctionOptions`), each with the plugins that
   * declared it: a correction request carries only its provider's plugin's keys.
   */
  readonly correctionKeyOwners: Readonly<Record<string, readonly string[]>>;
}

export type KotoConfig = Readonly<RawConfig> & { readonly resolved: ResolvedConfig };

/** Turns a zod error into one readable line: `key.path: what is wrong` (first issue, count of the rest). */
export function formatIssues(error: z.ZodError, prefix: readonly (string | number)[] = []): string {
  const lines = error.issues.map((issue) => {
    const at = [...prefix, ...issue.path.map(String)];
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => `${[...at, key].join('.')}: unknown key`).join('; ');
    }
    if (issue.code === 'invalid_union') {
      return `${at.join('.') || '(root)'}: ${issue.message.replace(/^Invalid input$/, 'not one of the accepted forms')}`;
    }
    return `${at.join('.') || '(root)'}: ${issue.message}`;
  });
  const first = lines[0] ?? 'invalid';
  return lines.length > 1 ? `${first} (and ${lines.length - 1} more: ${lines.slice(1).join('; ')})` : first;
}

function invalid(source: ConfigSource, detail: string) {
  return kotoError('KOTO_ERR_CONFIG_INVALID', { file: source.file ?? '<config>', detail });
}

async function readReferenced(source: ConfigSource, key: string, target: string): Promise<{ file: string; text: string }> {
  const file = path.resolve(source.dir, target);
  try {
    return { file, text: await readFile(file, 'utf8') };
  } catch (err) {
    throw kotoError('KOTO_ERR_CONFIG_FILE_UNREADABLE', {
      file: source.file ?? '<config>',
      path: key,
      target: file,
      reason: describe(err)
        .replace(/^ENOENT: /, '')
        .replace(/, open .*$/, ''),
    });
  }
}

/** One term per line; `#` starts a comment. */
export function parseDictionary(text: string): string[] {
  const terms: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    const term = line.replace(/(^|\s)#.*$/, '').trim();
    if (term && !terms.includes(term)) terms.push(term);
  }
  return terms;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

/**
 * The kernel schema with the `correction` keys plugins declare (`correctionOptions`) merged in:
 * the section stays strict, so a typo is still an error naming `correction.<key>`, and each key's
 * value is checked (and defaulted) by its schema. Two plugins may declare one key only with the
 * same schema (azure-foundry shares openai-compatible's): otherwise which one checked a value
 * would depend on which plugins happen to be loaded.
 */
function configSchemaFor(plugins: readonly KotoPlugin[]): { schema: z.ZodType<RawConfig>; owners: Record<string, string[]> } {
  const shape: Record<string, z.ZodType> = {};
  const owners: Record<string, string[]> = {};
  for (const plugin of plugins) {
    for (const [key, schema] of Object.entries(plugin.correctionOptions?.shape ?? {})) {
      if (Object.hasOwn(correctionSchema.shape, key)) {
        const message = `plugin "${plugin.name}" declares correction.${key} in correctionOptions, which is the kernel's own key`;
        throw kotoError(
          'KOTO_ERR_PLUGIN_INVALID',
          { plugin: plugin.name, detail: message },
          { plugin: plugin.name, message, fix: `rename the option, or read request.settings / the kernel's ${key}` },
        );
      }
      const first = owners[key]?.[0];
      if (first !== undefined && shape[key] !== schema) {
        const message = `plugin "${plugin.name}" declares correction.${key}, which plugin "${first}" declares differently`;
        throw kotoError(
          'KOTO_ERR_PLUGIN_INVALID',
          { plugin: plugin.name, detail: message },
          {
            plugin: plugin.name,
            message,
            fix: `give the option a name of its own in "${plugin.name}" (keys of the correction section are shared by every plugin)`,
          },
        );
      }
      shape[key] = schema as z.ZodType;
      (owners[key] ??= []).push(plugin.name);
    }
  }
  if (Object.keys(shape).length === 0) return { schema: baseConfigSchema, owners };
  // A superset of the kernel's section: its type names the kernel's keys only, the plugins' ones
  // are read untyped, as `request.providerOptions`.
  const correction = correctionSchema.extend(shape) as unknown as typeof correctionSchema;
  return { schema: baseConfigSchema.extend({ correction: correction.prefault({}) }), owners };
}

/**
 * Validates a config source against the kernel schema and every loaded plugin's contributions,
 * reads the files it references, and returns one deeply frozen snapshot.
 */
export async function validateConfig(
  source: ConfigSource,
  plugins: readonly KotoPlugin[],
  env: NodeJS.ProcessEnv = process.env,
  /** How each plugin was asked for (`deepgram`, `koto-plugin-deepgram`, `./x.mjs`) → its name. */
  aliases: ReadonlyMap<string, string> = new Map(),
): Promise<KotoConfig> {
  const { schema, owners: correctionKeyOwners } = configSchemaFor(plugins);
  const parsed = schema.safeParse(source.data);
  if (!parsed.success) throw invalid(source, formatIssues(parsed.error));
  const raw = parsed.data;
  const byName = new Map(plugins.map((p) => [p.name, p]));

  // Providers: explicit ones, or the environment's defaults when the config names none.
  const entries = Object.entries(raw.providers);
  if (entries.length === 0) {
    const byPriority = [...plugins].sort((a, b) => (a.defaultPriority ?? 50) - (b.defaultPriority ?? 50));
    for (const plugin of byPriority) {
      for (const [name, entry] of Object.entries(plugin.defaultProviders?.(env) ?? {})) {
        if (entry && !entries.some(([n]) => n === name)) entries.push([name, { use: plugin.name, ...entry }]);
      }
    }
  }
  const providers: Record<string, ProviderRef> = {};
  for (const [name, entry] of entries) {
    const { use: asked, ...rest } = entry;
    const use = aliases.get(asked) ?? asked;
    const plugin = byName.get(use);
    if (!plugin) {
      throw invalid(
        source,
        `providers.${name}.use: no loaded plugin is named "${use}" (loaded: ${[...byName.keys()].join(', ')}; plugins load at start, so restart Koto after adding one)`,
      );
    }
    // A provider plugin that takes no options needs no schema: it declared what it can do.
    const schema = plugin.provider ?? (plugin.capabilities?.length ? z.strictObject({}) : undefined);
    if (!schema) throw invalid(source, `providers.${name}.use: plugin "${use}" does not serve providers (it declares no \`capabilities\`)`);
    const checked = schema.safeParse(rest);
    if (!checked.success) throw invalid(source, `${formatIssues(checked.error, ['providers', name])} (options of plugin "${use}")`);
    providers[name] = { name, use, options: checked.data as Record<string, unknown> };
  }

  const capable = (capability: 'asr' | 'correction') =>
    Object.values(providers).filter((p) => byName.get(p.use)?.capabilities?.includes(capability));
  const pick = (section: 'asr' | 'correction', wanted: string | undefined, fallback?: string): string | undefined => {
    if (wanted) {
      if (!Object.hasOwn(providers, wanted)) {
        throw kotoError('KOTO_ERR_PROVIDER_UNKNOWN', {
          section,
          provider: wanted,
          known: Object.keys(providers).join(', ') || 'none',
        });
      }
      return wanted;
    }
    const candidates = capable(section);
    if (fallback && candidates.some((p) => p.name === fallback)) return fallback;
    return candidates[0]?.name;
  };
  const asrProvider = pick('asr', raw.asr.provider);
  const correctionProvider = pick('correction', raw.correction.provider, asrProvider);
  const asrFallback = fallbackChain(source, 'asr', raw.asr.fallback, providers, plugins, env, byName);
  const correctionFallback = fallbackChain(source, 'correction', raw.correction.fallback, providers, plugins, env, byName);
  // A hedge starts the next provider of the chain: without one, the setting would silently do nothing.
  for (const [section, chain] of [
    ['asr', asrFallback],
    ['correction', correctionFallback],
  ] as const) {
    if (raw[section].hedgeAfterMs !== undefined && chain.length === 0) {
      throw invalid(
        source,
        `${section}.hedgeAfterMs: hedging starts the next provider of ${section}.fallback, which lists none (add one, or remove hedgeAfterMs)`,
      );
    }
  }

  // Outputs: each name must be served by a plugin, whose schema checks its options.
  const outputs: OutputSelection[] = [];
  const servedOutputs = new Map<string, KotoPlugin>();
  for (const plugin of plugins) for (const name of Object.keys(plugin.outputs ?? {})) servedOutputs.set(name, plugin);
  for (const [index, entry] of (raw.output ?? []).entries()) {
    const { use, ...rest } = typeof entry === 'string' ? { use: entry } : entry;
    const plugin = servedOutputs.get(use);
    if (!plugin) {
      throw kotoError('KOTO_ERR_OUTPUT_UNKNOWN', { output: use, known: [...servedOutputs.keys()].join(', ') || 'none' });
    }
    const schema = plugin.outputs?.[use] ?? z.strictObject({});
    const checked = schema.safeParse(rest);
    if (!checked.success) throw invalid(source, formatIssues(checked.error, ['output', index]));
    outputs.push({ name: use, plugin: plugin.name, options: checked.data as Record<string, unknown> });
  }

  const files: string[] = [];
  let dictionary: string[] = [];
  if (raw.dictionary) {
    const { file, text } = await readReferenced(source, 'dictionary', raw.dictionary);
    files.push(file);
    dictionary = parseDictionary(text);
  }
  let systemPrompt: string | undefined;
  let userPrompt: string | undefined;
  if (raw.correction.systemPrompt) {
    const { file, text } = await readReferenced(source, 'correction.systemPrompt', raw.correction.systemPrompt);
    files.push(file);
    systemPrompt = text;
  }
  if (raw.correction.userPrompt) {
    const { file, text } = await readReferenced(source, 'correction.userPrompt', raw.correction.userPrompt);
    files.push(file);
    userPrompt = text;
  }

  // A path is read here (relative to the config, watched like the dictionary); the transport gets PEM text.
  const ca = await resolveCa(raw.transport.ca, source.dir, source.file);
  if (ca.file) files.push(ca.file);

  const secrets = new Set(source.secrets);
  for (const ref of Object.values(providers)) for (const secret of secretValuesIn(ref.options)) secrets.add(secret);

  const profiles = await resolveProfiles(source, raw.profiles, plugins, env, aliases, dictionary);
  for (const profile of profiles) for (const file of profile.config.resolved.files) if (!files.includes(file)) files.push(file);

  const resolved: ResolvedConfig = {
    profiles,
    file: source.file,
    origin: source.origin,
    dir: source.dir,
    files,
    dictionary,
    systemPrompt,
    userPrompt,
    providers,
    asrProvider,
    correctionProvider,
    asrFallback,
    correctionFallback,
    outputs,
    secrets: [...secrets],
    correctionKeyOwners,
  };
  return deepFreeze({ ...raw, transport: { ...raw.transport, ca: ca.pem }, resolved });
}

/**
 * Checks a fallback list: each name a provider that serves the capability. A name that is not
 * under `providers` but is a default a loaded plugin offers without settings (`offline`,
 * `local`) is added, so `fallback: [offline]` works next to explicitly configured providers.
 */
function fallbackChain(
  source: ConfigSource,
  section: 'asr' | 'correction',
  names: readonly string[],
  providers: Record<string, ProviderRef>,
  plugins: readonly KotoPlugin[],
  env: NodeJS.ProcessEnv,
  byName: ReadonlyMap<string, KotoPlugin>,
): string[] {
  const out: string[] = [];
  for (const [index, name] of names.entries()) {
    if (!Object.hasOwn(providers, name)) {
      for (const plugin of plugins) {
        let offered: Record<string, unknown> | undefined;
        try {
          const defaults = plugin.defaultProviders?.(env);
          offered = defaults && Object.hasOwn(defaults, name) ? defaults[name] : undefined;
        } catch {
          // A plugin whose environment defaults are broken offers nothing here.
        }
        const checked = offered && plugin.provider?.safeParse(offered);
        if (checked?.success) {
          providers[name] = { name, use: plugin.name, options: checked.data as Record<string, unknown> };
          break;
        }
      }
    }
    const ref = Object.hasOwn(providers, name) ? providers[name] : undefined;
    if (!ref) {
      throw invalid(
        source,
        `${section}.fallback.${index}: "${name}" is not a configured provider (known: ${Object.keys(providers).join(', ') || 'none'})`,
      );
    }
    if (!byName.get(ref.use)?.capabilities?.includes(section)) {
      throw invalid(
        source,
        `${section}.fallback.${index}: provider "${name}" (plugin ${ref.use}) does not serve ${section === 'asr' ? 'transcription' : 'correction'}`,
      );
    }
    if (!out.includes(name)) out.push(name);
  }
  return out;
}

/**
 * Each profile as a complete config: its sections merged over the base as the user wrote it
 * (asr, correction, after key by key; output replaced; dictionary terms added), then validated
 * like any config, so a profile can never hold a setting the base would refuse. Errors name the
 * profile.
 */
async function resolveProfiles(
  source: ConfigSource,
  entries: RawConfig['profiles'],
  plugins: readonly KotoPlugin[],
  env: NodeJS.ProcessEnv,
  aliases: ReadonlyMap<string, string>,
  baseDictionary: readonly string[],
): Promise<ResolvedProfile[]> {
  const out: ResolvedProfile[] = [];
  const base = source.data as Record<string, unknown>;
  const section = (key: string) => (base[key] && typeof base[key] === 'object' ? (base[key] as Record<string, unknown>) : {});
  for (const [index, entry] of entries.entries()) {
    const label = `profiles[${index}] ("${entry.name}")`;
    if (entries.findIndex((other) => other.name === entry.name) !== index)
      throw invalid(source, `${label}.name: another profile has this name`);
    const title = entry.match.title;
    const bad = title ? badPattern(title) : undefined;
    if (bad) throw invalid(source, `${label}.match.title: not a regular expression (${bad})`);
    const { profiles: _profiles, ...rest } = base;
    const data: Record<string, unknown> = { ...rest };
    if (entry.asr) data.asr = { ...section('asr'), ...entry.asr };
    if (entry.correction) data.correction = { ...section('correction'), ...entry.correction };
    if (entry.after) data.after = { ...section('after'), ...entry.after };
    if (entry.output) data.output = entry.output;
    let config: KotoConfig;
    try {
      config = await validateConfig({ ...source, data }, plugins, env, aliases);
    } catch (err) {
      if (!KotoError.is(err)) throw err;
      // The same code and fix, the message saying which profile: "<file>: profiles[1] ("mail"): correction.userPrompt …".
      const file = `${source.file ?? '<config>'}: `;
      const message = err.message.startsWith(file) ? `${file}${label}: ${err.message.slice(file.length)}` : `${label}: ${err.message}`;
      throw new KotoError(err.code, { message, fix: err.fix, cause: err });
    }
    const dictionary = [...baseDictionary];
    for (const term of entry.dictionary ?? []) if (!dictionary.includes(term)) dictionary.push(term);
    const apps = entry.match.app === undefined ? [] : Array.isArray(entry.match.app) ? entry.match.app : [entry.match.app];
    out.push({
      name: entry.name,
      match: { app: apps.map((app) => app.toLowerCase()), title: title || undefined },
      config: { ...config, resolved: { ...config.resolved, dictionary } },
    });
  }
  return out;
}

/** Top-level sections whose values differ (deep compare on plain data). */
export function changedSections(a: KotoConfig, b: KotoConfig): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  const out: string[] = [];
  for (const key of keys) {
    if (JSON.stringify((a as Record<string, unknown>)[key]) !== JSON.stringify((b as Record<string, unknown>)[key])) out.push(key);
  }
  return out;
}
