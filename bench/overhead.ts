/**
 * Kernel overhead: what a whole Koto session adds on top of the two HTTP calls it makes.
 *
 *   npm run bench:overhead -- [--n 2000] [--warmup 300] [--json] [--out file.json]
 *
 * One loopback OpenAI-compatible server, zero think time, no delay proxy. Per iteration, in
 * rotating order:
 *   bare     the same two requests (transcription multipart, then chat completion JSON), bytes
 *            and headers captured from a Koto session, sent with `undici.request` through one
 *            undici Agent set up like the kernel's (HTTP/2 preferred, the same CA, one warm
 *            connection); the JSON answers are parsed, the chat body is re-serialised each time
 *   http     the same replay through `kernel.http.request` (the kernel's transport facade only)
 *   core     `kernel.run()` through the hooks and the openai-compatible plugin, given audio that
 *            is already saved and with the plugin's session-start pre-warm stubbed out
 *   prewarm  the same with the pre-warm (a GET /models fired at session start, not awaited; on
 *            loopback the in-process server's work for it lands on the measured path too)
 *   session  `kernel.run({ data: wavBytes, name: 'a.wav' })`: the whole session as shipped (WAV
 *            parsed and saved to the recordings folder first, pre-warm GET /models fired at
 *            session start, ASR, correction, session end)
 * ASR and correction are non-streaming. Added P50 / P99 = variant's percentile − bare's.
 */
import './lib/source.ts';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { encodeWav } from '../src/audio/wav.ts';
import { createKernel } from '../src/kernel/kernel.ts';
import type { AudioData } from '../src/kernel/types.ts';
import { undici as loadUndici } from '../src/kernel/undici.ts';
import { startOpenAIServer, type RecordedRequest } from '../src/testing/openai-server.ts';
import { machineInfo, machineLine, type MachineInfo } from './lib/machine.ts';
import { quantile, round, roundSummary, summarize, type Summary } from './lib/stats.ts';

/** The benchmark compares against undici itself: loaded here, outside Koto's client. */
const undici = loadUndici();

const API_KEY = 'sk-bench-overhead-0000';
export const OVERHEAD_VARIANTS = ['bare', 'http', 'core', 'prewarm', 'session'] as const;
export type OverheadVariant = (typeof OVERHEAD_VARIANTS)[number];

export const OVERHEAD_LABELS: Record<OverheadVariant, string> = {
  bare: 'bare undici.request, same two calls',
  http: 'kernel.http.request, same two calls',
  core: 'kernel.run, audio already saved, no pre-warm',
  prewarm: 'kernel.run, audio already saved, with the pre-warm',
  session: 'kernel.run, whole session as shipped',
};

export interface OverheadOptions {
  n: number;
  warmup: number;
  /** Seconds of 16 kHz mono audio in the WAV. */
  audioSec: number;
  log?: (line: string) => void;
}

export interface OverheadResult {
  readonly bench: 'overhead';
  readonly options: Omit<OverheadOptions, 'log'>;
  readonly machine: MachineInfo;
  readonly startedAt: string;
  readonly wavBytes: number;
  readonly requestsPerIteration: Record<OverheadVariant, number>;
  readonly variants: Record<OverheadVariant, { label: string; summary: Summary; addedP50: number; addedP99: number; pairedMedian: number }>;
  /** Median time per pipeline stage of the whole sessions (kernel's own timings, ms). */
  readonly sessionTimings: Record<string, number>;
  readonly target: { what: string; value: number; bound: number; met: boolean };
}

/** `seconds` of a 440 Hz sine at 16 kHz, as WAV bytes. */
export function sineWav(seconds: number, sampleRate = 16_000): Uint8Array {
  const samples = new Int16Array(Math.round(seconds * sampleRate));
  for (let i = 0; i < samples.length; i++) samples[i] = Math.round(Math.sin((2 * Math.PI * 440 * i) / sampleRate) * 12_000);
  return encodeWav(samples, sampleRate);
}

const REPLAYED_HEADERS = new Set(['content-type', 'authorization', 'accept', 'user-agent']);

function replayHeaders(req: RecordedRequest): Record<string, string> {
  return Object.fromEntries(Object.entries(req.headers).filter(([k]) => REPLAYED_HEADERS.has(k)));
}

export async function runOverheadBench(options: OverheadOptions): Promise<OverheadResult> {
  const log = options.log ?? (() => undefined);
  const startedAt = new Date().toISOString();
  const home = await mkdtemp(path.join(os.tmpdir(), 'koto-bench-overhead-'));
  const server = await startOpenAIServer({
    apiKey: API_KEY,
    transcribe: () => 'hello world this is a test',
    complete: () => 'Hello world, this is a test.',
  });
  const kernel = await createKernel({
    search: false,
    builtins: ['openai-compatible'],
    env: { KOTO_HOME: home },
    logLevel: 'error',
    config: {
      providers: { main: { use: 'openai-compatible', baseUrl: server.baseUrl, apiKey: API_KEY } },
      asr: { model: 'gpt-4o-mini-transcribe', stream: false },
      correction: { model: 'gpt-4.1-mini', stream: false },
      transport: { ca: server.ca, proxy: 'none' },
    },
  });
  const agent = new undici.Agent({
    allowH2: true,
    connect: { ca: server.ca, preferH2: true },
    keepAliveTimeout: 600_000,
    keepAliveMaxTimeout: 600_000,
    connections: 4,
  });
  try {
    const wav = sineWav(options.audioSec);
    const savedPath = path.join(home, 'saved.wav');
    await writeFile(savedPath, wav);
    const saved: AudioData = { data: wav, filename: 'a.wav', mimeType: 'audio/wav', path: savedPath };

    // Capture the exact requests of one session, to replay them.
    server.reset();
    const first = await kernel.run({ data: wav, name: 'a.wav' });
    if (first.state !== 'done' || first.fallback)
      throw new Error(`the Koto session did not complete: ${JSON.stringify(first.error ?? first.warnings)}`);
    const asrReq = server.requests.find((r) => r.path.endsWith('/audio/transcriptions'));
    const chatReq = server.requests.find((r) => r.path.endsWith('/chat/completions'));
    if (!asrReq || !chatReq) throw new Error('could not capture the session requests');
    const asr = { path: asrReq.path, headers: replayHeaders(asrReq), body: asrReq.body };
    const chatJson = chatReq.json;
    const chat = { path: chatReq.path, headers: replayHeaders(chatReq) };

    const replay = async (
      request: (opts: {
        path: string;
        headers: Record<string, string>;
        body: Buffer | string;
      }) => Promise<{ statusCode: number; body: { text(): Promise<string> } }>,
    ) => {
      const a = await request({ path: asr.path, headers: asr.headers, body: asr.body });
      const transcript = JSON.parse(await a.body.text()) as { text?: string };
      if (a.statusCode !== 200 || typeof transcript.text !== 'string') throw new Error(`transcription: HTTP ${a.statusCode}`);
      const c = await request({ path: chat.path, headers: chat.headers, body: JSON.stringify(chatJson) });
      const completion = JSON.parse(await c.body.text()) as { choices?: unknown[] };
      if (c.statusCode !== 200 || !Array.isArray(completion.choices)) throw new Error(`chat: HTTP ${c.statusCode}`);
    };
    const noPrewarm = async () => true;
    const http = kernel.http as unknown as { prewarm: unknown };
    const timings: Record<string, number[]> = {};
    const run: Record<OverheadVariant, () => Promise<void>> = {
      bare: () =>
        replay((o) => undici.request(`${server.origin}${o.path}`, { dispatcher: agent, method: 'POST', headers: o.headers, body: o.body })),
      http: () =>
        replay((o) => kernel.http.request({ origin: server.origin, path: o.path, method: 'POST', headers: o.headers, body: o.body })),
      core: async () => {
        // Stubs the shared client's pre-warm for this session only (an own property shadows the method).
        http.prewarm = noPrewarm;
        try {
          const r = await kernel.run(saved);
          if (r.state !== 'done' || r.fallback) throw new Error('session failed');
        } finally {
          delete http.prewarm;
        }
      },
      prewarm: async () => {
        const r = await kernel.run(saved);
        if (r.state !== 'done' || r.fallback) throw new Error('session failed');
      },
      session: async () => {
        const r = await kernel.run({ data: wav, name: 'a.wav' });
        if (r.state !== 'done' || r.fallback) throw new Error('session failed');
        for (const [k, v] of Object.entries(r.timings)) (timings[k] ??= []).push(v);
      },
    };

    const samples = Object.fromEntries(OVERHEAD_VARIANTS.map((v) => [v, [] as number[]])) as Record<OverheadVariant, number[]>;
    const total = options.warmup + options.n;
    for (let i = 0; i < total; i++) {
      const measuring = i >= options.warmup;
      if (measuring && (i - options.warmup) % 500 === 0 && i > options.warmup) log(`overhead: ${i - options.warmup}/${options.n}`);
      for (let j = 0; j < OVERHEAD_VARIANTS.length; j++) {
        const name = OVERHEAD_VARIANTS[(i + j) % OVERHEAD_VARIANTS.length]!;
        const t = performance.now();
        await run[name]();
        const elapsed = performance.now() - t;
        if (measuring) samples[name].push(elapsed);
      }
      if (i === options.warmup - 1) for (const k of Object.keys(timings)) timings[k] = [];
    }

    // Requests per iteration, from a last counted round.
    const perIteration = {} as Record<OverheadVariant, number>;
    for (const name of OVERHEAD_VARIANTS) {
      server.reset();
      await run[name]();
      await new Promise((resolve) => setTimeout(resolve, 20));
      perIteration[name] = server.requests.length;
    }

    const bare = summarize(samples.bare);
    const variants = {} as OverheadResult['variants'];
    for (const name of OVERHEAD_VARIANTS) {
      const s = summarize(samples[name]);
      const paired = samples[name].map((x, i) => x - samples.bare[i]!).sort((a, b) => a - b);
      variants[name] = {
        label: OVERHEAD_LABELS[name],
        summary: roundSummary(s, 3),
        addedP50: round(s.p50 - bare.p50, 3),
        addedP99: round(s.p99 - bare.p99, 3),
        pairedMedian: round(quantile(paired, 0.5), 3),
      };
    }
    const sessionTimings = Object.fromEntries(
      Object.entries(timings).map(([k, v]) => [
        k,
        quantile(
          [...v].sort((a, b) => a - b),
          0.5,
        ),
      ]),
    );
    const value = variants.session.addedP50;
    return {
      bench: 'overhead',
      options: { n: options.n, warmup: options.warmup, audioSec: options.audioSec },
      machine: machineInfo(),
      startedAt,
      wavBytes: wav.length,
      requestsPerIteration: perIteration,
      variants,
      sessionTimings,
      target: { what: 'added P50 of a whole session over bare undici, ms', value, bound: 0.5, met: value <= 0.5 },
    };
  } finally {
    await agent.close().catch(() => undefined);
    await kernel.close();
    await server.close();
    await rm(home, { recursive: true, force: true });
  }
}

export function formatOverhead(r: OverheadResult): string {
  const f = (x: number) => x.toFixed(3);
  const lines = [
    `# Kernel overhead: ${r.options.n} iterations after ${r.options.warmup} warm-up, ${r.wavBytes}-byte WAV, zero think time, no proxy`,
    '',
    `Machine: ${machineLine(r.machine)}.`,
    '',
    '| variant | HTTP requests | P50 ms | P99 ms | added P50 ms | added P99 ms | paired median ms |',
    '|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const name of OVERHEAD_VARIANTS) {
    const v = r.variants[name];
    lines.push(
      `| ${name}: ${v.label} | ${r.requestsPerIteration[name]} | ${f(v.summary.p50)} | ${f(v.summary.p99)} | ${name === 'bare' ? '—' : f(v.addedP50)} | ${name === 'bare' ? '—' : f(v.addedP99)} | ${name === 'bare' ? '—' : f(v.pairedMedian)} |`,
    );
  }
  lines.push('');
  lines.push(
    `Kernel stage timings of the whole sessions (median, whole ms as the kernel rounds them): ${Object.entries(r.sessionTimings)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}.`,
  );
  lines.push('');
  lines.push(`Target: ${r.target.what} ≤ ${r.target.bound}: ${f(r.target.value)} — ${r.target.met ? 'met' : 'NOT met'}.`);
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      n: { type: 'string', default: '2000' },
      warmup: { type: 'string', default: '300' },
      audio: { type: 'string', default: '0.5' },
      json: { type: 'boolean', default: false },
      out: { type: 'string' },
    },
    strict: true,
  });
  const result = await runOverheadBench({
    n: Number(values.n),
    warmup: Number(values.warmup),
    audioSec: Number(values.audio),
    log: (line) => process.stderr.write(`${line}\n`),
  });
  if (values.out) await writeFile(values.out, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(values.json ? `${JSON.stringify(result, null, 2)}\n` : `${formatOverhead(result)}\n`);
}

if (import.meta.main) {
  main().catch((err: unknown) => {
    process.stderr.write(`bench:overhead failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  });
}
