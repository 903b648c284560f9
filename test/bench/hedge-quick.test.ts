import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import type { HedgeResult } from '../../bench/hedge.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

/**
 * `node bench/hedge.ts --quick --json`: asserts what the clients did (who was asked, who
 * answered, what was aborted), never how long anything took.
 */
describe('bench:hedge --quick', () => {
  it('without hedging only the primary is asked; with it, every tail request gets a parallel one and the losers are aborted', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['bench/hedge.ts', '--quick', '--n', '12', '--json'], {
      cwd: root,
      timeout: 110_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    const result = JSON.parse(stdout) as HedgeResult;
    expect(result.bench).toBe('hedge');
    expect(result.options).toMatchObject({ n: 12, quick: true, hedgeMs: 200 });
    // Seed 21 puts some of the primary's 12 requests in its 1.5 s tail (deterministic).
    expect(result.primaryTails).toBeGreaterThan(0);

    const plain = result.variants.fallback;
    expect(plain.samples).toHaveLength(12);
    expect(plain.requests).toEqual({ primary: 12, secondary: 0 });
    expect(plain.answeredBy).toEqual({ primary: 12 });
    expect(plain.aborted).toEqual({ primary: 0, secondary: 0 });

    const hedged = result.variants.hedged;
    expect(hedged.samples).toHaveLength(12);
    expect(hedged.requests.primary).toBe(12);
    // A tail request is silent for ≥ 750 ms, far past hedgeAfterMs: each one started a hedge.
    expect(hedged.requests.secondary).toBeGreaterThanOrEqual(result.primaryTails);
    expect((hedged.answeredBy.primary ?? 0) + (hedged.answeredBy.secondary ?? 0)).toBe(12);
    expect(hedged.answeredBy.secondary).toBeGreaterThan(0);
    expect(hedged.aborted.primary + hedged.aborted.secondary).toBeGreaterThan(0);
    for (const v of [plain, hedged]) for (const key of ['p50', 'p95', 'p99'] as const) expect(Number.isFinite(v.summary[key])).toBe(true);
  });
});
