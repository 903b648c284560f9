/**
 * What the conformance suites (providers, outputs) share: waiting for a call without hanging
 * the suite, and reading every text an error shows. Not exported from `koto-voice/testing`.
 */
import { describe as describeError, KotoError } from '../kernel/errors.ts';

export type Settled<T> = { ok: true; value: T; ms: number } | { ok: false; error: unknown; ms: number } | { ok: 'pending'; ms: number };

/** Waits for a promise at most `ms`; says how it ended and how long it took. */
export async function settleWithin<T>(promise: Promise<T>, ms: number): Promise<Settled<T>> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'pending'>((resolve) => {
    timer = setTimeout(() => resolve('pending'), ms);
  });
  try {
    const outcome = await Promise.race([
      promise.then(
        (value) => ({ ok: true as const, value }),
        (error: unknown) => ({ ok: false as const, error }),
      ),
      timeout,
    ]);
    const elapsed = Math.round(performance.now() - started);
    return outcome === 'pending' ? { ok: 'pending', ms: elapsed } : { ...outcome, ms: elapsed };
  } finally {
    clearTimeout(timer);
  }
}

export async function waitUntil(condition: () => boolean, ms: number, intervalMs = 10): Promise<boolean> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  return true;
}

export function summary(err: unknown): string {
  if (KotoError.is(err)) return `${err.code}: ${err.message}${err.plugin ? ` [${err.plugin} ${err.hook ?? ''}]` : ''}`;
  return describeError(err);
}

/** Everything an error shows a user, a log or a bug report: message, fix, line, JSON, stack, causes. */
export function errorText(err: unknown): string {
  const parts: string[] = [];
  let current: unknown = err;
  for (let depth = 0; current !== undefined && current !== null && depth < 5; depth++) {
    const e = current as {
      message?: unknown;
      fix?: unknown;
      stack?: unknown;
      details?: unknown;
      toLine?: () => string;
      toJSON?: () => unknown;
      cause?: unknown;
    };
    parts.push(String(current));
    if (typeof e.message === 'string') parts.push(e.message);
    if (typeof e.fix === 'string') parts.push(e.fix);
    if (typeof e.stack === 'string') parts.push(e.stack);
    if (typeof e.toLine === 'function') parts.push(e.toLine());
    try {
      if (typeof e.toJSON === 'function') parts.push(JSON.stringify(e.toJSON()));
      if (e.details !== undefined) parts.push(JSON.stringify(e.details));
    } catch {
      // not serialisable: the other parts still count
    }
    current = e.cause;
  }
  return parts.join('\n');
}

export function matches(actual: string, expected: string | RegExp): boolean {
  return typeof expected === 'string' ? actual === expected : expected.test(actual);
}

/** Counts of the resources keeping the event loop alive, by type. */
export function activeResources(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const type of process.getActiveResourcesInfo()) counts.set(type, (counts.get(type) ?? 0) + 1);
  return counts;
}

export function resourcesAbove(baseline: Map<string, number>): string[] {
  const out: string[] = [];
  for (const [type, count] of activeResources()) {
    const before = baseline.get(type) ?? 0;
    if (count > before) out.push(`${type} ×${count - before}`);
  }
  return out;
}
