import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KOTO_VERSION } from '../../src/index.ts';
import { tempHome } from '../support/index.ts';
import { koto } from './support.ts';

const home = tempHome('koto-cli-');
afterAll(() => home.cleanup());
const env = { KOTO_HOME: home.dir };

/** A Node older than 22.19 on PATH (the machine's own), skipping Koto's pinned one. */
function oldNode(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir.includes('node_modules')) continue;
    const candidate = path.join(dir, 'node');
    if (!existsSync(candidate)) continue;
    const version = execFileSync(candidate, ['-p', 'process.versions.node']).toString().trim();
    const [major, minor] = version.split('.').map(Number) as [number, number];
    if (major < 22 || (major === 22 && minor < 19)) return candidate;
  }
  return undefined;
}

describe('koto CLI: inspection', () => {
  it('--version and --help', async () => {
    const version = await koto(['--version'], { env });
    expect(version).toMatchObject({ code: 0, stdout: `${KOTO_VERSION}\n` });
    const help = await koto(['--help'], { env });
    expect(help.code).toBe(0);
    for (const cmd of ['transcribe', 'run', 'correct', 'config', 'plugins', 'doctor', 'devices']) expect(help.stdout).toContain(cmd);
  });

  it.skipIf(!oldNode())('refuses an old Node with one line and exit 3', async () => {
    const result = await koto(['--version'], { env, node: oldNode() });
    expect(result.code).toBe(3);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/Koto needs Node >= 22\.19, this is 2\d\./);
  });

  it('a usage error exits 2 with one line', async () => {
    const result = await koto(['transcribe'], { env });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("missing required argument 'inputs'");
  });

  it('config check: a bad key exits 3 with one line naming file and key path; a good config passes', async () => {
    writeFileSync(path.join(home.dir, 'bad.yaml'), 'transport:\n  connectTimeoutMs: soon\n');
    const bad = await koto(['config', 'check', '--config', 'bad.yaml'], { env, cwd: home.dir });
    expect(bad.code).toBe(3);
    const lines = bad.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('bad.yaml');
    expect(lines[0]).toContain('transport.connectTimeoutMs');
    expect(lines[0]).toContain('KOTO_ERR_CONFIG_INVALID');
    expect(bad.stdout).toBe('');

    writeFileSync(path.join(home.dir, 'good.yaml'), 'transport:\n  connectTimeoutMs: 2000\n');
    const good = await koto(['config', 'check', '-c', 'good.yaml'], { env, cwd: home.dir });
    expect(good.code).toBe(0);
    expect(good.stdout).toContain('config OK');
  });

  it('a missing env var in the config names the variable', async () => {
    writeFileSync(
      path.join(home.dir, 'env.yaml'),
      'providers:\n  main:\n    use: openai-compatible\n    baseUrl: https://api.example.invalid/v1\n    apiKey: ${KOTO_TEST_MISSING_KEY}\n',
    );
    const result = await koto(['config', 'check', '-c', 'env.yaml'], { env, cwd: home.dir });
    expect(result.code).toBe(3);
    expect(result.stderr).toContain('KOTO_TEST_MISSING_KEY');
    expect(result.stderr).toContain('providers.main.apiKey');
  });

  it('config print redacts secrets wherever they appear', async () => {
    const secret = 'sk-canary-print-0123456789';
    writeFileSync(
      path.join(home.dir, 'secret.yaml'),
      [
        'providers:',
        '  main:',
        '    use: openai-compatible',
        '    baseUrl: https://api.example.invalid/v1',
        '    apiKey: ${CANARY_KEY}',
        '    headers:',
        '      x-extra: ${CANARY_KEY}',
        '',
      ].join('\n'),
    );
    const result = await koto(['config', 'print', '-c', 'secret.yaml'], { env: { ...env, CANARY_KEY: secret }, cwd: home.dir });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('apiKey: "[redacted]"');
    expect(result.stdout).toContain('connectTimeoutMs: 5000');
    expect(result.stdout + result.stderr).not.toContain(secret);
    const json = await koto(['config', 'print', '--json', '-c', 'secret.yaml'], { env: { ...env, CANARY_KEY: secret }, cwd: home.dir });
    expect(json.stdout).not.toContain(secret);
    expect(JSON.parse(json.stdout).providers.main.use).toBe('openai-compatible');
  });

  it('plugins lists the built-ins and what they tap', async () => {
    const result = await koto(['plugins', '--json'], { env, cwd: home.dir });
    expect(result.code).toBe(0);
    const plugins = JSON.parse(result.stdout) as { name: string; taps: string[]; errors: string[] }[];
    const builtins = readdirSync(new URL('../../plugins/', import.meta.url)).sort();
    expect(plugins.map((p) => p.name).sort()).toEqual(builtins);
    expect(plugins.find((p) => p.name === 'outputs')?.taps).toEqual([
      'close',
      'output:clipboard',
      'output:file',
      'output:paste',
      'output:stdout',
      'output:type',
    ]);
    expect(plugins.find((p) => p.name === 'focus')?.taps).toEqual(['focusedWindow']);
    // The built-ins' own error codes, as a third-party plugin declares them (docs/errors.md lists them per plugin).
    expect(plugins.find((p) => p.name === 'azure-foundry')?.errors).toEqual([
      'AZURE_FOUNDRY_ERR_DEPLOYMENT_NOT_FOUND',
      'AZURE_FOUNDRY_ERR_TOKEN',
    ]);
    expect(plugins.find((p) => p.name === 'hotkey')?.errors).toEqual([
      'HOTKEY_ERR_PERMISSION',
      'HOTKEY_ERR_TAKEN',
      'HOTKEY_ERR_UNAVAILABLE',
    ]);
    expect(plugins.find((p) => p.name === 'openai-compatible')?.errors).toEqual([]);
  });

  it('doctor says the offline default is active, and why, when there is no key', async () => {
    const result = await koto(['doctor'], { env, cwd: home.dir });
    expect(result.stdout).toMatch(
      /ok\s+active: asr offline, correction local \(defaults from the environment: no providers configured; no OPENAI_API_KEY/,
    );
    expect(result.stdout).toMatch(/ok\s+provider offline: offline pocketsphinx/);
    expect(result.code).toBe(0);
  });

  it('an unknown plugin in the config: one line naming it, exit 3', async () => {
    writeFileSync(path.join(home.dir, 'plug.yaml'), 'plugins:\n  - koto-plugin-does-not-exist\n');
    const result = await koto(['plugins', '-c', 'plug.yaml'], { env, cwd: home.dir });
    expect(result.code).toBe(3);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain('koto-plugin-does-not-exist');
    expect(result.stderr).toContain('KOTO_ERR_PLUGIN_NOT_FOUND');
  });
});
