/**
 * Real X11 applications that receive typed text and show exactly what they got, under Xvfb with
 * a real window manager (openbox: real focus, as on a desktop):
 *
 * - xterm and rxvt-unicode running `stty raw -echo; cat > file`: the bytes the terminal sent to
 *   its program, untranslated (Return arrives as CR, as when a person presses Enter).
 * - a GTK 3 text view (type-gtk-receiver.py) that writes its whole text to a file on every change.
 *
 * Readiness is never a guess at speed: a window is used once the server's input focus is on it
 * (keys go where the focus is, and the application reads its FocusIn before any key), and a
 * terminal once its program created the file (after stty).
 * System packages: xvfb xdotool openbox xterm rxvt-unicode python3-gi gir1.2-gtk-3.0 x11-utils x11-xserver-utils.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { startXvfb, x, type Xvfb } from './x11.ts';

/** Far beyond what any step takes even on an overloaded machine; only a broken setup reaches it. */
const DEADLINE_MS = 60_000;

export const X11_RECEIVER_PACKAGES = 'xvfb xdotool openbox xterm rxvt-unicode python3-gi gir1.2-gtk-3.0 x11-utils x11-xserver-utils';

let counter = 0;
const uniqueName = (kind: string) => `koto-${kind}-${process.pid}-${(counter += 1)}`;

export async function until<T>(what: string, read: () => Promise<T | undefined> | T | undefined, deadlineMs = DEADLINE_MS): Promise<T> {
  const end = Date.now() + deadlineMs;
  let error: unknown;
  for (;;) {
    try {
      const value = await read();
      if (value !== undefined) return value;
    } catch (err) {
      error = err;
    }
    if (Date.now() > end) throw new Error(`${what}: not within ${deadlineMs / 1000} s${error ? ` (${(error as Error).message})` : ''}`);
    await delay(50);
  }
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
  await exited;
  clearTimeout(timer);
}

function launch(tool: string, args: string[]): { child: ChildProcess; stdout: () => Buffer; exited: Promise<number | null> } {
  // A UTF-8 locale: the applications turn keysyms into UTF-8 text by it.
  const child = spawn(tool, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C.UTF-8', LANG: 'C.UTF-8' } });
  const chunks: Buffer[] = [];
  child.stdout!.on('data', (chunk: Buffer) => chunks.push(chunk));
  child.stderr!.resume();
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'ENOENT' ? new Error(`${tool} is not installed: apt install ${X11_RECEIVER_PACKAGES}`) : err),
    );
    child.on('exit', (code) => resolve(code));
  });
  exited.catch(() => {});
  return { child, stdout: () => Buffer.concat(chunks), exited };
}

/**
 * The window of `windows` that has the input focus, or undefined. openbox gives new windows the
 * focus, but not always (in about 1 of 30 windows opened right after a long test's window had
 * closed, the new one stayed unfocused): then the test gives it the focus itself.
 */
async function focusOn(windows: readonly string[]): Promise<string | undefined> {
  if (windows.length === 0) return undefined;
  // XGetInputFocus may be PointerRoot, which xdotool reports as an error.
  const focus = (await x('xdotool', ['getwindowfocus']).catch(() => '')).trim();
  if (windows.includes(focus)) return focus;
  // Through the window manager first (a click would), and directly too when it declines.
  await x('xdotool', ['windowactivate', windows[0]!]).catch(() => '');
  await x('xdotool', ['windowfocus', windows[0]!]).catch(() => '');
  return undefined;
}

/** Resolves once the server's input focus is on one of the windows with this WM_CLASS instance name. */
async function focused(name: string, exited: Promise<number | null>): Promise<string> {
  let gone: Error | undefined;
  void exited.then(
    (code) => (gone = new Error(`${name} exited (${code}) before its window had the focus`)),
    (err: Error) => (gone = err),
  );
  return until(`the window of ${name} having the input focus`, async () => {
    if (gone) throw gone;
    return focusOn(
      (await x('xdotool', ['search', '--onlyvisible', '--classname', `^${name}$`]).catch(() => '')).split('\n').filter(Boolean),
    );
  }).catch((err: Error) => {
    throw gone ?? err;
  });
}

export interface X11Desktop {
  readonly display: string;
  stop(): Promise<void>;
}

/** Xvfb with openbox managing the windows (focus to new windows, as desktops do). */
export async function startX11Desktop(): Promise<X11Desktop> {
  const xvfb: Xvfb = await startXvfb();
  const env = { ...process.env, DISPLAY: xvfb.display };
  const openbox = spawn('openbox', ['--sm-disable'], { stdio: 'ignore', env });
  const failed = new Promise<never>((_, reject) => {
    openbox.on('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'ENOENT' ? new Error(`openbox is not installed: apt install ${X11_RECEIVER_PACKAGES}`) : err),
    );
    openbox.on('exit', (code) => reject(new Error(`openbox exited (${code})`)));
  });
  failed.catch(() => {});
  try {
    // A window manager owns the WM_S0 selection once it manages the screen.
    await Promise.race([
      failed,
      until('openbox managing the screen', async () => {
        const out = await x('xprop', ['-display', xvfb.display, '-root', '_NET_SUPPORTING_WM_CHECK']).catch(() => '');
        return /window id # 0x/.test(out) ? true : undefined;
      }),
    ]);
  } catch (err) {
    await stop(openbox);
    await xvfb.stop();
    throw err;
  }
  return {
    display: xvfb.display,
    async stop() {
      await stop(openbox);
      await xvfb.stop();
    },
  };
}

export interface Receiver {
  readonly name: string;
  /** What the application received, once it equals `expected` or the deadline passed (then whatever it holds). */
  received(expected: string): Promise<string>;
  close(): Promise<void>;
}

export type TerminalKind = 'xterm' | 'urxvt';

export interface TerminalReceiver extends Receiver {
  /** The bytes received so far, as UTF-8 text. */
  contents(): string;
}

/** A terminal whose program writes every byte it gets from the terminal to a file, untranslated. */
export async function openTerminal(kind: TerminalKind, dir: string): Promise<TerminalReceiver> {
  const name = uniqueName(kind);
  const file = path.join(dir, `${name}.bytes`);
  const app = launch(kind, ['-name', name, '-geometry', '80x24+0+0', '-e', 'sh', '-c', `stty raw -echo && exec cat > '${file}'`]);
  try {
    await focused(name, app.exited);
    await until(`${name}: its program ready (stty done)`, () => (existsSync(file) ? true : undefined));
  } catch (err) {
    await stop(app.child);
    throw err;
  }
  const read = () => readFileSync(file).toString('utf8');
  return {
    name: kind,
    contents: read,
    async received(expected) {
      return until(`${name}: the expected text`, () => (read() === expected ? expected : undefined)).catch(() => read());
    },
    close: () => stop(app.child),
  };
}

/** A GTK 3 text view (type-gtk-receiver.py) that writes its whole text to a file on every change. */
export async function openGtkText(dir: string): Promise<Receiver> {
  const name = uniqueName('gtk');
  const file = path.join(dir, `${name}.text`);
  const script = fileURLToPath(new URL('./type-gtk-receiver.py', import.meta.url));
  // Debian's python3 (python3-gi): a python3 earlier on PATH (pyenv, venv) may lack the GTK bindings.
  const app = launch(existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3', [script, name, file]);
  try {
    await until(`the window of ${name} having the input focus`, async () =>
      focusOn((await x('xdotool', ['search', '--onlyvisible', '--name', `^${name}$`]).catch(() => '')).split('\n').filter(Boolean)),
    );
    await until(`${name}: its text view ready`, () => (existsSync(file) ? true : undefined));
  } catch (err) {
    await stop(app.child);
    throw err;
  }
  const read = () => readFileSync(file).toString('utf8');
  return {
    name: 'gtk',
    async received(expected) {
      return until(`${name}: the expected text`, () => (read() === expected ? expected : undefined)).catch(() => read());
    },
    close: () => stop(app.child),
  };
}
