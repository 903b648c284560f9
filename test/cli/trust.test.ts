/**
 * Workspace trust through the real `koto` bin: temp HOME (KOTO_HOME), a temp project folder as
 * the cwd, two loopback OpenAI-compatible servers — the user's own (OPENAI_BASE_URL) and the one
 * a project config points at — and real files, permissions and a real daemon.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, chmodSync, existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeWav } from '../../src/index.ts';
import { startOpenAIServer, tempHome, type OpenAIServer } from '../support/index.ts';
import { BIN, koto, type CliResult } from './support.ts';

const KEY = 'sk-trust-canary-4d5e6f7a8b9c';
const root = tempHome('koto-cli-trust-');
let userServer: OpenAIServer;
let projectServer: OpenAIServer;
let caFile: string;
const wav = encodeWav(
  new Int16Array(8000).map((_, i) => Math.round(6000 * Math.sin(i / 7))),
  16000,
);

beforeAll(async () => {
  userServer = await startOpenAIServer({ apiKey: KEY });
  projectServer = await startOpenAIServer();
  caFile = path.join(root.dir, 'ca.pem');
  writeFileSync(caFile, userServer.ca);
  writeFileSync(path.join(root.dir, 'clip.wav'), wav);
});

afterAll(async () => {
  await userServer.close();
  await projectServer.close();
  root.cleanup();
});

let n = 0;
/** A fresh user (KOTO_HOME) and project folder (with package.json: the search stops there). */
function setup(
  files: Record<string, string> = {},
  pkg = '{"name":"p"}',
): { dir: string; home: string; env: NodeJS.ProcessEnv; run: (args: string[], extra?: NodeJS.ProcessEnv) => Promise<CliResult> } {
  n += 1;
  const dir = path.join(root.dir, `project${n}`);
  const home = path.join(root.dir, `home${n}`);
  mkdirSync(dir, { recursive: true });
  mkdirSync(home, { recursive: true, mode: 0o700 });
  writeFileSync(path.join(dir, 'package.json'), pkg);
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  const env = { OPENAI_API_KEY: KEY, OPENAI_BASE_URL: userServer.baseUrl, NODE_EXTRA_CA_CERTS: caFile, KOTO_HOME: home };
  return { dir, home, env, run: (args, extra = {}) => koto(args, { cwd: dir, env: { ...env, ...extra }, timeoutMs: 30_000 }) };
}

/** A project config that would send the user's key and dictation to another server. */
const exfiltrating = () =>
  [
    'providers:',
    '  main:',
    '    use: openai-compatible',
    `    baseUrl: ${projectServer.baseUrl}`,
    '    apiKey: ${OPENAI_API_KEY}',
    '',
  ].join('\n');

const stderrLines = (result: CliResult) => result.stderr.split('\n').filter(Boolean);

describe('koto with an untrusted project config', { timeout: 120_000 }, () => {
  it('.kotorc.yaml with its own baseUrl and ${OPENAI_API_KEY}: not contacted until `koto trust`; edited: ignored again', async () => {
    const { dir, run } = setup({ '.kotorc.yaml': exfiltrating() });
    const file = path.join(dir, '.kotorc.yaml');
    const clip = path.join(root.dir, 'clip.wav');
    projectServer.reset();
    userServer.reset();

    const untrusted = await run(['--no-daemon', 'run', clip]);
    expect(untrusted.code, untrusted.stderr).toBe(0);
    expect(untrusted.stdout).toBe('Hello, world.\n');
    expect(projectServer.requests).toHaveLength(0);
    expect(projectServer.stats.connections).toBe(0);
    expect(userServer.requests.length).toBeGreaterThan(0);
    expect(stderrLines(untrusted)).toEqual([
      `koto warn: ignoring ${file}: it is not trusted; using the defaults instead. A config found in a project folder can send your keys and dictation to another server or run code, so Koto uses it only once you trust it: review it, then run \`koto trust ${file}\``,
    ]);

    const trusted = await run(['trust']);
    expect(trusted.code, trusted.stderr).toBe(0);
    expect(trusted.stdout).toContain(`trusted ${file} (sha256 `);
    expect(trusted.stdout).toContain(`it sends audio, text and keys to: ${projectServer.baseUrl}`);

    const used = await run(['--no-daemon', 'run', clip]);
    expect(used).toMatchObject({ code: 0, stderr: '', stdout: 'Hello, world.\n' });
    expect(
      projectServer.requests.some((r) => r.path.endsWith('/audio/transcriptions') && r.headers.authorization === `Bearer ${KEY}`),
    ).toBe(true);

    appendFileSync(file, '# an innocent-looking edit\n');
    const before = projectServer.requests.length;
    const edited = await run(['--no-daemon', 'run', clip]);
    expect(edited.code).toBe(0);
    expect(projectServer.requests).toHaveLength(before);
    expect(stderrLines(edited)).toEqual([
      expect.stringContaining(`ignoring ${file}: it changed since you trusted it; using the defaults instead.`),
    ]);
  });

  it('koto.config.js whose plugins would write a marker: nothing runs untrusted; after `koto trust`, both run', async () => {
    const configRan = path.join(root.dir, `config-ran-${n + 1}`);
    const pluginRan = path.join(root.dir, `plugin-ran-${n + 1}`);
    const { dir, run } = setup(
      {
        'koto.config.js': `import { writeFileSync } from 'node:fs';\nwriteFileSync(${JSON.stringify(configRan)}, 'x');\nexport default { plugins: ['./plugin.mjs'] };\n`,
        'plugin.mjs': `import { writeFileSync } from 'node:fs';\nwriteFileSync(${JSON.stringify(pluginRan)}, 'x');\nexport default { name: 'marker', apply() {} };\n`,
      },
      '{"name":"p","type":"module"}',
    );
    for (const args of [['config', 'check'], ['doctor'], ['plugins']]) {
      const result = await run(args);
      expect(result.stderr).toContain(`ignoring ${path.join(dir, 'koto.config.js')}: it is not trusted`);
      expect(existsSync(configRan)).toBe(false);
      expect(existsSync(pluginRan)).toBe(false);
    }
    expect((await run(['trust', 'koto.config.js'])).stdout).toContain(
      'it is JavaScript/TypeScript: it runs as code each time Koto starts here',
    );
    const checked = await run(['config', 'check']);
    expect(checked.code, checked.stderr).toBe(0);
    expect(checked.stdout).toContain(`config OK: ${path.join(dir, 'koto.config.js')}`);
    expect(existsSync(configRan)).toBe(true);
    expect(existsSync(pluginRan)).toBe(true);
  });

  it('a YAML config with plugins:, untrusted: the plugin is not loaded', async () => {
    const marker = path.join(root.dir, `yaml-plugin-ran-${n + 1}`);
    const { run } = setup({
      '.kotorc.yml': 'plugins:\n  - ./plugin.mjs\n',
      'plugin.mjs': `import { writeFileSync } from 'node:fs';\nwriteFileSync(${JSON.stringify(marker)}, 'x');\nexport default { name: 'marker', apply() {} };\n`,
    });
    const result = await run(['plugins', '--json']);
    expect(result.code).toBe(0);
    expect((JSON.parse(result.stdout) as { name: string }[]).some((p) => p.name === 'marker')).toBe(false);
    expect(existsSync(marker)).toBe(false);
  });

  it('koto config print (and --json) says which file is in effect, whether trusted, and what was skipped; doctor mentions it', async () => {
    const { dir, home, run } = setup({ '.kotorc.yaml': 'asr:\n  language: de\n' });
    const file = path.join(dir, '.kotorc.yaml');
    writeFileSync(path.join(home, 'config.yaml'), 'asr:\n  language: fr\n');
    const printed = await run(['config', 'print']);
    expect(printed.code).toBe(0);
    expect(printed.stdout.split('\n').slice(0, 2)).toEqual([
      `# ${path.join(home, 'config.yaml')} (per-user config)`,
      `# skipped ${file}: not trusted; to use it, review it and run \`koto trust ${file}\``,
    ]);
    const json = JSON.parse((await run(['config', 'print', '--json'])).stdout) as { $source: unknown; asr: { language: string } };
    expect(json.$source).toEqual({
      file: path.join(home, 'config.yaml'),
      kind: 'user',
      trusted: true,
      skipped: { file, reason: 'untrusted', fix: `koto trust ${file}` },
    });
    expect(json.asr.language).toBe('fr');
    const doctor = await run(['doctor']);
    expect(doctor.stdout).toMatch(new RegExp(`FAIL\\s+trust: skipped ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: not trusted`));

    await run(['trust', file]);
    const trusted = await run(['config', 'print']);
    expect(trusted.stdout.split('\n')[0]).toBe(`# ${file} (project config, trusted (\`koto trust\`))`);
    expect(trusted.stderr).toBe('');
    const trustedJson = JSON.parse((await run(['config', 'print', '--json'])).stdout) as { $source: unknown; asr: { language: string } };
    expect(trustedJson.$source).toEqual({ file, kind: 'project', trusted: true, skipped: null });
    expect(trustedJson.asr.language).toBe('de');
    const explicit = JSON.parse((await run(['--config', file, 'config', 'print', '--json'])).stdout) as { $source: unknown };
    expect(explicit.$source).toEqual({ file, kind: 'explicit', trusted: true, skipped: null });
  });

  it('a config that can load plugins and is group-writable warns, even when given with --config', async () => {
    const { dir, run } = setup({
      'plugin.mjs': `export default { name: 'harmless', apply() {} };\n`,
      'team.yaml': 'plugins:\n  - ./plugin.mjs\n',
    });
    const file = path.join(dir, 'team.yaml');
    chmodSync(file, 0o664);
    const result = await run(['--config', file, 'config', 'check']);
    expect(result.code).toBe(0);
    expect(stderrLines(result)).toEqual([
      `koto warn: ${file} can load plugins (code that runs as you) and is writable by other users (mode 0664): whoever can change it can run code as you. Fix: run \`chmod go-w ${file}\``,
    ]);
    chmodSync(file, 0o644);
    expect((await run(['--config', file, 'config', 'check'])).stderr).toBe('');
  });

  it('a symlinked trust store is refused: the project config stays ignored and `koto trust` exits 3', async () => {
    const { home, run } = setup({ '.kotorc.yaml': 'asr:\n  language: de\n' });
    const elsewhere = path.join(root.dir, `elsewhere${n}`);
    mkdirSync(elsewhere, { mode: 0o700 });
    // A store that trusts this file, linked into place by someone else: it must not count.
    expect((await run(['trust'], { KOTO_HOME: elsewhere })).code).toBe(0);
    symlinkSync(path.join(elsewhere, 'trust.json'), path.join(home, 'trust.json'));
    const check = await run(['config', 'check']);
    expect(check.stdout).toContain('config OK: (no file');
    expect(stderrLines(check)).toEqual([
      expect.stringMatching(
        /^koto warn: ignoring .*\.kotorc\.yaml: the trust store .*trust\.json is not safe to use: it is a symbolic link \(fix: remove the link/,
      ),
    ]);
    const refused = await run(['trust']);
    expect(refused.code).toBe(3);
    expect(stderrLines(refused)).toEqual([
      expect.stringMatching(
        /^koto: the trust store .*trust\.json is not safe to use: it is a symbolic link\. Fix: remove the link .*\(KOTO_ERR_TRUST_STORE_UNSAFE\)$/,
      ),
    ]);
  });
});

describe('koto trust: list, remove, mistakes', { timeout: 60_000 }, () => {
  it('--list (text and --json) shows trusted and changed files; --remove forgets one', async () => {
    const { dir, run } = setup({ '.kotorc.yaml': 'asr:\n  language: de\n' });
    const file = path.join(dir, '.kotorc.yaml');
    expect((await run(['trust', '--list'])).stdout).toMatch(/^no trusted project configs \(.*trust\.json\)\n$/);
    await run(['trust']);
    expect((await run(['trust', '--list'])).stdout).toMatch(
      new RegExp(`^trusted  ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}  \\(since \\d{4}-`),
    );
    appendFileSync(file, '# edit\n');
    const listed = JSON.parse((await run(['trust', '--list', '--json'])).stdout) as { file: string; state: string; sha256: string };
    expect(listed).toMatchObject({ file, state: 'changed' });
    expect(listed.sha256).toMatch(/^[0-9a-f]{64}$/);
    const removed = await run(['trust', '--remove', '.kotorc.yaml']);
    expect(removed, removed.stderr).toMatchObject({ code: 0, stdout: `no longer trusted: ${file}\n` });
    const again = await run(['trust', '--remove', '.kotorc.yaml']);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('(KOTO_ERR_TRUST_NOT_LISTED)');
  });

  it('nothing to trust, not a searched file name, a missing file: one line each, exit 2', async () => {
    const { dir, run } = setup({ 'other.yaml': 'asr: {}\n' });
    const none = await run(['trust']);
    expect(none.code).toBe(2);
    expect(stderrLines(none)).toEqual([
      `koto: no project config file found in ${dir} or its parent folders. Fix: run \`koto trust\` inside the project, or give the file: \`koto trust PATH\`. (KOTO_ERR_TRUST_NO_CONFIG)`,
    ]);
    const other = await run(['trust', 'other.yaml']);
    expect(other.code).toBe(2);
    expect(other.stderr).toMatch(
      /other\.yaml is not a config file Koto finds by searching: Koto looks for package\.json, \.kotorc, .*\(KOTO_ERR_TRUST_NOT_CONFIG\)/,
    );
    const missing = await run(['trust', 'nope.yaml']);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toContain('(KOTO_ERR_CONFIG_NOT_FOUND)');
  });
});

describe('YAML alias bombs through koto config check', { timeout: 60_000 }, () => {
  it('recursive and exponential aliases: exit 3, one line naming the file, KOTO_ERR_CONFIG_PARSE', async () => {
    const laughs = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (const [i, name] of [...'bcdefghij'].entries())
      laughs.push(`${name}: &${name} [${Array(10).fill(`*${'abcdefghij'[i]}`).join(',')}]`);
    const { dir, run } = setup({
      'rec.yaml': 'a: &a [*a]\n',
      'bomb.yaml': `${laughs.join('\n')}\n`,
      'nested.yaml': 'x: &x\n  y: &y\n    z: *x\n',
    });
    for (const [name, detail] of [
      ['rec.yaml', ':1:8: invalid YAML: the alias *a is used inside its own anchor &a'],
      ['bomb.yaml', ': invalid YAML: its aliases expand too far'],
      ['nested.yaml', ':3:8: invalid YAML: the alias *x is used inside its own anchor &x'],
    ] as const) {
      const result = await run(['config', 'check', '--config', name]);
      expect(result.code).toBe(3);
      const lines = stderrLines(result);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(`${path.join(dir, name)}${detail}`);
      expect(lines[0]).toMatch(/\(KOTO_ERR_CONFIG_PARSE\)$/);
    }
  });
});

describe('the daemon and a trusted project config edited later', { timeout: 120_000 }, () => {
  let daemon: ChildProcess | undefined;
  afterAll(() => {
    if (daemon && daemon.exitCode === null) daemon.kill('SIGKILL');
  });

  it('the reload fails like an invalid edit (exit 3, lastConfigError), the old config keeps serving; koto trust + koto reload applies it', async () => {
    const config = (model: string) => `${exfiltrating()}correction:\n  model: ${model}\n`;
    const { dir, home, env, run } = setup({ '.kotorc.yaml': config('model-a') });
    const file = path.join(dir, '.kotorc.yaml');
    expect((await run(['trust'])).code).toBe(0);
    let out = '';
    daemon = spawn(process.execPath, [BIN, 'daemon'], {
      cwd: dir,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    daemon.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    daemon.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const socket = path.join(home, 'run', 'koto.sock');
    const deadline = Date.now() + 30_000;
    while (!existsSync(socket) || (await run(['status'])).code !== 0) {
      if (Date.now() > deadline || daemon.exitCode !== null) throw new Error(`the daemon did not start: ${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const status = JSON.parse((await run(['status', '--json'])).stdout) as { configFile: string };
    expect(status.configFile).toBe(file);

    writeFileSync(file, config('model-b'));
    const reload = await run(['reload']);
    expect(reload.code).toBe(3);
    expect(stderrLines(reload)).toEqual([
      `koto: ${file} is not trusted: it changed since you trusted it. Fix: review the file, then run \`koto trust ${file}\` (and \`koto reload\` for a running daemon, which keeps its last good config until then). (KOTO_ERR_CONFIG_UNTRUSTED)`,
    ]);
    // The last good config keeps serving: same file, same generation.
    const failed = JSON.parse((await run(['status', '--json'])).stdout) as {
      configFile: string;
      configGeneration: number;
      lastConfigError?: { code: string };
    };
    expect(failed).toMatchObject({ configFile: file, configGeneration: 1, lastConfigError: { code: 'KOTO_ERR_CONFIG_UNTRUSTED' } });

    expect((await run(['trust'])).code).toBe(0);
    const applied = await run(['reload']);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout).toContain('correction changed');
    const healed = JSON.parse((await run(['status', '--json'])).stdout) as { configGeneration: number; lastConfigError?: unknown };
    expect(healed.configGeneration).toBe(2);
    expect(healed.lastConfigError).toBeUndefined();

    daemon.kill('SIGTERM');
    await new Promise<void>((resolve) => (daemon!.exitCode !== null ? resolve() : daemon!.once('exit', () => resolve())));
  });
});
