/** The end of every desktop output's fallback chain: keystrokes → clipboard → notification → error. */
import { describeError, kotoError, type KotoError, type Logger, type OutputRequest } from 'koto-voice';
import { DesktopError, hide, installHint, notify, unreachableDisplayFix, warn, type Desktop } from './desktop.ts';

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
export async function giveUp(
  req: OutputRequest,
  log: Logger,
  desktop: Desktop,
  failures: ReadonlyArray<{ readonly what: string; readonly error: unknown }>,
): Promise<never> {
  if (
    await notify(
      `Koto could not paste or copy dictation ${req.session.id}. Its text is kept: \`koto paste ${req.session.id}\` delivers it again.`,
      log,
    )
  ) {
    log.debug(`output "${req.name}": a desktop notification said the text is in the history`);
  }
  const failed = failures.map(({ what, error }) => `${what} (${describeError(error)})`);
  const fix =
    unreachableDisplayFix(
      desktop,
      failures.map(({ error }) => error),
    ) ?? installHint(desktop);
  // The message carries the fix too: the session record (history) keeps messages only.
  throw kotoError(
    'KOTO_ERR_OUTPUT',
    { output: req.name, detail: hide(`${failed.join('; ')}. To fix: ${fix}`, req.text) },
    { fix: 'copy the text from the history: `koto history` (it is never lost)' },
  );
}
