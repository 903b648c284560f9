/**
 * The hotkey loop end to end (issue #16), as a user lives it: a real `koto daemon` under Xvfb
 * grabbing its hotkey through the X server, `xdotool keydown` / `keyup` (XTEST, through the server
 * like a real keyboard), the virtual microphone (test/support/virtual-mic.sh), the offline engine
 * (pocketsphinx, no provider configured) and a file output.
 *
 * The speech starts at the very instant of the key press (leading silence trimmed off): with
 * `audio.preRollMs` the first word must come back. Cut by 150 ms, the same clip comes back as
 * "The knuckles and nine oranges", so a clipped start cannot pass.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseKeyCombo } from '../../src/index.ts';
import { koto } from '../cli/support.ts';
import { playIntoMic, startVirtualMic } from '../support/virtual-mic.ts';
import { startXvfb, x, type Xvfb } from '../outputs/x11.ts';
import { tempHome } from '../support/index.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = path.join(ROOT, 'bin', 'koto.js');

const home = tempHome('koto-hotkey-e2e-');
const out = path.join(home.dir, 'dictations.txt');
const configFile = path.join(home.dir, 'config.yaml');
let pulse: Record<string, string> = {};
let env: NodeJS.ProcessEnv;
let xvfb: Xvfb;
let daemon: ChildProcess | undefined;
let daemonLog = '';
let speech: string;

const play = (file: string) => playIntoMic(file, pulse);

function writeConfig(hotkey: string): void {
  writeFileSync(
    configFile,
    [
      // No provider: the offline default (pocketsphinx + the local corrector).
      'audio: { source: mic-native, preRollMs: 700 }',
      hotkey,
      'output:',
      `  - { use: file, path: ${out} }`,
      '',
    ].join('\n'),
  );
}

interface Status {
  state: string;
  plugins: { hotkey?: { keys: string; mode: string; backend: string; active: boolean; error?: string }; 'mic-native'?: { open: boolean } };
  audio: { lastStart?: { id: string; source: string; keyToAudioMs?: number } };
}

async function status(): Promise<Status> {
  const result = await koto(['status', '--json'], { env });
  if (result.code !== 0) throw new Error(`koto status: ${result.stderr}`);
  return JSON.parse(result.stdout) as Status;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; daemon log:\n${daemonLog}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const lines = () => (existsSync(out) ? readFileSync(out, 'utf8').split('\n').filter(Boolean) : []);

async function nextDictation(before: number): Promise<string> {
  return until('the dictation in the output file', async () => {
    const now = lines();
    return now.length > before ? now[before] : undefined;
  });
}

beforeAll(async () => {
  pulse = startVirtualMic();
  xvfb = await startXvfb();
  // The test's own X tools (xdotool, xset through `x()`) talk to this display.
  process.env.DISPLAY = xvfb.display;
  // Speech from its first sample: flite's leading silence trimmed off.
  const raw = path.join(home.dir, 'raw.wav');
  speech = path.join(home.dir, 'speech.wav');
  execFileSync('flite', ['-voice', 'awb', '-t', 'seven apples and nine oranges', '-o', raw]);
  execFileSync('sox', [raw, speech, 'silence', '1', '0.005', '0.5%']);
  writeConfig('hotkey: { keys: ctrl+alt+space, mode: hold, backend: x11 }');
  env = { KOTO_HOME: home.dir, DISPLAY: xvfb.display, ...pulse };
  // Auto-repeat on and fast: a held key produces repeat events while the phrase plays.
  await x('xset', ['r', 'on'], {});
  await x('xset', ['r', 'rate', '200', '30'], {});
  daemon = spawn(process.execPath, [BIN, 'daemon'], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  daemon.stdout!.on('data', (d: Buffer) => (daemonLog += d.toString()));
  daemon.stderr!.on('data', (d: Buffer) => (daemonLog += d.toString()));
  await until('the daemon to grab its hotkey and open the microphone', async () => {
    const s = await status().catch(() => undefined);
    return s?.plugins.hotkey?.active && s.plugins['mic-native']?.open ? s : undefined;
  });
});

afterAll(async () => {
  if (daemon && daemon.exitCode === null) {
    const exited = new Promise((r) => daemon!.once('exit', r));
    daemon.kill('SIGTERM');
    await exited;
  }
  await xvfb?.stop();
  home.cleanup();
});

describe('the built-in hotkey with the virtual microphone', () => {
  it('hold: speech that starts at key-down comes back whole; auto-repeat does not end the recording', async () => {
    const s = await status();
    expect(s.plugins.hotkey).toMatchObject({ keys: 'ctrl+alt+space', mode: 'hold', backend: 'x11', active: true });
    const before = lines().length;
    // Key press and speech at the same instant (XTEST keydown through the X server).
    await Promise.all([x('xdotool', ['keydown', 'ctrl+alt+space'], {}), play(speech)]);
    // Held through the whole phrase (auto-repeat fires meanwhile): still one recording.
    const held = await status();
    expect(held.state).toBe('recording');
    expect(held.audio.lastStart).toMatchObject({ source: 'hotkey' });
    // The recording holds audio from before the key press (the pre-roll).
    expect(held.audio.lastStart!.keyToAudioMs!).toBeLessThanOrEqual(0);
    await x('xdotool', ['keyup', 'ctrl+alt+space'], {});
    const text = await nextDictation(before);
    expect(text.toLowerCase()).toMatch(/^seven apples and nine oranges/);
    // Exactly one session for the whole hold.
    await until('idle', async () => ((await status()).state === 'idle' ? true : undefined));
    expect(lines().length).toBe(before + 1);
  });

  it('the fast `koto start` at the same instant as the speech: the first word is there too', async () => {
    const before = lines().length;
    const [start] = await Promise.all([koto(['start'], { env }), play(speech)]);
    expect(start.code).toBe(0);
    const stop = await koto(['stop', '--wait'], { env, timeoutMs: 90_000 });
    expect(stop.code).toBe(0);
    expect(stop.stdout.toLowerCase()).toMatch(/^seven apples and nine oranges/);
    expect((await nextDictation(before)).toLowerCase()).toMatch(/^seven apples/);
  });

  it('a changed combination and mode in the config are re-grabbed without a restart (toggle mode)', async () => {
    writeConfig('hotkey: { keys: super+f9, mode: toggle, backend: x11 }');
    await until('the new combination', async () => {
      const h = (await status()).plugins.hotkey;
      return h?.keys === 'super+f9' && h.mode === 'toggle' && h.active ? h : undefined;
    });
    // The old combination is released: pressing it starts nothing.
    await x('xdotool', ['key', 'ctrl+alt+space'], {});
    await x('xdotool', ['key', 'ctrl+alt+space'], {});
    expect((await status()).state).toBe('idle');
    const before = lines().length;
    // Toggle: press and release starts; the recording goes on after the release.
    await Promise.all([x('xdotool', ['key', 'super+F9'], {}), play(speech)]);
    expect((await status()).state).toBe('recording');
    await x('xdotool', ['key', 'super+F9'], {});
    const text = await nextDictation(before);
    expect(text.toLowerCase()).toMatch(/^seven apples and nine oranges/);
  });

  it('a combination another X client holds: the daemon says which, and the socket still works', async () => {
    // Another X client (this test process, through the same backend code) holds the combination.
    const { openX11 } = await import('../../plugins/hotkey/x11.ts');
    const parsed = parseKeyCombo('ctrl+shift+f10');
    if (!parsed.ok) throw new Error(parsed.problem);
    const quiet = { debug: () => undefined, info: () => undefined, warn: () => undefined };
    const other = await openX11(parsed.combo, () => undefined, { env: { DISPLAY: xvfb.display }, log: quiet, onError: () => undefined });
    const release = () => other.close();
    try {
      writeConfig('hotkey: { keys: ctrl+shift+f10, mode: hold, backend: x11 }');
      const h = await until('the grab to be refused', async () => {
        const hotkey = (await status()).plugins.hotkey;
        return hotkey?.keys === 'ctrl+shift+f10' && hotkey.active === false ? hotkey : undefined;
      });
      expect(h.error).toContain('ctrl+shift+f10');
      const plain = await koto(['status'], { env });
      expect(plain.stdout).toMatch(/hotkey ctrl\+shift\+f10 not active: .*HOTKEY_ERR_TAKEN/);
      expect(daemonLog).toMatch(/HOTKEY_ERR_TAKEN/);
    } finally {
      await release();
    }
  });
});
