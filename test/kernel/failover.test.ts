/**
 * Provider failover and hedging against real loopback upstreams: two OpenAI-compatible servers
 * (`main`, `backup`) with different behaviours. Every trigger is deterministic: a port with
 * nothing listening, a status the server is told to answer, a response held until released.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createKernel, KotoError, type Kernel, type RunResult } from '../../src/index.ts';
import { HistoryStore } from '../../src/history/store.ts';
import { toneWav } from '../../src/testing/fake-audio.ts';
import { startOpenAIServer, type OpenAIServer } from '../support/index.ts';
import { hasPocketsphinx, SAMPLE } from '../offline/support.ts';

const KEY = 'sk-failover-test-key';
const WAV = toneWav({ seconds: 0.3 });

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function server(transcript: string, completion = `${transcript} (corrected)`): Promise<OpenAIServer> {
  const s = await startOpenAIServer({ apiKey: KEY, transcribe: () => transcript, complete: () => completion });
  cleanups.push(() => s.close());
  return s;
}

/** A base URL nothing listens on: a server started and closed again. */
async function deadUrl(): Promise<string> {
  const s = await startOpenAIServer({ apiKey: KEY });
  const url = s.baseUrl;
  await s.close();
  return url;
}

async function kernelWith(config: Record<string, unknown>, builtins: string[] = ['openai-compatible']): Promise<Kernel> {
  const home = mkdtempSync(path.join(os.tmpdir(), 'koto-failover-'));
  const kernel = await createKernel({ search: false, builtins, env: { KOTO_HOME: home }, config, logLevel: 'error' });
  cleanups.push(async () => {
    await kernel.close();
    rmSync(home, { recursive: true, force: true });
  });
  return kernel;
}

function providers(main: string, backup: string, ca: string, mainKey = KEY) {
  return {
    providers: {
      main: { use: 'openai-compatible', baseUrl: main, apiKey: mainKey },
      backup: { use: 'openai-compatible', baseUrl: backup, apiKey: KEY },
    },
    transport: { ca, connectTimeoutMs: 1000, headersTimeoutMs: 5000, bodyTimeoutMs: 5000, drainTimeoutMs: 200 },
  };
}

async function failed(promise: Promise<unknown>): Promise<KotoError & { record?: RunResult }> {
  try {
    await promise;
  } catch (err) {
    if (KotoError.is(err)) return err;
    throw err;
  }
  throw new Error('expected the session to fail');
}

const transcriptions = (s: OpenAIServer) => s.requests.filter((r) => r.path.endsWith('/audio/transcriptions'));
const completions = (s: OpenAIServer) => s.requests.filter((r) => r.path.endsWith('/chat/completions'));

describe('failover', () => {
  it('primary down: the fallback transcribes the same audio and the session says who answered and why', async () => {
    const backup = await server('from the backup');
    const kernel = await kernelWith({
      ...providers(await deadUrl(), backup.baseUrl, backup.ca),
      asr: { provider: 'main', model: 'whisper-1', retries: 1, fallback: ['backup'] },
      correction: { enabled: false },
    });
    const record = await kernel.run({ data: WAV, name: 'dictation.wav' });
    expect(record.state).toBe('done');
    expect(record.text).toBe('from the backup');
    expect(record.asrProvider).toBe('backup');
    expect(record.attempts?.map((a) => [a.stage, a.provider, a.outcome, a.error?.code])).toEqual([
      ['asr', 'main', 'failed', 'KOTO_ERR_NETWORK'],
      ['asr', 'backup', 'answered', undefined],
    ]);
    expect(record.warnings.join('\n')).toMatch(/transcribed by fallback provider "backup": "main" failed: cannot reach/);
    // The same bytes went to the fallback.
    expect(transcriptions(backup)[0]?.form?.files.file?.data.equals(Buffer.from(WAV))).toBe(true);
    // `asr.model` belongs to the primary: the fallback used its own default model.
    expect(transcriptions(backup)[0]?.form?.fields.model).toEqual(['gpt-4o-mini-transcribe']);
    // The history row says the same.
    const row = kernel.history.get(record.id);
    expect(row?.asrProvider).toBe('backup');
    expect(row?.attempts.map((a) => `${a.provider}:${a.outcome}`)).toEqual(['main:failed', 'backup:answered']);
    expect(row?.warnings.join('\n')).toContain('"main" failed');
  });

  it('primary answers 401: the fallback answers, for transcription and for correction; the key never shows', async () => {
    const main = await server('from main');
    const backup = await server('from the backup', 'Corrected by the backup.');
    const kernel = await kernelWith({
      ...providers(main.baseUrl, backup.baseUrl, main.ca, 'sk-wrong-key-1234'),
      asr: { provider: 'main', model: 'whisper-1', fallback: ['backup'] },
      correction: { provider: 'main', model: 'gpt-4.1-mini', fallback: ['backup'] },
    });
    const record = await kernel.run({ data: WAV, name: 'dictation.wav' });
    expect(record.text).toBe('Corrected by the backup.');
    expect(record.fallback).toBe(false);
    expect(record.asrProvider).toBe('backup');
    expect(record.correctionProvider).toBe('backup');
    expect(record.attempts?.map((a) => `${a.stage}:${a.provider}:${a.outcome}:${a.error?.code ?? ''}`)).toEqual([
      'asr:main:failed:KOTO_ERR_AUTH',
      'asr:backup:answered:',
      'correction:main:failed:KOTO_ERR_AUTH',
      'correction:backup:answered:',
    ]);
    // A 401 is not retried: one request each to main.
    expect(transcriptions(main)).toHaveLength(1);
    expect(completions(main)).toHaveLength(1);
    expect(JSON.stringify(record)).not.toContain('sk-wrong-key-1234');
    expect(record.warnings.some((w) => w.startsWith('corrected by fallback provider "backup"'))).toBe(true);
  });

  it('5xx after its retries, and a 429 asking for a wait past the deadline: the fallback answers', async () => {
    const main = await server('from main');
    const backup = await server('from the backup');
    main.inject({ path: '/audio/transcriptions', status: 503, times: Infinity });
    const kernel = await kernelWith({
      ...providers(main.baseUrl, backup.baseUrl, main.ca),
      asr: { provider: 'main', model: 'whisper-1', retries: 1, timeoutMs: 5000, fallback: ['backup'] },
      correction: { enabled: false },
    });
    const record = await kernel.run({ data: WAV, name: 'dictation.wav' });
    expect(record.asrProvider).toBe('backup');
    // Retried once (retryable), then the fallback.
    expect(transcriptions(main)).toHaveLength(2);
    expect(record.attempts?.[0]?.error?.code).toBe('KOTO_ERR_UPSTREAM');

    main.clearFaults();
    main.reset();
    main.inject({ path: '/audio/transcriptions', status: 429, headers: { 'retry-after': '120' } });
    const limited = await kernel.run({ data: WAV, name: 'dictation.wav' });
    expect(limited.asrProvider).toBe('backup');
    // Not waited for: one request to main, then the fallback at once.
    expect(transcriptions(main)).toHaveLength(1);
    expect(limited.attempts?.[0]?.error?.code).toBe('KOTO_ERR_RATE_LIMITED');
    expect(limited.warnings.join('\n')).toMatch(/"main" failed: provider "main" is rate limiting \(HTTP 429\); retry after 120 s/);
  });

  it('primary answers 400 (the request is refused): no failover, the session fails with the recording kept', async () => {
    const main = await server('from main');
    const backup = await server('from the backup');
    main.inject({ path: '/audio/transcriptions', status: 400 });
    const kernel = await kernelWith({
      ...providers(main.baseUrl, backup.baseUrl, main.ca),
      asr: { provider: 'main', model: 'whisper-1', fallback: ['backup'] },
      correction: { enabled: false },
    });
    const err = await failed(kernel.run({ data: WAV, name: 'dictation.wav' }));
    expect(err.code).toBe('KOTO_ERR_BAD_REQUEST');
    expect(transcriptions(backup)).toHaveLength(0);
    expect(err.record?.audioPath).toBeTruthy();
    expect(err.record?.attempts?.map((a) => `${a.provider}:${a.outcome}`)).toEqual(['main:failed']);
  });

  it("every provider fails: the primary's error, each failure in the record; a failed correction chain delivers the raw transcript", async () => {
    const main = await server('raw words');
    const backup = await server('unused');
    main.inject({ path: '/chat/completions', status: 503, times: Infinity });
    backup.inject({ path: '/chat/completions', status: 401, times: Infinity });
    const kernel = await kernelWith({
      ...providers(main.baseUrl, backup.baseUrl, main.ca),
      asr: { provider: 'main', model: 'whisper-1' },
      correction: { provider: 'main', model: 'gpt-4.1-mini', retries: 0, fallback: ['backup'] },
    });
    const record = await kernel.run({ data: WAV, name: 'dictation.wav' });
    expect(record.text).toBe('raw words');
    expect(record.fallback).toBe(true);
    expect(record.warnings.join('\n')).toMatch(/every correction provider failed: "main": .*HTTP 503.*"backup": .*HTTP 401/);
    expect(record.warnings.join('\n')).toMatch(/correction skipped, raw transcript delivered: provider "main" failed \(HTTP 503\)/);

    const dead = await kernelWith({
      ...providers(await deadUrl(), await deadUrl(), main.ca),
      asr: { provider: 'main', retries: 0, fallback: ['backup'] },
      correction: { enabled: false },
    });
    const err = await failed(dead.run({ data: WAV, name: 'dictation.wav' }));
    expect(err.code).toBe('KOTO_ERR_NETWORK');
    expect(err.record?.attempts?.map((a) => `${a.provider}:${a.outcome}`)).toEqual(['main:failed', 'backup:failed']);
    expect(err.record?.warnings.join('\n')).toMatch(/every transcription provider failed: "main": cannot reach .*"backup": cannot reach/);
  });

  it('a fallback naming no provider is a config error naming it; one serving the wrong capability too', async () => {
    const main = await server('x');
    const err = await failed(kernelWith({ ...providers(main.baseUrl, main.baseUrl, main.ca), asr: { fallback: ['backup', 'azure-eu'] } }));
    expect(err.code).toBe('KOTO_ERR_CONFIG_INVALID');
    expect(err.message).toMatch(/asr\.fallback\.1: "azure-eu" is not a configured provider \(known: main, backup\)/);
    const wrong = await failed(
      kernelWith({ ...providers(main.baseUrl, main.baseUrl, main.ca), correction: { fallback: ['offline'] } }, [
        'openai-compatible',
        'pocketsphinx',
      ]),
    );
    expect(wrong.message).toMatch(/correction\.fallback\.0: provider "offline" \(plugin pocketsphinx\) does not serve correction/);
    const hedgeAlone = await failed(kernelWith({ ...providers(main.baseUrl, main.baseUrl, main.ca), asr: { hedgeAfterMs: 500 } }));
    expect(hedgeAlone.code).toBe('KOTO_ERR_CONFIG_INVALID');
    expect(hedgeAlone.message).toMatch(/asr\.hedgeAfterMs: hedging starts the next provider of asr\.fallback, which lists none/);
    // A name that only looks like a default on Object.prototype is not one.
    const proto = await failed(
      kernelWith({ ...providers(main.baseUrl, main.baseUrl, main.ca), asr: { fallback: ['constructor'] } }, [
        'openai-compatible',
        'pocketsphinx',
      ]),
    );
    expect(proto.message).toMatch(/asr\.fallback\.0: "constructor" is not a configured provider/);
  });

  it.skipIf(!hasPocketsphinx)(
    '`fallback: [offline]` next to configured providers: the offline engine transcribes when the cloud is down',
    async () => {
      const kernel = await kernelWith(
        {
          providers: { cloud: { use: 'openai-compatible', baseUrl: await deadUrl(), apiKey: KEY } },
          asr: { provider: 'cloud', retries: 0, fallback: ['offline'] },
          correction: { enabled: false },
        },
        ['openai-compatible', 'pocketsphinx'],
      );
      expect(kernel.config.resolved.asrFallback).toEqual(['offline']);
      const record = await kernel.run(SAMPLE);
      expect(record.asrProvider).toBe('offline');
      expect(record.text).toMatch(/hello world/);
      const offline = record.attempts?.find((a) => a.provider === 'offline');
      // A local engine costs nothing; the dead cloud call was not billed.
      expect(offline?.cost).toBe(0);
      expect(record.cost).toBe(0);
    },
  );
});

describe('hedging', () => {
  it('primary silent past hedgeAfterMs: the fallback starts, its answer wins, the primary request is aborted (seen at the server)', async () => {
    const main = await server('from main');
    const backup = await server('from the backup', 'Backup corrected.');
    // Held until released: main cannot answer first, however slow the machine is.
    main.inject({ path: '/audio/transcriptions', delayMs: 600_000 });
    main.inject({ path: '/chat/completions', delayMs: 600_000 });
    cleanups.push(() => main.release());
    const kernel = await kernelWith({
      ...providers(main.baseUrl, backup.baseUrl, main.ca),
      asr: { provider: 'main', model: 'whisper-1', fallback: ['backup'], hedgeAfterMs: 50 },
      correction: { provider: 'main', model: 'gpt-4.1-mini', fallback: ['backup'], hedgeAfterMs: 50, timeoutMs: 60_000 },
    });
    const record = await kernel.run({ data: WAV, name: 'dictation.wav' });
    expect(record.text).toBe('Backup corrected.');
    expect(record.asrProvider).toBe('backup');
    expect(record.correctionProvider).toBe('backup');
    expect(record.attempts?.map((a) => `${a.stage}:${a.provider}:${a.outcome}:${a.hedged}`)).toEqual([
      'asr:backup:answered:true',
      'asr:main:aborted:false',
      'correction:backup:answered:true',
      'correction:main:aborted:false',
    ]);
    // A hedge is not a failure: no warning.
    expect(record.warnings).toEqual([]);
    // The server saw both requests of main go away before it answered them.
    await until(() => transcriptions(main)[0]?.aborted === true && completions(main)[0]?.aborted === true);
    expect(transcriptions(main)).toHaveLength(1);
    expect(completions(main)).toHaveLength(1);
    // The provider a hedge would start was pre-warmed at session start, like the primary.
    await until(() => backup.requests.some((r) => r.path.endsWith('/models')));
  });

  it('while both stream, the live display hears one provider only (no flicker between two texts)', async () => {
    // The primary streams its first words, then stalls mid-stream; the backup streams a whole answer.
    const main = await startOpenAIServer({ apiKey: KEY, transcribe: () => 'alpha beta gamma delta', sseDelayMs: 600_000 });
    cleanups.push(() => main.close());
    const backup = await server('one two three four');
    const kernel = await kernelWith({
      ...providers(main.baseUrl, backup.baseUrl, main.ca),
      asr: { provider: 'main', model: 'gpt-4o-mini-transcribe', fallback: ['backup'], hedgeAfterMs: 100 },
      correction: { enabled: false },
    });
    const interims: string[] = [];
    const record = await kernel.run({ data: WAV, name: 'dictation.wav' }, { onInterim: (text) => interims.push(text) });
    expect(record.text).toBe('one two three four');
    expect(interims.length).toBeGreaterThan(0);
    const fromMain = interims.filter((t) => 'alpha beta gamma delta'.startsWith(t.trim()));
    const fromBackup = interims.filter((t) => 'one two three four'.startsWith(t.trim()));
    expect([fromMain.length, fromBackup.length]).toContain(interims.length);
  });

  it('off by default: a slow primary is waited for, the fallback never asked', async () => {
    const main = await server('from main');
    const backup = await server('from the backup');
    main.inject({ path: '/audio/transcriptions', delayMs: 600_000 });
    const kernel = await kernelWith({
      ...providers(main.baseUrl, backup.baseUrl, main.ca),
      asr: { provider: 'main', model: 'whisper-1', fallback: ['backup'] },
      correction: { enabled: false },
    });
    const pending = kernel.run({ data: WAV, name: 'dictation.wav' });
    await main.waitForRequests(1);
    await until(() => transcriptions(main).length === 1);
    main.release();
    const record = await pending;
    expect(record.asrProvider).toBe('main');
    // Not asked, not even pre-warmed: without hedging a fallback costs nothing until it is needed.
    expect(backup.requests).toHaveLength(0);
  });

  it('a cancel during a hedge aborts both requests and ends the session cancelled', async () => {
    const main = await server('from main');
    const backup = await server('from the backup');
    main.inject({ path: '/audio/transcriptions', delayMs: 600_000 });
    backup.inject({ path: '/audio/transcriptions', delayMs: 600_000 });
    cleanups.push(() => {
      main.release();
      backup.release();
    });
    const kernel = await kernelWith({
      ...providers(main.baseUrl, backup.baseUrl, main.ca),
      asr: { provider: 'main', model: 'whisper-1', fallback: ['backup'], hedgeAfterMs: 20 },
      correction: { enabled: false },
    });
    const controller = new AbortController();
    const pending = kernel.run({ data: WAV, name: 'dictation.wav' }, { signal: controller.signal });
    await until(() => transcriptions(main).length === 1 && transcriptions(backup).length === 1);
    controller.abort();
    const err = await failed(pending);
    expect(err.code).toBe('KOTO_ERR_ABORTED');
    expect(err.record?.state).toBe('cancelled');
    await until(() => transcriptions(main)[0]?.aborted === true && transcriptions(backup)[0]?.aborted === true);
  });
});

describe('history migration', () => {
  it('a history written before failover gains the new columns and keeps its rows', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'koto-history-old-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'history.sqlite');
    const { DatabaseSync } = await import('node:sqlite');
    const old = new DatabaseSync(file);
    old.exec(`CREATE TABLE sessions (id TEXT PRIMARY KEY, started_at TEXT NOT NULL, ended_at TEXT, state TEXT NOT NULL, input TEXT NOT NULL,
      raw TEXT, text TEXT, fallback INTEGER NOT NULL DEFAULT 0, asr_provider TEXT, asr_model TEXT, correction_provider TEXT,
      correction_model TEXT, audio_path TEXT, timings TEXT NOT NULL DEFAULT '{}', error_code TEXT, error_message TEXT,
      warnings TEXT NOT NULL DEFAULT '[]', retry_of TEXT);
      INSERT INTO sessions (id, started_at, state, input, text) VALUES ('old-1', '2026-01-01T00:00:00.000Z', 'done', 'a.wav', 'kept');`);
    old.close();
    const store = new HistoryStore(file);
    cleanups.push(() => store.close());
    const row = store.get('old-1');
    expect(row?.text).toBe('kept');
    expect(row?.attempts).toEqual([]);
    expect(row?.cost).toBeNull();
  });
});

async function until(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
