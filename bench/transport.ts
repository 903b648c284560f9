/**
 * Transport benchmark: the reference's "HTTP/1.1 + a fresh client per request" vs HTTP/2 with
 * one reused client, reproduced on one machine with a simulated round trip, plus Koto's kernel
 * client with and without pre-warm.
 *
 *   npm run bench:transport -- --rtt 80 --think 300 --n 30 [--quick] [--json] [--out file.json]
 *
 * Each variant gets its own loopback OpenAI-compatible server (think time, TLS handshakes
 * counted) behind its own delay proxy, so handshake counts are exact. Variants run interleaved:
 * in round r every variant makes its r-th request, staggered by a fixed offset, on the same
 * spacing sequence (seeded), so drift and machine noise hit all of them alike.
 *
 * Variants
 *   a      a fresh undici `Client` per request over HTTP/1.1, closed after (the reference's "before")
 *   b      Node's built-in global `fetch` with its defaults (Node 24 bundles undici 7: HTTP/1.1,
 *          keep-alive 4 s); the test CA is trusted with `tls.setDefaultCACertificates`, the
 *          in-process equivalent of NODE_EXTRA_CA_CERTS, and its dispatcher is left untouched
 *   c      Koto's kernel client (`createKernel(...)`, `kernel.http.request`)
 *   d      Koto with pre-warm at session start: `kernel.http.prewarm()` `--lead` ms (1 s) before
 *          the request, as the openai-compatible plugin does when a session starts while the user
 *          speaks
 *   floor  reference, not a client anyone ships: a bare `node:http2` session, pre-warmed like d.
 *          What this harness and machine allow at best; the gap between it and the limit is the
 *          machine's, not the client's.
 *
 * Patterns
 *   back-to-back  every variant sends its next request as soon as the previous one is done
 *                 (d still pre-warms `--lead` ms before each); variants run at the same time
 *   spaced        2–5 s between one request and the next, like dictation (--quick: 0.5–1.5 s)
 *   idle          the server closes connections idle for 30 s (GOAWAY; PINGs do not count as
 *                 activity) and requests come 32–35 s apart (--quick: idle 1 s, 3.0–3.4 s apart)
 */
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { parseArgs } from 'node:util';
import { createKernel, type Kernel } from '../src/kernel/kernel.ts';
import { undici as loadUndici } from '../src/kernel/undici.ts';
import { startOpenAIServer, type OpenAIServer } from '../src/testing/openai-server.ts';
import { startDelayProxy, type DelayProxy } from './lib/delay-proxy.ts';
import { machineInfo, machineLine, type MachineInfo } from './lib/machine.ts';
import { round, roundSummary, seededRandom, sleep, sleepUntil, summarize, type Summary } from './lib/stats.ts';

/** The benchmark compares against undici itself: loaded here, outside Koto's client. */
const undici = loadUndici();

export const VARIANTS = ['a', 'b', 'c', 'd', 'floor'] as const;
export type VariantName = (typeof VARIANTS)[number];
export const PATTERNS = ['back-to-back', 'spaced', 'idle'] as const;
export type PatternName = (typeof PATTERNS)[number];

export const VARIANT_LABELS: Record<VariantName, string> = {
  a: '(a) fresh undici Client per request, HTTP/1.1',
  b: '(b) global fetch defaults (Node built-in)',
  c: '(c) Koto kernel client',
  d: '(d) Koto + pre-warm at session start',
  floor: 'floor: bare node:http2 session + pre-warm',
};

export interface TransportBenchOptions {
  rttMs: number;
  thinkMs: number;
  /** Requests per variant and pattern. */
  n: number;
  quick: boolean;
  patterns: readonly PatternName[];
  variants: readonly VariantName[];
  /** Seed of the spacing sequence. */
  seed: number;
  /** How long before the request a pre-warm fires (d, floor). */
  leadMs: number;
  /** Server idle timeout in the `idle` pattern. */
  idleMs: number;
  /**
   * Scheduling priority to ask for (`os.setPriority`; negative needs root), so that other load
   * on the machine stretches timer wake-ups less. Applies to every variant alike. null: leave it.
   */
  priority: number | null;
  /** Progress lines (stderr by default). */
  log?: (line: string) => void;
}

export interface VariantResult {
  readonly label: string;
  readonly samples: number[];
  readonly summary: Summary;
  /** Server-side counts for this variant's own server (its pre-warms included). */
  readonly server: {
    tlsHandshakes: number;
    connections: number;
    h2Sessions: number;
    protocols: Record<string, number>;
    requests: number;
    idleCloses: number;
  };
  /** Kernel-side transport counters (c, d). */
  readonly client?: { connections: number; tlsHandshakes: number; tlsResumed: number; prewarms: number } | undefined;
  /** Requests that started later than planned by more than 50 ms (the previous one overran). */
  readonly lateStarts: number;
}

export interface PatternResult {
  readonly pattern: PatternName;
  readonly description: string;
  /** Gap range between one request and the next of the same variant, ms (none for back-to-back). */
  readonly gapMs: readonly [number, number] | null;
  readonly serverIdleTimeoutMs: number | null;
  readonly limitMs: number;
  readonly durationMs: number;
  readonly variants: Partial<Record<VariantName, VariantResult>>;
  /** P50 ratios such as `a/c`, and `d/limit` etc. as percentages over the limit. */
  readonly ratios: Record<string, number>;
  readonly overLimitPct: Partial<Record<VariantName, { p50: number; p95: number; avg: number }>>;
}

export interface Target {
  readonly pattern: PatternName;
  readonly what: string;
  readonly value: number;
  readonly bound: number;
  readonly met: boolean;
}

export interface TransportBenchResult {
  readonly bench: 'transport';
  readonly options: Omit<TransportBenchOptions, 'log'>;
  readonly machine: MachineInfo;
  readonly nodeFetchUndici: string | undefined;
  /** The process's scheduling priority during the run (nice value). */
  readonly priority: number;
  readonly startedAt: string;
  readonly durationMs: number;
  readonly patterns: Partial<Record<PatternName, PatternResult>>;
  readonly targets: Target[];
}

const PATH = '/v1/chat/completions';
const PREWARM_PATH = '/v1/models';
const BODY = JSON.stringify({
  model: 'gpt-4.1-mini',
  messages: [
    { role: 'system', content: 'Fix the punctuation of the dictated text. Answer with the text only.' },
    { role: 'user', content: 'hello world this is a dictated sentence' },
  ],
});
const HEADERS = { 'content-type': 'application/json', accept: 'application/json' };

interface Endpoint {
  readonly server: OpenAIServer;
  readonly proxy: DelayProxy;
  /** `https://127.0.0.1:PORT` of the proxy. */
  readonly origin: string;
}

interface RunningVariant {
  request(): Promise<void>;
  /** Fire-and-forget pre-warm (d, floor). */
  prewarm?: () => void;
  clientStats?: () => VariantResult['client'];
  close(): Promise<void>;
}

function check(status: number): void {
  if (status !== 200) throw new Error(`unexpected HTTP ${status}`);
}

// -- variants -------------------------------------------------------------------------------

function freshClientVariant(ep: Endpoint): RunningVariant {
  return {
    async request() {
      const client = new undici.Client(ep.origin, { allowH2: false, connect: { ca: ep.server.ca } });
      try {
        const res = await client.request({ path: PATH, method: 'POST', headers: HEADERS, body: BODY });
        check(res.statusCode);
        await res.body.text();
      } finally {
        // Closed once the response is read; the close itself is not on the measured path.
        void client.close().catch(() => undefined);
      }
    },
    async close() {},
  };
}

const LEGACY_SLOT = Symbol.for('undici.globalDispatcher.1');
const slots = globalThis as unknown as Record<symbol, unknown>;
let defaultCaInstalled = false;
/** The dispatcher Node's fetch created for itself on first use. */
let builtinDispatcher: unknown;

function globalFetchVariant(ep: Endpoint): RunningVariant {
  // Node's built-in fetch must run on its own default dispatcher: importing npm undici 8 would
  // install undici 8's Agent there (the kernel's undici.ts puts the slot back; check it did).
  const slot = slots[LEGACY_SLOT];
  if (slot !== undefined && slot !== builtinDispatcher) {
    throw new Error('the global fetch dispatcher was replaced: variant (b) would not measure Node defaults');
  }
  if (!defaultCaInstalled) {
    tls.setDefaultCACertificates([...tls.getCACertificates('default'), ep.server.ca]);
    defaultCaInstalled = true;
  }
  const url = `${ep.origin}${PATH}`;
  return {
    async request() {
      const res = await fetch(url, { method: 'POST', headers: HEADERS, body: BODY });
      builtinDispatcher ??= slots[LEGACY_SLOT];
      check(res.status);
      await res.text();
    },
    async close() {},
  };
}

async function kernelVariant(ep: Endpoint, home: string, prewarm: boolean): Promise<RunningVariant> {
  const kernel: Kernel = await createKernel({
    search: false,
    builtins: false,
    env: { KOTO_HOME: home },
    logLevel: 'error',
    config: { transport: { ca: ep.server.ca, proxy: 'none' } },
  });
  return {
    async request() {
      const res = await kernel.http.request({ origin: ep.origin, path: PATH, method: 'POST', headers: HEADERS, body: BODY });
      check(res.statusCode);
      await res.body.text();
    },
    ...(prewarm ? { prewarm: () => void kernel.http.prewarm(ep.origin, PREWARM_PATH) } : {}),
    clientStats() {
      const s = kernel.http.stats().origins[ep.origin];
      return {
        connections: s?.connections ?? 0,
        tlsHandshakes: s?.tlsHandshakes ?? 0,
        tlsResumed: s?.tlsResumed ?? 0,
        prewarms: s?.prewarms ?? 0,
      };
    },
    close: () => kernel.close(),
  };
}

function floorVariant(ep: Endpoint): RunningVariant {
  let session: http2.ClientHttp2Session | undefined;
  const live = (): http2.ClientHttp2Session => {
    if (session && !session.closed && !session.destroyed) return session;
    const s = http2.connect(ep.origin, { ca: ep.server.ca });
    s.on('error', () => undefined);
    // After a GOAWAY no new stream may start on it: drop it and connect again next time.
    s.once('goaway', () => {
      if (session === s) session = undefined;
    });
    s.once('close', () => {
      if (session === s) session = undefined;
    });
    session = s;
    return s;
  };
  const exchange = (headers: http2.OutgoingHttpHeaders, body?: string) =>
    new Promise<void>((resolve, reject) => {
      const stream = live().request(headers);
      stream.on('error', reject);
      stream.on('response', (h) => {
        if (h[':status'] !== 200) reject(new Error(`unexpected HTTP ${h[':status']}`));
      });
      stream.on('data', () => undefined);
      stream.on('end', () => resolve());
      stream.end(body);
    });
  return {
    request: () => exchange({ ':method': 'POST', ':path': PATH, ...HEADERS }, BODY),
    prewarm: () => void exchange({ ':method': 'GET', ':path': PREWARM_PATH }).catch(() => undefined),
    async close() {
      const s = session;
      session = undefined;
      if (s && !s.closed) {
        s.close();
        await once(s, 'close').catch(() => undefined);
      }
    },
  };
}

// -- patterns -------------------------------------------------------------------------------

interface PatternPlan {
  readonly gapMs: readonly [number, number] | null;
  readonly idleMs: number | null;
  readonly description: string;
}

export function patternPlan(pattern: PatternName, opts: Pick<TransportBenchOptions, 'quick' | 'idleMs' | 'leadMs'>): PatternPlan {
  switch (pattern) {
    case 'back-to-back':
      return {
        gapMs: null,
        idleMs: null,
        description: 'each variant sends its next request as soon as the previous one is done; variants run at the same time',
      };
    case 'spaced': {
      const gap: [number, number] = opts.quick ? [500, 1500] : [2000, 5000];
      return {
        gapMs: gap,
        idleMs: null,
        description: `requests ${gap[0] / 1000}–${gap[1] / 1000} s apart${opts.quick ? " (quick mode: shorter than dictation's 2–5 s)" : ', like dictation'}`,
      };
    }
    case 'idle': {
      // Long enough that the connection has been idle past the server's timeout even when the
      // pre-warm fires `lead` ms early and the previous request took a while.
      const gap: [number, number] = opts.quick
        ? [opts.idleMs + opts.leadMs + 1000, opts.idleMs + opts.leadMs + 1400]
        : [opts.idleMs + 2000, opts.idleMs + 5000];
      return {
        gapMs: gap,
        idleMs: opts.idleMs,
        description: `the server closes connections idle for ${opts.idleMs / 1000} s (GOAWAY; PINGs are not activity); requests ${gap[0] / 1000}–${gap[1] / 1000} s apart`,
      };
    }
  }
}

async function runPattern(pattern: PatternName, opts: TransportBenchOptions, home: string): Promise<PatternResult> {
  const log = opts.log ?? (() => undefined);
  const plan = patternPlan(pattern, opts);
  const random = seededRandom(opts.seed + PATTERNS.indexOf(pattern));
  const gaps = Array.from({ length: opts.n }, () => (plan.gapMs ? plan.gapMs[0] + random() * (plan.gapMs[1] - plan.gapMs[0]) : 0));
  const expectedMs = gaps.reduce((s, g) => s + g, 0) + opts.n * (opts.leadMs + opts.thinkMs + 4 * opts.rttMs) + 60_000;

  const endpoints = new Map<VariantName, Endpoint>();
  const running = new Map<VariantName, RunningVariant>();
  try {
    for (const name of opts.variants) {
      const server = await startOpenAIServer({
        thinkMs: opts.thinkMs,
        ...(plan.idleMs !== null ? { idleTimeoutMs: plan.idleMs, idlePingsKeepAlive: false } : {}),
      });
      const proxy = await startDelayProxy({ target: { port: server.port }, rttMs: opts.rttMs, maxLifetimeMs: expectedMs * 2 });
      const ep: Endpoint = { server, proxy, origin: `https://${proxy.authority}` };
      endpoints.set(name, ep);
      running.set(
        name,
        name === 'a'
          ? freshClientVariant(ep)
          : name === 'b'
            ? globalFetchVariant(ep)
            : name === 'c'
              ? await kernelVariant(ep, home, false)
              : name === 'd'
                ? await kernelVariant(ep, home, true)
                : floorVariant(ep),
      );
    }

    const samples = new Map<VariantName, number[]>(opts.variants.map((v) => [v, []]));
    const late = new Map<VariantName, number>(opts.variants.map((v) => [v, 0]));
    const measure = async (name: VariantName) => {
      const v = running.get(name)!;
      const t = performance.now();
      await v.request();
      samples.get(name)!.push(performance.now() - t);
    };
    const started = performance.now();
    log(`${pattern}: ${plan.description}; ${opts.n} requests per variant`);

    if (plan.gapMs === null) {
      // Back-to-back: every variant in its own loop, all at once.
      await Promise.all(
        opts.variants.map(async (name) => {
          const v = running.get(name)!;
          for (let r = 0; r < opts.n; r++) {
            if (v.prewarm) {
              v.prewarm();
              await sleep(opts.leadMs);
            }
            await measure(name);
          }
        }),
      );
    } else {
      // One timeline: round r starts at t0 + sum(gaps before r); variant k goes `k * stagger`
      // later, so every variant sees exactly the same gaps; pre-warms fire `lead` ms early.
      const stagger = Math.min(plan.gapMs[0] / opts.variants.length, 2000);
      const t0 = performance.now() + opts.leadMs + 50;
      const roundStart: number[] = [];
      let at = t0;
      for (const gap of gaps) {
        roundStart.push(at);
        at += gap;
      }
      let progress = 0;
      await Promise.all(
        opts.variants.map(async (name, k) => {
          const v = running.get(name)!;
          for (let r = 0; r < opts.n; r++) {
            const planned = roundStart[r]! + k * stagger;
            if (v.prewarm) {
              await sleepUntil(planned - opts.leadMs);
              v.prewarm();
            }
            await sleepUntil(planned);
            if (performance.now() - planned > 50) late.set(name, late.get(name)! + 1);
            await measure(name);
            if (k === 0 && r + 1 > progress) {
              progress = r + 1;
              if (progress % 5 === 0 || progress === opts.n) log(`${pattern}: round ${progress}/${opts.n}`);
            }
          }
        }),
      );
    }
    const durationMs = performance.now() - started;

    const limitMs = opts.thinkMs + opts.rttMs;
    const variants: Partial<Record<VariantName, VariantResult>> = {};
    for (const name of opts.variants) {
      const ep = endpoints.get(name)!;
      const s = ep.server.stats;
      const list = samples.get(name)!;
      variants[name] = {
        label: VARIANT_LABELS[name],
        samples: list.map((x) => round(x, 2)),
        summary: roundSummary(summarize(list), 2),
        server: {
          tlsHandshakes: s.tlsHandshakes,
          connections: s.connections,
          h2Sessions: s.h2Sessions,
          protocols: { ...s.protocols },
          requests: ep.server.requests.length,
          idleCloses: s.idleCloses,
        },
        client: running.get(name)!.clientStats?.(),
        lateStarts: late.get(name)!,
      };
    }
    const p50 = (v: VariantName) => variants[v]?.summary.p50;
    const ratios: Record<string, number> = {};
    for (const [x, y] of [
      ['a', 'c'],
      ['a', 'd'],
      ['b', 'c'],
      ['b', 'd'],
      ['a', 'b'],
      ['c', 'd'],
    ] as const) {
      const nx = p50(x);
      const ny = p50(y);
      if (nx !== undefined && ny !== undefined) ratios[`${x}/${y}`] = round(nx / ny, 3);
    }
    const overLimitPct: PatternResult['overLimitPct'] = {};
    for (const name of opts.variants) {
      const sum = variants[name]!.summary;
      const pct = (x: number) => round(((x - limitMs) / limitMs) * 100, 2);
      overLimitPct[name] = { p50: pct(sum.p50), p95: pct(sum.p95), avg: pct(sum.avg) };
    }
    return {
      pattern,
      description: plan.description,
      gapMs: plan.gapMs,
      serverIdleTimeoutMs: plan.idleMs,
      limitMs,
      durationMs: Math.round(durationMs),
      variants,
      ratios,
      overLimitPct,
    };
  } finally {
    for (const v of running.values()) await v.close().catch(() => undefined);
    for (const ep of endpoints.values()) {
      await ep.proxy.close();
      await ep.server.close();
    }
  }
}

/** The issue's targets, checked for Koto as shipped (d: the plugin pre-warms at session start). */
function targetsOf(patterns: TransportBenchResult['patterns']): Target[] {
  const out: Target[] = [];
  for (const name of ['spaced', 'idle'] as const) {
    const p = patterns[name];
    const d = p?.overLimitPct.d;
    if (!p || !d) continue;
    out.push({ pattern: name, what: 'Koto (d) P50 over the limit, %', value: d.p50, bound: 3, met: d.p50 <= 3 });
    out.push({ pattern: name, what: 'Koto (d) P95 over the limit, %', value: d.p95, bound: 5, met: d.p95 <= 5 });
  }
  const spaced = patterns.spaced;
  const ad = spaced?.ratios['a/d'];
  if (ad !== undefined)
    out.push({ pattern: 'spaced', what: 'P50 speed-up of Koto (d) over (a), ×', value: ad, bound: 1.35, met: ad >= 1.35 });
  return out;
}

export async function runTransportBench(options: TransportBenchOptions): Promise<TransportBenchResult> {
  const startedAt = new Date();
  const t = performance.now();
  if (options.priority !== null) {
    try {
      os.setPriority(options.priority);
    } catch {
      options.log?.(`could not set the scheduling priority to ${options.priority} (needs root); running at ${os.getPriority()}`);
    }
  }
  const home = await mkdtemp(path.join(os.tmpdir(), 'koto-bench-'));
  const patterns: TransportBenchResult['patterns'] = {};
  try {
    for (const pattern of options.patterns) patterns[pattern] = await runPattern(pattern, options, home);
  } finally {
    await rm(home, { recursive: true, force: true });
  }
  const { log: _log, ...rest } = options;
  return {
    bench: 'transport',
    options: rest,
    machine: machineInfo(),
    nodeFetchUndici: process.versions.undici,
    priority: os.getPriority(),
    startedAt: startedAt.toISOString(),
    durationMs: Math.round(performance.now() - t),
    patterns,
    targets: targetsOf(patterns),
  };
}

// -- output ---------------------------------------------------------------------------------

const ms = (x: number) => x.toFixed(0);

export function formatTransport(result: TransportBenchResult): string {
  const o = result.options;
  const lines: string[] = [];
  lines.push(`# Transport: RTT ${o.rttMs} ms, think ${o.thinkMs} ms, n ${o.n}${o.quick ? ' (quick)' : ''}`);
  lines.push('');
  lines.push(`Machine: ${machineLine(result.machine)}. Built-in fetch: undici ${result.nodeFetchUndici ?? '?'}.`);
  lines.push(
    `Pre-warm lead ${o.leadMs} ms; seed ${o.seed}; scheduling priority (nice) ${result.priority}; total ${(result.durationMs / 1000).toFixed(0)} s.`,
  );
  for (const p of Object.values(result.patterns)) {
    if (!p) continue;
    lines.push('');
    lines.push(`## ${p.pattern}: ${p.description}`);
    lines.push('');
    lines.push(`Limit (think + 1 RTT): ${p.limitMs} ms. Times in ms, request sent → response body read.`);
    lines.push('');
    lines.push('| variant | avg | P50 | P90 | P95 | max | vs limit P50 / P95 | TLS handshakes | protocol |');
    lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---|');
    for (const [name, v] of Object.entries(p.variants) as [VariantName, VariantResult][]) {
      const s = v.summary;
      const over = p.overLimitPct[name]!;
      const protocols = Object.entries(v.server.protocols)
        .map(([k, c]) => `${k} ${c}`)
        .join(', ');
      const sign = (x: number) => `${x >= 0 ? '+' : ''}${x.toFixed(1)} %`;
      lines.push(
        `| ${v.label} | ${ms(s.avg)} | ${ms(s.p50)} | ${ms(s.p90)} | ${ms(s.p95)} | ${ms(s.max)} | ${sign(over.p50)} / ${sign(over.p95)} | ${v.server.tlsHandshakes} | ${protocols} |`,
      );
    }
    const r = p.ratios;
    const parts = Object.entries(r).map(([k, x]) => `${k} ${x.toFixed(2)}×`);
    lines.push('');
    lines.push(`P50 ratios: ${parts.join(', ')}.`);
    const late = Object.entries(p.variants).filter(([, v]) => v && v.lateStarts > 0);
    if (late.length)
      lines.push(`Late starts (previous request overran its slot): ${late.map(([k, v]) => `${k} ${v!.lateStarts}`).join(', ')}.`);
  }
  if (result.targets.length) {
    lines.push('');
    lines.push('## Targets');
    lines.push('');
    for (const t of result.targets) {
      const cmp = t.what.endsWith('×') ? `≥ ${t.bound}` : `≤ ${t.bound}`;
      lines.push(`- ${t.pattern}: ${t.what}: ${t.value.toFixed(2)} (target ${cmp}) — ${t.met ? 'met' : 'NOT met'}`);
    }
  }
  return lines.join('\n');
}

// -- command line ---------------------------------------------------------------------------

function listOf<T extends string>(value: string | undefined, all: readonly T[], what: string): T[] {
  if (!value) return [...all];
  const items = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const item of items) if (!all.includes(item as T)) throw new Error(`unknown ${what} "${item}" (known: ${all.join(', ')})`);
  return items as T[];
}

export function parseTransportArgs(argv: readonly string[]): TransportBenchOptions & { json: boolean; out: string | undefined } {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      rtt: { type: 'string', default: '80' },
      think: { type: 'string', default: '300' },
      n: { type: 'string' },
      quick: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      out: { type: 'string' },
      seed: { type: 'string', default: '1' },
      lead: { type: 'string', default: '1000' },
      idle: { type: 'string' },
      patterns: { type: 'string' },
      variants: { type: 'string' },
      nice: { type: 'string' },
    },
    strict: true,
  });
  const num = (v: string | undefined, name: string) => {
    const x = Number(v);
    if (!Number.isFinite(x) || x < 0) throw new Error(`--${name} must be a non-negative number`);
    return x;
  };
  const quick = values.quick;
  const n = values.n === undefined ? (quick ? 6 : 30) : num(values.n, 'n');
  if (!Number.isInteger(n) || n < 1) throw new Error('--n must be a positive integer');
  return {
    rttMs: num(values.rtt, 'rtt'),
    thinkMs: num(values.think, 'think'),
    n,
    quick,
    patterns: listOf(values.patterns, PATTERNS, 'pattern'),
    variants: listOf(values.variants, VARIANTS, 'variant'),
    seed: num(values.seed, 'seed'),
    leadMs: num(values.lead, 'lead'),
    idleMs: values.idle === undefined ? (quick ? 1000 : 30_000) : num(values.idle, 'idle'),
    priority: values.nice === undefined ? null : num(values.nice.replace(/^-/, ''), 'nice') * (values.nice.startsWith('-') ? -1 : 1),
    json: values.json,
    out: values.out,
  };
}

async function main(): Promise<void> {
  const { json, out, ...options } = parseTransportArgs(process.argv.slice(2));
  const result = await runTransportBench({ ...options, log: (line) => process.stderr.write(`${line}\n`) });
  if (out) await writeFile(out, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(json ? `${JSON.stringify(result, null, 2)}\n` : `${formatTransport(result)}\n`);
}

if (import.meta.main) {
  main().catch((err: unknown) => {
    process.stderr.write(`bench:transport failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  });
}
