import { describe, KotoError, kotoError, type ErrorCode } from './errors.ts';
import type { ProviderRef } from './types.ts';

/**
 * Failures after which the next provider of `asr.fallback` / `correction.fallback` gets the same
 * audio or text: the provider cannot answer this request however often it is asked (the kernel
 * has already spent its retries on the retryable ones). Not here, so no failover:
 * - KOTO_ERR_BAD_REQUEST (400/422): the request itself is refused — audio the server cannot
 *   decode, an option or model name it does not take. Another provider would mostly refuse the
 *   same audio, and quietly sending the dictation elsewhere on every session would hide a config
 *   mistake the error names; the session fails with the recording kept (`koto retry`).
 * - KOTO_ERR_ABORTED (the user cancelled), audio input errors (the recording itself).
 * A plugin's own code always fails over (see failsOver): the built-in plugins' codes that were
 * once the kernel's (an Azure deployment or token, the missing offline engine) did too.
 */
const FAILS_OVER: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'KOTO_ERR_NETWORK',
  'KOTO_ERR_UPSTREAM',
  'KOTO_ERR_TIMEOUT',
  'KOTO_ERR_AUTH',
  'KOTO_ERR_ENDPOINT_NOT_FOUND',
  'KOTO_ERR_RATE_LIMITED',
  'KOTO_ERR_BAD_RESPONSE',
  'KOTO_ERR_REDIRECT_REFUSED',
  'KOTO_ERR_INSECURE_ENDPOINT',
  'KOTO_ERR_PROVIDER_UNSERVED',
  'KOTO_ERR_UPLOAD_TOO_LARGE',
  'KOTO_ERR_HOOK_FAILED',
  'KOTO_ERR_INTERNAL',
]);

/** Whether the next provider of the chain should be asked after `err`. */
export function failsOver(err: unknown): boolean {
  // A plugin's plain Error (wrapped by the hook interceptor, or not) is that provider's failure.
  if (!KotoError.is(err)) return true;
  // A plugin's own code (a quota of its service, …) is about that provider: the next may answer.
  if (!err.code.startsWith('KOTO_ERR_')) return true;
  return FAILS_OVER.has(err.code as ErrorCode);
}

/** The outcome of one provider of a chain. */
export interface ChainAttempt<T> {
  readonly provider: ProviderRef;
  readonly index: number;
  readonly hedged: boolean;
  readonly ms: number;
  readonly outcome: 'answered' | 'failed' | 'aborted';
  readonly result?: T | undefined;
  readonly error?: unknown;
}

export interface ChainOptions<T> {
  /** The primary first, then the fallbacks (no duplicates). */
  readonly providers: readonly ProviderRef[];
  /** Start the next provider in parallel when none has answered by then; undefined: one at a time. */
  readonly hedgeAfterMs?: number | undefined;
  /** The session's signal: a cancel stops every attempt and fails the chain with the cancel. */
  readonly signal: AbortSignal;
  /** One provider's call (retries and deadline included); `signal` is aborted when it loses a hedge. */
  readonly call: (provider: ProviderRef, signal: AbortSignal, index: number) => Promise<T>;
}

export interface ChainResult<T> {
  readonly result: T;
  readonly provider: ProviderRef;
  /** In the order the attempts ended. */
  readonly attempts: readonly ChainAttempt<T>[];
}

/** The chain failed: the error to report, every attempt kept for the record. */
export class ChainFailure<T> extends Error {
  readonly error: unknown;
  readonly attempts: readonly ChainAttempt<T>[];

  constructor(error: unknown, attempts: readonly ChainAttempt<T>[]) {
    super(describe(error));
    this.error = error;
    this.attempts = attempts;
  }
}

/**
 * Asks the providers in order until one answers. A failure that `failsOver` starts the next one
 * at once; any other failure ends the chain (unless another attempt is still running). With
 * `hedgeAfterMs`, the next provider also starts when the running ones have been silent that long;
 * the first complete answer wins and the others are aborted.
 */
export function runChain<T>(options: ChainOptions<T>): Promise<ChainResult<T>> {
  const { providers, signal } = options;
  if (providers.length === 0)
    return Promise.reject(new ChainFailure(kotoError('KOTO_ERR_INTERNAL', { detail: 'an empty provider chain' }), []));
  return new Promise((resolve, reject) => {
    const attempts: ChainAttempt<T>[] = [];
    const running = new Map<number, { controller: AbortController; provider: ProviderRef; hedged: boolean; began: number }>();
    let next = 0;
    let settled = false;
    // The error the chain reports: one that ended it, else the primary's (the provider the user chose).
    let reported: unknown;
    let hedgeTimer: NodeJS.Timeout | undefined;

    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(hedgeTimer);
      signal.removeEventListener('abort', onCancel);
      fn();
    };
    const onCancel = () => {
      for (const { controller } of running.values()) controller.abort(signal.reason);
    };
    signal.addEventListener('abort', onCancel, { once: true });

    const armHedge = () => {
      clearTimeout(hedgeTimer);
      if (options.hedgeAfterMs === undefined || next >= providers.length) return;
      hedgeTimer = setTimeout(() => {
        if (!settled && !signal.aborted) start(true);
      }, options.hedgeAfterMs);
    };

    const start = (hedged: boolean) => {
      const index = next++;
      const provider = providers[index]!;
      const controller = new AbortController();
      const began = performance.now();
      running.set(index, { controller, provider, hedged, began });
      const attemptSignal = AbortSignal.any([signal, controller.signal]);
      armHedge();
      Promise.resolve()
        .then(() => options.call(provider, attemptSignal, index))
        .then(
          (result) => {
            running.delete(index);
            if (settled) return;
            attempts.push({ provider, index, hedged, ms: Math.round(performance.now() - began), outcome: 'answered', result });
            // The losers are noted now (they have no answer to wait for) and aborted.
            const now = performance.now();
            for (const [i, other] of running) {
              attempts.push({
                provider: other.provider,
                index: i,
                hedged: other.hedged,
                ms: Math.round(now - other.began),
                outcome: 'aborted',
              });
              other.controller.abort(
                kotoError('KOTO_ERR_ABORTED', {
                  what: `the request to provider "${other.provider.name}" (another provider answered first)`,
                }),
              );
            }
            finish(() => resolve({ result, provider, attempts }));
          },
          (error: unknown) => {
            running.delete(index);
            if (settled) return;
            attempts.push({ provider, index, hedged, ms: Math.round(performance.now() - began), outcome: 'failed', error });
            if (signal.aborted) return finish(() => reject(new ChainFailure(error, attempts)));
            if (!failsOver(error) || reported === undefined) reported = error;
            // While a hedged request still runs, it is the next chance (the hedge timer may add one more).
            if (running.size > 0) return;
            if (failsOver(reported) && next < providers.length) return start(false);
            finish(() => reject(new ChainFailure(reported, attempts)));
          },
        );
    };
    start(false);
  });
}
