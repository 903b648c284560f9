/**
 * Hedging against a heavy latency tail: transcription time with and without `asr.hedgeAfterMs`.
 *
 *   npm run bench:hedge -- [--n 400] [--hedge 600] [--seed 21] [--quick] [--json] [--out file.json]
 *
 * Two loopback OpenAI-compatible servers (`primary`, `secondary`), each answering a
 * transcription after a think time drawn from its own seeded distribution: most requests
 * `base` ms ± 30 % (uniform), a `tailRate` share `tail` ms ± 50 % (a provider having a bad
 * moment: a cold replica, a queue). The same seeds serve both variants, so they face the same
 * sequence of slow requests:
 *
 *   fallback  asr.fallback: [secondary], no hedging: every session waits for the primary
 *   hedged    the same plus asr.hedgeAfterMs: the secondary starts when the primary has been
 *             silent that long; the first answer wins and the other request is aborted
 *
 * Time per session: `kernel.transcribe()` of a saved 1 s WAV, correction off, both connections
 * warm. Also counted: requests each server received and how many the client aborted (the
 * price of hedging: extra requests, each aborted one possibly billed).
 */
import './lib/source.ts';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { encodeWav } from '../src/audio/wav.ts';
import { createKernel } from '../src/kernel/kernel.ts';
import { startOpenAIServer, type OpenAIServer } from '../src/testing/openai-server.ts';
import { machineInfo, machineLine, type MachineInfo } from './lib/machine.ts';
import { roundSummary, seededRandom, summarize, type Summary } from './lib/stats.ts';

const API_KEY = 'sk-bench-hedge-0000';
export const HEDGE_VARIANTS = ['fallback', 'hedged'] as const;
export type HedgeVariant = (typeof HEDGE_VARIANTS)[number];

export interface HedgeOptions {
  n: number;
  /** asr.hedgeAfterMs of the hedged variant. */
  hedgeMs: number;
  baseMs: number;
  tailMs: number;
  tailRate: number;
  seed: number;
  quick: boolean;
  log?: (line: string) => void;
}

export interface HedgeVariantResult {
  readonly summary: Summary;
  readonly samples: readonly number[];
  /** Which server's answer each session used. */
  readonly answeredBy: Record<string, number>;
  readonly requests: { readonly primary: number; readonly secondary: number };
  /** Requests the client went away from before they were answered (hedge losers). */
  readonly aborted: { readonly primary: number; readonly secondary: number };
}

export interface HedgeResult {
  readonly bench: 'hedge';
  readonly options: Omit<HedgeOptions, 'log'>;
  readonly machine: MachineInfo;
  readonly startedAt: string;
  /** Requests of the primary's sequence drawn from the tail (the same for both variants). */
  readonly primaryTails: number;
  readonly variants: Record<HedgeVariant, HedgeVariantResult>;
}

/** A think time per request: `base` ± 30 %, or with probability `tailRate`, `tail` ± 50 %. */
function latencies(seed: number, options: Pick<HedgeOptions, 'baseMs' | 'tailMs' | 'tailRate'>): () => number {
  const random = seededRandom(seed);
  return () => {
    const tail = random() < options.tailRate;
    const centre = tail ? options.tailMs : options.baseMs;
    const spread = tail ? 0.5 : 0.3;
    return Math.round(centre * (1 - spread + 2 * spread * random()));
  };
}

function wav(seconds: number): Uint8Array {
  const samples = new Int16Array(Math.round(seconds * 16_000));
  for (let i = 0; i < samples.length; i++) samples[i] = Math.round(Math.sin((2 * Math.PI * 440 * i) / 16_000) * 12_000);
  return encodeWav(samples, 16_000);
}

async function slowServer(name: string, next: () => number): Promise<OpenAIServer> {
  return startOpenAIServer({
    apiKey: API_KEY,
    transcribe: async () => {
      await sleep(next());
      return `answered by ${name}`;
    },
  });
}

async function runVariant(variant: HedgeVariant, options: HedgeOptions, audioPath: string): Promise<HedgeVariantResult> {
  const primaryDelay = latencies(options.seed, options);
  const secondaryDelay = latencies(options.seed + 1, options);
  const primary = await slowServer('primary', primaryDelay);
  const secondary = await slowServer('secondary', secondaryDelay);
  const home = await mkdtemp(path.join(os.tmpdir(), 'koto-bench-hedge-'));
  const kernel = await createKernel({
    search: false,
    builtins: ['openai-compatible'],
    env: { KOTO_HOME: home },
    logLevel: 'error',
    history: false,
    config: {
      providers: {
        primary: { use: 'openai-compatible', baseUrl: primary.baseUrl, apiKey: API_KEY },
        secondary: { use: 'openai-compatible', baseUrl: secondary.baseUrl, apiKey: API_KEY },
      },
      asr: {
        provider: 'primary',
        model: 'whisper-1',
        fallback: ['secondary'],
        ...(variant === 'hedged' ? { hedgeAfterMs: options.hedgeMs } : {}),
      },
      correction: { enabled: false },
      transport: { ca: primary.ca },
    },
  });
  try {
    // Warm both connections so the first samples measure the same thing as the rest.
    await kernel.http.prewarm(new URL(primary.baseUrl).origin, '/v1/models', { authorization: `Bearer ${API_KEY}` });
    await kernel.http.prewarm(new URL(secondary.baseUrl).origin, '/v1/models', { authorization: `Bearer ${API_KEY}` });
    primary.reset();
    secondary.reset();
    const samples: number[] = [];
    const answeredBy: Record<string, number> = {};
    for (let i = 0; i < options.n; i++) {
      const start = performance.now();
      const result = await kernel.transcribe(audioPath);
      samples.push(performance.now() - start);
      answeredBy[result.provider] = (answeredBy[result.provider] ?? 0) + 1;
      if ((i + 1) % Math.max(1, Math.floor(options.n / 10)) === 0) options.log?.(`${variant}: ${i + 1}/${options.n}`);
    }
    // Aborts reach the servers a moment after the winner's answer.
    await sleep(options.quick ? 100 : 500);
    const transcriptions = (s: OpenAIServer) => s.requests.filter((r) => r.path.endsWith('/audio/transcriptions'));
    return {
      summary: roundSummary(summarize(samples), 1),
      samples: samples.map((x) => Math.round(x * 10) / 10),
      answeredBy,
      requests: { primary: transcriptions(primary).length, secondary: transcriptions(secondary).length },
      aborted: {
        primary: transcriptions(primary).filter((r) => r.aborted).length,
        secondary: transcriptions(secondary).filter((r) => r.aborted).length,
      },
    };
  } finally {
    await kernel.close();
    await primary.close();
    await secondary.close();
    await rm(home, { recursive: true, force: true });
  }
}

export async function runHedgeBench(options: HedgeOptions): Promise<HedgeResult> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'koto-bench-hedge-audio-'));
  try {
    const audioPath = path.join(dir, 'dictation.wav');
    await writeFile(audioPath, wav(1));
    const startedAt = new Date().toISOString();
    const primaryTails = (() => {
      const random = seededRandom(options.seed);
      let tails = 0;
      for (let i = 0; i < options.n; i++) {
        if (random() < options.tailRate) tails++;
        random();
      }
      return tails;
    })();
    const variants = {} as Record<HedgeVariant, HedgeVariantResult>;
    for (const variant of HEDGE_VARIANTS) {
      options.log?.(`${variant}: ${options.n} sessions`);
      variants[variant] = await runVariant(variant, options, audioPath);
    }
    const { log: _log, ...rest } = options;
    return { bench: 'hedge', options: rest, machine: machineInfo(), startedAt, primaryTails, variants };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function formatHedge(r: HedgeResult): string {
  const o = r.options;
  const lines = [
    `# Hedging: ${o.n} transcriptions per variant, think time ${o.baseMs} ms ± 30 %, ${Math.round(o.tailRate * 100)} % of requests ${o.tailMs} ms ± 50 % (seed ${o.seed})`,
    '',
    `Machine: ${machineLine(r.machine)}. Loopback HTTPS/HTTP2, warm connections; ${r.primaryTails} of the primary's ${o.n} requests fell in the tail.`,
    '',
    '| variant | P50 ms | P95 ms | P99 ms | max ms | answered by secondary | requests to secondary | aborted requests |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const name of HEDGE_VARIANTS) {
    const v = r.variants[name];
    const label = name === 'hedged' ? `hedged (asr.hedgeAfterMs: ${o.hedgeMs})` : 'fallback only (no hedging)';
    lines.push(
      `| ${label} | ${v.summary.p50} | ${v.summary.p95} | ${v.summary.p99} | ${v.summary.max} | ${v.answeredBy.secondary ?? 0} | ${v.requests.secondary} | ${v.aborted.primary + v.aborted.secondary} |`,
    );
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      n: { type: 'string' },
      hedge: { type: 'string' },
      seed: { type: 'string', default: '21' },
      quick: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      out: { type: 'string' },
    },
    strict: true,
  });
  const quick = values.quick;
  // Quick: a short run with a tail far beyond the hedge, for CI (it asserts counts, never times).
  const result = await runHedgeBench({
    n: Number(values.n ?? (quick ? 20 : 400)),
    hedgeMs: Number(values.hedge ?? (quick ? 200 : 600)),
    baseMs: quick ? 20 : 300,
    tailMs: quick ? 1500 : 4000,
    tailRate: quick ? 0.2 : 0.05,
    seed: Number(values.seed),
    quick,
    log: (line) => process.stderr.write(`${line}\n`),
  });
  if (values.out) await writeFile(values.out, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(values.json ? `${JSON.stringify(result, null, 2)}\n` : `${formatHedge(result)}\n`);
}

if (import.meta.main) {
  main().catch((err: unknown) => {
    process.stderr.write(`bench:hedge failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  });
}
