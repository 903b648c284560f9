/**
 * The desktop outputs against the real tools under Xvfb: xclip / xsel for the clipboard,
 * xdotool for keystrokes, and real X clients (dmenu, xev) to see where the keystrokes landed.
 */
import { mkdtempSync, readFileSync, statSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createKernel, definePlugin, encodeWav, z, type Kernel, type SessionContext } from '../../src/index.ts';
import { tempHome } from '../support/index.ts';
import { copyAsUser, eventually, openInputLine, readClipboard, startXvfb, watchKeys, x, type Xvfb } from './x11.ts';

const home = tempHome('koto-outputs-');
const savedEnv = { ...process.env };
let xvfb: Xvfb;
let kernel: Kernel;
const logs: string[] = [];

/** What the fake ASR "hears" next. */
let heard = '';
const fakeAsr = definePlugin({
  name: 'fake-asr',
  capabilities: ['asr'],
  provider: z.object({}),
  apply(api) {
    api.hooks.asr.for('fake-asr').tapPromise('fake-asr', async () => ({ text: heard }));
  },
});

const TEXT = 'Grüße, naïve café — “quoted” ✓ 42';

beforeAll(async () => {
  xvfb = await startXvfb();
  process.env.DISPLAY = xvfb.display;
  delete process.env.WAYLAND_DISPLAY;
  // The CI locale: the outputs must still deliver non-ASCII text (they set a UTF-8 LC_CTYPE for their tools).
  delete process.env.LC_ALL;
  delete process.env.LC_CTYPE;
  process.env.LANG = 'C';
  kernel = await createKernel({
    search: false,
    // The focus plugin tells the paste which window it aims at (the focusedWindow hook).
    builtins: ['outputs', 'focus'],
    env: { ...process.env, KOTO_HOME: home.dir },
    config: { output: ['paste'] },
    logLevel: 'debug',
    logSink: (entry) => logs.push(`${entry.level} ${entry.message}`),
  });
});

afterEach(() => {
  process.env.PATH = savedEnv.PATH;
});

afterAll(async () => {
  await kernel?.close();
  await xvfb?.stop();
  process.env = savedEnv;
  home.cleanup();
});

/** Calls one output directly, as the kernel does; resolves with the warnings it reported. */
async function output(name: string, text: string, options: Record<string, unknown> = {}): Promise<string[]> {
  const warnings: string[] = [];
  const session = { id: 'test-session', warnings, signal: new AbortController().signal } as unknown as SessionContext;
  await kernel.hooks.output
    .get(name)!
    .promise({ session, name, text, raw: text, options, signal: new AbortController().signal, warn: (m) => void warnings.push(m) });
  return warnings;
}

/** A PATH with only the named tools of the real PATH (to take one away). */
function pathWith(...tools: string[]): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'koto-path-'));
  for (const tool of tools) {
    const real = (savedEnv.PATH ?? '')
      .split(':')
      .map((dir) => path.join(dir, tool))
      .find((file) => statSync(file, { throwIfNoEntry: false })?.isFile());
    if (real) symlinkSync(real, path.join(dir, tool));
  }
  return dir;
}

describe('clipboard output (X11)', () => {
  it('puts the text on the CLIPBOARD selection, as UTF-8', async () => {
    expect(await output('clipboard', TEXT)).toEqual([]);
    expect(await readClipboard()).toBe(TEXT);
    expect(await x('xclip', ['-out', '-selection', 'clipboard', '-target', 'TARGETS'])).toContain('UTF8_STRING');
  });

  it('works without xclip or xsel installed, through the xsel bundled with clipboardy', async () => {
    process.env.PATH = pathWith(); // nothing on PATH
    expect(await output('clipboard', `bundled ${TEXT}`)).toEqual([]);
    process.env.PATH = savedEnv.PATH;
    // Served as UTF8_STRING although the process locale is C: the tool ran with a UTF-8 LC_CTYPE.
    expect(
      await eventually(
        () => x('xclip', ['-out', '-selection', 'clipboard', '-target', 'TARGETS']),
        (t) => t.includes('UTF8_STRING'),
      ),
    ).toContain('UTF8_STRING');
    expect(await readClipboard()).toBe(`bundled ${TEXT}`);
  });

  it('restores the previous clipboard after restoreAfterMs', async () => {
    await copyAsUser('what the user had copied');
    // The dictation must still be there when read right after: 5 s is far beyond one xclip run,
    // even on a loaded machine (600 ms was not).
    await output('clipboard', 'dictation', { restoreAfterMs: 5000 });
    expect(await readClipboard()).toBe('dictation');
    expect(await eventually(readClipboard, (t) => t === 'what the user had copied', 20_000)).toBe('what the user had copied');
  });
});

describe('paste output (X11, xdotool)', () => {
  it('sets the clipboard and presses Ctrl+V in the focused window', async () => {
    const keys = await watchKeys();
    try {
      // xev sets no WM_CLASS: the paste cannot tell what it is, presses Ctrl+V and says so.
      expect(await output('paste', TEXT)).toEqual([expect.stringMatching(/^the paste could not be aimed: .* so Ctrl\+V was pressed/)]);
      expect(await readClipboard()).toBe(TEXT);
      // The window received v with the Control modifier held (state 0x4), from xdotool's keystroke.
      const events = await eventually(
        async () => keys.events(),
        (e) => /KeyRelease event/.test(e),
      );
      expect(events).toMatch(/KeyPress event[^]*?state 0x4, keycode \d+ \(keysym 0x76, v\)/);
    } finally {
      await keys.close();
    }
  });

  it('pastes for real into an application (shortcut override: dmenu pastes the clipboard on Ctrl+Shift+Y)', async () => {
    const line = await openInputLine();
    try {
      expect(await output('paste', TEXT, { shortcut: 'ctrl+shift+y' })).toEqual([]);
      expect(await line.submit()).toBe(TEXT);
    } finally {
      await line.close();
    }
  });

  it('restoreClipboard puts the previous clipboard back once the paste is done', async () => {
    await copyAsUser('previous clipboard');
    const line = await openInputLine();
    try {
      // dmenu must have fetched the pasted text before the restore: 5 s, not a race at 600 ms.
      await output('paste', 'pasted then restored', { shortcut: 'ctrl+shift+y', restoreClipboard: true, restoreDelayMs: 5000 });
      expect(await line.submit()).toBe('pasted then restored');
    } finally {
      await line.close();
    }
    expect(await eventually(readClipboard, (t) => t === 'previous clipboard', 20_000)).toBe('previous clipboard');
  });

  it('without xdotool: the text stays on the clipboard and a warning (not an error) says so', async () => {
    process.env.PATH = pathWith('xclip'); // a clipboard tool, no xdotool
    const warnings = await output('paste', TEXT);
    expect(warnings).toEqual(['paste failed (xdotool is not installed; apt install xdotool); the text is on the clipboard']);
    expect(await readClipboard()).toBe(TEXT);
  });
});

describe('type output (X11)', () => {
  // Through XTEST by default: characters missing from the keyboard layout (ü, “, ✓ on Xvfb's US
  // layout) are mapped on spare keys before the typing and kept until the application read them
  // (xdotool remapped one key per character and dropped some under load). More in type-apps.test.ts.
  it('types the text, non-ASCII included, into the focused application', async () => {
    const line = await openInputLine();
    try {
      expect(await output('type', TEXT)).toEqual([]);
      expect(await line.submit()).toBe(TEXT);
    } finally {
      await line.close();
    }
  });

  it('without xdotool: falls back to the clipboard, with a warning', async () => {
    process.env.PATH = pathWith('xclip');
    const warnings = await output('type', 'typed or copied', { x11: 'xdotool' });
    expect(warnings).toEqual(['typing failed (xdotool is not installed; apt install xdotool); the text is on the clipboard']);
    expect(await readClipboard()).toBe('typed or copied');
  });
});

describe('helper programs never hang a session', () => {
  const LONG = 'a '.repeat(150); // xdotool would need many seconds at 100 ms per key

  afterEach(async () => {
    // A killed xdotool can leave a key down in the X server.
    await x('xdotool', ['keyup', 'a', 'space']);
  });

  it('type: past timeoutMs xdotool is killed and the text falls back to the clipboard', async () => {
    const line = await openInputLine(); // receives the keystrokes
    const started = Date.now();
    try {
      const warnings = await output('type', LONG, { x11: 'xdotool', keyDelayMs: 100, timeoutMs: 400 });
      expect(warnings).toEqual(['typing failed (xdotool did not finish within 400 ms); the text is on the clipboard']);
    } finally {
      await line.close();
    }
    // Typing it all takes 30 s: half of that is a bound no loaded machine reaches when xdotool was killed.
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(await readClipboard()).toBe(LONG);
  });

  it('type: cancelling the session stops xdotool at once, with KOTO_ERR_ABORTED', async () => {
    const line = await openInputLine();
    const controller = new AbortController();
    const session = { id: 'test-session', warnings: [], signal: controller.signal } as unknown as SessionContext;
    const started = Date.now();
    setTimeout(() => controller.abort(), 300);
    try {
      const result = kernel.hooks.output.get('type')!.promise({
        session,
        name: 'type',
        text: LONG,
        raw: LONG,
        options: { x11: 'xdotool', keyDelayMs: 100 },
        signal: controller.signal,
        warn: () => undefined,
      });
      await expect(result).rejects.toMatchObject({ code: 'KOTO_ERR_ABORTED', message: 'output "type" was cancelled' });
    } finally {
      await line.close();
    }
    expect(Date.now() - started).toBeLessThan(15_000); // typing it all takes 30 s
  });
});

describe('end to end through kernel.run', () => {
  const wav = { data: encodeWav(new Int16Array(1600), 16_000), name: 'speech.wav' };

  async function runKernel(output: unknown[]): Promise<Kernel> {
    return createKernel({
      search: false,
      builtins: ['outputs', 'focus'],
      plugins: [fakeAsr],
      env: { ...process.env, KOTO_HOME: home.dir },
      config: { providers: { fake: { use: 'fake-asr' } }, asr: { provider: 'fake' }, output },
      logLevel: 'silent',
    });
  }

  it('a dictation lands in the focused application and in a file', async () => {
    const file = path.join(home.dir, 'dictations.txt');
    const k = await runKernel([
      { use: 'paste', shortcut: 'ctrl+shift+y' },
      { use: 'file', path: file },
    ]);
    const line = await openInputLine();
    try {
      heard = 'hello from the fake microphone';
      const record = await k.run(wav, { correct: false });
      expect(record.state).toBe('done');
      expect(record.warnings).toEqual([]);
      expect(await line.submit()).toBe('hello from the fake microphone');
      expect(readFileSync(file, 'utf8')).toBe('hello from the fake microphone\n');
    } finally {
      await line.close();
      await k.close();
    }
  });

  it('the daemon default (paste, no config) without xdotool: session done, warning on the record, text on the clipboard', async () => {
    const k = await runKernel([]);
    process.env.PATH = pathWith('xclip');
    try {
      heard = 'kept on the clipboard';
      const record = await k.run(wav, { correct: false, defaultOutputs: ['paste'] });
      expect(record.state).toBe('done');
      expect(record.text).toBe('kept on the clipboard');
      expect(record.warnings).toEqual(['paste failed (xdotool is not installed; apt install xdotool); the text is on the clipboard']);
      expect(await readClipboard()).toBe('kept on the clipboard');
    } finally {
      await k.close();
    }
  });
});
