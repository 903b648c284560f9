/**
 * What the desktop outputs (clipboard, paste, type) share: which kind of session this is, the
 * helper programs on PATH, running them with a deadline, and the words for what to install.
 *
 * Privacy: the dictated text reaches helper programs through stdin wherever the program allows
 * it, and is removed from every message built here (`hide`), so it never lands in a log.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';
import type { Logger, OutputRequest } from 'koto-voice';

export type Desktop = 'x11' | 'wayland' | 'macos' | 'windows' | 'none';

/** Wayland when WAYLAND_DISPLAY is set (XWayland's DISPLAY is then secondary), X11 when DISPLAY is. */
export function detectDesktop(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): Desktop {
  if (platform === 'darwin') return 'macos';
  if (platform === 'win32') return 'windows';
  if (env.WAYLAND_DISPLAY) return 'wayland';
  if (env.DISPLAY) return 'x11';
  return 'none';
}

/** A step that failed, in words for the user, with what would fix it. Never holds the text. */
export class DesktopError extends Error {
  constructor(
    message: string,
    /** What to install or do, e.g. "apt install xdotool". */
    readonly hint?: string | undefined,
    readonly reason: 'missing' | 'failed' | 'timeout' | 'aborted' | 'unsupported' = 'failed',
  ) {
    super(message);
    this.name = 'DesktopError';
  }
}

// ---------------------------------------------------------------------------------------------
// Tool discovery

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

/** Found tools by PATH and name; a tool is looked up once per process (misses are looked up again, so installing one works without a restart). */
const found = new Map<string, string>();

/** Absolute path of `name` on PATH, or undefined. */
export function findTool(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (name.includes('/')) return isExecutable(name) ? name : undefined;
  const searchPath = env.PATH ?? '';
  const key = `${searchPath}\0${name}`;
  const cached = found.get(key);
  if (cached) return cached;
  for (const dir of searchPath.split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    if (isExecutable(candidate)) {
      found.set(key, candidate);
      return candidate;
    }
  }
  return undefined;
}

function forget(file: string): void {
  for (const [key, value] of found) if (value === file) found.delete(key);
}

/**
 * Helper programs decode the text by the locale: xdotool stops at the first non-ASCII character
 * under the C locale, and xsel then serves only Latin-1 STRING. A UTF-8 LC_CTYPE fixes both.
 */
export function utf8Env(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const current = env.LC_ALL || env.LC_CTYPE || env.LANG || '';
  if (/utf-?8/i.test(current)) return env;
  const locale = process.platform === 'darwin' ? 'en_US.UTF-8' : 'C.UTF-8';
  return env.LC_ALL ? { ...env, LC_ALL: locale } : { ...env, LC_CTYPE: locale };
}

// ---------------------------------------------------------------------------------------------
// Running a tool

export interface RunToolOptions {
  /** Written to the tool's stdin (then closed). */
  input?: string | undefined;
  signal?: AbortSignal | undefined;
  /** The tool is killed after this long: a desktop helper never hangs a session. */
  timeoutMs: number;
  /** `ignore` for tools that fork a process holding the clipboard (xclip, xsel): it inherits stdout. */
  stdout?: 'pipe' | 'ignore' | undefined;
  env?: NodeJS.ProcessEnv | undefined;
  /** Resolve with a non-zero exit code instead of rejecting. */
  check?: boolean | undefined;
  /** Removed from anything the tool printed before it reaches a message. */
  secret?: string | undefined;
}

export interface ToolResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

const MAX_OUTPUT = 16 * 1024 * 1024;

function firstLine(text: string): string {
  return (
    text
      .split('\n')
      .map((line) => line.trim())
      .find(Boolean)
      ?.slice(0, 300) ?? ''
  );
}

/** Removes the dictated text from a message (privacy: messages end up in logs and history). */
export function hide(message: string, text: string | undefined): string {
  const secret = text?.trim();
  if (!secret || secret.length < 4) return message;
  return message.split(secret).join('[dictated text]');
}

/**
 * Runs a program with a deadline and the request's cancel signal. Settles when the program
 * exits, even if a background child it forked still holds its output pipes (xclip, xsel, wl-copy).
 */
export function runTool(file: string, args: readonly string[], options: RunToolOptions): Promise<ToolResult> {
  const name = path.basename(file);
  return new Promise<ToolResult>((resolve, reject) => {
    if (options.signal?.aborted) {
      reject(new DesktopError(`${name} was not started: the session was cancelled`, undefined, 'aborted'));
      return;
    }
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(file, args, {
        stdio: [options.input === undefined ? 'ignore' : 'pipe', options.stdout ?? 'pipe', 'pipe'],
        env: options.env ?? process.env,
        windowsHide: true,
      });
    } catch (err) {
      reject(new DesktopError(`${name} could not be started: ${(err as Error).message}`));
      return;
    }
    let stdout = '';
    let stderr = '';
    let settled = false;
    let ending: 'timeout' | 'aborted' | undefined;
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let grace: NodeJS.Timeout | undefined;

    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      if (stdout.length < MAX_OUTPUT) stdout += chunk;
    });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      if (stderr.length < 64 * 1024) stderr += chunk;
    });
    // Settle shortly after a kill even if no exit is reported (a process stuck in the kernel).
    const settleSoon = () => setTimeout(() => finish(), 1000).unref();
    const timer = setTimeout(() => {
      ending ??= 'timeout';
      child.kill('SIGKILL');
      settleSoon();
    }, options.timeoutMs);
    const onAbort = () => {
      ending ??= 'aborted';
      child.kill('SIGTERM');
      settleSoon();
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });

    const finish = (error?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (grace) clearTimeout(grace);
      options.signal?.removeEventListener('abort', onAbort);
      child.stdout?.destroy();
      child.stderr?.destroy();
      if (error) return reject(error);
      const said = hide(firstLine(stderr) || firstLine(stdout), options.secret)
        .split(file)
        .join(name);
      if (ending === 'aborted') return reject(new DesktopError(`${name} was stopped: the session was cancelled`, undefined, 'aborted'));
      if (ending === 'timeout')
        return reject(new DesktopError(`${name} did not finish within ${options.timeoutMs} ms`, undefined, 'timeout'));
      const code = exit?.code ?? null;
      if (code !== 0 && options.check !== false) {
        const how = code === null ? `was killed (${exit?.signal ?? 'signal'})` : `exited with code ${code}`;
        return reject(new DesktopError(`${name} ${how}${said ? `: ${said}` : ''}`));
      }
      resolve({ code, stdout, stderr: hide(stderr, options.secret) });
    };

    child.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') {
        forget(file);
        finish(new DesktopError(`${name} is not installed`, undefined, 'missing'));
      } else {
        finish(new DesktopError(`${name} could not be started: ${err.message}`));
      }
    });
    child.on('exit', (code, signal) => {
      exit = { code, signal };
      // Normally 'close' follows at once; a forked child holding the pipes must not keep us waiting.
      grace = setTimeout(() => finish(), 25);
    });
    child.on('close', () => finish());

    if (child.stdin) {
      child.stdin.on('error', () => {}); // the tool may exit before reading everything (EPIPE)
      child.stdin.end(options.input);
    }
  });
}

/** Resolves after `ms`, or rejects when the signal fires first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new DesktopError('the session was cancelled', undefined, 'aborted'));
    const onAbort = () => {
      clearTimeout(timer);
      reject(new DesktopError('the session was cancelled', undefined, 'aborted'));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

// ---------------------------------------------------------------------------------------------
// What to install

/** Why nothing can reach the desktop when neither variable is set. */
export const NO_DISPLAY = 'there is no display (neither DISPLAY nor WAYLAND_DISPLAY is set)';
const NO_SESSION =
  'run Koto inside the desktop session, where DISPLAY or WAYLAND_DISPLAY is set (for a systemd user service: `systemctl --user import-environment DISPLAY WAYLAND_DISPLAY XAUTHORITY`, see docs/daemon.md)';

/** The packages that make keystrokes work on this desktop. */
export function keystrokeHint(desktop: Desktop): string {
  switch (desktop) {
    case 'x11':
      return 'apt install xdotool';
    case 'wayland':
      return 'apt install wtype (or ydotool, with ydotoold running)';
    case 'macos':
      return 'allow the app running Koto to control the computer (System Settings → Privacy & Security → Accessibility)';
    case 'windows':
      return 'use the clipboard output on Windows';
    case 'none':
      return NO_SESSION;
  }
}

/** The packages that make the clipboard work on this desktop. */
export function clipboardHint(desktop: Desktop): string {
  switch (desktop) {
    case 'x11':
      return 'apt install xclip';
    case 'wayland':
      return 'apt install wl-clipboard';
    case 'macos':
    case 'windows':
      return 'check that the system clipboard works';
    case 'none':
      return NO_SESSION;
  }
}

/** One install line for a whole failed chain, e.g. "apt install xdotool xclip". */
export function installHint(desktop: Desktop): string {
  switch (desktop) {
    case 'x11':
      return 'install the X11 tools: apt install xdotool xclip';
    case 'wayland':
      return 'install the Wayland tools: apt install wtype wl-clipboard (or ydotool, with ydotoold running)';
    case 'none':
      return `${NO_SESSION}, with the X11 tools (apt install xdotool xclip) or the Wayland tools (apt install wtype wl-clipboard) installed`;
    default:
      return keystrokeHint(desktop);
  }
}

/** Tools that are installed but cannot reach the display say so in one of these ways. */
const UNREACHABLE = /can't open display|cannot open display|wayland connection failed|failed to connect to (a )?wayland/i;

/** The fix when the tools are installed but the display set in the environment cannot be reached. */
export function unreachableDisplayFix(desktop: Desktop, errors: readonly unknown[]): string | undefined {
  if (!errors.some((err) => UNREACHABLE.test(err instanceof Error ? err.message : String(err)))) return undefined;
  const display = desktop === 'wayland' ? `WAYLAND_DISPLAY=${process.env.WAYLAND_DISPLAY}` : `DISPLAY=${process.env.DISPLAY}`;
  return `the display (${display}) cannot be reached: ${NO_SESSION}`;
}

// ---------------------------------------------------------------------------------------------
// Reporting

/**
 * A delivery that worked only in part (the text is on the clipboard, not pasted) is a warning
 * on the session record, not an error.
 */
export function warn(req: OutputRequest, log: Logger, message: string): void {
  req.warn(message);
  log.debug(message);
}

function appleString(text: string): string {
  return `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** AppleScript that types the given text (sent on stdin, so the text is not in any argv). */
export function appleKeystroke(text: string, using?: string): string {
  return `tell application "System Events" to keystroke ${appleString(text)}${using ? ` using ${using}` : ''}`;
}

/**
 * Best-effort desktop notification (never the dictated text). Resolves false when there is no
 * way to show one; never throws.
 */
export async function notify(message: string, log: Logger): Promise<boolean> {
  try {
    if (process.platform === 'darwin') {
      const osascript = findTool('osascript') ?? '/usr/bin/osascript';
      await runTool(osascript, [], { input: `display notification ${appleString(message)} with title "Koto"`, timeoutMs: 3000 });
      return true;
    }
    const notifySend = findTool('notify-send');
    if (!notifySend) return false;
    await runTool(notifySend, ['--app-name=Koto', 'Koto', message], { timeoutMs: 3000, env: utf8Env() });
    return true;
  } catch (err) {
    log.debug(`no desktop notification: ${(err as Error).message}`);
    return false;
  }
}
