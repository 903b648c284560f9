/**
 * The clipboard restore after a paste on Wayland, for real: headless sway, foot receiving the
 * paste (Ctrl+Shift+V, its app id listed in paste.terminals), wl-clipboard on both sides. Under a
 * one-shot `koto run` (the restore must run before the process exits) and under the daemon (the
 * restore runs on its timer).
 */
import { execFile, spawn } from 'node:child_process';
import { chmodSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDaemon } from '../support/daemon.ts';
import { encodeWav } from '../../src/index.ts';
import { koto } from '../cli/support.ts';
import { startOpenAIServer, tempHome, type OpenAIServer } from '../support/index.ts';
import { startSway, type FootTerminal, type WaylandSession } from './type-wayland-session.ts';
import { eventually } from './x11.ts';

const exec = promisify(execFile);
const KEY = 'sk-restore-wayland-canary-7373';
const home = tempHome('koto-restore-wayland-');
const wav = path.join(home.dir, 'clip.wav');
const savedEnv = { ...process.env };
let server: OpenAIServer;
let session: WaylandSession;
let foot: FootTerminal;
let wayland: NodeJS.ProcessEnv;
let heard = '';

function config(name: string, extra: string[] = []): string {
  const file = path.join(home.dir, `${name}.yaml`);
  writeFileSync(
    file,
    [
      'providers:',
      `  main: { use: openai-compatible, baseUrl: ${server.baseUrl}, apiKey: ${KEY} }`,
      'asr: { model: whisper-1 }',
      'correction: { enabled: false }',
      // Restore on (the default); the delay outlasts foot reading the clipboard on a loaded machine.
      'output: [ { use: paste, terminals: [koto-foot-1], restoreDelayMs: 4000 } ]',
      `transport: { ca: ${JSON.stringify(server.ca)} }`,
      ...extra,
      '',
    ].join('\n'),
  );
  chmodSync(file, 0o600);
  return file;
}

const clipboard = async () =>
  (await exec('wl-paste', ['--no-newline'], { env: { ...process.env, ...wayland }, encoding: 'utf8', timeout: 10_000 })).stdout;
async function copyAsUser(text: string): Promise<void> {
  // No pipes: the process wl-copy forks keeps serving the selection (and would hold them open).
  const child = spawn('wl-copy', [text], { env: { ...process.env, ...wayland }, stdio: 'ignore' });
  await new Promise((resolve, reject) => child.once('exit', resolve).once('error', reject));
  await eventually(clipboard, (now) => now === text);
}

beforeAll(async () => {
  server = await startOpenAIServer({ apiKey: KEY, transcribe: () => heard });
  writeFileSync(
    wav,
    encodeWav(
      new Int16Array(16000).map((_, i) => Math.round(6000 * Math.sin(i / 7))),
      16000,
    ),
  );
  session = await startSway();
  const runtime = session.env.XDG_RUNTIME_DIR!;
  const swaysock = path.join(
    runtime,
    readdirSync(runtime).find((name) => name.startsWith('sway-ipc.') && name.endsWith('.sock'))!,
  );
  wayland = { ...session.env, SWAYSOCK: swaysock };
  foot = await session.openFoot();
});

afterAll(async () => {
  await foot?.close();
  await session?.stop();
  await server?.close();
  process.env = savedEnv;
  home.cleanup();
});

describe('restore on Wayland', () => {
  it('koto run: foot gets the dictation, and the previous clipboard is back once the run has exited', async () => {
    await copyAsUser('what the user had copied on sway');
    heard = 'pasted on sway, then restored';
    const before = foot.contents();
    const run = await koto(['--no-daemon', '-c', config('run'), 'run', wav], {
      env: { KOTO_HOME: path.join(home.dir, 'run-home'), LANG: 'C.UTF-8', ...wayland },
    });
    expect(run).toMatchObject({ code: 0, stdout: `${heard}\n`, stderr: '' });
    expect(
      await eventually(
        async () => foot.contents(),
        (now) => now === before + heard,
        30_000,
      ),
    ).toBe(before + heard);
    // Read at once after the exit: no restore can still be on its way.
    expect(await clipboard()).toBe('what the user had copied on sway');
  });

  it('the daemon: foot gets the dictation, then the previous clipboard is back', async () => {
    // The in-process daemon's outputs read the desktop from the process environment.
    delete process.env.DISPLAY;
    Object.assign(process.env, wayland);
    const env = { KOTO_HOME: path.join(home.dir, 'daemon-home') };
    const daemon = await testDaemon({
      configPath: config('daemon', ['audio: { source: tone }']),
      env: { ...process.env, ...env },
      builtins: ['openai-compatible', 'outputs', 'focus'],
    });
    try {
      await copyAsUser('copied before the hotkey on sway');
      heard = 'dictated to the daemon on sway';
      const before = foot.contents();
      expect((await koto(['start'], { env })).code).toBe(0);
      expect(await koto(['stop', '--wait'], { env })).toMatchObject({ code: 0, stdout: `${heard}\n` });
      expect(
        await eventually(
          async () => foot.contents(),
          (now) => now === before + heard,
          30_000,
        ),
      ).toBe(before + heard);
      expect(await eventually(clipboard, (t) => t === 'copied before the hotkey on sway', 30_000)).toBe('copied before the hotkey on sway');
    } finally {
      await daemon.close();
    }
  });
});
