/**
 * A real X server for the desktop output tests (Xvfb), and two small real X clients that show
 * what a keystroke did: dmenu (an input line that can paste the CLIPBOARD with Ctrl+Shift+Y and
 * prints what it holds on Return) and xev (prints every key event it receives).
 * System packages: xvfb xdotool xclip suckless-tools x11-utils (`scripts/system-deps.sh desktop`).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';

const exec = promisify(execFile);

function need(tool: string): never {
  throw new Error(
    `${tool} is not installed: run \`bash scripts/system-deps.sh desktop\` (installs xvfb xdotool xclip suckless-tools x11-utils)`,
  );
}

export interface Xvfb {
  /** e.g. ":93" */
  readonly display: string;
  stop(): Promise<void>;
}

/** Starts Xvfb on a free display (it picks one itself: -displayfd) and resolves when it accepts clients. */
export function startXvfb(): Promise<Xvfb> {
  return new Promise((resolve, reject) => {
    const child = spawn('Xvfb', ['-displayfd', '3', '-screen', '0', '1024x768x24', '-nolisten', 'tcp'], {
      stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let number = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`Xvfb did not start within 10 s: ${stderr}`));
    }, 10_000);
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (err.code === 'ENOENT') reject(new Error('Xvfb is not installed: run `bash scripts/system-deps.sh desktop`'));
      else reject(err);
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`Xvfb exited (${code}): ${stderr}`));
    });
    const fd3 = child.stdio[3] as NodeJS.ReadableStream;
    fd3.setEncoding('utf8');
    fd3.on('data', (chunk: string) => {
      number += chunk;
      if (!number.includes('\n')) return;
      clearTimeout(timer);
      child.removeAllListeners('exit');
      const display = `:${number.trim()}`;
      resolve({
        display,
        stop: () => stop(child),
      });
    });
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
  await exited;
  clearTimeout(timer);
}

/** Runs a test-side X tool by name with the test's DISPLAY. */
export async function x(tool: string, args: readonly string[], options: { input?: string; timeout?: number } = {}): Promise<string> {
  try {
    if (options.input !== undefined) {
      // xclip -in forks a process that keeps serving the selection: never wait on its pipes.
      const child = spawn(tool, args, { stdio: ['pipe', 'ignore', 'ignore'] });
      child.stdin.end(options.input);
      await new Promise<void>((resolve, reject) => {
        child.on('error', reject);
        child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${tool} exited with ${code}`))));
      });
      return '';
    }
    const { stdout } = await exec(tool, [...args], { timeout: options.timeout ?? 5000, encoding: 'utf8' });
    return stdout;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') need(tool);
    throw err;
  }
}

/** The CLIPBOARD selection as UTF-8 text (what a modern application pastes). */
export function readClipboard(): Promise<string> {
  return x('xclip', ['-out', '-selection', 'clipboard', '-target', 'UTF8_STRING']);
}

/** Copies like a user would (xclip), and waits until the forked xclip owns the selection. */
export async function copyAsUser(text: string): Promise<void> {
  await x('xclip', ['-in', '-selection', 'clipboard'], { input: text });
  await eventually(readClipboard, (now) => now === text);
}

/** Polls until `check` passes (the selection owner or an X client answers asynchronously). */
export async function eventually<T>(read: () => Promise<T>, check: (value: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: T | undefined;
  let error: unknown;
  while (Date.now() < end) {
    try {
      last = await read();
      if (check(last)) return last;
    } catch (err) {
      error = err;
    }
    await delay(50);
  }
  if (last !== undefined) return last;
  throw error instanceof Error ? error : new Error('eventually: nothing was read');
}

function spawnClient(tool: string, args: string[]): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  // A UTF-8 locale, so the client decodes keystrokes and selections beyond ASCII.
  const child = spawn(tool, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C.UTF-8' } });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr!.resume();
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', (err: NodeJS.ErrnoException) =>
      err.code === 'ENOENT' ? reject(new Error(`${tool} is not installed: run \`bash scripts/system-deps.sh desktop\``)) : reject(err),
    );
    child.on('exit', (code) => resolve(code));
  });
  exited.catch(() => {});
  return { child, output: () => out, exited };
}

export interface InputLine {
  /** Presses Return and resolves with the line dmenu held (what was typed or pasted into it). */
  submit(): Promise<string>;
  close(): Promise<void>;
}

/**
 * dmenu grabs the keyboard, so every keystroke lands in it; Ctrl+Shift+Y pastes the CLIPBOARD
 * (its own binding: dmenu has no Ctrl+V). Resolves once its window exists (the grab comes first).
 */
export async function openInputLine(): Promise<InputLine> {
  const dmenu = spawnClient('dmenu', ['-p', 'koto-test']);
  await Promise.race([
    x('xdotool', ['search', '--sync', '--class', 'dmenu'], { timeout: 5000 }),
    dmenu.exited.then(() => {
      throw new Error('dmenu exited before its window appeared');
    }),
  ]);
  // Its keyboard grab sends it every key, but nothing tells a client about a grab: with no window
  // manager the focus follows the pointer, so the paste output finds dmenu under the pointer.
  await x('xdotool', ['mousemove', '10', '5']);
  return {
    async submit() {
      // A paste arrives as an X event after the keystroke, once the selection owner (another
      // process) has answered dmenu; nothing outside dmenu shows it has landed, so wait with margin
      // for a loaded machine (250 ms was not always enough).
      await delay(1000);
      await x('xdotool', ['key', 'Return']);
      await dmenu.exited;
      return dmenu.output().replace(/\n$/, '');
    },
    close: () => stop(dmenu.child),
  };
}

export interface KeyWatcher {
  /** xev's report of the key events received so far. */
  events(): string;
  close(): Promise<void>;
}

/** An xev window under the pointer (no window manager: the focus follows the pointer). */
export async function watchKeys(): Promise<KeyWatcher> {
  const xev = spawnClient('xev', ['-geometry', '300x300+0+0', '-event', 'keyboard', '-name', 'koto-keys']);
  await x('xdotool', ['search', '--sync', '--name', 'koto-keys'], { timeout: 5000 });
  await x('xdotool', ['mousemove', '100', '100']);
  await delay(100);
  return { events: () => xev.output(), close: () => stop(xev.child) };
}
