/**
 * The paste output against real applications (issue #23, "the last mile"): Xvfb with openbox,
 * xterm, rxvt-unicode and a GTK text view, each receiving through `paste` with default options,
 * checked byte for byte in what the application wrote. See paste-desktop.ts for the receivers.
 *
 * What a terminal does with a paste (asserted below, as measured with xterm 379 and
 * rxvt-unicode 9.30):
 * - Ctrl+V reaches the program as the byte 0x16 (^V): nothing is pasted. Terminals paste with
 *   Shift+Insert (PRIMARY) or Ctrl+Shift+V, which Koto picks from the focused window's class.
 * - A line break is sent as CR (the Enter key), the way a typed line ends; the program's tty
 *   settings decide what it becomes (cooked mode's icrnl turns it into LF; raw mode keeps CR).
 *   Tabs pass unchanged.
 * - With bracketed-paste mode on (a shell prompt: bash 5.1+, zsh, fish) the paste is wrapped in
 *   ESC[200~ … ESC[201~, so the shell inserts the lines instead of running each one.
 * - rxvt-unicode asks "Pasting N control characters, continue? (y/n)" for a paste holding a tab or
 *   a line break (its confirm-paste extension, on by default): the text arrives after y.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKernel, type Kernel, type SessionContext } from '../../src/index.ts';
import { detectFocusedWindow } from '../../plugins/focus/detect.ts';
import { pasteOptions, pasteTarget } from '../../plugins/outputs/paste.ts';
import { tempHome } from '../support/index.ts';
import {
  emptyClipboard,
  openGtkText,
  openTerminal,
  received,
  startDesktop,
  wmClassOf,
  type Desktop,
  type Receiver,
} from './paste-desktop.ts';
import { copyAsUser, eventually, readClipboard, startXvfb, x, type Xvfb } from './x11.ts';

const home = tempHome('koto-paste-apps-');
const savedEnv = { ...process.env };

/** The focus plugin's lookup, as the kernel's `focusedWindow` hook runs it. */
const focusedWindow = (env: NodeJS.ProcessEnv = process.env, signal = AbortSignal.timeout(10_000)) => detectFocusedWindow(env, signal);

const LONG = [...'Koto dictation, ünïcödé — 42. '.repeat(80)].slice(0, 2000).join('');
const TEXTS: ReadonlyArray<readonly [string, string]> = [
  ['a plain sentence', 'Hello from Koto, this is a plain sentence.'],
  ['accents, a dash, CJK and an emoji', 'café — naïve 日本語 😀'],
  ['quotes, backslashes and shell syntax', `"double" 'single' back\\slash \\n $(echo nope) \`id\` $HOME; echo !! && rm -rf ~`],
  ['line breaks and a tab', 'first line\nsecond\tcolumn\nthird line'],
  ['2,000 characters', LONG],
];
const hasControl = (text: string) => /[\x00-\x1f]/.test(text);
/** What a terminal writes to its pty for a pasted text (see the header). */
const asTerminalSends = (text: string) => Buffer.from(text.replace(/\n/g, '\r'), 'utf8');

beforeAll(() => {
  expect([...LONG]).toHaveLength(2000);
  delete process.env.WAYLAND_DISPLAY;
  // The CI locale: Koto's tools must still deliver non-ASCII text (the applications run in C.UTF-8).
  delete process.env.LC_ALL;
  delete process.env.LC_CTYPE;
  process.env.LANG = 'C';
});

afterAll(() => {
  process.env = savedEnv;
  home.cleanup();
});

interface Outputs {
  kernel: Kernel;
  logs: string[];
  paste(text: string, options?: Record<string, unknown>): Promise<string[]>;
}

async function outputs(): Promise<Outputs> {
  const logs: string[] = [];
  const kernel = await createKernel({
    search: false,
    builtins: ['outputs', 'focus'],
    env: { ...process.env, KOTO_HOME: home.dir },
    config: { output: ['paste'] },
    logLevel: 'debug',
    logSink: (entry) => logs.push(`${entry.level} ${entry.message}`),
  });
  return {
    kernel,
    logs,
    /** Calls the paste output as the kernel does; resolves with the warnings it reported. */
    async paste(text, options = {}) {
      const warnings: string[] = [];
      const signal = new AbortController().signal;
      const session = { id: 'paste-apps', warnings, signal } as unknown as SessionContext;
      await kernel.hooks.output
        .get('paste')!
        .promise({ session, name: 'paste', text, raw: text, options, signal, warn: (m) => void warnings.push(m) });
      return warnings;
    },
  };
}

/** Pastes `text` into `receiver` and resolves with the bytes it received. */
async function pasteInto(
  out: Outputs,
  receiver: Receiver,
  text: string,
  expected: Buffer,
  options: Record<string, unknown> = {},
): Promise<{ warnings: string[]; got: Buffer }> {
  const offset = receiver.bytes().length;
  const seen = receiver.pastesSeen();
  const warnings = await out.paste(text, options);
  if (receiver.kind === 'urxvt' && hasControl(text)) {
    // The user answers urxvt's confirm-paste, once urxvt has the text (a y before would be typed).
    await eventually(
      async () => receiver.pastesSeen(),
      (n) => n > seen,
      30_000,
    );
    await x('xdotool', ['key', 'y']);
  }
  return { warnings, got: await received(receiver, offset, expected) };
}

describe('with a window manager (openbox)', () => {
  let desktop: Desktop;

  beforeAll(async () => {
    desktop = await startDesktop();
  });

  afterAll(async () => {
    await desktop?.stop();
  });

  const apps = [
    {
      kind: 'xterm',
      open: () => openTerminal('xterm'),
      app: 'XTerm',
      instance: 'xterm',
      title: 'koto xterm',
      key: 'Shift+Insert',
      expect: asTerminalSends,
    },
    {
      kind: 'urxvt',
      open: () => openTerminal('urxvt'),
      app: 'URxvt',
      instance: 'urxvt',
      title: 'koto urxvt',
      key: 'Shift+Insert',
      expect: asTerminalSends,
    },
    {
      kind: 'gtk',
      open: openGtkText,
      app: 'Koto-gtk-text',
      instance: 'koto-gtk-text',
      title: 'koto GTK text ✓',
      key: 'Ctrl+V',
      expect: (t: string) => Buffer.from(t, 'utf8'),
    },
  ] as const;

  describe.each(apps)('$kind, default options', (app) => {
    let receiver: Receiver;
    let out: Outputs;

    beforeAll(async () => {
      out = await outputs();
      receiver = await app.open();
    });

    afterAll(async () => {
      await receiver?.close();
      await out?.kernel.close();
    });

    it('is identified as the focused window (class, instance, title), as xprop reads it', async () => {
      const found = await focusedWindow();
      expect(found).toMatchObject({
        app: app.app,
        instance: app.instance,
        title: app.title,
        id: `0x${receiver.window.toString(16)}`,
        desktop: 'x11',
      });
      // _NET_WM_PID, as xdotool reads it (when the application sets it).
      const pid = await x('xdotool', ['getwindowpid', String(receiver.window)]).then(
        (out) => Number(out.trim()),
        () => undefined,
      );
      expect(found?.pid).toBe(pid);
      // The same through the kernel's hook, which is what the paste output asks.
      expect(await out.kernel.focusedWindow()).toEqual(found);
      expect(await wmClassOf(receiver.window)).toEqual({ app: app.app, instance: app.instance });
    });

    it.each(TEXTS)('%s arrives exactly', async (_, text) => {
      // GTK pastes the CLIPBOARD: with no previous clipboard there is nothing to restore, so the
      // restore (1 s after the key) cannot race a GTK slowed down by a loaded machine.
      if (app.kind === 'gtk') await emptyClipboard();
      out.logs.length = 0;
      const expected = app.expect(text);
      const { warnings, got } = await pasteInto(out, receiver, text, expected);
      expect(warnings).toEqual([]);
      expect(got.toString('hex')).toBe(expected.toString('hex'));
      expect(out.logs.join('\n')).toContain(`paste: the focused window is ${app.app} (${app.instance}) (x11); ${app.key}`);
      // Both selections hold the text (Shift+Insert and a middle click paste PRIMARY).
      expect(await x('xclip', ['-selection', 'primary', '-out'])).toBe(text);
    });
  });

  describe.each(['xterm', 'urxvt'] as const)('%s with bracketed paste on (a shell prompt)', (kind) => {
    let receiver: Receiver;
    let out: Outputs;

    beforeAll(async () => {
      out = await outputs();
      receiver = await openTerminal(kind, { bracketedPaste: true });
    });

    afterAll(async () => {
      await receiver?.close();
      await out?.kernel.close();
    });

    it('lines arrive wrapped in ESC[200~ … ESC[201~, so a shell inserts them instead of running them', async () => {
      const text = 'echo one\necho two';
      const expected = Buffer.concat([Buffer.from('\x1b[200~'), asTerminalSends(text), Buffer.from('\x1b[201~')]);
      const { warnings, got } = await pasteInto(out, receiver, text, expected);
      expect(warnings).toEqual([]);
      expect(got.toString('hex')).toBe(expected.toString('hex'));
    });
  });

  describe('precedence', () => {
    let receiver: Receiver;
    let out: Outputs;

    beforeAll(async () => {
      out = await outputs();
      receiver = await openTerminal('xterm');
    });

    afterAll(async () => {
      await receiver?.close();
      await out?.kernel.close();
    });

    it('paste.shortcut (the key for other applications) does not reach a terminal', async () => {
      const { got } = await pasteInto(out, receiver, 'still Shift+Insert', asTerminalSends('still Shift+Insert'), { shortcut: 'ctrl+v' });
      expect(got.toString()).toBe('still Shift+Insert');
    });

    it('paste.shortcuts wins over the terminal list, matched on the instance in any case: Ctrl+V in xterm is a literal ^V (the bug of #23)', async () => {
      const offset = receiver.bytes().length;
      expect(await out.paste('never pasted', { shortcuts: { XTERM: 'ctrl+v' } })).toEqual([]);
      expect((await received(receiver, offset, Buffer.from([0x16]))).toString('hex')).toBe('16');
    });
  });

  describe('nothing has the focus', () => {
    it('Ctrl+V is pressed, a warning says the paste could not be aimed, and the text stays on the clipboard (not restored)', async () => {
      // Every window of the tests above is closed. openbox leaves _NET_ACTIVE_WINDOW naming the
      // last one, which no longer exists: the server's input focus is asked instead.
      expect(await focusedWindow()).toBeUndefined();
      await copyAsUser('what the user had copied');
      const out = await outputs();
      let warnings: string[];
      try {
        warnings = await out.paste('unaimed dictation');
      } finally {
        // close waits for every pending restore: none may put the user's text back over this one.
        await out.kernel.close();
      }
      expect(warnings).toEqual([
        `the paste could not be aimed: no focused window was found on display ${process.env.DISPLAY}, so Ctrl+V was pressed without knowing where; the text stays on the clipboard (in a terminal, paste it with Ctrl+Shift+V, or Shift+Insert in xterm and rxvt)`,
      ]);
      expect(await readClipboard()).toBe('unaimed dictation');
    });
  });
});

describe('without a window manager', () => {
  let xvfb: Xvfb;
  let xterm: ChildProcess | undefined;

  beforeAll(async () => {
    xvfb = await startXvfb();
    process.env.DISPLAY = xvfb.display;
  });

  afterAll(async () => {
    xterm?.kill('SIGKILL');
    await xvfb?.stop();
  });

  it('the focus follows the pointer (PointerRoot): the window under it is found', async () => {
    expect(await focusedWindow()).toBeUndefined(); // the pointer is over the bare root window
    xterm = spawn('xterm', ['-geometry', '80x24+0+0', '-T', 'no wm'], { stdio: 'ignore', env: { ...process.env, LC_ALL: 'C.UTF-8' } });
    await x('xdotool', ['search', '--sync', '--onlyvisible', '--class', 'XTerm'], { timeout: 30_000 });
    await x('xdotool', ['mousemove', '100', '100']);
    const found = await eventually(
      () => focusedWindow(),
      (w) => w !== undefined,
      30_000,
    );
    expect(found).toMatchObject({ app: 'XTerm', instance: 'xterm', title: 'no wm', desktop: 'x11' });
    expect(found?.id).toMatch(/^0x[0-9a-f]+$/);
  });

  it('an unreachable display or a display it cannot parse: undefined, not an error', async () => {
    expect(await focusedWindow({ DISPLAY: ':4242' })).toBeUndefined();
    expect(await focusedWindow({ DISPLAY: 'not a display' })).toBeUndefined();
    expect(await focusedWindow({})).toBeUndefined();
  });

  it('a cancelled session: undefined at once', async () => {
    const controller = new AbortController();
    controller.abort();
    expect(await focusedWindow(process.env, controller.signal)).toBeUndefined();
  });
});

describe('which key (pasteTarget)', () => {
  const options = (extra: Record<string, unknown> = {}) => pasteOptions.parse(extra);
  const window = (app: string, instance?: string) => ({ app, instance, title: '', desktop: 'x11' });

  it('terminals without a clipboard key get Shift+Insert; others Ctrl+Shift+V; other applications Ctrl+V', () => {
    expect(pasteTarget(window('XTerm', 'xterm'), options(), 'x11').shortcut).toBe('shift+insert');
    expect(pasteTarget(window('URxvt', 'urxvt'), options(), 'x11').shortcut).toBe('shift+insert');
    expect(pasteTarget(window('st-256color', 'st-256color'), options(), 'x11').shortcut).toBe('shift+insert');
    expect(pasteTarget(window('Gnome-terminal', 'gnome-terminal-server'), options(), 'x11').shortcut).toBe('ctrl+shift+v');
    expect(pasteTarget(window('foot'), options(), 'wayland').shortcut).toBe('ctrl+shift+v');
    expect(pasteTarget(window('org.wezfurlong.wezterm'), options(), 'wayland').shortcut).toBe('ctrl+shift+v');
    expect(pasteTarget(window('firefox', 'Navigator'), options(), 'x11').shortcut).toBe('ctrl+v');
    expect(pasteTarget(undefined, options(), 'x11').shortcut).toBe('ctrl+v');
    expect(pasteTarget(undefined, options(), 'macos').shortcut).toBe('cmd+v');
  });

  it('precedence: paste.shortcuts, then the terminal list (+ paste.terminals), then paste.shortcut, then the default', () => {
    const o = options({ shortcut: 'ctrl+alt+v', terminals: ['MyTerm'], shortcuts: { Emacs: 'ctrl+y', xterm: 'ctrl+shift+v' } });
    expect(pasteTarget(window('Emacs', 'emacs'), o, 'x11')).toEqual({ shortcut: 'ctrl+y', because: 'paste.shortcuts["Emacs"]' });
    expect(pasteTarget(window('XTerm', 'xterm'), o, 'x11')).toEqual({ shortcut: 'ctrl+shift+v', because: 'paste.shortcuts["xterm"]' });
    expect(pasteTarget(window('myterm'), o, 'x11')).toEqual({ shortcut: 'ctrl+shift+v', because: 'myterm is a terminal' });
    expect(pasteTarget(window('URxvt'), o, 'x11')).toEqual({ shortcut: 'shift+insert', because: 'URxvt is a terminal' });
    expect(pasteTarget(window('Gedit'), o, 'x11')).toEqual({ shortcut: 'ctrl+alt+v', because: 'paste.shortcut' });
    expect(pasteTarget(undefined, o, 'x11')).toEqual({ shortcut: 'ctrl+alt+v', because: 'paste.shortcut' });
  });

  it('the defaults: restore on, no extra terminals or per-application keys', () => {
    expect(options()).toMatchObject({ restoreClipboard: true, restoreDelayMs: 1000, terminals: [], shortcuts: {} });
  });
});

describe('configuration errors', () => {
  it.each([
    [{ shortcuts: { xterm: 'ctrl+banana' } }, 'shortcuts.xterm'],
    [{ shortcuts: { XTerm: 'ctrl+v', xterm: 'shift+insert' } }, 'each application may appear once'],
    [{ terminals: [''] }, 'terminals'],
  ])('%j is refused when the config is loaded, with KOTO_ERR_CONFIG_INVALID naming the key', async (paste, named) => {
    const err = await createKernel({
      search: false,
      builtins: ['outputs'],
      env: { KOTO_HOME: home.dir },
      config: { output: [{ use: 'paste', ...paste }] },
      logLevel: 'silent',
    }).then(
      () => undefined,
      (e: unknown) => e as { code: string; message: string },
    );
    expect(err?.code).toBe('KOTO_ERR_CONFIG_INVALID');
    expect(err?.message).toContain(named);
  });
});
