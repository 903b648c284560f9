import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import type { PatternResult, TransportBenchResult, VariantResult } from '../../bench/transport.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const N = 3;

/**
 * The transport bench's quick mode, run as `node bench/transport.ts --quick --n 3 --json`.
 * Asserts what the clients did (handshakes, protocols, pre-warms) and the shape of the JSON,
 * never how long anything took.
 */
describe('bench:transport --quick', () => {
  it('runs every pattern and variant, and each client opens the connections it should', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['bench/transport.ts', '--quick', '--n', String(N), '--json'], {
      cwd: root,
      timeout: 90_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    const result = JSON.parse(stdout) as TransportBenchResult;

    expect(result.bench).toBe('transport');
    expect(result.options).toMatchObject({ rttMs: 80, thinkMs: 300, n: N, quick: true });
    expect(Object.keys(result.patterns)).toEqual(['back-to-back', 'spaced', 'idle']);
    expect(result.machine.cpus).toBeGreaterThan(0);
    expect(result.targets.map((t) => `${t.pattern} ${typeof t.met}`)).toEqual([
      'spaced boolean',
      'spaced boolean',
      'idle boolean',
      'idle boolean',
      'spaced boolean',
    ]);

    const pattern = (name: keyof TransportBenchResult['patterns']): PatternResult => result.patterns[name]!;
    const variant = (p: PatternResult, name: 'a' | 'b' | 'c' | 'd' | 'floor'): VariantResult => p.variants[name]!;

    for (const p of Object.values(result.patterns)) {
      expect(p.limitMs).toBe(380);
      expect(Object.keys(p.variants)).toEqual(['a', 'b', 'c', 'd', 'floor']);
      expect(Object.keys(p.ratios)).toEqual(expect.arrayContaining(['a/c', 'a/d', 'b/c', 'b/d']));
      for (const v of Object.values(p.variants)) {
        expect(v.samples).toHaveLength(N);
        for (const key of ['avg', 'p50', 'p90', 'p95', 'max'] as const) expect(Number.isFinite(v.summary[key])).toBe(true);
        expect(v.server.tlsHandshakes).toBe(v.server.connections);
      }
      // (a) a new client per request: one TLS handshake per request, HTTP/1.1.
      expect(variant(p, 'a').server.tlsHandshakes).toBe(N);
      expect(variant(p, 'a').server.protocols).toEqual({ 'http/1.1': N });
      // (b) Node's built-in fetch: HTTP/1.1 (undici 7 defaults), whatever it reuses.
      expect(Object.keys(variant(p, 'b').server.protocols)).toEqual(['http/1.1']);
      // (c), (d) the kernel: HTTP/2 only.
      expect(variant(p, 'c').server.protocols).toEqual({ h2: N });
      expect(Object.keys(variant(p, 'd').server.protocols)).toEqual(['h2']);
    }
    // (d) pre-warms before every request: one GET /models each where pre-warms cannot overlap
    // (in quick spaced mode the gap may be shorter than the lead, and the kernel folds a
    // pre-warm into one still in flight).
    for (const name of ['back-to-back', 'idle'] as const) {
      expect(variant(pattern(name), 'd').client?.prewarms, name).toBe(N);
      expect(variant(pattern(name), 'd').server.protocols, name).toEqual({ h2: 2 * N });
    }
    expect(variant(pattern('spaced'), 'd').client?.prewarms).toBeGreaterThanOrEqual(1);

    // One connection for all requests while the server keeps it open.
    for (const name of ['back-to-back', 'spaced'] as const) {
      for (const v of ['c', 'd', 'floor'] as const) expect(variant(pattern(name), v).server.tlsHandshakes, `${name} ${v}`).toBe(1);
    }
    // The server closing idle connections: the kernel client alone reconnects for every request;
    // the server did close what had gone idle.
    const idle = pattern('idle');
    expect(idle.serverIdleTimeoutMs).toBe(1000);
    expect(variant(idle, 'c').server.tlsHandshakes).toBe(N);
    expect(variant(idle, 'c').server.idleCloses).toBeGreaterThanOrEqual(N - 1);
    expect(variant(idle, 'd').server.idleCloses).toBeGreaterThanOrEqual(1);
  }, 100_000);
});
