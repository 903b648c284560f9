import { z } from 'zod';
import type { Logger, OutputRequest } from 'koto-voice';
import { cancelled, giveUp, onClipboardOnly, wasCancelled } from './chain.ts';
import { copyText, readText, restoreLater } from './clipboard.ts';
import { detectDesktop, sleep } from './desktop.ts';
import { defaultPasteShortcut, parseShortcut, pressShortcut, shortcutSchema } from './keyboard.ts';

export const pasteOptions = z.strictObject({
  /** Wait between setting the clipboard and pressing the shortcut, so the clipboard is served. */
  delayMs: z.number().int().min(0).max(10_000).default(50),
  /** The paste shortcut, e.g. "ctrl+shift+v" for terminals (default: Ctrl+V, Cmd+V on macOS). */
  shortcut: shortcutSchema.optional(),
  /**
   * Put the previous clipboard text back after pasting. Off by default: an application that
   * reads the clipboard late would paste the restored text instead of the dictation.
   */
  restoreClipboard: z.boolean().default(false),
  /** How long after the shortcut the previous clipboard is restored. */
  restoreDelayMs: z.number().int().min(0).max(60_000).default(1000),
  /** Deadline for each helper program. */
  timeoutMs: z.number().int().min(100).max(60_000).default(5000),
});

/**
 * The daemon's default output: clipboard, then the paste shortcut in the focused window.
 * Paste fails → the text stays on the clipboard (a warning); the clipboard fails too →
 * a notification, and KOTO_ERR_OUTPUT with what to install.
 */
export async function pasteText(req: OutputRequest, log: Logger): Promise<void> {
  const options = pasteOptions.parse(req.options);
  if (req.signal.aborted) throw cancelled(req);
  if (!req.text) return;
  const desktop = detectDesktop();
  const shortcut = parseShortcut(options.shortcut ?? defaultPasteShortcut(desktop));
  const previous = options.restoreClipboard ? await readText(req.signal, desktop) : undefined;

  try {
    await copyText(req.text, req.signal, desktop);
  } catch (err) {
    if (wasCancelled(err, req)) throw cancelled(req);
    // Pressing the shortcut now would paste whatever was on the clipboard before.
    return giveUp(req, log, desktop, [{ what: 'nothing was pasted: the clipboard could not be set', error: err }]);
  }

  try {
    await sleep(options.delayMs, req.signal);
    const tool = await pressShortcut(desktop, shortcut, { signal: req.signal, timeoutMs: options.timeoutMs });
    log.debug(`pasted ${[...req.text].length} characters with ${tool}`);
  } catch (err) {
    if (wasCancelled(err, req)) throw cancelled(req);
    onClipboardOnly(req, log, 'paste', err);
    return;
  }
  if (previous !== undefined) restoreLater(previous, req.text, options.restoreDelayMs, log);
}
