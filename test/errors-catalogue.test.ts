import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERRORS, errorPrefixOf, KotoError, kotoError, type PluginErrorCode, type PluginErrorSpec } from '../src/index.ts';
import { registerPluginErrors } from '../src/kernel/errors.ts';
import { failsOver } from '../src/kernel/failover.ts';

const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');
const section = (start: string, end: string) => doc.slice(doc.indexOf(start), doc.indexOf(end));
const renamedStart = doc.indexOf('## Renamed error codes');
const renamedEnd = doc.indexOf('\n## ', renamedStart);
const renamedSection = doc.slice(renamedStart, renamedEnd === -1 ? undefined : renamedEnd);
/** Everything but the table of old names (which must not exist any more). */
const current = doc.replace(renamedSection, '');

/** The codes each built-in plugin declares, read from its real definition (`definePlugin({ errors })`). */
const pluginsDir = new URL('../plugins/', import.meta.url);
const builtins: { name: string; errors: Readonly<Record<string, PluginErrorSpec>> }[] = [];
for (const dir of readdirSync(pluginsDir).sort()) {
  const plugin = (
    (await import(new URL(`${dir}/index.ts`, pluginsDir).href)) as { default: { name: string; errors?: Record<string, PluginErrorSpec> } }
  ).default;
  builtins.push({ name: plugin.name, errors: plugin.errors ?? {} });
}
const pluginCodes = new Map(
  builtins.flatMap(({ name, errors }) => Object.entries(errors).map(([code, spec]) => [code, { plugin: name, spec }] as const)),
);

/** Old kernel codes → the plugin codes that replaced them, with the old exit code and failover (history: they must not change). */
const RENAMED: Record<string, { to: string; exit: number; failedOver: boolean }> = {
  KOTO_ERR_DEPLOYMENT_NOT_FOUND: { to: 'AZURE_FOUNDRY_ERR_DEPLOYMENT_NOT_FOUND', exit: 1, failedOver: true },
  KOTO_ERR_AUTH_TOKEN: { to: 'AZURE_FOUNDRY_ERR_TOKEN', exit: 1, failedOver: true },
  KOTO_ERR_ENGINE_MISSING: { to: 'POCKETSPHINX_ERR_ENGINE_MISSING', exit: 1, failedOver: true },
  KOTO_ERR_AUDIO_SERVER: { to: 'MIC_NATIVE_ERR_SERVER', exit: 1, failedOver: false },
  KOTO_ERR_AUDIO_BACKEND: { to: 'MIC_NATIVE_ERR_BACKEND', exit: 1, failedOver: false },
  KOTO_ERR_AUDIO_WRITE: { to: 'MIC_NATIVE_ERR_WRITE', exit: 1, failedOver: false },
  KOTO_ERR_HOTKEY_TAKEN: { to: 'HOTKEY_ERR_TAKEN', exit: 3, failedOver: false },
  KOTO_ERR_HOTKEY_PERMISSION: { to: 'HOTKEY_ERR_PERMISSION', exit: 3, failedOver: false },
  KOTO_ERR_HOTKEY_UNAVAILABLE: { to: 'HOTKEY_ERR_UNAVAILABLE', exit: 3, failedOver: false },
};

describe('the error catalogue', () => {
  it('documents every code in docs/errors.md, with its current message, fix and exit code', () => {
    for (const [code, spec] of Object.entries(ERRORS)) {
      const row = doc.split('\n').find((line) => line.startsWith(`| \`${code}\` |`));
      expect(row, `${code} is missing from docs/errors.md (run: npx node scripts/errors-doc.ts)`).toBeDefined();
      expect(row).toContain(`| ${spec.exit} |`);
      expect(row).toContain(spec.message.replace(/\|/g, '\\|'));
      expect(row).toContain(spec.fix.replace(/\|/g, '\\|'));
    }
  });

  it('documents no code that does not exist (the renamed table aside)', () => {
    const documented = [...current.matchAll(/`(KOTO_ERR_[A-Z0-9_]+)`/g)].map((m) => m[1]!);
    expect(documented.length).toBeGreaterThan(50);
    for (const code of documented) expect(Object.keys(ERRORS)).toContain(code);
    const pluginDocumented = [...current.matchAll(/`((?!KOTO_)[A-Z][A-Z0-9_]*_ERR_[A-Z0-9_]+)`/g)].map((m) => m[1]!);
    for (const code of pluginDocumented) {
      if (code.startsWith('ACME_')) continue; // the third-party example in the prose
      expect([...pluginCodes.keys()], `${code} is documented but no built-in plugin declares it`).toContain(code);
    }
  });

  it("documents every built-in plugin's own codes under the plugin, with message, fix and exit code", () => {
    expect(pluginCodes.size).toBeGreaterThan(0);
    const groups = section('<!-- plugins:start -->', '<!-- plugins:end -->');
    for (const [code, { plugin, spec }] of pluginCodes) {
      expect(code.startsWith(`${errorPrefixOf(plugin)}_ERR_`), `${code} carries ${plugin}'s prefix`).toBe(true);
      const group = groups.slice(groups.indexOf(`### ${plugin}\n`));
      const row = group
        .split('\n### ')[0]!
        .split('\n')
        .find((line) => line.startsWith(`| \`${code}\` |`));
      expect(row, `${code} is missing under "### ${plugin}" in docs/errors.md (run: npx node scripts/errors-doc.ts)`).toBeDefined();
      expect(row).toContain(`| ${spec.exit ?? 1} |`);
      expect(row).toContain(spec.message.replace(/\|/g, '\\|'));
      expect(row).toContain(spec.fix.replace(/\|/g, '\\|'));
    }
  });

  it("no kernel fix names a provider's own setting or program (the owning plugin words those)", () => {
    for (const [code, spec] of Object.entries(ERRORS)) {
      expect(`${spec.message} ${spec.fix}`, code).not.toMatch(/OPENAI_|AZURE_|pocketsphinx|parec|pulseaudio|deepgram/i);
    }
  });

  it('the renamed table lists each moved code; the old name is gone, the new one keeps its exit code and failover', () => {
    const rows = [...renamedSection.matchAll(/^\| `(KOTO_ERR_[A-Z0-9_]+)` \| `([A-Z0-9_]+)` \|$/gm)].map((m) => [m[1]!, m[2]!] as const);
    expect(Object.fromEntries(rows)).toEqual(Object.fromEntries(Object.entries(RENAMED).map(([from, { to }]) => [from, to])));
    for (const [from, { to, exit, failedOver }] of Object.entries(RENAMED)) {
      expect(Object.keys(ERRORS), `${from} was moved out of the kernel`).not.toContain(from);
      const declared = pluginCodes.get(to);
      expect(declared, `${to} is declared by a built-in plugin`).toBeDefined();
      expect(declared!.spec.exit ?? 1, `${to} keeps ${from}'s exit code`).toBe(exit);
      // As the kernel does when it loads the plugin.
      registerPluginErrors(declared!.plugin, { [to]: declared!.spec });
      const err = new KotoError(to as PluginErrorCode);
      expect([err.code, err.exitCode, err.plugin]).toEqual([to, exit, declared!.plugin]);
      if (failedOver) expect(failsOver(err), `${to} fails over as ${from} did`).toBe(true);
    }
  });

  it('fills templates, carries exit codes and is recognised across package copies', () => {
    const err = kotoError('KOTO_ERR_AUTH', { provider: 'openai', status: 401 }, { plugin: 'openai-compatible', hook: 'asr' });
    expect(err.message).toBe('provider "openai" rejected the credentials (HTTP 401)');
    expect(err.fix).toContain('providers.openai.apiKey');
    expect(err.exitCode).toBe(1);
    expect(err.toLine()).toMatch(/^provider "openai" rejected .*\(KOTO_ERR_AUTH\) \[openai-compatible asr\]$/);
    const foreign = Object.assign(new Error('x'), { [Symbol.for('koto-voice.error')]: true });
    expect(KotoError.is(foreign)).toBe(true);
    expect(KotoError.is(new Error('plain'))).toBe(false);
  });
});
