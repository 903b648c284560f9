/**
 * The end of the fallback chain: no display at all and no clipboard tool. The outputs fail with
 * KOTO_ERR_OUTPUT naming what to install, never with the dictated text, and the session record
 * (what history stores) still has the text.
 */
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createKernel, definePlugin, encodeWav, KotoError, z, type Kernel, type SessionContext } from '../../src/index.ts';
import { failure, tempHome } from '../support/index.ts';

const home = tempHome('koto-outputs-');
const savedEnv = { ...process.env };
const emptyPath = mkdtempSync(path.join(os.tmpdir(), 'koto-empty-path-'));
let kernel: Kernel;

const SECRET = 'my secret dictation about the merger';

beforeAll(async () => {
  kernel = await createKernel({
    search: false,
    builtins: ['outputs'],
    plugins: [
      definePlugin({
        name: 'fake-asr',
        capabilities: ['asr'],
        provider: z.object({}),
        apply: (api) => api.hooks.asr.for('fake-asr').tapPromise('fake-asr', async () => ({ text: SECRET })),
      }),
    ],
    env: { ...process.env, KOTO_HOME: home.dir },
    config: { providers: { fake: { use: 'fake-asr' } }, asr: { provider: 'fake' } },
    logLevel: 'silent',
  });
});

beforeEach(() => {
  delete process.env.DISPLAY;
  delete process.env.WAYLAND_DISPLAY;
  delete process.env.XDG_SESSION_TYPE;
  process.env.PATH = emptyPath;
});

afterEach(() => {
  process.env = { ...savedEnv };
});

afterAll(async () => {
  await kernel.close();
  home.cleanup();
});

function call(name: string, signal = new AbortController().signal): Promise<void> {
  const session = { id: 'test-session', warnings: [], signal } as unknown as SessionContext;
  return kernel.hooks.output.get(name)!.promise({ session, name, text: SECRET, raw: SECRET, options: {}, signal, warn: () => undefined });
}

describe('no display and no clipboard tool', () => {
  for (const name of ['paste', 'type']) {
    it(`${name}: KOTO_ERR_OUTPUT naming what to install, without the text`, async () => {
      const err = await failure(call(name));
      expect(err.code).toBe('KOTO_ERR_OUTPUT');
      expect(err.plugin).toBe('outputs');
      expect(err.message).toMatch(new RegExp(`^output "${name}" failed: `));
      expect(err.message).toContain('neither DISPLAY nor WAYLAND_DISPLAY is set');
      expect(err.message).toContain('apt install xdotool xclip');
      expect(err.message).toContain('apt install wtype wl-clipboard');
      expect(err.fix).toBe('copy the text from the history: `koto history` (it is never lost)');
      expect(err.message).not.toContain('secret');
      expect(err.message.split('\n')).toHaveLength(1); // one line, no stack
    });
  }

  it('clipboard: KOTO_ERR_OUTPUT naming the missing display', async () => {
    const err = await failure(call('clipboard'));
    expect(err.code).toBe('KOTO_ERR_OUTPUT');
    expect(err.message).toContain('there is no display (neither DISPLAY nor WAYLAND_DISPLAY is set) to hold the clipboard');
    expect(err.message).not.toContain('secret');
  });

  it('through kernel.run: the session fails, its record keeps the text for history, the error (not a warning) says why, never with the text', async () => {
    const wav = { data: encodeWav(new Int16Array(1600), 16_000), name: 'speech.wav' };
    const err = await failure(kernel.run(wav, { correct: false, defaultOutputs: ['paste'] }));
    expect(err.code).toBe('KOTO_ERR_OUTPUT');
    const record = (err as KotoError & { record: { text: string; state: string; warnings: string[] } }).record;
    expect(record.state).toBe('failed');
    expect(record.text).toBe(SECRET);
    // Every output failed: the reason is the error's (a daemon client may show nothing else).
    expect(record.warnings).toEqual([]);
    expect(err.message).toContain('apt install xdotool xclip');
    expect(err.message).not.toContain('secret');
  });

  it('a display that cannot be reached (tools installed): the fix is the session environment, not an install', async () => {
    process.env.PATH = savedEnv.PATH;
    process.env.DISPLAY = ':4242'; // no X server there
    const err = await failure(call('paste'));
    expect(err.code).toBe('KOTO_ERR_OUTPUT');
    expect(err.message).toContain("Can't open display");
    expect(err.message).toContain('To fix: the display (DISPLAY=:4242) cannot be reached: run Koto inside the desktop session');
    expect(err.message).not.toContain('apt install');
    expect(err.message).not.toContain('secret');
  });

  it('shows a desktop notification (never with the text) when notify-send is there', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'koto-notify-'));
    const log = path.join(dir, 'calls');
    writeFileSync(path.join(dir, 'notify-send'), `#!/bin/sh\nprintf '%s\\n' "$*" >> '${log}'\n`);
    chmodSync(path.join(dir, 'notify-send'), 0o755);
    process.env.PATH = dir;
    await failure(call('paste'));
    const shown = readFileSync(log, 'utf8');
    expect(shown).toMatch(
      /--app-name=Koto Koto Koto could not paste or copy dictation \S+\. Its text is kept: `koto paste \S+` delivers it again\./,
    );
    expect(shown).not.toContain('secret');
  });

  it('a cancelled session stops the output with KOTO_ERR_ABORTED (no fallback, no notification)', async () => {
    const controller = new AbortController();
    controller.abort();
    const err = await failure(call('paste', controller.signal));
    expect(err.code).toBe('KOTO_ERR_ABORTED');
  });
});
