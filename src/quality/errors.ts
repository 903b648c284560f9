import { kotoError, type ErrorCode, type KotoError } from '../kernel/errors.ts';

/** The quality tools' errors, from the one catalogue (src/kernel/errors.ts). */
export function qualityError(code: ErrorCode, params: Record<string, unknown> = {}): KotoError {
  return kotoError(code, params);
}

/** A usage error (exit 2) with a message of our own. */
export function usageError(detail: string): KotoError {
  return kotoError('KOTO_ERR_USAGE', { detail });
}
