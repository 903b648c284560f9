/**
 * Azure's 429s: it says how long to wait in `retry-after-ms` (and `x-ms-retry-after-ms`), more
 * precisely than `Retry-After`. The wire code maps a 429 to KOTO_ERR_RATE_LIMITED but keeps only
 * `Retry-After`, so an interceptor composed onto the kernel's client notes the headers of each
 * answer; one bounded retry follows, within the request's signal.
 */

import type { Dispatcher } from 'undici';
import { KotoError, kotoError } from 'koto-voice';
import { retryAfterSeconds } from 'koto-voice/openai-wire';

/** What the interceptor noted about the last answer of one call. */
export interface ResponseNotes {
  status: number | undefined;
  /** Wait asked for by a 429, in ms. */
  retryAfterMs: number | undefined;
  /** Azure's request id (`apim-request-id` / `x-request-id`), for support tickets. */
  requestId: string | undefined;
}

export function responseNotes(): ResponseNotes {
  return { status: undefined, retryAfterMs: undefined, requestId: undefined };
}

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The wait a response asks for: `retry-after-ms`, `x-ms-retry-after-ms`, then `Retry-After`. */
export function retryAfterMs(headers: Record<string, string | string[] | undefined>): number | undefined {
  for (const name of ['retry-after-ms', 'x-ms-retry-after-ms']) {
    const value = header(headers, name)?.trim();
    if (value && /^\d+(\.\d+)?$/.test(value)) return Math.ceil(Number(value));
  }
  const seconds = retryAfterSeconds(header(headers, 'retry-after'));
  return seconds === undefined ? undefined : Math.ceil(seconds * 1000);
}

/**
 * An undici interceptor (`api.http.compose(noteResponses(notes))`): requests still go through
 * the kernel's client, unchanged; the response headers are read on the way back.
 */
export function noteResponses(notes: ResponseNotes): Dispatcher.DispatcherComposeInterceptor {
  return (dispatch) => (opts, handler) => {
    const observed: Dispatcher.DispatchHandler = {
      onRequestStart: (controller, context) => handler.onRequestStart?.(controller, context),
      onRequestUpgrade: (controller, statusCode, headers, socket) => handler.onRequestUpgrade?.(controller, statusCode, headers, socket),
      onResponseStart: (controller, statusCode, headers, statusMessage) => {
        notes.status = statusCode;
        notes.retryAfterMs = statusCode === 429 ? retryAfterMs(headers) : undefined;
        notes.requestId = header(headers, 'apim-request-id') ?? header(headers, 'x-request-id') ?? header(headers, 'x-ms-request-id');
        handler.onResponseStart?.(controller, statusCode, headers, statusMessage);
      },
      onResponseData: (controller, chunk) => handler.onResponseData?.(controller, chunk),
      onResponseEnd: (controller, trailers) => handler.onResponseEnd?.(controller, trailers),
      onResponseError: (controller, error) => handler.onResponseError?.(controller, error),
    };
    return dispatch(opts, observed);
  };
}

/** When no header says how long to wait. */
const DEFAULT_WAIT_MS = 1000;

export interface RateLimitPolicy {
  readonly signal: AbortSignal;
  /** A 429 asking for a longer wait gets no retry: the error comes at once. */
  readonly maxWaitMs: number;
  /** The stage's deadline (ms since epoch): a wait that would end past it gets no retry either. */
  readonly deadline?: number | undefined;
  /** What the call is, for an abort during the wait. */
  readonly what: string;
  readonly onRetry?: ((waitMs: number) => void) | undefined;
  /** The final error, after `attempts` attempts, with the wait the last 429 asked for. */
  readonly giveUp: (err: KotoError, attempts: number, waitMs: number | undefined) => KotoError;
}

function isRateLimit(err: unknown): err is KotoError {
  return KotoError.is(err) && err.code === 'KOTO_ERR_RATE_LIMITED' && err.details.status === 429;
}

/**
 * Runs `call`; after a 429 waits what Azure asked for (bounded by `maxWaitMs` and the signal)
 * and tries once more. A second 429, or one asking for too long a wait, is `giveUp`'s error.
 */
export async function withRateLimitRetry<T>(call: (notes: ResponseNotes) => Promise<T>, policy: RateLimitPolicy): Promise<T> {
  const first = responseNotes();
  try {
    return await call(first);
  } catch (err) {
    if (!isRateLimit(err)) throw err;
    const waitMs = first.retryAfterMs ?? (typeof err.details.retryAfter === 'number' ? err.details.retryAfter * 1000 : undefined);
    if (waitMs !== undefined && waitMs > policy.maxWaitMs) throw policy.giveUp(err, 1, waitMs);
    const wait = waitMs ?? DEFAULT_WAIT_MS;
    // Sleeping into the deadline would only turn "rate limited, retry in N s" into a timeout.
    if (policy.deadline !== undefined && Date.now() + wait >= policy.deadline) throw policy.giveUp(err, 1, waitMs);
    policy.onRetry?.(wait);
    await sleep(wait, policy.signal, policy.what);
  }
  const second = responseNotes();
  try {
    return await call(second);
  } catch (err) {
    if (!isRateLimit(err)) throw err;
    throw policy.giveUp(err, 2, second.retryAfterMs);
  }
}

/** Waits `ms`; rejects with KOTO_ERR_ABORTED as soon as the signal fires (no timer left behind). */
function sleep(ms: number, signal: AbortSignal, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const aborted = () => kotoError('KOTO_ERR_ABORTED', { what }, { cause: signal.reason, details: { retryable: false } });
    if (signal.aborted) return reject(aborted());
    const onAbort = () => {
      clearTimeout(timer);
      reject(aborted());
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
