/**
 * Release to first character: a whole Koto session (`kernel.run` on a WAV, ASR then
 * correction through the openai-compatible plugin) with the correction streamed vs not.
 *
 *   npm run bench:e2e -- [--rtt 80] [--think 300] [--token-ms 25] [--n 20] [--json] [--out file.json]
 *
 * The loopback server sits behind the delay proxy (`--rtt`), answers each request after
 * `--think` ms (time to first token), and streams SSE events `--token-ms` apart (`sseDelayMs`),
 * one word per event. A non-streamed answer is held back by the same generation time (as many
 * `--token-ms` waits as the stream has gaps) before it is sent, since a real model has to
 * produce every token first.
 * ASR is the same non-streamed call for both (with streamed ASR the per-event delay would also
 * stretch the transcript, which says nothing about correction streaming).
 *
 *   streamed      correction.stream true: time from `kernel.run()` to the first `onInterim`
 *                 correction text (the first character the user could see), and to the full text
 *   non-streamed  correction.stream false: the first character is the full text
 *
 * Both variants use their own kernel (warm HTTP/2 connection, pre-warm at session start) on the
 * same server and link; they alternate session by session, `--gap` ms apart.
 *
 * Second section, release to final transcript (`--live-n`, `--live-seconds 5,30`, `--live-speed`):
 * a live recording (`kernel.record()`) from a bench microphone (`lib/live-audio.ts`) that plays
 * a tone in 20 ms frames at `--live-speed`× real time, then stays open; once the last frame is
 * captured the bench calls `recording.stop()` (the release) and times it until the final
 * transcript (ASR done, correction off). Two kernels, alternating:
 *
 *   upload     the provider without `realtime`: at stop, the WAV goes up as a multipart
 *              `POST /audio/transcriptions` to the loopback OpenAI server (`--asr-think` ms,
 *              default `--think`, before it answers), over the warm pre-warmed connection
 *   streaming  `realtime: { url }`: the socket opened at session start and the audio went up
 *              while "the user spoke"; at stop the last chunk and the commit go up and the
 *              loopback realtime server (`lib/realtime-server.ts`) answers `.completed` at once
 *
 * Both servers sit behind their own delay proxy with the same `--rtt`.
 */
import './lib/source.ts';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createKernel, type Kernel } from '../src/kernel/kernel.ts';
import { splitIntoDeltas, startOpenAIServer } from '../src/testing/openai-server.ts';
import { startDelayProxy } from './lib/delay-proxy.ts';
import { pacedMicPlugin } from './lib/live-audio.ts';
import { startBenchRealtimeServer } from './lib/realtime-server.ts';
import { machineInfo, machineLine, type MachineInfo } from './lib/machine.ts';
import { round, roundSummary, sleep, summarize, type Summary } from './lib/stats.ts';
import { sineWav } from './overhead.ts';
import { tonePcm } from '../src/testing/fake-audio.ts';

const API_KEY = 'sk-bench-e2e-0000';
const TRANSCRIPT = 'so um the meeting is moved to thursday at three and bring the the slides';
const CORRECTION =
  'The meeting has moved to Thursday at three. Please bring the slides, the budget figures and the notes from last week, ' +
  'and let everyone on the team know before the end of the day so that nobody misses it.';

export interface E2eOptions {
  rttMs: number;
  thinkMs: number;
  tokenMs: number;
  n: number;
  warmup: number;
  gapMs: number;
  log?: (line: string) => void;
}

export interface LiveOptions {
  rttMs: number;
  /** Server time before the upload's transcript (the streamed one comes at once). */
  asrThinkMs: number;
  /** Dictation lengths, s. */
  seconds: number[];
  /** Playback speed of the bench microphone (1 = real time). */
  speed: number;
  n: number;
  warmup: number;
  gapMs: number;
  log?: (line: string) => void;
}

export interface LiveRow {
  readonly seconds: number;
  readonly upload: Summary;
  readonly streaming: Summary;
  /** Upload P50 / streaming P50. */
  readonly ratioP50: number;
  /** Upload P90 / streaming P90. */
  readonly ratioP90: number;
}

export interface LiveResult {
  readonly options: Omit<LiveOptions, 'log'>;
  readonly rows: LiveRow[];
}

export interface E2eResult {
  readonly bench: 'e2e';
  readonly options: Omit<E2eOptions, 'log'>;
  readonly machine: MachineInfo;
  readonly startedAt: string;
  readonly correctionWords: number;
  readonly streamed: { firstChar: Summary; fullText: Summary };
  readonly nonStreamed: { firstChar: Summary; fullText: Summary };
  /** Non-streamed full text P50 / streamed first character P50. */
  readonly speedupP50: number;
  /** Streamed full text P50 − non-streamed full text P50 (ms; streaming should cost ~nothing). */
  readonly fullTextDeltaP50: number;
  /** Release to final transcript of a live recording, upload vs streaming (absent with `--live-n 0`). */
  readonly live?: LiveResult;
}

async function session(kernel: Kernel, wav: Uint8Array): Promise<{ firstChar: number; fullText: number }> {
  const t = performance.now();
  let first: number | undefined;
  const result = await kernel.run(
    { data: wav, name: 'a.wav' },
    {
      onInterim: (text, stage) => {
        if (stage === 'correction' && first === undefined && text.length > 0) first = performance.now() - t;
      },
    },
  );
  const full = performance.now() - t;
  if (result.state !== 'done' || result.fallback || result.text !== CORRECTION) {
    throw new Error(
      `session did not deliver the correction: ${JSON.stringify({ state: result.state, error: result.error, warnings: result.warnings })}`,
    );
  }
  return { firstChar: first ?? full, fullText: full };
}

export async function runE2eBench(options: E2eOptions): Promise<E2eResult> {
  const log = options.log ?? (() => undefined);
  const startedAt = new Date().toISOString();
  const home = await mkdtemp(path.join(os.tmpdir(), 'koto-bench-e2e-'));
  const words = splitIntoDeltas(CORRECTION).length;
  // role chunk, one chunk per word, finish chunk, [DONE]: the gaps between those writes.
  const gaps = words + 2;
  const server = await startOpenAIServer({
    apiKey: API_KEY,
    thinkMs: options.thinkMs,
    sseDelayMs: options.tokenMs,
    transcribe: () => TRANSCRIPT,
    complete: async (req) => {
      const streamed = (req.json as { stream?: unknown } | undefined)?.stream === true;
      // One timer per gap, like the SSE writer, so both pay the same timer slack.
      if (!streamed) for (let i = 0; i < gaps; i++) await sleep(options.tokenMs);
      return CORRECTION;
    },
  });
  const proxy = await startDelayProxy({ target: { port: server.port }, rttMs: options.rttMs, maxLifetimeMs: 30 * 60_000 });
  const baseUrl = `https://${proxy.authority}/v1`;
  const kernelFor = (stream: boolean) =>
    createKernel({
      search: false,
      builtins: ['openai-compatible'],
      env: { KOTO_HOME: home },
      logLevel: 'error',
      config: {
        providers: { main: { use: 'openai-compatible', baseUrl, apiKey: API_KEY } },
        asr: { model: 'gpt-4o-mini-transcribe', stream: false },
        correction: { model: 'gpt-4.1-mini', stream },
        transport: { ca: server.ca, proxy: 'none' },
      },
    });
  const streamedKernel = await kernelFor(true);
  const plainKernel = await kernelFor(false);
  try {
    const wav = sineWav(1);
    const s = { firstChar: [] as number[], fullText: [] as number[] };
    const p = { firstChar: [] as number[], fullText: [] as number[] };
    for (let i = 0; i < options.warmup + options.n; i++) {
      const order = i % 2 === 0 ? (['s', 'p'] as const) : (['p', 's'] as const);
      for (const which of order) {
        const r = await session(which === 's' ? streamedKernel : plainKernel, wav);
        if (i >= options.warmup) {
          const into = which === 's' ? s : p;
          into.firstChar.push(r.firstChar);
          into.fullText.push(r.fullText);
        }
        await sleep(options.gapMs);
      }
      if (i >= options.warmup && (i - options.warmup + 1) % 5 === 0) log(`e2e: ${i - options.warmup + 1}/${options.n}`);
    }
    const streamed = { firstChar: roundSummary(summarize(s.firstChar), 1), fullText: roundSummary(summarize(s.fullText), 1) };
    const nonStreamed = { firstChar: roundSummary(summarize(p.firstChar), 1), fullText: roundSummary(summarize(p.fullText), 1) };
    return {
      bench: 'e2e',
      options: {
        rttMs: options.rttMs,
        thinkMs: options.thinkMs,
        tokenMs: options.tokenMs,
        n: options.n,
        warmup: options.warmup,
        gapMs: options.gapMs,
      },
      machine: machineInfo(),
      startedAt,
      correctionWords: words,
      streamed,
      nonStreamed,
      speedupP50: round(nonStreamed.fullText.p50 / streamed.firstChar.p50, 2),
      fullTextDeltaP50: round(streamed.fullText.p50 - nonStreamed.fullText.p50, 1),
    };
  } finally {
    await streamedKernel.close();
    await plainKernel.close();
    await proxy.close();
    await server.close();
    await rm(home, { recursive: true, force: true });
  }
}

const LIVE_TRANSCRIPT = 'so the meeting is moved to thursday at three';
const LIVE_RATE = 16_000;

/** Release to final transcript: live recordings, upload vs realtime streaming. */
export async function runLiveBench(options: LiveOptions): Promise<LiveResult> {
  const log = options.log ?? (() => undefined);
  const home = await mkdtemp(path.join(os.tmpdir(), 'koto-bench-e2e-live-'));
  const openai = await startOpenAIServer({ apiKey: API_KEY, thinkMs: options.asrThinkMs, transcribe: () => LIVE_TRANSCRIPT });
  const realtime = await startBenchRealtimeServer({ transcript: LIVE_TRANSCRIPT });
  const httpProxy = await startDelayProxy({ target: { port: openai.port }, rttMs: options.rttMs, maxLifetimeMs: 30 * 60_000 });
  const wsProxy = await startDelayProxy({ target: { port: realtime.port }, rttMs: options.rttMs, maxLifetimeMs: 30 * 60_000 });
  let seconds = options.seconds[0] ?? 5;
  const pcms = new Map(options.seconds.map((s) => [s, tonePcm({ seconds: s, frequency: 440, amplitude: 0.4, sampleRate: LIVE_RATE })]));
  const mics = {
    upload: pacedMicPlugin({ pcm: () => pcms.get(seconds)!, sampleRate: LIVE_RATE, speed: options.speed }),
    streaming: pacedMicPlugin({ pcm: () => pcms.get(seconds)!, sampleRate: LIVE_RATE, speed: options.speed }),
  };
  const kernelFor = (mode: 'upload' | 'streaming') =>
    createKernel({
      search: false,
      builtins: ['openai-compatible'],
      plugins: [mics[mode].plugin],
      env: { KOTO_HOME: path.join(home, mode) },
      logLevel: 'error',
      config: {
        providers: {
          main: {
            use: 'openai-compatible',
            baseUrl: `https://${httpProxy.authority}/v1`,
            apiKey: API_KEY,
            realtime: mode === 'streaming' ? { url: `wss://${wsProxy.authority}/v1/realtime` } : false,
          },
        },
        asr: { model: 'gpt-4o-mini-transcribe', stream: false, retries: 0 },
        correction: { enabled: false },
        audio: { source: 'bench-mic' },
        transport: { ca: openai.ca, proxy: 'none' },
      },
    });
  const kernels = { upload: await kernelFor('upload'), streaming: await kernelFor('streaming') };
  const uploads = () => openai.requests.filter((r) => r.path.endsWith('/audio/transcriptions')).length;
  async function once(mode: 'upload' | 'streaming'): Promise<number> {
    const mic = mics[mode];
    const captured = mic.lastFrame();
    const before = { uploads: uploads(), sockets: realtime.stats.connections };
    const recording = await kernels[mode].record();
    await captured;
    const t = performance.now();
    const result = await recording.stop();
    const ms = performance.now() - t;
    if (result.state !== 'done' || result.text !== LIVE_TRANSCRIPT) {
      throw new Error(
        `live ${mode} session did not deliver the transcript: ${JSON.stringify({ state: result.state, text: result.text, error: result.error, warnings: result.warnings })}`,
      );
    }
    const viaUpload = uploads() - before.uploads;
    const viaSocket = realtime.stats.connections - before.sockets;
    if (mode === 'upload' ? viaUpload !== 1 || viaSocket !== 0 : viaUpload !== 0 || viaSocket !== 1) {
      throw new Error(
        `live ${mode} session took the wrong path: ${viaUpload} upload(s), ${viaSocket} socket(s), warnings ${JSON.stringify(result.warnings)}`,
      );
    }
    return ms;
  }
  try {
    const rows: LiveRow[] = [];
    for (const s of options.seconds) {
      seconds = s;
      const samples = { upload: [] as number[], streaming: [] as number[] };
      for (let i = 0; i < options.warmup + options.n; i++) {
        const order = i % 2 === 0 ? (['upload', 'streaming'] as const) : (['streaming', 'upload'] as const);
        for (const mode of order) {
          const ms = await once(mode);
          if (i >= options.warmup) samples[mode].push(ms);
          await sleep(options.gapMs);
        }
        if (i >= options.warmup) log(`e2e live ${s} s: ${i - options.warmup + 1}/${options.n}`);
      }
      const upload = roundSummary(summarize(samples.upload), 1);
      const streaming = roundSummary(summarize(samples.streaming), 1);
      rows.push({
        seconds: s,
        upload,
        streaming,
        ratioP50: round(upload.p50 / streaming.p50, 2),
        ratioP90: round(upload.p90 / streaming.p90, 2),
      });
    }
    if (realtime.stats.problems.length > 0) throw new Error(`realtime protocol problems: ${realtime.stats.problems.join('; ')}`);
    const { log: _log, ...rest } = options;
    return { options: rest, rows };
  } finally {
    await kernels.upload.close();
    await kernels.streaming.close();
    await httpProxy.close();
    await wsProxy.close();
    await openai.close();
    await realtime.close();
    await rm(home, { recursive: true, force: true });
  }
}

export function formatLive(live: LiveResult): string {
  const o = live.options;
  const f = (x: number) => x.toFixed(0);
  const pace = o.speed === 1 ? 'in real time' : `at ${o.speed}× real time`;
  return [
    `## Release to final transcript: live recording, upload vs streaming (RTT ${o.rttMs} ms, n ${o.n} per cell)`,
    '',
    `Times in ms from \`recording.stop()\` (key released; the bench microphone has just delivered the last 20 ms frame of the dictation, played ${pace}) to the final transcript (ASR done, correction off).`,
    `Upload: the WAV as a multipart \`POST /audio/transcriptions\` over the warm connection, the server answering ${o.asrThinkMs} ms after the request. Streaming: \`realtime\` on, audio sent while recording; at stop the last chunk and the commit, the server answering \`.completed\` at once.`,
    '',
    '| dictation | upload P50 | P90 | streaming P50 | P90 | upload / streaming P50 | P90 |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...live.rows.map(
      (r) =>
        `| ${r.seconds} s | ${f(r.upload.p50)} | ${f(r.upload.p90)} | ${f(r.streaming.p50)} | ${f(r.streaming.p90)} | ${r.ratioP50.toFixed(2)}× | ${r.ratioP90.toFixed(2)}× |`,
    ),
  ].join('\n');
}

export function formatE2e(r: E2eResult): string {
  const o = r.options;
  const f = (x: number) => x.toFixed(0);
  const row = (name: string, x: { firstChar: Summary; fullText: Summary }) =>
    `| ${name} | ${f(x.firstChar.p50)} | ${f(x.firstChar.p90)} | ${f(x.fullText.p50)} | ${f(x.fullText.p90)} |`;
  return [
    `# Release to first character: RTT ${o.rttMs} ms, think ${o.thinkMs} ms, ${o.tokenMs} ms per word, ${r.correctionWords}-word correction, n ${o.n}`,
    '',
    `Machine: ${machineLine(r.machine)}.`,
    '',
    'Times in ms from `kernel.run()` (key released, audio in hand) through ASR and correction.',
    '',
    '| correction | first character P50 | P90 | full text P50 | P90 |',
    '|---|---:|---:|---:|---:|',
    row('streamed (SSE)', r.streamed),
    row('non-streamed (JSON)', r.nonStreamed),
    '',
    `The first character appears ${r.speedupP50.toFixed(2)}× sooner at P50 with streaming; the full text arrives ${Math.abs(r.fullTextDeltaP50).toFixed(0)} ms ${r.fullTextDeltaP50 > 0 ? 'later' : 'sooner'} than without (P50).`,
    ...(r.live ? ['', formatLive(r.live)] : []),
  ].join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rtt: { type: 'string', default: '80' },
      think: { type: 'string', default: '300' },
      'token-ms': { type: 'string', default: '25' },
      n: { type: 'string', default: '20' },
      warmup: { type: 'string', default: '2' },
      gap: { type: 'string', default: '500' },
      'live-n': { type: 'string', default: '5' },
      'live-warmup': { type: 'string', default: '1' },
      'live-seconds': { type: 'string', default: '5,30' },
      'live-speed': { type: 'string', default: '3' },
      'asr-think': { type: 'string' },
      json: { type: 'boolean', default: false },
      out: { type: 'string' },
    },
    strict: true,
  });
  const base = await runE2eBench({
    rttMs: Number(values.rtt),
    thinkMs: Number(values.think),
    tokenMs: Number(values['token-ms']),
    n: Number(values.n),
    warmup: Number(values.warmup),
    gapMs: Number(values.gap),
    log: (line) => process.stderr.write(`${line}\n`),
  });
  const liveN = Number(values['live-n']);
  const result: E2eResult =
    liveN > 0
      ? {
          ...base,
          live: await runLiveBench({
            rttMs: Number(values.rtt),
            asrThinkMs: Number(values['asr-think'] ?? values.think),
            seconds: values['live-seconds'].split(',').map(Number),
            speed: Number(values['live-speed']),
            n: liveN,
            warmup: Number(values['live-warmup']),
            gapMs: Number(values.gap),
            log: (line) => process.stderr.write(`${line}\n`),
          }),
        }
      : base;
  if (values.out) await writeFile(values.out, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(values.json ? `${JSON.stringify(result, null, 2)}\n` : `${formatE2e(result)}\n`);
}

if (import.meta.main) {
  main().catch((err: unknown) => {
    process.stderr.write(`bench:e2e failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  });
}
