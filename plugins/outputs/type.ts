import { z } from 'zod';
import type { Logger, OutputRequest } from 'koto-voice';
import { cancelled, giveUp, onClipboardOnly, wasCancelled } from './chain.ts';
import { copyText } from './clipboard.ts';
import { detectDesktop } from './desktop.ts';
import { typeText } from './keyboard.ts';

export const typeOptions = z.strictObject({
  /**
   * Milliseconds between keys (XTEST, xdotool, wtype). The default is the delay that types every
   * character exactly into xterm, rxvt-unicode, a GTK text view and foot on a loaded machine in
   * Koto's tests (test/outputs/type-apps.test.ts, type-wayland.test.ts); raise it for an
   * application that still loses keys. `paste` has no such limit.
   */
  keyDelayMs: z.number().int().min(0).max(1000).default(5),
  /**
   * How to type on X11: `xtest` (built in: keys sent through the X server's XTEST extension,
   * characters missing from the keyboard layout mapped on spare keys beforehand; xdotool is
   * used only when the display cannot be opened this way) or `xdotool` (xdotool alone; it can
   * drop or swap characters that are not on the layout, and newlines in GTK applications).
   */
  x11: z.enum(['xtest', 'xdotool']).default('xtest'),
  /**
   * Wayland (wtype): milliseconds between creating the virtual keyboard and its first key (one
   * that writes nothing, then the text). A compositor may not yet apply the new keyboard's
   * keymap to its first key: that character was lost in 21 of 38 runs under sway with foot.
   */
  waylandStartDelayMs: z.number().int().min(0).max(5000).default(150),
  /** Deadline for typing; by default it grows with the length of the text. */
  timeoutMs: z.number().int().min(100).max(600_000).optional(),
});

/**
 * Types the text into the focused window, key by key (for applications where pasting is not
 * wanted). Typing fails → the text is put on the clipboard (a warning); that fails too →
 * a notification, and KOTO_ERR_OUTPUT with what to install. Resolves true when the text was typed.
 */
export async function typeOutput(req: OutputRequest, log: Logger): Promise<boolean> {
  const options = typeOptions.parse(req.options);
  if (req.signal.aborted) throw cancelled(req);
  if (!req.text) return false;
  const desktop = detectDesktop();
  const characters = [...req.text].length;
  const timeoutMs = options.timeoutMs ?? 5000 + characters * (options.keyDelayMs * 2 + 20);

  let typing: unknown;
  try {
    const tool = await typeText(desktop, req.text, {
      keyDelayMs: options.keyDelayMs,
      x11: options.x11,
      waylandStartDelayMs: options.waylandStartDelayMs,
      signal: req.signal,
      timeoutMs,
      debug: (message) => log.debug(message),
    });
    log.debug(`typed ${characters} characters with ${tool}`);
    return true;
  } catch (err) {
    if (wasCancelled(err, req)) throw cancelled(req);
    typing = err;
  }

  try {
    await copyText(req.text, req.signal, desktop);
  } catch (err) {
    if (wasCancelled(err, req)) throw cancelled(req);
    return giveUp(req, log, desktop, [
      { what: 'typing failed', error: typing },
      { what: 'the clipboard could not be set', error: err },
    ]);
  }
  onClipboardOnly(req, log, 'typing', typing);
  return false;
}
