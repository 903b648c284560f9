/**
 * A desktop for the paste tests: Xvfb with openbox (a real window manager: new windows get the
 * focus, _NET_ACTIVE_WINDOW names the active one), and real applications that record exactly
 * what a paste gave them:
 *
 * - xterm and rxvt-unicode running `stty raw -echo; cat >> FILE`: FILE holds the bytes the
 *   terminal wrote to its pty, untouched by the line discipline (raw: no CR→LF, no echo).
 * - a GTK 3 text view (python3-gi) that saves its whole buffer to FILE on every change. Not
 *   zenity: `zenity --text-info` prints the text only when OK is pressed, and a GTK paste is
 *   asynchronous (the text arrives after the key, when the clipboard owner has answered), so the
 *   dialog could not be closed after the paste without watching for it.
 *
 * System packages: xvfb openbox xterm rxvt-unicode python3 python3-gi gir1.2-gtk-3.0 xdotool
 * xclip x11-utils.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { eventually, startXvfb, x, type Xvfb } from './x11.ts';

const INSTALL = 'apt install xvfb openbox xterm rxvt-unicode python3-gi gir1.2-gtk-3.0 xdotool xclip x11-utils';

export interface Desktop {
  readonly display: string;
  stop(): Promise<void>;
}

interface Started {
  readonly child: ChildProcess;
  stderr(): string;
  readonly exited: Promise<void>;
}

function start(command: string, args: readonly string[], env: NodeJS.ProcessEnv): Started {
  const child = spawn(command, [...args], { stdio: ['ignore', 'ignore', 'pipe'], env });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-4000)));
  const exited = new Promise<void>((resolve, reject) => {
    child.on('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'ENOENT' ? new Error(`${command} is not installed: ${INSTALL}`) : err),
    );
    child.on('exit', () => resolve());
  });
  exited.catch(() => {});
  return { child, stderr: () => stderr, exited };
}

async function stop(started: Started): Promise<void> {
  const { child } = started;
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await started.exited.catch(() => undefined);
  clearTimeout(timer);
}

/** Polls `check` until it holds; fails with `what` (and the app's stderr) when it never does. */
async function until(what: string, check: () => Promise<boolean> | boolean, started?: Started, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (started && started.child.exitCode !== null) throw new Error(`${what}: the application exited (${started.stderr().trim()})`);
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${what}: not within ${timeoutMs / 1000} s${started ? ` (${started.stderr().trim()})` : ''}`);
}

/**
 * Xvfb and, unless `windowManager` is false, openbox. Sets process.env.DISPLAY (the outputs and
 * the x() helper read it).
 */
export async function startDesktop(options: { windowManager?: boolean } = {}): Promise<Desktop> {
  const xvfb: Xvfb = await startXvfb();
  process.env.DISPLAY = xvfb.display;
  let openbox: Started | undefined;
  try {
    if (options.windowManager !== false) {
      openbox = start('openbox', ['--sm-disable'], { ...process.env, DISPLAY: xvfb.display });
      // An EWMH window manager is up once it has set _NET_SUPPORTING_WM_CHECK on the root window.
      await until(
        'openbox managing the display',
        async () => /window id # 0x/.test(await x('xprop', ['-root', '_NET_SUPPORTING_WM_CHECK'])),
        openbox,
      );
    }
  } catch (err) {
    await xvfb.stop();
    throw err;
  }
  return {
    display: xvfb.display,
    async stop() {
      if (openbox) await stop(openbox);
      await xvfb.stop();
    },
  };
}

/** The window _NET_ACTIVE_WINDOW names (xdotool's reading of it), or undefined. */
export async function activeWindow(): Promise<number | undefined> {
  const out = (await x('xdotool', ['getactivewindow']).catch(() => '')).trim();
  return out ? Number(out) : undefined;
}

/** WM_CLASS of a window as xprop reads it: { instance, app }. */
export async function wmClassOf(window: number): Promise<{ instance: string; app: string }> {
  const out = await x('xprop', ['-id', String(window), 'WM_CLASS']);
  const [, instance = '', app = ''] = /= "([^"]*)", "([^"]*)"/.exec(out) ?? [];
  return { instance, app };
}

export interface Receiver {
  readonly kind: string;
  /** The application's top-level window that has the focus. */
  readonly window: number;
  /** Everything received so far, as bytes. */
  bytes(): Buffer;
  /** rxvt-unicode: how many pastes it has received (its confirm-paste may still hold the last one). */
  pastesSeen(): number;
  close(): Promise<void>;
}

const work = () => mkdtempSync(path.join(os.tmpdir(), 'koto-paste-app-'));

/** Waits until the application's window exists and is the active (focused) one. */
async function focusedWindowOf(started: Started, kind: string): Promise<number> {
  let window = 0;
  await until(
    `the ${kind} window getting the focus`,
    async () => {
      const windows = (await x('xdotool', ['search', '--pid', String(started.child.pid)]).catch(() => ''))
        .split('\n')
        .filter(Boolean)
        .map(Number);
      const active = await activeWindow();
      if (active === undefined || !windows.includes(active)) return false;
      window = active;
      return true;
    },
    started,
  );
  return window;
}

function readIfThere(file: string): Buffer {
  return existsSync(file) ? readFileSync(file) : Buffer.alloc(0);
}

/**
 * rxvt-unicode test extension: counts each paste urxvt receives (on_tt_paste, before its
 * confirm-paste extension asks "continue? (y/n)" for text with control characters) and lets the
 * other extensions act on it. The test presses y only after urxvt has the text: a y pressed
 * earlier would be typed into the terminal, and the paste would wait for another.
 */
const URXVT_PASTE_SEEN = `#! perl
sub on_tt_paste {
   my ($self, $str) = @_;
   if (open my $fh, '>>', $ENV{KOTO_PASTE_SEEN}) { print $fh "paste\\n"; close $fh; }
   0
}
`;

/**
 * A terminal running `stty raw -echo; cat >> FILE`. `bracketedPaste` switches the terminal's
 * bracketed-paste mode on first (what bash 5.1+, zsh and fish do at their prompt).
 */
export async function openTerminal(kind: 'xterm' | 'urxvt', options: { bracketedPaste?: boolean; title?: string } = {}): Promise<Receiver> {
  const dir = work();
  const out = path.join(dir, 'received');
  const ready = path.join(dir, 'ready');
  const seen = path.join(dir, 'seen');
  const bracket = options.bracketedPaste ? `printf '\\033[?2004h'; ` : '';
  const script = `${bracket}stty raw -echo && : > '${ready}' && exec cat >> '${out}'`;
  const env = { ...process.env, LC_ALL: 'C.UTF-8', KOTO_PASTE_SEEN: seen };
  let args: string[];
  if (kind === 'xterm') {
    args = ['-T', options.title ?? 'koto xterm', '-e', 'sh', '-c', script];
  } else {
    const lib = path.join(dir, 'perl');
    mkdirSync(lib);
    writeFileSync(path.join(lib, 'koto-paste-seen'), URXVT_PASTE_SEEN);
    // Listed before "default" (which holds confirm-paste) so it sees each paste first.
    args = [
      '-title',
      options.title ?? 'koto urxvt',
      '-perl-lib',
      lib,
      '-perl-ext-common',
      'koto-paste-seen,default',
      '-e',
      'sh',
      '-c',
      script,
    ];
  }
  const started = start(kind, args, env);
  try {
    await until(`${kind} running the recorder`, () => existsSync(ready), started);
    const window = await focusedWindowOf(started, kind);
    return {
      kind,
      window,
      bytes: () => readIfThere(out),
      pastesSeen: () => readIfThere(seen).toString().split('\n').filter(Boolean).length,
      async close() {
        await stop(started);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await stop(started);
    throw err;
  }
}

const GTK_TEXT_VIEW = `
import os, sys
import gi
from gi.repository import GLib
# Before GTK starts: the WM_CLASS ("koto-gtk-text", "Koto-gtk-text") is made from it.
GLib.set_prgname('koto-gtk-text')
gi.require_version('Gtk', '3.0')
from gi.repository import Gtk

out = sys.argv[1]

def save(buffer):
    text = buffer.get_text(buffer.get_start_iter(), buffer.get_end_iter(), True)
    with open(out + '.tmp', 'wb') as f:
        f.write(text.encode('utf-8'))
    os.replace(out + '.tmp', out)

window = Gtk.Window(title='koto GTK text ✓')
view = Gtk.TextView()
view.get_buffer().connect('changed', save)
window.add(view)
window.set_default_size(400, 300)
window.connect('destroy', Gtk.main_quit)
window.show_all()
Gtk.main()
`;

/** A GTK 3 text view (WM_CLASS "koto-gtk-text", "Koto-gtk-text") whose buffer is saved on every change (atomically). */
export async function openGtkText(): Promise<Receiver> {
  const dir = work();
  const out = path.join(dir, 'received');
  const script = path.join(dir, 'text-view.py');
  writeFileSync(script, GTK_TEXT_VIEW);
  // The system Python: python3-gi is a Debian package, not on a pyenv's or venv's path.
  const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const started = start(python, [script, out], { ...process.env, LC_ALL: 'C.UTF-8', NO_AT_BRIDGE: '1' });
  try {
    const window = await focusedWindowOf(started, 'GTK text view');
    return {
      kind: 'gtk',
      window,
      bytes: () => readIfThere(out),
      pastesSeen: () => 0,
      async close() {
        await stop(started);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await stop(started);
    throw err;
  }
}

/** Polls the receiver until what arrived after `offset` bytes equals `expected`; resolves with what arrived. */
export async function received(receiver: Receiver, offset: number, expected: Buffer, timeoutMs = 30_000): Promise<Buffer> {
  return eventually(
    async () => receiver.bytes().subarray(offset),
    (got) => got.equals(expected),
    timeoutMs,
  );
}

/**
 * Leaves the CLIPBOARD without an owner (as after a fresh login): xclip serves one request and
 * exits, and that request is ours.
 */
export async function emptyClipboard(): Promise<void> {
  await x('xclip', ['-selection', 'clipboard', '-loops', '1', '-in'], { input: 'koto-empty' });
  await eventually(
    () => x('xclip', ['-selection', 'clipboard', '-out']).catch(() => ''),
    (t) => t === 'koto-empty',
  );
  await until(
    'the clipboard without an owner',
    async () =>
      await x('xclip', ['-selection', 'clipboard', '-out']).then(
        () => false,
        () => true,
      ),
  );
}
