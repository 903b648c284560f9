import { createRequire } from 'node:module';
import path from 'node:path';
import { z } from 'zod';
import { describeError, kotoError, type Logger, type OutputRequest } from 'koto-voice';
import { clipboardHint, DesktopError, detectDesktop, findTool, hide, NO_DISPLAY, runTool, sleep, unreachableDisplayFix, utf8Env, type Desktop } from './desktop.ts';

export const clipboardOptions = z.strictObject({
  /**
   * Put the previous clipboard text back after this many milliseconds, if the clipboard still
   * holds the dictation then. Off by default (only text can be restored, not images).
   */
  restoreAfterMs: z.number().int().positive().max(3_600_000).optional(),
});

const TIMEOUT_MS = 5000;

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
function x11Tools(): X11Tool[] {
  const tools: X11Tool[] = [];
  const xclip = findTool('xclip');
  if (xclip) tools.push({ name: 'xclip', file: xclip, copy: ['-selection', 'clipboard', '-in'], paste: ['-selection', 'clipboard', '-out'] });
  const xsel = findTool('xsel');
  if (xsel) tools.push({ name: 'xsel', file: xsel, copy: ['--clipboard', '--input'], paste: ['--clipboard', '--output'] });
  const bundled = bundledXsel();
  if (bundled) tools.push({ name: 'xsel', file: bundled, copy: ['--clipboard', '--input'], paste: ['--clipboard', '--output'] });
  return tools;
}

function isWsl(): boolean {
  return Boolean(process.env.WSL_DISTRO_NAME || process.env.WSL_INTEROP);
}

/** clipboardy (macOS, Windows, WSL, Wayland), with a deadline: it must never hang a session. */
async function viaClipboardy<T>(use: (clipboard: { write(text: string): Promise<void>; read(): Promise<string> }) => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DesktopError(`the clipboard did not answer within ${TIMEOUT_MS} ms`, undefined, 'timeout')), TIMEOUT_MS);
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

/** Puts the text on the clipboard, or throws a DesktopError saying what failed and what to install. */
export async function copyText(text: string, signal?: AbortSignal, desktop: Desktop = detectDesktop()): Promise<void> {
  if (desktop === 'none' && process.platform === 'linux' && !isWsl()) {
    throw new DesktopError(`${NO_DISPLAY} to hold the clipboard`, clipboardHint('none'), 'unsupported');
  }
  if (desktop !== 'x11') {
    await viaClipboardy((clipboard) => clipboard.write(text));
    return;
  }
  const tools = x11Tools();
  if (tools.length === 0) throw new DesktopError('no clipboard tool is installed (xclip or xsel)', clipboardHint('x11'), 'missing');
  const failures: string[] = [];
  for (const tool of tools) {
    try {
      // stdout ignored: the process that keeps serving the selection inherits it.
      await runTool(tool.file, tool.copy, { input: text, signal, timeoutMs: TIMEOUT_MS, stdout: 'ignore', env: utf8Env(), secret: text });
      if (await served(text, signal)) return;
      failures.push(`${tool.name} did not take the clipboard`);
    } catch (err) {
      if (err instanceof DesktopError && err.reason === 'aborted') throw err;
      failures.push((err as Error).message);
    }
  }
  throw new DesktopError([...new Set(failures)].join('; '), clipboardHint('x11'));
}

/**
 * xclip and xsel exit before the process they fork owns the selection (Xlib sends the request
 * from the child), so a paste pressed at once could get the previous clipboard. Waits until
 * the clipboard serves the text.
 */
async function served(text: string, signal: AbortSignal | undefined): Promise<boolean> {
  const deadline = Date.now() + 1000;
  for (;;) {
    const now = await readText(signal, 'x11');
    if (now !== undefined && withoutFinalNewline(now) === withoutFinalNewline(text)) return true;
    if (Date.now() > deadline) return false;
    await sleep(15, signal);
  }
}

/** The clipboard's text, or undefined when it cannot be read (or holds no text). */
export async function readText(signal?: AbortSignal, desktop: Desktop = detectDesktop()): Promise<string | undefined> {
  try {
    if (desktop !== 'x11') return await viaClipboardy((clipboard) => clipboard.read());
    for (const tool of x11Tools()) {
      const result = await runTool(tool.file, tool.paste, { signal, timeoutMs: TIMEOUT_MS, env: utf8Env(), check: false });
      if (result.code === 0) return result.stdout;
    }
  } catch {
    // unreadable: nothing to restore
  }
  return undefined;
}

/**
 * Puts `previous` back after `delayMs`, unless the clipboard changed meanwhile (the user copied
 * something, or a later dictation is on it). Runs in the background; failures are only logged.
 */
export function restoreLater(previous: string, ours: string, delayMs: number, log: Logger): void {
  const timer = setTimeout(() => {
    void (async () => {
      try {
        const now = await readText();
        if (now === undefined || withoutFinalNewline(now) !== withoutFinalNewline(ours)) {
          log.debug('the clipboard changed after the dictation; the previous clipboard is not restored');
          return;
        }
        await copyText(previous);
        log.debug('the previous clipboard is restored');
      } catch (err) {
        log.debug(`the previous clipboard could not be restored: ${hide(describeError(err), ours)}`);
      }
    })();
  }, delayMs);
  timer.unref();
}

export async function writeClipboard(req: OutputRequest, log: Logger): Promise<void> {
  const options = clipboardOptions.parse(req.options);
  const desktop = detectDesktop();
  const previous = options.restoreAfterMs ? await readText(req.signal, desktop) : undefined;
  try {
    await copyText(req.text, req.signal, desktop);
  } catch (err) {
    if (err instanceof DesktopError && err.reason === 'aborted') throw kotoError('KOTO_ERR_ABORTED', { what: `output "${req.name}"` });
    const hint = unreachableDisplayFix(desktop, [err]) ?? (err instanceof DesktopError && err.hint ? err.hint : clipboardHint(desktop));
    throw kotoError('KOTO_ERR_OUTPUT', { output: req.name || 'clipboard', detail: hide(`${describeError(err)} (${hint})`, req.text) });
  }
  if (previous !== undefined && options.restoreAfterMs) restoreLater(previous, req.text, options.restoreAfterMs, log);
}
