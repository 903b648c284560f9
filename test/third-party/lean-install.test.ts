/**
 * Lean install (issue #22): a plugin author who needs neither the microphone addon, the offline
 * engine's FFI nor the X11 client installs koto-voice with `--omit=optional`. This packs Koto,
 * installs the tarball into an empty folder that way, prints what it weighs, and checks that
 * transcription works without the native packages, and that a config needing one gets one line
 * saying which package to install (KOTO_ERR_DEPENDENCY_MISSING), never a stack trace.
 *
 * npm is slow: the set-up (pack, install from the npm cache / registry) takes a while.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ok, run, type Run } from '../support/run.ts';
import { toneWav } from '../../src/testing/fake-audio.ts';
import { startOpenAIServer, type OpenAIServer } from '../support/index.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const SETUP_TIMEOUT_MS = 150_000;
const OPTIONAL = ['@picovoice/pvrecorder-node', 'koffi', 'x11'];
/** The budget for the author's node_modules: the bytes of the files npm put there. */
const LIMIT_MB = 20;

let work: string;
let app: string;
let server: OpenAIServer;
let installStderr = '';

/** The installed `koto` bin with the pinned Node, a PATH without recorder programs, a fresh home. */
function koto(args: string[]): Promise<Run> {
  return run(process.execPath, [path.join(app, 'node_modules', '.bin', 'koto'), ...args], {
    cwd: app,
    env: { PATH: path.dirname(process.execPath), HOME: process.env.HOME, KOTO_HOME: path.join(work, 'home') },
    timeoutMs: 30_000,
  });
}

function providerYaml(): string {
  return [
    'providers:',
    '  main:',
    '    use: openai-compatible',
    `    baseUrl: ${server.baseUrl}`,
    '    apiKey: sk-lean-install-test',
    'asr:',
    '  provider: main',
    'correction:',
    '  enabled: false',
    'transport:',
    `  ca: ${JSON.stringify(server.ca)}`,
    '',
  ].join('\n');
}

/** A user-caused error: exactly one line naming the code, no stack; exit 3 (1 for a batch whose input failed). */
function oneLine(result: Run, code = 3): string {
  expect(result.code, result.stderr).toBe(code);
  const lines = result.stderr.trimEnd().split('\n');
  expect(lines, result.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^koto: .*\(KOTO_ERR_DEPENDENCY_MISSING\)/);
  expect(result.stderr).not.toMatch(/\n\s+at /);
  return lines[0]!;
}

async function sizeOf(dir: string): Promise<{ files: number; disk: number }> {
  // `du -sb`: the bytes of the files; `du -sk`: what they take on this file system (blocks).
  const bytes = ok(await run('du', ['-sb', dir], { cwd: work }), 'du -sb');
  const blocks = ok(await run('du', ['-sk', dir], { cwd: work }), 'du -sk');
  return { files: Number(bytes.stdout.split(/\s/)[0]), disk: Number(blocks.stdout.split(/\s/)[0]) * 1024 };
}

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'koto-lean-install-'));
  app = path.join(work, 'app');
  await mkdir(app);
  if (!existsSync(path.join(ROOT, 'dist', 'src', 'cli', 'main.js'))) {
    await run(process.execPath, [TSC, '-p', 'tsconfig.build.json'], { cwd: ROOT, timeoutMs: 120_000 });
  }
  const packed = ok(await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: ROOT }), 'npm pack');
  const [info] = JSON.parse(packed.stdout) as { filename: string }[];
  await writeFile(path.join(app, 'package.json'), JSON.stringify({ name: 'lean-author', version: '1.0.0', private: true, type: 'module' }));
  const installed = ok(
    await run('npm', ['install', '--omit=optional', '--no-audit', '--no-fund', '--prefer-offline', path.join(work, info!.filename)], {
      cwd: app,
      timeoutMs: SETUP_TIMEOUT_MS,
    }),
    'npm install --omit=optional',
  );
  installStderr = installed.stderr;
  server = await startOpenAIServer({ transcribe: () => 'lean and quick' });
  await writeFile(path.join(app, 'speech.wav'), toneWav({ seconds: 0.5 }));
}, SETUP_TIMEOUT_MS + 60_000);

afterAll(async () => {
  await server?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('npm install koto-voice --omit=optional', () => {
  test(`leaves the native and X11 packages out and weighs under ${LIMIT_MB} MB`, async () => {
    for (const pkg of OPTIONAL) expect(existsSync(path.join(app, 'node_modules', pkg)), pkg).toBe(false);
    const size = await sizeOf(path.join(app, 'node_modules'));
    const mb = (n: number) => (n / 1048576).toFixed(1);
    process.stderr.write(
      `lean install: node_modules holds ${mb(size.files)} MB of files (${mb(size.disk)} MB on disk with this file system's blocks)\n`,
    );
    expect(size.files / 1048576).toBeLessThan(LIMIT_MB);
    // No package left with an install script npm would warn about (koffi's is the only one Koto had).
    expect(installStderr).not.toMatch(/koffi|pvrecorder/);
  });

  test('the Node API transcribes against a loopback server without them', async () => {
    const script = `
      const { createKernel } = await import('koto-voice');
      const kernel = await createKernel({ search: false, env: { KOTO_HOME: ${JSON.stringify(path.join(work, 'api-home'))} }, logLevel: 'error', config: {
        providers: { main: { use: 'openai-compatible', baseUrl: ${JSON.stringify(server.baseUrl)}, apiKey: 'sk-lean-install-test' } },
        transport: { ca: ${JSON.stringify(server.ca)} },
      } });
      const result = await kernel.transcribe({ path: 'speech.wav' });
      console.log(result.text);
      await kernel.close();
    `;
    const result = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: app });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe('lean and quick\n');
  });

  test('the installed koto bin transcribes too', async () => {
    await writeFile(path.join(app, 'koto.yaml'), providerYaml());
    const result = await koto(['--config', 'koto.yaml', '--no-daemon', 'transcribe', 'speech.wav']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('lean and quick\n');
  });

  test('a config that asks for the pvrecorder microphone backend: one line naming the package to install', async () => {
    await writeFile(path.join(app, 'mic.yaml'), `${providerYaml()}pluginOptions:\n  mic-native:\n    backend: pvrecorder\n`);
    const line = oneLine(await koto(['--config', 'mic.yaml', 'devices']));
    expect(line).toContain('the package @picovoice/pvrecorder-node, which is not installed');
    expect(line).toContain('`npm install @picovoice/pvrecorder-node@^1.2.9`');
    expect(line).toContain('`auto`');
  });

  test('the in-process offline engine: one line naming koffi', async () => {
    // Empty model files: the engine is chosen before the model is read.
    const model = path.join(work, 'model');
    await mkdir(path.join(model, 'en-us'), { recursive: true });
    for (const file of ['en-us/mdef', 'en-us.lm.bin', 'cmudict-en-us.dict']) await writeFile(path.join(model, file), '');
    await writeFile(
      path.join(app, 'offline.yaml'),
      `providers:\n  off:\n    use: pocketsphinx\n    engine: library\n    model: ${JSON.stringify(model)}\nasr:\n  provider: off\ncorrection:\n  enabled: false\n`,
    );
    const line = oneLine(await koto(['--config', 'offline.yaml', '--no-daemon', 'transcribe', 'speech.wav']), 1);
    expect(line).toContain('the package koffi, which is not installed');
    expect(line).toMatch(/`npm install koffi@\^3\.\d+\.\d+`/);
    expect(line).toContain('`engine: auto`');
  });

  test('a daemon whose hotkey needs the X11 client: the hotkey reports which package to install, the daemon serves', async () => {
    await writeFile(
      path.join(app, 'hotkey.yaml'),
      `${providerYaml()}hotkey:\n  keys: ctrl+alt+k\n  backend: x11\ndaemon:\n  ui:\n    enabled: false\n`,
    );
    const env = { PATH: path.dirname(process.execPath), HOME: process.env.HOME, KOTO_HOME: path.join(work, 'daemon-home'), DISPLAY: ':97' };
    const daemon = spawn(process.execPath, [path.join(app, 'node_modules', '.bin', 'koto'), '--config', 'hotkey.yaml', 'daemon'], {
      cwd: app,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => daemon.on('close', resolve));
    let log = '';
    try {
      await new Promise<void>((resolve, reject) => {
        // A hang guard only: the line comes as soon as the daemon has started.
        const timer = setTimeout(() => reject(new Error(`no hotkey error within 60 s:\n${log}`)), 60_000);
        const onData = (chunk: Buffer) => {
          log += chunk.toString();
          if (/hotkey .* is not active/.test(log) && /daemon listening/.test(log)) {
            clearTimeout(timer);
            resolve();
          }
        };
        daemon.stdout.on('data', onData);
        daemon.stderr.on('data', onData);
        daemon.once('close', (code) => reject(new Error(`the daemon exited (${code}):\n${log}`)));
      });
      expect(log).toContain('(KOTO_ERR_DEPENDENCY_MISSING)');
      const status = await run(process.execPath, [path.join(app, 'node_modules', '.bin', 'koto'), 'status', '--json'], { cwd: app, env });
      expect(status.code, status.stderr).toBe(0);
      const hotkey = (JSON.parse(status.stdout) as { plugins: Record<string, { active: boolean; code: string; fix: string }> }).plugins
        .hotkey;
      expect(hotkey).toMatchObject({ active: false, code: 'KOTO_ERR_DEPENDENCY_MISSING' });
      expect(hotkey?.fix).toMatch(/`npm install x11@\^\d/);
      expect(hotkey?.fix).toContain('hotkey.backend: evdev');
    } finally {
      daemon.kill('SIGTERM');
      await exited;
    }
  });

  test('the package.json it installed declares them optional, with the ranges the fixes name', async () => {
    const manifest = JSON.parse(await readFile(path.join(app, 'node_modules', 'koto-voice', 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
      optionalDependencies: Record<string, string>;
    };
    expect(Object.keys(manifest.optionalDependencies).sort()).toEqual([...OPTIONAL].sort());
    for (const pkg of OPTIONAL) expect(manifest.dependencies[pkg]).toBeUndefined();
  });
});
