import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createKernel, definePlugin } from '../../src/index.ts';
import { reloadLevelOf } from '../../src/kernel/config/schema.ts';
import { readConfigFile } from '../../src/kernel/config/source.ts';
import { addTrust } from '../../src/kernel/config/trust.ts';
import { failure, tempHome } from '../support/index.ts';

const home = tempHome();
afterAll(() => home.cleanup());

let n = 0;
function project(files: Record<string, string>): string {
  const dir = path.join(home.dir, `p${++n}`);
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

const provider = definePlugin({
  name: 'fake-provider',
  capabilities: ['asr', 'correction'],
  provider: z.strictObject({ baseUrl: z.url(), apiKey: z.string().optional() }),
  defaultProviders: (env) => (env.FAKE_KEY ? { fake: { baseUrl: 'https://fake.invalid/v1', apiKey: env.FAKE_KEY } } : {}),
  apply() {},
});

/** What `koto trust` does: project configs found by the search are used only once trusted. */
async function trust(dir: string, name: string): Promise<void> {
  const config = await readConfigFile(path.join(dir, name));
  addTrust(config.file, config.sha256, { KOTO_HOME: path.join(dir, '.home') });
}

async function load(dir: string, options: { env?: NodeJS.ProcessEnv; configPath?: string } = {}) {
  return createKernel({
    cwd: dir,
    configPath: options.configPath,
    env: { KOTO_HOME: path.join(dir, '.home'), ...options.env },
    builtins: false,
    plugins: [provider],
  });
}

describe('config', () => {
  it('is found by cosmiconfig in the working directory (yaml), validated, defaulted and frozen', async () => {
    const dir = project({
      'package.json': '{"name":"x"}',
      'koto.config.yaml': 'transport:\n  connectTimeoutMs: 1234\ncorrection:\n  model: m1\n',
    });
    await trust(dir, 'koto.config.yaml');
    const kernel = await load(dir);
    expect(kernel.config.resolved.file).toBe(path.join(dir, 'koto.config.yaml'));
    expect(kernel.config.transport.connectTimeoutMs).toBe(1234);
    expect(kernel.config.transport.keepAliveMs).toBe(600000);
    expect(kernel.config.correction.timeoutMs).toBe(8000);
    expect(Object.isFrozen(kernel.config.transport)).toBe(true);
    await kernel.close();
  });

  it('reads .kotorc.json, package.json#koto and koto.config.ts', async () => {
    const variants: [Record<string, string>, string][] = [
      [{ 'package.json': '{"name":"x"}', '.kotorc.json': '{"asr":{"language":"de"}}' }, '.kotorc.json'],
      [{ 'package.json': '{"name":"x","koto":{"asr":{"language":"de"}}}' }, 'package.json'],
      [
        {
          'package.json': '{"name":"x"}',
          'koto.config.ts': 'const c: { asr: { language: string } } = { asr: { language: "de" } };\nexport default c;\n',
        },
        'koto.config.ts',
      ],
    ];
    for (const [files, name] of variants) {
      const dir = project(files);
      await trust(dir, name);
      const kernel = await load(dir);
      expect(kernel.config.asr.language).toBe('de');
      await kernel.close();
    }
  });

  it('falls back to the per-user config file', async () => {
    const dir = project({ 'package.json': '{"name":"x"}' });
    mkdirSync(path.join(dir, '.home'), { recursive: true });
    writeFileSync(path.join(dir, '.home', 'config.yaml'), 'asr:\n  language: fr\n');
    const kernel = await load(dir);
    expect(kernel.config.asr.language).toBe('fr');
    expect(kernel.config.resolved.file).toBe(path.join(dir, '.home', 'config.yaml'));
    await kernel.close();
  });

  it('names the file and the key path of a bad value or an unknown key', async () => {
    const dir = project({ 'bad.yaml': 'transport:\n  connectTimeoutMs: soon\n', 'typo.yaml': 'correction:\n  temprature: 0\n' });
    const bad = await failure(load(dir, { configPath: 'bad.yaml' }));
    expect(bad.code).toBe('KOTO_ERR_CONFIG_INVALID');
    expect(bad.message).toContain(path.join(dir, 'bad.yaml'));
    expect(bad.message).toContain('transport.connectTimeoutMs');
    expect(bad.message).toContain('expected number');
    expect(bad.exitCode).toBe(3);
    const typo = await failure(load(dir, { configPath: 'typo.yaml' }));
    expect(typo.message).toContain('correction.temprature: unknown key');
  });

  it('reports YAML syntax errors with the line', async () => {
    const dir = project({ 'broken.yaml': 'asr:\n  model: a\n  language: [en\n' });
    const err = await failure(load(dir, { configPath: 'broken.yaml' }));
    expect(err.code).toBe('KOTO_ERR_CONFIG_PARSE');
    expect(err.message).toMatch(/broken\.yaml:\d+:\d+: invalid YAML/);
  });

  it('interpolates ${VAR} and names a missing variable and where it is used', async () => {
    const dir = project({
      'koto.yaml':
        'providers:\n  main:\n    use: fake-provider\n    baseUrl: ${FAKE_URL:-https://default.invalid/v1}\n    apiKey: ${MY_SECRET_KEY}\n',
    });
    const err = await failure(load(dir, { configPath: 'koto.yaml' }));
    expect(err.code).toBe('KOTO_ERR_CONFIG_ENV_MISSING');
    expect(err.message).toContain('MY_SECRET_KEY');
    expect(err.message).toContain('providers.main.apiKey');
    const kernel = await load(dir, { configPath: 'koto.yaml', env: { MY_SECRET_KEY: 'sk-interp-123456' } });
    expect(kernel.config.resolved.providers.main?.options).toEqual({ baseUrl: 'https://default.invalid/v1', apiKey: 'sk-interp-123456' });
    expect(kernel.scrub('key=sk-interp-123456')).toBe('key=[redacted]');
    await kernel.close();
  });

  it('validates provider instances with the schema of the plugin named in `use`', async () => {
    const dir = project({ 'koto.yaml': 'providers:\n  main:\n    use: fake-provider\n    baseUrl: not-a-url\n' });
    const err = await failure(load(dir, { configPath: 'koto.yaml' }));
    expect(err.message).toContain('providers.main.baseUrl');
    const unknownUse = project({ 'koto.yaml': 'providers:\n  main:\n    use: nothing-like-this\n' });
    const notFound = await failure(load(unknownUse, { configPath: 'koto.yaml' }));
    expect(notFound.code).toBe('KOTO_ERR_PLUGIN_NOT_FOUND');
  });

  it('derives providers from the environment when none are configured, and picks defaults', async () => {
    const dir = project({ 'package.json': '{"name":"x"}' });
    const kernel = await load(dir, { env: { FAKE_KEY: 'sk-env-abcdef' } });
    expect(Object.keys(kernel.config.resolved.providers)).toEqual(['fake']);
    expect(kernel.config.resolved.asrProvider).toBe('fake');
    expect(kernel.config.resolved.correctionProvider).toBe('fake');
    await kernel.close();
    const unknown = project({ 'koto.yaml': 'asr:\n  provider: nope\n' });
    const err = await failure(load(unknown, { configPath: 'koto.yaml', env: { FAKE_KEY: 'k' } }));
    expect(err.code).toBe('KOTO_ERR_PROVIDER_UNKNOWN');
    expect(err.message).toContain('"nope"');
  });

  it('reads the dictionary and prompt files relative to the config, and names an unreadable one', async () => {
    const dir = project({
      'cfg/koto.yaml': 'dictionary: ./dict.txt\ncorrection:\n  systemPrompt: ./sys.txt\n',
      'cfg/dict.txt': '# terms\nKubernetes\n  Koto  # our name\n\nKubernetes\n',
      'cfg/sys.txt': 'Be brief.',
    });
    const kernel = await load(dir, { configPath: 'cfg/koto.yaml' });
    expect(kernel.config.resolved.dictionary).toEqual(['Kubernetes', 'Koto']);
    expect(kernel.config.resolved.systemPrompt).toBe('Be brief.');
    expect(kernel.config.resolved.files).toEqual([path.join(dir, 'cfg/dict.txt'), path.join(dir, 'cfg/sys.txt')]);
    await kernel.close();
    const missing = project({ 'koto.yaml': 'dictionary: ./gone.txt\n' });
    const err = await failure(load(missing, { configPath: 'koto.yaml' }));
    expect(err.code).toBe('KOTO_ERR_CONFIG_FILE_UNREADABLE');
    expect(err.message).toContain('dictionary names');
    expect(err.message).toContain('gone.txt');
  });

  it('marks the transport section transport-level in the schema and everything else request-level', () => {
    expect(reloadLevelOf('transport')).toBe('transport');
    for (const section of ['providers', 'asr', 'correction', 'dictionary', 'output', 'daemon']) {
      expect(reloadLevelOf(section)).toBe('request');
    }
  });

  it('an explicit missing --config file is an error naming it', async () => {
    const err = await failure(load(home.dir, { configPath: 'nope.yaml' }));
    expect(err.code).toBe('KOTO_ERR_CONFIG_NOT_FOUND');
    expect(err.message).toContain('nope.yaml');
  });
});

describe('secrets in config files', () => {
  it('warns when a file holding a key in plain text is readable by others', async () => {
    const dir = project({
      'koto.yaml': 'providers:\n  main:\n    use: fake-provider\n    baseUrl: https://x.invalid/v1\n    apiKey: sk-plain-text-key-1234\n',
    });
    const file = path.join(dir, 'koto.yaml');
    const logs: string[] = [];
    const open = async () =>
      createKernel({
        configPath: file,
        env: { KOTO_HOME: path.join(dir, '.home') },
        builtins: false,
        plugins: [provider],
        logSink: (e) => logs.push(e.message),
      });
    chmodSync(file, 0o644);
    await (await open()).close();
    expect(logs.join('\n')).toContain('holds an API key and is readable by other users (mode 644)');
    expect(logs.join('\n')).not.toContain('sk-plain-text-key-1234');
    logs.length = 0;
    chmodSync(file, 0o600);
    await (await open()).close();
    expect(logs).toEqual([]);
  });
});
