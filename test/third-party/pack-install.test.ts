/**
 * The drop-in path, end to end, as a user meets it: `npm pack` Koto and the example plugin
 * (examples/koto-plugin-deepgram, a separate npm package), install both tarballs into a fresh
 * project, name the plugin by its package name in a config, and run a session through the
 * installed `koto` bin against a loopback server. No kernel change, nothing special-cased.
 *
 * Also: the errors a user can cause with a third-party plugin are one clear line naming the
 * package (incompatible `koto` range, no plugin export, not installed, bad option).
 *
 * npm is slow: the set-up (pack, build, install from the npm cache / registry) takes a while.
 */
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ok, run, type Run } from '../support/run.ts';
import { toneWav } from 'koto-voice/testing';
import { DEFAULT_TRANSCRIPT, startDeepgramServer, type DeepgramServer } from '../../examples/koto-plugin-deepgram/test/server.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const EXAMPLE = path.join(ROOT, 'examples', 'koto-plugin-deepgram');
const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const KEY = 'dg-pack-install-key-7f3a9c';
const SETUP_TIMEOUT_MS = 150_000;

/** `npm pack` in `dir` into `into`; returns the tarball's path. */
async function pack(dir: string, into: string): Promise<string> {
  // Scripts off: Koto's `prepare` and the example's `prepack` would rebuild; both are built here.
  const result = ok(
    await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', into], { cwd: dir }),
    `npm pack in ${dir}`,
  );
  const [info] = JSON.parse(result.stdout) as { filename: string }[];
  return path.join(into, info!.filename);
}

function yamlBlock(text: string, indent: string): string {
  return text
    .trimEnd()
    .split('\n')
    .map((line) => `${indent}${line}`)
    .join('\n');
}

let work: string;
let app: string;
let server: DeepgramServer;
const timings: Record<string, number> = {};

/** The installed `koto` bin, run with the pinned Node (never the system one). */
function koto(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return run(process.execPath, [path.join(app, 'node_modules', '.bin', 'koto'), ...args], {
    cwd: app,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, KOTO_HOME: path.join(work, 'home'), DG_TEST_KEY: KEY, ...env },
    timeoutMs: 30_000,
  });
}

/** Writes a config into the app and returns its file name. */
async function config(name: string, body: string): Promise<string> {
  await writeFile(path.join(app, name), body);
  return name;
}

function providerYaml(): string {
  return `providers:
  dg:
    use: koto-plugin-deepgram
    baseUrl: ${server.url}
    apiKey: \${DG_TEST_KEY}
asr:
  provider: dg
correction:
  enabled: false
transport:
  ca: |
${yamlBlock(server.ca, '    ')}
`;
}

/** A user-caused error: exit 3 and exactly one line on stderr. */
function oneLine(result: Run): string {
  expect(result.code, result.stderr).toBe(3);
  expect(result.stdout).toBe('');
  const lines = result.stderr.trimEnd().split('\n');
  expect(lines, result.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^koto: /);
  return lines[0]!;
}

beforeAll(async () => {
  const t0 = performance.now();
  work = await mkdtemp(path.join(os.tmpdir(), 'koto-pack-install-'));
  app = path.join(work, 'app');
  await mkdir(app);

  // 1. Koto: the test run's global setup built dist; build again only if it is missing.
  if (!existsSync(path.join(ROOT, 'dist', 'src', 'cli', 'main.js'))) {
    await run(process.execPath, [TSC, '-p', 'tsconfig.build.json'], { cwd: ROOT, timeoutMs: 120_000 });
  }
  const kotoTarball = await pack(ROOT, work);
  timings.packKoto = Math.round(performance.now() - t0);

  // 2. The example, built the way its own `npm run build` builds it, against Koto's types.
  const t1 = performance.now();
  const plugin = path.join(work, 'koto-plugin-deepgram');
  await mkdir(plugin);
  for (const entry of ['package.json', 'README.md', 'tsconfig.json', 'tsconfig.build.json', 'src']) {
    await cp(path.join(EXAMPLE, entry), path.join(plugin, entry), { recursive: true });
  }
  await writeFile(
    path.join(plugin, 'tsconfig.pack.json'),
    JSON.stringify({
      extends: './tsconfig.build.json',
      compilerOptions: {
        // Where `npm install` would have put them: koto-voice (built above) and @types/node.
        paths: { 'koto-voice': [path.join(ROOT, 'dist', 'src', 'index.d.ts')] },
        typeRoots: [path.join(ROOT, 'node_modules', '@types')],
      },
    }),
  );
  ok(await run(process.execPath, [TSC, '-p', 'tsconfig.pack.json'], { cwd: plugin, timeoutMs: 120_000 }), 'building the example plugin');
  const pluginTarball = await pack(plugin, work);
  timings.buildAndPackPlugin = Math.round(performance.now() - t1);

  // Packages a user might have installed that are not (or not compatible) Koto plugins.
  const fake = async (name: string, source: string) => {
    const dir = path.join(work, name);
    await mkdir(dir);
    await writeFile(
      path.join(dir, 'package.json'),
      JSON.stringify({ name, version: '1.0.0', type: 'module', exports: './index.js', peerDependencies: { 'koto-voice': '*' } }),
    );
    await writeFile(path.join(dir, 'index.js'), source);
    return pack(dir, work);
  };
  const fakes = [
    await fake(
      'koto-plugin-future',
      "import { definePlugin } from 'koto-voice';\nexport default definePlugin({ name: 'koto-plugin-future', koto: '^9.0.0', apply() {} });\n",
    ),
    await fake('koto-plugin-empty', 'export const helper = () => 42;\n'),
  ];

  // 3. A fresh project installs both tarballs: the plugin's peer dependency is the Koto tarball.
  const t2 = performance.now();
  await writeFile(
    path.join(app, 'package.json'),
    JSON.stringify({ name: 'dictation-app', version: '1.0.0', private: true, type: 'module' }),
  );
  ok(
    await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', kotoTarball, pluginTarball, ...fakes], {
      cwd: app,
      timeoutMs: SETUP_TIMEOUT_MS,
    }),
    'npm install of the two tarballs',
  );
  timings.install = Math.round(performance.now() - t2);

  server = await startDeepgramServer({ apiKey: KEY });
  await writeFile(path.join(app, 'speech.wav'), toneWav({ seconds: 0.5 }));
  timings.setup = Math.round(performance.now() - t0);
}, SETUP_TIMEOUT_MS + 60_000);

afterAll(async () => {
  await server?.close();
  if (work) await rm(work, { recursive: true, force: true });
  // How long npm took, for whoever wonders why this file is slow.
  process.stderr.write(`pack-install timings (ms): ${JSON.stringify(timings)}\n`);
});

describe('a third-party plugin installed from its npm tarball', () => {
  test('the installed packages are the tarballs: the plugin declares koto-voice as a peer', async () => {
    const installed = JSON.parse(await readFile(path.join(app, 'node_modules', 'koto-plugin-deepgram', 'package.json'), 'utf8')) as {
      peerDependencies: Record<string, string>;
      files: string[];
    };
    expect(installed.peerDependencies).toEqual({ 'koto-voice': '^0.1.0' });
    expect(existsSync(path.join(app, 'node_modules', 'koto-plugin-deepgram', 'dist', 'index.js'))).toBe(true);
    expect(existsSync(path.join(app, 'node_modules', 'koto-plugin-deepgram', 'src'))).toBe(false);
    // One koto-voice in the tree: the plugin resolves the same copy the bin runs.
    expect(existsSync(path.join(app, 'node_modules', 'koto-plugin-deepgram', 'node_modules', 'koto-voice'))).toBe(false);
    expect(existsSync(path.join(app, 'node_modules', 'koto-voice', 'dist', 'src', 'testing', 'conformance.js'))).toBe(true);
  });

  test('a config naming the plugin by package name runs a session through it', async () => {
    const file = await config('koto.config.yaml', `plugins:\n  - koto-plugin-deepgram\n${providerYaml()}`);
    const before = server.requests.length;
    const result = await koto(['--config', file, '--no-daemon', 'run', 'speech.wav']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(`${DEFAULT_TRANSCRIPT}\n`);

    const listen = server.requests.slice(before).filter((r) => r.path === '/v1/listen');
    expect(listen).toHaveLength(1);
    expect(listen[0]!.headers.authorization).toBe(`Token ${KEY}`);
    expect(listen[0]!.headers['content-type']).toBe('audio/wav');
    expect(listen[0]!.protocol).toBe('h2');
    expect(Buffer.compare(listen[0]!.body, Buffer.from(toneWav({ seconds: 0.5 })))).toBe(0);
  });

  test('`koto plugins` shows it loaded from the package, with what it taps', async () => {
    const file = await config('koto.config.yaml', `plugins:\n  - koto-plugin-deepgram\n${providerYaml()}`);
    const result = await koto(['--config', file, 'plugins', '--json']);
    expect(result.code, result.stderr).toBe(0);
    const plugins = JSON.parse(result.stdout) as {
      name: string;
      version: string;
      source: string;
      specifier: string;
      capabilities: string[];
      taps: string[];
    }[];
    expect(plugins.find((p) => p.name === 'koto-plugin-deepgram')).toEqual(
      expect.objectContaining({
        version: '0.1.0',
        source: 'package',
        specifier: 'koto-plugin-deepgram',
        capabilities: ['asr'],
        taps: expect.arrayContaining(['asr:koto-plugin-deepgram', 'sessionStart', 'configChanged', 'probe:koto-plugin-deepgram']),
      }),
    );
  });

  test('a provider `use` alone is enough: the plugin is loaded without a `plugins` entry', async () => {
    const file = await config('use-only.yaml', providerYaml());
    const result = await koto(['--config', file, '--no-daemon', 'transcribe', 'speech.wav']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe(`${DEFAULT_TRANSCRIPT}\n`);
  });
});

describe('koto-voice/testing from the tarball', () => {
  test('imports without vitest (an optional peer); the conformance suite then says what to install', async () => {
    expect(existsSync(path.join(app, 'node_modules', 'vitest'))).toBe(false);
    const script = [
      "const t = await import('koto-voice/testing');",
      'const server = await t.startOpenAIServer(); await server.close();',
      'console.log(t.toneWav().length);',
      "try { t.describeProviderConformance({ plugin: { name: 'x', apply() {} }, provider: () => ({}) }); } catch (e) { console.log(e.message); }",
    ].join('\n');
    const result = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: app });
    expect(result.code, result.stderr).toBe(0);
    const [bytes, message] = result.stdout.trim().split('\n');
    expect(bytes).toBe(String(16_000 + 44));
    expect(message).toMatch(
      /^describeProviderConformance needs vitest \(an optional peer dependency of koto-voice\): npm install --save-dev vitest/,
    );
  });

  test(
    "the example's own tests pass against the installed koto-voice",
    async () => {
      // What the plugin's author runs: its test folder and sources, vitest, and the koto-voice
      // tarball (the conformance suite's `import('vitest')` resolves the project's vitest).
      const version = (JSON.parse(await readFile(path.join(ROOT, 'node_modules', 'vitest', 'package.json'), 'utf8')) as { version: string })
        .version;
      const t0 = performance.now();
      ok(
        await run(
          'npm',
          ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', '--save-dev', `vitest@${version}`],
          {
            cwd: app,
            timeoutMs: SETUP_TIMEOUT_MS,
          },
        ),
        'npm install vitest',
      );
      timings.installVitest = Math.round(performance.now() - t0);
      const example = path.join(app, 'example');
      for (const entry of ['src', 'test', 'vitest.config.ts']) {
        await cp(path.join(EXAMPLE, entry), path.join(example, entry), { recursive: true });
      }
      const reportFile = path.join(work, 'example-report.json');
      const t1 = performance.now();
      const result = await run(
        process.execPath,
        [
          path.join(app, 'node_modules', 'vitest', 'vitest.mjs'),
          'run',
          '--root',
          example,
          '--reporter=json',
          `--outputFile.json=${reportFile}`,
        ],
        {
          cwd: example,
          env: { PATH: process.env.PATH, HOME: process.env.HOME, CI: '1' },
          timeoutMs: 300_000,
        },
      );
      timings.exampleTests = Math.round(performance.now() - t1);
      expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0);
      const report = JSON.parse(await readFile(reportFile, 'utf8')) as {
        numFailedTests: number;
        numPassedTests: number;
        testResults: { assertionResults: { ancestorTitles: string[]; status: string }[] }[];
      };
      expect(report.numFailedTests).toBe(0);
      const suites = new Set(report.testResults.flatMap((file) => file.assertionResults.map((a) => a.ancestorTitles[0])));
      expect(suites).toContain('koto-plugin-deepgram: Koto provider conformance');
      expect(report.numPassedTests).toBeGreaterThanOrEqual(20);
      // npm install, then a whole vitest run of the example: minutes on a loaded 2-core machine
      // (140 s under CPU hogs). A hang guard.
    },
    SETUP_TIMEOUT_MS + 300_000,
  );
});

describe('errors a user can cause are one line naming the package (exit 3)', () => {
  test('an incompatible `koto` range', async () => {
    const file = await config('future.yaml', `plugins:\n  - koto-plugin-future\n${providerYaml()}`);
    const line = oneLine(await koto(['--config', file, 'run', 'speech.wav']));
    expect(line).toBe(
      'koto: plugin "koto-plugin-future" needs koto-voice ^9.0.0, this is 0.1.0. ' +
        'Fix: upgrade the plugin or koto-voice so the versions match. (KOTO_ERR_PLUGIN_INCOMPATIBLE)',
    );
  });

  test('a package without a plugin default export', async () => {
    const file = await config('empty.yaml', `plugins:\n  - koto-plugin-empty\n${providerYaml()}`);
    const line = oneLine(await koto(['--config', file, 'run', 'speech.wav']));
    expect(line).toMatch(/^koto: plugin "koto-plugin-empty" does not export a Koto plugin \(its default export is missing\)\. /);
    expect(line).toMatch(/export default definePlugin\(\{\.\.\.\}\)/);
    expect(line).toMatch(/\(KOTO_ERR_PLUGIN_INVALID\)$/);
  });

  test('a package that is not installed', async () => {
    const file = await config('missing.yaml', `plugins:\n  - koto-plugin-missing\n${providerYaml()}`);
    const line = oneLine(await koto(['--config', file, 'run', 'speech.wav']));
    expect(line).toMatch(/^koto: plugin "koto-plugin-missing" was not found \(tried: .*koto-plugin-missing from /);
    expect(line).toMatch(/Fix: install it with `npm install koto-plugin-missing`/);
    expect(line).toMatch(/\(KOTO_ERR_PLUGIN_NOT_FOUND\)$/);
  });

  test('a bad plugin option names the plugin and the key', async () => {
    const file = await config(
      'bad-option.yaml',
      `plugins:\n  - use: koto-plugin-deepgram\n    options:\n      prewarm: "yes"\n${providerYaml()}`,
    );
    const line = oneLine(await koto(['--config', file, 'run', 'speech.wav']));
    expect(line).toMatch(/^koto: plugin "koto-plugin-deepgram": bad option prewarm: .*\(KOTO_ERR_PLUGIN_OPTIONS\)/);
  });

  test('a bad provider option names the key (providers.<name>.<key>)', async () => {
    const yaml = providerYaml().replace('apiKey: ${DG_TEST_KEY}\n', 'apiKey: ${DG_TEST_KEY}\n    smartFormat: maybe\n');
    const file = await config('bad-provider.yaml', `plugins:\n  - koto-plugin-deepgram\n${yaml}`);
    const line = oneLine(await koto(['--config', file, 'run', 'speech.wav']));
    expect(line).toMatch(/^koto: .*bad-provider\.yaml: providers\.dg\.smartFormat: .*\(KOTO_ERR_CONFIG_INVALID\)/);
    expect(line).not.toContain(KEY);
  });
});
