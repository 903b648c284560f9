import { createRequire } from 'node:module';
import path from 'node:path';
import { z } from 'zod';
import { describeError, kotoError, type Logger, type OutputRequest } from 'koto-voice';
import {
  clipboardHint,
  DesktopError,
  detectDesktop,
  findTool,
  hide,
  NO_DISPLAY,
  runTool,
  sleep,
  unreachableDisplayFix,
  utf8Env,
  type Desktop,
} from './desktop.ts';

/**
 * CLIPBOARD is what Ctrl+V pastes; PRIMARY is the X11 (and Wayland primary-selection) "last
 * selected text" that Shift+Insert pastes in xterm, rxvt and st, and a middle click anywhere.
 */
export type Selection = 'clipboard' | 'primary';

export const clipboardOptions = z.strictObject({
  /**
   * Put the previous clipboard text back after this many milliseconds, if the clipboard still
   * holds the dictation then. Off by default (only text can be restored, not images).
   */
  restoreAfterMs: z.number().int().positive().max(3_600_000).optional(),
});

const TIMEOUT_MS = 5000;
/**
 * Reading the clipboard to restore it later must not hold a paste up: an application that owns
 * the clipboard and does not answer (hung, or busy) costs at most this, and then nothing is restored.
 */
export const PREVIOUS_TIMEOUT_MS = 1000;
/** How long `close` waits past the last restore's due time for it to finish (a clipboard tool run or two). */
export const RESTORE_MARGIN_MS = 3000;
/**
 * `close` waits for restores due within this long (paste's restoreDelayMs is at most 60 s); one
 * due later (the clipboard output's restoreAfterMs can be an hour) is dropped: the dictation
 * stays on the clipboard rather than a `koto run` hanging on for an hour.
 */
const MAX_CLOSE_WAIT_MS = 60_000;

const withoutFinalNewline = (text: string) => text.replace(/\r?\n$/, '');

interface X11Tool {
  readonly name: string;
  readonly file: string;
  readonly copy: readonly string[];
  readonly paste: readonly string[];
}

/** clipboardy ships an xsel build for Linux; it works when neither xclip nor xsel is installed. */
function bundledXsel(): string | undefined {
  try {
    const entry = createRequire(import.meta.url).resolve('clipboardy');
    return findTool(path.join(path.dirname(entry), 'fallbacks', 'linux', 'xsel'));
  } catch {
    return undefined;
  }
}

/**
 * X11 clipboard tools in order of preference. xclip first: it sets the selection before it
 * forks and always serves UTF8_STRING. xsel serves UTF-8 only under a UTF-8 locale (utf8Env).
 */
function x11Tools(selection: Selection = 'clipboard'): X11Tool[] {
  const tools: X11Tool[] = [];
  const xclip = findTool('xclip');
  if (xclip) tools.push({ name: 'xclip', file: xclip, copy: ['-selection', selection, '-in'], paste: ['-selection', selection, '-out'] });
  const which = `--${selection}`;
  const xsel = findTool('xsel');
  if (xsel) tools.push({ name: 'xsel', file: xsel, copy: [which, '--input'], paste: [which, '--output'] });
  const bundled = bundledXsel();
  if (bundled) tools.push({ name: 'xsel', file: bundled, copy: [which, '--input'], paste: [which, '--output'] });
  return tools;
}

function isWsl(): boolean {
  return Boolean(process.env.WSL_DISTRO_NAME || process.env.WSL_INTEROP);
}

/** clipboardy (macOS, Windows, WSL), with a deadline: it must never hang a session. */
async function viaClipboardy<T>(
  use: (clipboard: { write(text: string): Promise<void>; read(): Promise<string> }) => Promise<T>,
  timeoutMs = TIMEOUT_MS,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new DesktopError(`the clipboard did not answer within ${timeoutMs} ms`, undefined, 'timeout')),
      timeoutMs,
    );
  });
  try {
    // Loaded on first use: clipboardy spawns platform tools and is not needed by most runs.
    const { default: clipboard } = await import('clipboardy');
    return await Promise.race([use(clipboard), deadline]);
  } catch (err) {
    if (err instanceof DesktopError) throw err;
    throw new DesktopError(describeError(err));
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Puts the text on the clipboard (or the PRIMARY selection), or throws a DesktopError saying what
 * failed and what to install. PRIMARY exists on X11 and Wayland only; elsewhere it is a no-op.
 */
export async function copyText(
  text: string,
  signal?: AbortSignal,
  desktop: Desktop = detectDesktop(),
  selection: Selection = 'clipboard',
  /** Try one tool only: a restore must not try again when someone else took the clipboard meanwhile. */
  firstToolOnly = false,
): Promise<void> {
  if (desktop === 'none' && process.platform === 'linux' && !isWsl()) {
    throw new DesktopError(`${NO_DISPLAY} to hold the clipboard`, clipboardHint('none'), 'unsupported');
  }
  if (desktop === 'wayland') {
    await copyWayland(text, signal, selection);
    return;
  }
  if (selection === 'primary' && desktop !== 'x11') return;
  if (desktop !== 'x11') {
    await viaClipboardy((clipboard) => clipboard.write(text));
    return;
  }
  const tools = x11Tools(selection).slice(0, firstToolOnly ? 1 : undefined);
  if (tools.length === 0) throw new DesktopError('no clipboard tool is installed (xclip or xsel)', clipboardHint('x11'), 'missing');
  const failures: string[] = [];
  for (const tool of tools) {
    try {
      // stdout ignored: the process that keeps serving the selection inherits it.
      await runTool(tool.file, tool.copy, { input: text, signal, timeoutMs: TIMEOUT_MS, stdout: 'ignore', env: utf8Env(), secret: text });
      if (await served(text, signal, selection)) return;
      failures.push(`${tool.name} did not take the ${selection === 'primary' ? 'PRIMARY selection' : 'clipboard'}`);
    } catch (err) {
      if (err instanceof DesktopError && err.reason === 'aborted') throw err;
      failures.push((err as Error).message);
    }
  }
  throw new DesktopError([...new Set(failures)].join('; '), clipboardHint('x11'));
}

/**
 * wl-copy and wl-paste (wl-clipboard) are asked directly, not through clipboardy: clipboardy
 * has no PRIMARY, and when the compositor cannot be reached it falls back to xsel and reports a
 * missing xsel, hiding the real cause (a dead WAYLAND_DISPLAY) behind a wrong fix.
 */
async function copyWayland(text: string, signal: AbortSignal | undefined, selection: Selection): Promise<void> {
  const wlCopy = findTool('wl-copy');
  if (!wlCopy) throw new DesktopError('wl-copy is not installed', clipboardHint('wayland'), 'missing');
  const args = [...(selection === 'primary' ? ['--primary'] : []), '--type', 'text/plain'];
  // stdout ignored: wl-copy forks a process that keeps serving the selection.
  await runTool(wlCopy, args, { input: text, signal, timeoutMs: TIMEOUT_MS, stdout: 'ignore', secret: text });
}

async function readWayland(signal: AbortSignal | undefined, selection: Selection, timeoutMs: number): Promise<string | undefined> {
  const wlPaste = findTool('wl-paste');
  if (!wlPaste) return undefined;
  const args = [...(selection === 'primary' ? ['--primary'] : []), '--no-newline', '--type', 'text/plain'];
  const result = await runTool(wlPaste, args, { signal, timeoutMs, check: false });
  if (result.code === 0) return result.stdout;
  // "Nothing is copied" (or no text offered): an empty clipboard, like xsel reads one.
  return /nothing is copied|no suitable type|no selection/i.test(result.stderr ?? '') ? '' : undefined;
}

/**
 * xclip and xsel exit before the process they fork owns the selection (Xlib sends the request
 * from the child), so a paste pressed at once could get the previous clipboard. Waits until
 * the selection serves the text.
 */
async function served(text: string, signal: AbortSignal | undefined, selection: Selection): Promise<boolean> {
  const deadline = Date.now() + 1000;
  for (;;) {
    const now = await readText(signal, 'x11', selection);
    if (now !== undefined && withoutFinalNewline(now) === withoutFinalNewline(text)) return true;
    if (Date.now() > deadline) return false;
    await sleep(15, signal);
  }
}

/**
 * The clipboard's (or, on X11, PRIMARY's) text, or undefined when it cannot be read within
 * `timeoutMs` (or holds no text).
 */
export async function readText(
  signal?: AbortSignal,
  desktop: Desktop = detectDesktop(),
  selection: Selection = 'clipboard',
  timeoutMs = TIMEOUT_MS,
): Promise<string | undefined> {
  try {
    if (desktop === 'wayland') return await readWayland(signal, selection, timeoutMs);
    if (selection === 'primary' && desktop !== 'x11') return undefined;
    if (desktop !== 'x11') return await viaClipboardy((clipboard) => clipboard.read(), timeoutMs);
    for (const tool of x11Tools(selection)) {
      const result = await runTool(tool.file, tool.paste, { signal, timeoutMs, env: utf8Env(), check: false });
      if (result.code === 0) return result.stdout;
    }
  } catch {
    // unreadable: nothing to restore
  }
  return undefined;
}

interface PendingRestore {
  readonly previous: string;
  readonly ours: string;
  readonly due: number;
  readonly timer: NodeJS.Timeout;
  /** Set once the timer fired: the restore is reading or writing the clipboard. */
  running: boolean;
  /** Settles once the restore has run (or was called off). */
  readonly done: Promise<void>;
  readonly finish: () => void;
}

/**
 * Restores of the clipboard that are due after a paste. The plugin keeps one set per kernel and
 * waits for it at `close`: a one-shot `koto run` would otherwise exit before the timer fires,
 * and nothing would ever be restored. The timers do not keep a process alive by themselves.
 */
export class ClipboardRestores {
  readonly #pending = new Set<PendingRestore>();

  /**
   * Called before a dictation touches the clipboard: restores not yet due are called off, and one
   * already running is waited for (finishing after the new copy, it would put the old text back
   * over the new dictation). Resolves with what the clipboard held before Koto touched it when
   * `read` is given: a dictation that follows another within the restore delay reads the first
   * dictation there, and then the first one's `previous` (what the user had) is the one to restore.
   */
  async begin(read?: () => Promise<string | undefined>): Promise<string | undefined> {
    const calledOff: PendingRestore[] = [];
    const running: Promise<void>[] = [];
    for (const restore of this.#pending) {
      if (restore.running) {
        running.push(restore.done);
      } else {
        this.#cancel(restore);
        calledOff.push(restore);
      }
    }
    // Each step of a restore has its own deadline (the clipboard tools'): this wait is bounded.
    await Promise.all(running);
    if (!read) return undefined;
    const now = await read();
    const earlier = calledOff.find((restore) => now !== undefined && withoutFinalNewline(now) === withoutFinalNewline(restore.ours));
    if (earlier) return earlier.previous;
    // Empty is what xsel reads from a clipboard nobody owns (or one holding only an image):
    // "restoring" it would only take the dictation away.
    return now || undefined;
  }

  /**
   * Puts `previous` back after `delayMs`, unless the clipboard no longer holds `ours` then (the
   * user copied something, or a later dictation is on it). Failures are only logged.
   */
  schedule(previous: string, ours: string, delayMs: number, log: Logger, desktop: Desktop = detectDesktop()): void {
    // The same text: nothing to put back, and a copy would only race whatever the user copies next.
    if (withoutFinalNewline(previous) === withoutFinalNewline(ours)) return;
    let finish!: () => void;
    const done = new Promise<void>((resolve) => (finish = resolve));
    const timer = setTimeout(() => {
      entry.running = true;
      void restore(previous, ours, log, desktop).finally(() => {
        this.#pending.delete(entry);
        finish();
      });
    }, delayMs);
    timer.unref();
    const entry: PendingRestore = { previous, ours, due: Date.now() + delayMs, timer, running: false, done, finish };
    this.#pending.add(entry);
  }

  /** Waits for the pending restores, up to the last one's due time plus `marginMs` (at most a minute). */
  async settle(marginMs = RESTORE_MARGIN_MS): Promise<void> {
    const now = Date.now();
    const entries = [...this.#pending].filter((r) => r.due - now <= MAX_CLOSE_WAIT_MS);
    if (entries.length === 0) return;
    const waitMs = Math.max(0, ...entries.map((r) => r.due - now)) + marginMs;
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)));
    try {
      await Promise.race([Promise.all(entries.map((r) => r.done)), bound]);
    } finally {
      clearTimeout(timer);
    }
  }

  #cancel(restore: PendingRestore): void {
    clearTimeout(restore.timer);
    this.#pending.delete(restore);
    restore.finish();
  }
}

async function restore(previous: string, ours: string, log: Logger, desktop: Desktop): Promise<void> {
  try {
    const now = await readText(undefined, desktop);
    if (now === undefined || withoutFinalNewline(now) !== withoutFinalNewline(ours)) {
      log.debug('the clipboard changed after the dictation; the previous clipboard is not restored');
      return;
    }
    // The copy is checked (the clipboard must serve it): if the user copied something in the
    // moment between the check above and this copy, it fails here, and is not tried again.
    await copyText(previous, undefined, desktop, 'clipboard', true);
    log.debug('the previous clipboard is restored');
  } catch (err) {
    log.debug(`the previous clipboard could not be restored: ${hide(hide(describeError(err), ours), previous)}`);
  }
}

export async function writeClipboard(req: OutputRequest, log: Logger, restores: ClipboardRestores): Promise<void> {
  const options = clipboardOptions.parse(req.options);
  const desktop = detectDesktop();
  const previous = await restores.begin(
    options.restoreAfterMs ? () => readText(req.signal, desktop, 'clipboard', PREVIOUS_TIMEOUT_MS) : undefined,
  );
  try {
    await copyText(req.text, req.signal, desktop);
  } catch (err) {
    if (err instanceof DesktopError && err.reason === 'aborted') throw kotoError('KOTO_ERR_ABORTED', { what: `output "${req.name}"` });
    const hint = unreachableDisplayFix(desktop, [err]) ?? (err instanceof DesktopError && err.hint ? err.hint : clipboardHint(desktop));
    throw kotoError('KOTO_ERR_OUTPUT', { output: req.name || 'clipboard', detail: hide(`${describeError(err)} (${hint})`, req.text) });
  }
  if (previous !== undefined && options.restoreAfterMs) restores.schedule(previous, req.text, options.restoreAfterMs, log, desktop);
}
