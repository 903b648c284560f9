/**
 * Shared rig of the reliability suite: a loopback OpenAI-compatible upstream, a kernel whose
 * sessions are written to a HistoryStore exactly as the daemon does (row at sessionBegin,
 * completed at sessionEnd), and assertions about what the USER gets from a session:
 *
 * - delivered: `state: 'done'`, the provider's text, no fallback;
 * - fallback: `state: 'done'`, the raw transcript, `fallback: true` and a warning saying why;
 * - failed: a KotoError with the expected code and a one-line message, the recording still on
 *   disk (`record.audioPath`), and a `failed` history row pointing at it, so `koto retry` works.
 *
 * Anything else (a crash, a hang, a session that ends without a row) fails the test.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';
import { HistoryStore } from '../../src/history/store.ts';
import { createKernel, KotoError, type Kernel, type KernelOptions, type RunResult } from '../../src/index.ts';
import { toneWav } from '../../src/testing/fake-audio.ts';
import { startOpenAIServer, type OpenAIServer, type OpenAIServerOptions } from '../support/index.ts';

/** The canary credential: it must never show up anywhere a user, a log or a bug report can see. */
export const CANARY = 'sk-koto-canary-7Q2vX9pL4mZ8';

/** 0.3 s of a tone: what the fake upstream transcribes as `hello world`. */
export const WAV = toneWav({ seconds: 0.3 });

export interface LogLine {
  readonly level: string;
  readonly scope: string;
  readonly message: string;
  readonly fields?: Record<string, unknown> | undefined;
}

export interface Rig {
  readonly server: OpenAIServer;
  readonly kernel: Kernel;
  readonly home: string;
  readonly history: HistoryStore;
  readonly logs: LogLine[];
  /** Every record that reached sessionEnd, in order. */
  readonly ended: RunResult[];
  /** Sessions that reached sessionBegin. */
  readonly begun: string[];
  logText(): string;
  /** One dictation of {@link WAV} as bytes (saved to the recordings folder before anything is sent). */
  run(data?: Uint8Array): Promise<Outcome>;
  close(): Promise<void>;
}

export interface RigOptions {
  readonly server?: OpenAIServerOptions | undefined;
  /** Kernel config, given the server; merged over the defaults section by section. */
  readonly config?: ((server: OpenAIServer) => Record<string, unknown> | Promise<Record<string, unknown>>) | undefined;
  /** Extra kernel options (plugins, builtins, configPath, watch…). */
  readonly kernel?: Partial<KernelOptions> | undefined;
  /** Trust the server's test CA (default true). */
  readonly trust?: boolean | undefined;
}

type Section = Record<string, unknown>;

/** The suite's defaults: small timeouts so every fault settles in well under a second or two. */
export function baseConfig(server: OpenAIServer, trust = true): Record<string, Section> {
  return {
    providers: { main: { use: 'openai-compatible', baseUrl: server.baseUrl, apiKey: CANARY } },
    asr: { model: 'whisper-1', timeoutMs: 5000, retries: 2 },
    correction: { model: 'gpt-4.1-mini', stream: true, timeoutMs: 3000, retries: 1 },
    transport: {
      ...(trust ? { ca: server.ca } : {}),
      connectTimeoutMs: 1000,
      headersTimeoutMs: 3000,
      bodyTimeoutMs: 3000,
      drainTimeoutMs: 500,
    },
  };
}

function merge(base: Record<string, Section>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const current = out[key];
    out[key] =
      value && typeof value === 'object' && !Array.isArray(value) && current && typeof current === 'object' && key !== 'providers'
        ? { ...(current as Section), ...(value as Section) }
        : value;
  }
  return out;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Writes history rows exactly as the daemon does (src/daemon/daemon.ts #recordHistory). */
export function recordHistory(kernel: Kernel, history: HistoryStore, ended: RunResult[] = [], begun: string[] = []): void {
  kernel.hooks.sessionBegin.tap('reliability-history', (session, audioPath) => {
    begun.push(session.id);
    history.begin({ id: session.id, input: audioPath ?? 'microphone', audioPath });
  });
  kernel.hooks.sessionEnd.tapPromise('reliability-history', async (record) => {
    ended.push(record);
    history.finish(record);
  });
}

export async function rig(options: RigOptions = {}): Promise<Rig> {
  const server = await startOpenAIServer({ apiKey: CANARY, ...options.server });
  const home = tempDir('koto-reliability-');
  const logs: LogLine[] = [];
  const ended: RunResult[] = [];
  const begun: string[] = [];
  let kernel: Kernel;
  try {
    const config = merge(baseConfig(server, options.trust ?? true), (await options.config?.(server)) ?? {});
    kernel = await createKernel({
      search: false,
      builtins: ['openai-compatible'],
      env: { KOTO_HOME: home },
      logLevel: 'debug',
      logSink: (entry) => logs.push({ level: entry.level, scope: entry.scope, message: entry.message, fields: entry.fields }),
      config,
      ...options.kernel,
    });
  } catch (err) {
    await server.close();
    rmSync(home, { recursive: true, force: true });
    throw err;
  }
  const history = new HistoryStore(kernel.paths.history);
  recordHistory(kernel, history, ended, begun);
  let closed = false;
  return {
    server,
    kernel,
    home,
    history,
    logs,
    ended,
    begun,
    logText: () => logs.map((l) => `${l.level} [${l.scope}] ${l.message} ${l.fields ? JSON.stringify(l.fields) : ''}`).join('\n'),
    run: (data = WAV) => settle(kernel.run({ data, name: 'dictation.wav' })),
    async close() {
      if (closed) return;
      closed = true;
      await kernel.close();
      history.close();
      await server.close();
      rmSync(home, { recursive: true, force: true });
    },
  };
}

export type Outcome =
  | { readonly kind: 'done'; readonly record: RunResult }
  | { readonly kind: 'fallback'; readonly record: RunResult }
  | { readonly kind: 'failed'; readonly error: KotoError; readonly record: RunResult };

/** What the user got from one session. A non-KotoError or an error without its record is a bug. */
export async function settle(session: Promise<RunResult>): Promise<Outcome> {
  try {
    const record = await session;
    return record.fallback ? { kind: 'fallback', record } : { kind: 'done', record };
  } catch (err) {
    if (!KotoError.is(err)) throw new Error(`the session threw something that is not a KotoError: ${String(err)}`, { cause: err });
    const record = (err as KotoError & { record?: RunResult }).record;
    if (!record)
      throw new Error(`the session failed without its record (the recording path is lost): ${err.code}: ${err.message}`, { cause: err });
    return { kind: 'failed', error: err, record };
  }
}

/** Everything an error shows a user, a log or a bug report: message, fix, line, JSON, stack, causes. */
export function everythingShown(err: unknown): string {
  const parts: string[] = [];
  let current: unknown = err;
  for (let depth = 0; current && depth < 6; depth++) {
    const e = current as {
      message?: string;
      fix?: string;
      stack?: string;
      toLine?: () => string;
      toJSON?: () => unknown;
      details?: unknown;
      cause?: unknown;
      record?: unknown;
    };
    parts.push(String(current), e.message ?? '', e.fix ?? '', e.stack ?? '', e.toLine?.() ?? '');
    try {
      parts.push(JSON.stringify(e.toJSON?.() ?? null), JSON.stringify(e.details ?? null), JSON.stringify(e.record ?? null));
    } catch {
      // circular details: the strings above are what is shown
    }
    current = e.cause;
  }
  return parts.join('\n');
}

/** A text delivered as-is: the provider's answer, no fallback, no error. */
export function expectDelivered(outcome: Outcome, text?: string): RunResult {
  if (outcome.kind === 'failed') throw new Error(`expected text, got ${outcome.error.code}: ${outcome.error.message}`);
  expect(outcome.kind, `warnings: ${outcome.record.warnings.join(' | ')}`).toBe('done');
  expect(outcome.record.state).toBe('done');
  expect(outcome.record.text).toBeTruthy();
  if (text !== undefined) expect(outcome.record.text).toBe(text);
  return outcome.record;
}

/** The raw transcript delivered because correction failed: `fallback: true` and a warning saying why. */
export function expectFallback(outcome: Outcome, why?: RegExp): RunResult {
  if (outcome.kind === 'failed') throw new Error(`expected the raw-text fallback, got ${outcome.error.code}: ${outcome.error.message}`);
  expect(outcome.kind).toBe('fallback');
  const { record } = outcome;
  expect(record.state).toBe('done');
  expect(record.fallback).toBe(true);
  expect(record.text).toBe(record.raw);
  expect(record.text).toBeTruthy();
  const warning = record.warnings.find((w) => w.startsWith('correction skipped, raw transcript delivered'));
  expect(warning, `warnings: ${record.warnings.join(' | ')}`).toBeDefined();
  if (why) expect(warning).toMatch(why);
  expect(warning).not.toContain('\n');
  return record;
}

/**
 * A clear error: the catalogue code, a one-line message and fix, the canary nowhere, the
 * recording kept on disk and a `failed` history row pointing at it.
 */
export function expectFailedKept(
  outcome: Outcome,
  code: string,
  history?: HistoryStore,
  message?: RegExp,
): { error: KotoError; record: RunResult } {
  if (outcome.kind !== 'failed') throw new Error(`expected ${code}, got ${outcome.kind}: ${outcome.record.text ?? ''}`);
  const { error, record } = outcome;
  expect(error.code, error.message).toBe(code);
  expect(error.message).not.toContain('\n');
  expect(error.toLine()).not.toContain('\n');
  expect(error.message.length).toBeGreaterThan(10);
  if (message) expect(error.message).toMatch(message);
  expect(everythingShown(error)).not.toContain(CANARY);
  expect(record.state).toBe('failed');
  expect(record.error).toMatchObject({ code });
  expect(record.audioPath, 'the recording path').toBeTruthy();
  expect(existsSync(record.audioPath!), 'the recording is kept on disk').toBe(true);
  if (history) {
    expect(history.get(record.id)).toMatchObject({ state: 'failed', errorCode: code, audioPath: record.audioPath });
  }
  return { error, record };
}

/** Requests the server received for a path suffix. */
export function requestsTo(server: OpenAIServer, suffix: string) {
  return server.requests.filter((r) => r.path.endsWith(suffix));
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls until `check` holds (fails after `timeoutMs`: a hang guard, generous for a loaded machine). */
export async function waitFor(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}
