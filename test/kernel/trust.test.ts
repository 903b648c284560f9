/**
 * Workspace trust through the Node API, with real folders, files and permissions: a project
 * config found by the search is used only once trusted (real path + SHA-256 of what is parsed);
 * an untrusted or changed one is ignored with one warning; a watched, trusted config edited
 * afterwards fails its reload like an invalid edit; the trust store refuses to be used when it
 * is a symlink or writable by others; configs that can run code warn when others can change them.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createKernel, definePlugin, type Kernel } from '../../src/index.ts';
import { findProjectConfig, readConfigFile } from '../../src/kernel/config/source.ts';
import { addTrust, readTrustStore, removeTrust, trustStorePath } from '../../src/kernel/config/trust.ts';
import { failure, tempHome } from '../support/index.ts';

const root = tempHome('koto-trust-');
afterAll(() => root.cleanup());

let n = 0;
/** A project folder (with package.json, so the search stops there) and its own KOTO_HOME. */
function project(files: Record<string, string>): { dir: string; env: NodeJS.ProcessEnv } {
  const dir = path.join(root.dir, `p${++n}`);
  mkdirSync(path.join(dir, 'home'), { recursive: true, mode: 0o700 });
  writeFileSync(path.join(dir, 'package.json'), '{"name":"p"}');
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
  return { dir, env: { KOTO_HOME: path.join(dir, 'home') } };
}

const fake = definePlugin({
  name: 'fake-provider',
  capabilities: ['asr', 'correction'],
  provider: z.strictObject({ baseUrl: z.url(), apiKey: z.string().optional() }),
  apply() {},
});

async function load(
  dir: string,
  env: NodeJS.ProcessEnv,
  extra: { configPath?: string; watch?: boolean } = {},
): Promise<{ kernel: Kernel; warnings: string[] }> {
  const warnings: string[] = [];
  const kernel = await createKernel({
    cwd: dir,
    env,
    builtins: false,
    plugins: [fake],
    logLevel: 'warn',
    logSink: (entry) => entry.level === 'warn' && warnings.push(entry.message),
    ...(extra.configPath ? { configPath: extra.configPath } : {}),
    ...(extra.watch ? { watch: { debounceMs: 30 } } : {}),
  });
  return { kernel, warnings };
}

async function trust(file: string, env: NodeJS.ProcessEnv): Promise<void> {
  const config = await readConfigFile(file);
  addTrust(config.file, config.sha256, env);
}

const EVIL =
  'providers:\n  main:\n    use: fake-provider\n    baseUrl: https://evil.invalid/v1\n    apiKey: ${FAKE_KEY}\nasr:\n  language: de\n';

describe('a project config found by the search', () => {
  it('untrusted: ignored with exactly one warning naming it and `koto trust <file>`; the per-user config is used', async () => {
    const { dir, env } = project({ '.kotorc.yaml': EVIL });
    writeFileSync(path.join(dir, 'home', 'config.yaml'), 'asr:\n  language: fr\n');
    const { kernel, warnings } = await load(dir, { ...env, FAKE_KEY: 'sk-user-key-123456' });
    const file = path.join(dir, '.kotorc.yaml');
    expect(kernel.config.asr.language).toBe('fr');
    expect(kernel.config.resolved.providers.main).toBeUndefined();
    expect(kernel.config.resolved.origin).toMatchObject({
      kind: 'user',
      file: path.join(dir, 'home', 'config.yaml'),
      skipped: { file, reason: 'untrusted', fix: `koto trust ${file}` },
    });
    const about = warnings.filter((w) => w.includes(file));
    expect(about).toHaveLength(1);
    expect(about[0]).toMatch(
      /^ignoring .*\.kotorc\.yaml: it is not trusted; using .*config\.yaml instead\. .*run `koto trust \/.*\.kotorc\.yaml`$/,
    );
    await kernel.close();
  });

  it('trusted: used; edited afterwards: ignored again (changed since trusted); re-trusted: used', async () => {
    const { dir, env } = project({ '.kotorc.yaml': EVIL });
    const file = path.join(dir, '.kotorc.yaml');
    await trust(file, env);
    const trusted = await load(dir, { ...env, FAKE_KEY: 'sk-user-key-123456' });
    expect(trusted.kernel.config.resolved.origin).toMatchObject({ kind: 'project', file, trusted: true, skipped: undefined });
    expect(trusted.kernel.config.asr.language).toBe('de');
    expect(trusted.warnings).toEqual([]);
    await trusted.kernel.close();

    writeFileSync(file, EVIL.replace('language: de', 'language: it'));
    const changed = await load(dir, { ...env, FAKE_KEY: 'sk-user-key-123456' });
    expect(changed.kernel.config.asr.language).toBeUndefined();
    expect(changed.kernel.config.resolved.origin).toMatchObject({ kind: 'none', file: undefined, skipped: { file, reason: 'changed' } });
    expect(changed.warnings.filter((w) => w.includes(file))).toEqual([
      expect.stringMatching(/it changed since you trusted it; using the defaults instead/),
    ]);
    await changed.kernel.close();

    await trust(file, env);
    const again = await load(dir, { ...env, FAKE_KEY: 'sk-user-key-123456' });
    expect(again.kernel.config.asr.language).toBe('it');
    await again.kernel.close();
  });

  it('--config (configPath) is an explicit choice: used without trust', async () => {
    const { dir, env } = project({ '.kotorc.yaml': EVIL });
    const { kernel, warnings } = await load(dir, { ...env, FAKE_KEY: 'sk-user-key-123456' }, { configPath: '.kotorc.yaml' });
    expect(kernel.config.resolved.origin).toMatchObject({ kind: 'explicit', skipped: undefined });
    expect(kernel.config.asr.language).toBe('de');
    expect(warnings).toEqual([]);
    await kernel.close();
  });

  it('the search from a subfolder finds it too, and the same trust applies', async () => {
    const { dir, env } = project({ 'koto.config.json': '{"asr":{"language":"nl"}}', 'src/deep/x.txt': '' });
    const sub = path.join(dir, 'src', 'deep');
    const before = await load(sub, env);
    expect(before.kernel.config.asr.language).toBeUndefined();
    expect(before.warnings).toHaveLength(1);
    await before.kernel.close();
    await trust(path.join(dir, 'koto.config.json'), env);
    const after = await load(sub, env);
    expect(after.kernel.config.asr.language).toBe('nl');
    await after.kernel.close();
  });

  it('package.json#koto: the trust covers the `koto` key, so a dependency bump keeps it and a koto edit revokes it', async () => {
    const { dir, env } = project({});
    const pkg = path.join(dir, 'package.json');
    writeFileSync(pkg, JSON.stringify({ name: 'p', koto: { asr: { language: 'sv' } }, dependencies: { a: '1.0.0' } }));
    expect((await load(dir, env)).kernel.config.asr.language).toBeUndefined();
    await trust(pkg, env);
    writeFileSync(pkg, JSON.stringify({ name: 'p', koto: { asr: { language: 'sv' } }, dependencies: { a: '2.0.0' } }, null, 2));
    const bumped = await load(dir, env);
    expect(bumped.kernel.config.asr.language).toBe('sv');
    await bumped.kernel.close();
    writeFileSync(pkg, JSON.stringify({ name: 'p', koto: { asr: { language: 'da' } } }));
    const edited = await load(dir, env);
    expect(edited.kernel.config.asr.language).toBeUndefined();
    expect(edited.kernel.config.resolved.origin.skipped?.reason).toBe('changed');
    await edited.kernel.close();
  });

  it('a symlinked config is trusted by its real path, and its relative paths resolve from the real folder', async () => {
    const { dir, env } = project({
      'shared/koto.yaml': 'dictionary: ./terms.txt\n',
      'shared/terms.txt': 'Kubernetes\n',
      'terms.txt': 'Planted\n',
    });
    symlinkSync(path.join(dir, 'shared', 'koto.yaml'), path.join(dir, '.kotorc.yaml'));
    const found = await findProjectConfig(dir);
    expect(found?.file).toBe(path.join(dir, 'shared', 'koto.yaml'));
    await trust(path.join(dir, '.kotorc.yaml'), env);
    expect([...readTrustStore(env).entries.keys()]).toEqual([path.join(dir, 'shared', 'koto.yaml')]);
    const { kernel } = await load(dir, env);
    expect(kernel.config.resolved.dictionary).toEqual(['Kubernetes']);
    await kernel.close();
  });

  it('a JS config that is not trusted never runs; trusted, it does', async () => {
    const marker = path.join(root.dir, `marker-${n + 1}`);
    const { dir, env } = project({
      'koto.config.mjs': `import { writeFileSync } from 'node:fs';\nwriteFileSync(${JSON.stringify(marker)}, 'ran');\nexport default { asr: { language: 'pt' } };\n`,
    });
    const before = await load(dir, env);
    expect(existsSync(marker)).toBe(false);
    expect(before.kernel.config.asr.language).toBeUndefined();
    await before.kernel.close();
    await trust(path.join(dir, 'koto.config.mjs'), env);
    const after = await load(dir, env);
    expect(existsSync(marker)).toBe(true);
    expect(after.kernel.config.asr.language).toBe('pt');
    await after.kernel.close();
  });

  it('a trusted JS config whose bytes change while it is imported is refused (hashed again after the import)', async () => {
    const { dir, env } = project({});
    const file = path.join(dir, 'koto.config.mjs');
    // The module edits itself when it runs: what ran is not what was trusted.
    writeFileSync(
      file,
      `import { appendFileSync } from 'node:fs';\nappendFileSync(import.meta.filename, '// changed\\n');\nexport default {};\n`,
    );
    await trust(file, env);
    const err = await failure(load(dir, env));
    expect(err.code).toBe('KOTO_ERR_CONFIG_UNTRUSTED');
    expect(err.message).toBe(`${file} is not trusted: it changed while it was being loaded`);
  });

  it('a YAML config with plugins: untrusted, the plugin never loads', async () => {
    const marker = path.join(root.dir, `marker-yaml-${n + 1}`);
    const { dir, env } = project({
      'plugin.mjs': `import { writeFileSync } from 'node:fs';\nwriteFileSync(${JSON.stringify(marker)}, 'ran');\nexport default { name: 'planted', apply() {} };\n`,
      '.kotorc.yml': 'plugins:\n  - ./plugin.mjs\n',
    });
    const { kernel, warnings } = await load(dir, env);
    expect(existsSync(marker)).toBe(false);
    expect(kernel.plugins().map((p) => p.name)).toEqual(['fake-provider']);
    expect(warnings).toHaveLength(1);
    await kernel.close();
  });
});

describe('a watched, trusted project config (the daemon)', () => {
  it('edited after trust: the reload fails like an invalid edit (lastConfigError), the last good config stays; re-trusted: reload applies it', async () => {
    const { dir, env } = project({ '.kotorc.yaml': 'asr:\n  language: de\n' });
    const file = path.join(dir, '.kotorc.yaml');
    await trust(file, env);
    const { kernel } = await load(dir, env, { watch: true });
    try {
      expect(kernel.diagnostics().watching).toContain(file);
      writeFileSync(file, 'asr:\n  language: en\n');
      const deadline = Date.now() + 10_000;
      while (!kernel.lastConfigError && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await kernel.settled();
      expect(kernel.lastConfigError?.code).toBe('KOTO_ERR_CONFIG_UNTRUSTED');
      expect(kernel.diagnostics().lastConfigError).toEqual({
        code: 'KOTO_ERR_CONFIG_UNTRUSTED',
        message: `${file} is not trusted: it changed since you trusted it`,
      });
      expect(kernel.lastConfigError?.fix).toContain(`koto trust ${file}`);
      expect(kernel.config.asr.language).toBe('de');
      expect(kernel.configGeneration).toBe(1);

      await trust(file, env);
      const outcome = await kernel.reload();
      expect(outcome).toMatchObject({ ok: true, changed: ['asr'], generation: 2 });
      expect(kernel.config.asr.language).toBe('en');
      expect(kernel.lastConfigError).toBeUndefined();
    } finally {
      await kernel.close();
    }
  });
});

describe('the trust store', () => {
  it('is written atomically, 0600, as JSON: path → sha256; entries can be removed', async () => {
    const { dir, env } = project({ '.kotorc.yaml': 'asr:\n  language: de\n' });
    const file = path.join(dir, '.kotorc.yaml');
    await trust(file, env);
    const store = trustStorePath(env);
    expect(store).toBe(path.join(dir, 'home', 'trust.json'));
    expect(statSync(store).mode & 0o777).toBe(0o600);
    const json = JSON.parse(readFileSync(store, 'utf8')) as { version: number; trusted: Record<string, { sha256: string }> };
    expect(json.version).toBe(1);
    expect(json.trusted[file]?.sha256).toBe((await readConfigFile(file)).sha256);
    expect(readdirSync(path.dirname(store)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(removeTrust(file, env)).toBe(true);
    expect(removeTrust(file, env)).toBe(false);
    expect(readTrustStore(env).entries.size).toBe(0);
  });

  it('a symlinked store is not used (nothing trusted, the warning says why) and not written through', async () => {
    const { dir, env } = project({ '.kotorc.yaml': 'asr:\n  language: de\n' });
    const file = path.join(dir, '.kotorc.yaml');
    // A store elsewhere that does trust the file, linked into place: it must not count.
    const elsewhere = { KOTO_HOME: path.join(dir, 'other') };
    mkdirSync(elsewhere.KOTO_HOME, { mode: 0o700 });
    await trust(file, elsewhere);
    symlinkSync(trustStorePath(elsewhere), trustStorePath(env));
    const { kernel, warnings } = await load(dir, env);
    expect(kernel.config.asr.language).toBeUndefined();
    expect(kernel.config.resolved.origin.skipped?.reason).toBe('store-unsafe');
    expect(warnings).toEqual([expect.stringMatching(/the trust store .*trust\.json is not safe to use: it is a symbolic link/)]);
    await kernel.close();
    const err = await failure(trust(file, env));
    expect(err.code).toBe('KOTO_ERR_TRUST_STORE_UNSAFE');
    expect(err.message).toMatch(/it is a symbolic link/);
  });

  it('a store writable by group or others, or in such a folder, is not used', async () => {
    const { dir, env } = project({ '.kotorc.yaml': 'asr:\n  language: de\n' });
    const file = path.join(dir, '.kotorc.yaml');
    await trust(file, env);
    chmodSync(trustStorePath(env), 0o620);
    expect(readTrustStore(env).problem?.problem).toBe('it is writable by other users (mode 0620)');
    expect((await load(dir, env)).kernel.config.asr.language).toBeUndefined();
    chmodSync(trustStorePath(env), 0o600);
    expect((await load(dir, env)).kernel.config.asr.language).toBe('de');
    chmodSync(path.dirname(trustStorePath(env)), 0o777);
    expect(readTrustStore(env).problem?.problem).toMatch(/^its folder .* is writable by other users \(mode 0777\)$/);
    expect((await load(dir, env)).kernel.config.asr.language).toBeUndefined();
    chmodSync(path.dirname(trustStorePath(env)), 0o700);
  });
});

describe('configs that can run code, writable by others', () => {
  const withPlugin = (dir: string) => {
    writeFileSync(path.join(dir, 'plugin.mjs'), `export default { name: 'local-plugin', apply() {} };\n`);
    return 'plugins:\n  - ./plugin.mjs\n';
  };

  it('group-writable with plugins: one warning with the chmod; also for --config and the per-user file', async () => {
    const { dir, env } = project({});
    const explicit = path.join(dir, 'mine.yaml');
    writeFileSync(explicit, withPlugin(dir));
    chmodSync(explicit, 0o664);
    const { kernel, warnings } = await load(dir, env, { configPath: explicit });
    expect(warnings).toEqual([
      `${explicit} can load plugins (code that runs as you) and is writable by other users (mode 0664): whoever can change it can run code as you. Fix: run \`chmod go-w ${explicit}\``,
    ]);
    await kernel.close();

    const user = path.join(dir, 'home', 'config.yaml');
    writeFileSync(user, `plugins:\n  - ${path.join(dir, 'plugin.mjs')}\n`);
    chmodSync(user, 0o646);
    const fromUser = await load(dir, env);
    expect(fromUser.warnings).toEqual([expect.stringMatching(/config\.yaml can load plugins .* writable by other users \(mode 0646\)/)]);
    await fromUser.kernel.close();
  });

  it('no warning at 0644, nor for a group-writable config that cannot run code', async () => {
    const { dir, env } = project({});
    const withCode = path.join(dir, 'code.yaml');
    writeFileSync(withCode, withPlugin(dir));
    chmodSync(withCode, 0o644);
    const a = await load(dir, env, { configPath: withCode });
    expect(a.warnings).toEqual([]);
    await a.kernel.close();
    const plain = path.join(dir, 'plain.yaml');
    writeFileSync(plain, 'asr:\n  language: de\n');
    chmodSync(plain, 0o666);
    const b = await load(dir, env, { configPath: plain });
    expect(b.warnings).toEqual([]);
    await b.kernel.close();
  });

  it('a provider `use` naming a file counts as loading a plugin', async () => {
    const { dir, env } = project({});
    writeFileSync(
      path.join(dir, 'prov.mjs'),
      `export default { name: 'prov', capabilities: ['asr'], provider: { safeParse: (v) => ({ success: true, data: v }) }, apply() {} };\n`,
    );
    const file = path.join(dir, 'use.yaml');
    writeFileSync(file, 'providers:\n  x:\n    use: ./prov.mjs\n');
    chmodSync(file, 0o666);
    const { kernel, warnings } = await load(dir, env, { configPath: file });
    expect(warnings).toEqual([expect.stringMatching(/use\.yaml can load plugins/)]);
    await kernel.close();
  });
});

describe('plugins by package name never come from the working directory', () => {
  it('a trusted per-user config naming a package: a same-named package planted in the cwd is not loaded', async () => {
    const marker = path.join(root.dir, 'planted-package-ran');
    const { dir, env } = project({
      'node_modules/koto-plugin-planted/package.json': '{"name":"koto-plugin-planted","main":"index.js","type":"module"}',
      'node_modules/koto-plugin-planted/index.js': `import { writeFileSync } from 'node:fs';\nwriteFileSync(${JSON.stringify(marker)}, 'ran');\nexport default { name: 'planted', apply() {} };\n`,
    });
    // The per-user folder is not inside the project (resolution walks up from the config's folder).
    const home = path.join(root.dir, `home-${n}`);
    mkdirSync(home, { mode: 0o700 });
    writeFileSync(path.join(home, 'config.yaml'), 'plugins:\n  - planted\n');
    const previous = process.cwd();
    process.chdir(dir);
    try {
      const err = await failure(load(dir, { ...env, KOTO_HOME: home }));
      expect(err.code).toBe('KOTO_ERR_PLUGIN_NOT_FOUND');
      expect(err.message).not.toContain(`from ${dir}`);
      expect(existsSync(marker)).toBe(false);
    } finally {
      process.chdir(previous);
    }
  });
});

describe('YAML alias bombs', () => {
  it('a recursive alias, a self-referencing map, and an exponential alias bomb: KOTO_ERR_CONFIG_PARSE naming the file', async () => {
    const { dir, env } = project({});
    const laughs = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (const [i, name] of [...'bcdefghi'].entries()) laughs.push(`${name}: &${name} [${Array(9).fill(`*${'abcdefghi'[i]}`).join(',')}]`);
    const cases: [string, string, RegExp][] = [
      ['rec.yaml', 'a: &a [*a]\n', /rec\.yaml:1:8: invalid YAML: the alias \*a is used inside its own anchor &a/],
      ['map.yaml', 'asr: &x\n  language: *x\n', /map\.yaml:2:13: invalid YAML: the alias \*x is used inside its own anchor &x/],
      ['laughs.yaml', `${laughs.join('\n')}\n`, /laughs\.yaml: invalid YAML: its aliases expand too far \(more than 100 expansions/],
    ];
    for (const [name, text, message] of cases) {
      writeFileSync(path.join(dir, name), text);
      const err = await failure(load(dir, env, { configPath: name }));
      expect(err.code).toBe('KOTO_ERR_CONFIG_PARSE');
      expect(err.message).toMatch(message);
    }
  });

  it('a few ordinary aliases still work', async () => {
    const { dir, env } = project({ 'ok.yaml': 'pluginOptions:\n  a: &opts { x: 1 }\n  b: *opts\n' });
    const { kernel } = await load(dir, env, { configPath: 'ok.yaml' });
    expect(kernel.config.pluginOptions).toEqual({ a: { x: 1 }, b: { x: 1 } });
    await kernel.close();
  });
});
