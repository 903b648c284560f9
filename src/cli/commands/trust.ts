import { existsSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { findProjectConfig, peekConfig, readConfigFile, SEARCH_PLACES, type ConfigFile } from '../../kernel/config/source.ts';
import { addTrust, readTrustStore, removeTrust } from '../../kernel/config/trust.ts';
import { kotoError } from '../../kernel/errors.ts';
import type { CliContext } from '../context.ts';
import { printLine } from '../io.ts';

export interface TrustFlags {
  list?: boolean;
  remove?: string;
  json?: boolean;
}

/**
 * `koto trust [PATH]`: allow a project config (found by searching from the working directory)
 * to be used; `--list` shows what is trusted and whether it changed since; `--remove PATH`
 * forgets one. Needs no kernel: nothing of the file is run or loaded here.
 */
export async function trustCommand(_ctx: CliContext, target: string | undefined, flags: TrustFlags): Promise<number> {
  const env = process.env;
  const cwd = process.cwd();
  if ((flags.list ? 1 : 0) + (flags.remove ? 1 : 0) + (target ? 1 : 0) > 1) {
    throw kotoError('KOTO_ERR_USAGE', { detail: 'give either a PATH to trust, --list, or --remove PATH' });
  }
  if (flags.list) return listTrusted(env, Boolean(flags.json));
  if (flags.remove) {
    const absolute = path.resolve(cwd, flags.remove);
    const real = existsSync(absolute) ? realpathSync(absolute) : absolute;
    const store = readTrustStore(env);
    const key = store.entries.has(real) ? real : absolute;
    if (!removeTrust(key, env)) throw kotoError('KOTO_ERR_TRUST_NOT_LISTED', { file: real, store: store.file });
    await printLine(`no longer trusted: ${key}`);
    return 0;
  }

  const config = await configToTrust(target, cwd);
  if (readTrustStore(env).corrupt) warnCorrupt(env);
  const store = addTrust(config.file, config.sha256, env);
  await printLine(`trusted ${config.file} (sha256 ${config.sha256.slice(0, 16)}…, recorded in ${store.file})`);
  for (const line of summary(config)) await printLine(`  ${line}`);
  return 0;
}

async function configToTrust(target: string | undefined, cwd: string): Promise<ConfigFile> {
  const given = target === undefined ? cwd : path.resolve(cwd, target);
  if (!existsSync(given)) {
    throw kotoError('KOTO_ERR_CONFIG_NOT_FOUND', { file: given }, { fix: 'check the path given to `koto trust`' });
  }
  if (statSync(given).isDirectory()) {
    const found = await findProjectConfig(given);
    if (!found) throw kotoError('KOTO_ERR_TRUST_NO_CONFIG', { dir: given });
    return found;
  }
  const names = SEARCH_PLACES.join(', ');
  if (!SEARCH_PLACES.includes(path.basename(given))) {
    throw kotoError('KOTO_ERR_TRUST_NOT_CONFIG', { file: given, detail: `Koto looks for ${names}` });
  }
  const config = await readConfigFile(given);
  if (config.kind === 'package' && config.section === undefined) {
    throw kotoError('KOTO_ERR_TRUST_NOT_CONFIG', { file: given, detail: 'it has no `koto` key' });
  }
  return config;
}

/** What the user just allowed, in a few lines: code it runs, plugins it loads, servers it talks to. */
function summary(config: ConfigFile): string[] {
  if (config.kind === 'module') return ['it is JavaScript/TypeScript: it runs as code each time Koto starts here'];
  const data = peekConfig(config) as Record<string, unknown> | undefined;
  if (!data || typeof data !== 'object') return ['it does not parse yet: `koto config check` says why'];
  const lines: string[] = [];
  const plugins = Array.isArray(data.plugins)
    ? data.plugins.map((p) => (typeof p === 'string' ? p : (p as { use?: unknown })?.use)).filter((p) => typeof p === 'string')
    : [];
  if (plugins.length) lines.push(`it loads plugins (code that runs as you): ${plugins.join(', ')}`);
  const endpoints = new Set<string>();
  for (const provider of Object.values((data.providers ?? {}) as Record<string, unknown>)) {
    if (!provider || typeof provider !== 'object') continue;
    for (const key of ['baseUrl', 'endpoint', 'url']) {
      const value = (provider as Record<string, unknown>)[key];
      if (typeof value === 'string') endpoints.add(value.replace(/[?#].*$/, ''));
    }
  }
  if (endpoints.size) lines.push(`it sends audio, text and keys to: ${[...endpoints].join(', ')}`);
  return lines;
}

function warnCorrupt(env: NodeJS.ProcessEnv): void {
  process.stderr.write(
    `koto: warning: the trust store ${readTrustStore(env).file} is not valid JSON: it trusts nothing, and the next \`koto trust\` rewrites it\n`,
  );
}

async function listTrusted(env: NodeJS.ProcessEnv, json: boolean): Promise<number> {
  const store = readTrustStore(env);
  if (store.corrupt) warnCorrupt(env);
  if (store.problem)
    throw kotoError('KOTO_ERR_TRUST_STORE_UNSAFE', { file: store.file, problem: store.problem.problem, remedy: store.problem.remedy });
  for (const [file, record] of store.entries) {
    let state: 'trusted' | 'changed' | 'missing' = 'missing';
    if (existsSync(file))
      state =
        (await readConfigFile(file)
          .then((c) => c.sha256)
          .catch(() => '')) === record.sha256
          ? 'trusted'
          : 'changed';
    if (json) await printLine(JSON.stringify({ file, state, sha256: record.sha256, trustedAt: record.trustedAt }));
    else await printLine(`${state.padEnd(8)} ${file}${record.trustedAt ? `  (since ${record.trustedAt})` : ''}`);
  }
  if (!json && store.entries.size === 0) await printLine(`no trusted project configs (${store.file})`);
  return 0;
}
