import { CommanderError } from 'commander';
import { describe, EXIT, KotoError, kotoError } from '../kernel/errors.ts';
import { escapeLine, escapeText } from './terminal.ts';

export interface Reporter {
  readonly debug: boolean;
  /** Secrets known to the kernel, scrubbed from everything printed. */
  scrub: (text: string) => string;
}

/** Errors become one readable line on stderr (the stack only with --debug) and an exit code. */
export function reportError(err: unknown, reporter: Reporter): number {
  const koto = toKotoError(err);
  process.stderr.write(`koto: ${escapeLine(reporter.scrub(koto.toLine()))}\n`);
  if (reporter.debug) {
    const stack = (koto.cause instanceof Error ? koto.cause.stack : undefined) ?? koto.stack ?? '';
    process.stderr.write(`${escapeText(reporter.scrub(stack))}\n`);
  }
  return koto.exitCode;
}

export function toKotoError(err: unknown): KotoError {
  if (KotoError.is(err)) return err;
  if (err instanceof CommanderError) return kotoError('KOTO_ERR_USAGE', { detail: err.message.replace(/^error: /, '') });
  return kotoError('KOTO_ERR_INTERNAL', { detail: describe(err) }, { cause: err });
}

export function warn(message: string, reporter: Reporter): void {
  process.stderr.write(`koto: warning: ${escapeLine(reporter.scrub(message))}\n`);
}

export { EXIT };
