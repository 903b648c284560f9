import { KotoError } from './errors.ts';

export interface RetryPolicy {
  /** Retries after the first attempt. */
  readonly retries: number;
  /** The stage's signal (deadline + cancel): no attempt and no wait goes past it. */
  readonly signal: AbortSignal;
  /** When the stage's deadline falls (ms since epoch). */
  readonly deadline: number;
  readonly onRetry?: ((attempt: number, delayMs: number, err: KotoError) => void) | undefined;
}

const BASE_DELAY_MS = 250;
const MAX_DELAY_MS = 10_000;

/**
 * Retries a provider call only where it is safe: the error says `retryable` (429, 5xx, a
 * connection dropped before an answer), the call is idempotent (transcription, correction), and
 * there is time left. Honours `Retry-After` exactly, failing at once when it ends past the
 * deadline; otherwise exponential backoff with full jitter.
 */
export async function withRetry<T>(call: () => Promise<T>, policy: RetryPolicy): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      if (attempt >= policy.retries || policy.signal.aborted || !KotoError.is(err) || err.details.retryable !== true) throw err;
      const retryAfter =
        typeof err.details.retryAfter === 'number' && err.details.retryAfter >= 0 ? err.details.retryAfter * 1000 : undefined;
      // The server's Retry-After is honoured as given (retrying sooner only earns another 429);
      // only our own backoff is capped.
      const delay = retryAfter ?? Math.min(MAX_DELAY_MS, Math.random() * BASE_DELAY_MS * 2 ** attempt);
      // Waiting past the deadline would only turn a clear error ("retry after N s") into a timeout.
      if (Date.now() + delay >= policy.deadline) throw err;
      policy.onRetry?.(attempt + 1, delay, err);
      await sleep(delay, policy.signal);
      if (policy.signal.aborted) throw err;
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
