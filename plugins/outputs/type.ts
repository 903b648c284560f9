import { z } from 'zod';
import type { Logger, OutputRequest } from 'koto-voice';
import { cancelled, giveUp, onClipboardOnly, wasCancelled } from './chain.ts';
import { copyText } from './clipboard.ts';
import { detectDesktop } from './desktop.ts';
import { typeText } from './keyboard.ts';

export const typeOptions = z.strictObject({
  /**
   * Milliseconds between keystrokes (xdotool). Raise it if characters go missing: xdotool types
   * a character that is not on the keyboard layout through a key it remaps for a moment, and a
   * busy application can miss it. `paste` has no such limit.
   */
  keyDelayMs: z.number().int().min(0).max(1000).default(12),
  /** Deadline for typing; by default it grows with the length of the text. */
  timeoutMs: z.number().int().min(100).max(600_000).optional(),
});

/**
 * Types the text into the focused window, key by key (for applications where pasting is not
 * wanted). Typing fails → the text is put on the clipboard (a warning); that fails too →
 * a notification, and KOTO_ERR_OUTPUT with what to install.
 */
export async function typeOutput(req: OutputRequest, log: Logger): Promise<void> {
  const options = typeOptions.parse(req.options);
  if (req.signal.aborted) throw cancelled(req);
  if (!req.text) return;
  const desktop = detectDesktop();
  const characters = [...req.text].length;
  const timeoutMs = options.timeoutMs ?? 5000 + characters * (options.keyDelayMs * 2 + 20);

  let typing: unknown;
  try {
    const tool = await typeText(desktop, req.text, { keyDelayMs: options.keyDelayMs, signal: req.signal, timeoutMs });
    log.debug(`typed ${characters} characters with ${tool}`);
    return;
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
}
