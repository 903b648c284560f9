/** The end of every desktop output's fallback chain: keystrokes → clipboard → notification → error. */
import { describeError, kotoError, type KotoError, type Logger, type OutputRequest } from 'koto-voice';
import { DesktopError, hide, installHint, notify, warn, type Desktop } from './desktop.ts';

export function cancelled(req: OutputRequest): KotoError {
  return kotoError('KOTO_ERR_ABORTED', { what: `output "${req.name}"` });
}

export function wasCancelled(err: unknown, req: OutputRequest): boolean {
  return req.signal.aborted || (err instanceof DesktopError && err.reason === 'aborted');
}

/** "why (what to install)", for messages. */
export function explain(err: unknown): string {
  const hint = err instanceof DesktopError && err.hint ? `; ${err.hint}` : '';
  return `${describeError(err)}${hint}`;
}

/** The keystrokes failed but the clipboard holds the text: a warning, the session still succeeds. */
export function onClipboardOnly(req: OutputRequest, log: Logger, what: string, err: unknown): void {
  warn(req, log, hide(`${what} failed (${explain(err)}); the text is on the clipboard`, req.text));
}

/**
 * Nothing reached the desktop: say so in a notification when one can be shown, then fail with
 * what failed and what to install. The text itself is never in the message; it is in history.
 */
export async function giveUp(req: OutputRequest, log: Logger, desktop: Desktop, failures: readonly string[]): Promise<never> {
  const notified = await notify('The dictation could not be pasted or copied. It is saved in the history: run `koto history`.', log);
  const detail =
    `${failures.join('; ')}. To fix: ${installHint(desktop)}. ` +
    `The text is saved in the history (koto history)${notified ? '; a desktop notification said so' : ''}`;
  throw kotoError('KOTO_ERR_OUTPUT', { output: req.name, detail: hide(detail, req.text) });
}
