/**
 * Usage and cost: what each provider call used (from the answer's `usage`), priced from the
 * dated defaults or `pricing:`, recorded for every entry point (Node API run/transcribe/correct,
 * the standalone CLI), summed by `koto usage`, and the monthly budget warning given once.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createKernel, type Kernel } from '../../src/index.ts';
import { HistoryStore } from '../../src/history/store.ts';
import { costOf, DEFAULT_PRICES, priceFor } from '../../src/kernel/pricing.ts';
import { toneWav } from '../../src/testing/fake-audio.ts';
import { parseSince, summarise } from '../../src/cli/commands/usage.ts';
import { startOpenAIServer, type OpenAIServer } from '../support/index.ts';
import { koto } from '../cli/support.ts';

const KEY = 'sk-usage-test-key';
const WAV = toneWav({ seconds: 0.3 });

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

function tempHome(): string {
  const home = mkdtempSync(path.join(os.tmpdir(), 'koto-usage-'));
  cleanups.push(() => rmSync(home, { recursive: true, force: true }));
  return home;
}

async function server(): Promise<OpenAIServer> {
  const s = await startOpenAIServer({ apiKey: KEY, transcribe: () => 'hello usage', complete: () => 'Hello, usage.' });
  cleanups.push(() => s.close());
  return s;
}

function config(s: OpenAIServer, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    providers: { main: { use: 'openai-compatible', baseUrl: s.baseUrl, apiKey: KEY } },
    asr: { model: 'gpt-4o-mini-transcribe' },
    correction: { model: 'gpt-4.1-mini' },
    transport: { ca: s.ca },
    ...extra,
  };
}

async function kernelAt(home: string, cfg: Record<string, unknown>): Promise<Kernel> {
  const kernel = await createKernel({
    search: false,
    builtins: ['openai-compatible'],
    env: { KOTO_HOME: home },
    config: cfg,
    logLevel: 'error',
  });
  cleanups.push(() => kernel.close());
  return kernel;
}

/** Answers with exactly these token counts (the tests price them). */
function knownUsage(
  s: OpenAIServer,
  asr: { input_tokens: number; output_tokens: number },
  chat: { prompt_tokens: number; completion_tokens: number },
) {
  s.inject({
    path: '/audio/transcriptions',
    body: { text: 'hello usage', usage: { type: 'tokens', ...asr, total_tokens: asr.input_tokens + asr.output_tokens } },
  });
  s.inject({
    path: '/chat/completions',
    body: {
      id: 'chatcmpl-1',
      object: 'chat.completion',
      created: 1,
      model: 'gpt-4.1-mini',
      choices: [{ index: 0, message: { role: 'assistant', content: 'Hello, usage.' }, finish_reason: 'stop' }],
      usage: { ...chat, total_tokens: chat.prompt_tokens + chat.completion_tokens },
    },
  });
}

describe('usage and cost of a session', () => {
  it("tokens from the answers' `usage`, priced from the defaults; the session, its attempts and the usage table agree", async () => {
    const s = await server();
    const home = tempHome();
    const kernel = await kernelAt(home, config(s));
    knownUsage(s, { input_tokens: 1000, output_tokens: 200 }, { prompt_tokens: 2000, completion_tokens: 100 });
    const record = await kernel.run({ data: WAV, name: 'a.wav' });
    expect(record.text).toBe('Hello, usage.');
    const [asr, correction] = record.attempts ?? [];
    expect(asr?.usage).toEqual({ inputTokens: 1000, outputTokens: 200 });
    expect(asr?.audioSeconds).toBeCloseTo(0.3, 2);
    // gpt-4o-mini-transcribe: $1.25 / $5 per 1M tokens; gpt-4.1-mini: $0.40 / $1.60.
    expect(asr?.cost).toBeCloseTo(0.00125 + 0.001, 9);
    expect(correction?.usage).toEqual({ inputTokens: 2000, outputTokens: 100 });
    expect(correction?.cost).toBeCloseTo(0.0008 + 0.00016, 9);
    expect(record.cost).toBeCloseTo(0.00321, 9);
    const rows = kernel.history.usage();
    expect(rows.map((r) => [r.sessionId, r.stage, r.provider, r.model, r.inputTokens, r.outputTokens])).toEqual([
      [record.id, 'asr', 'main', 'gpt-4o-mini-transcribe', 1000, 200],
      [record.id, 'correction', 'main', 'gpt-4.1-mini', 2000, 100],
    ]);
    expect(kernel.history.get(record.id)?.cost).toBeCloseTo(0.00321, 9);
  });

  it('a streamed correction asks for its usage (stream_options) and gets priced', async () => {
    const s = await server();
    const kernel = await kernelAt(tempHome(), config(s));
    const record = await kernel.run({ data: WAV, name: 'a.wav' });
    const chat = s.requests.find((r) => r.path.endsWith('/chat/completions'));
    expect((chat?.json as Record<string, unknown>).stream_options).toEqual({ include_usage: true });
    const correction = record.attempts?.find((a) => a.stage === 'correction');
    expect(correction?.usage?.inputTokens).toBeGreaterThan(0);
    expect(correction?.cost).toBeGreaterThan(0);
  });

  it('`pricing:` overrides the defaults; an unknown model costs null, not zero', async () => {
    const s = await server();
    const kernel = await kernelAt(
      tempHome(),
      config(s, { asr: { model: 'my-own-whisper' }, pricing: { 'gpt-4.1-mini': { input: 1, output: 10 } } }),
    );
    knownUsage(s, { input_tokens: 1000, output_tokens: 200 }, { prompt_tokens: 1000, completion_tokens: 100 });
    const record = await kernel.run({ data: WAV, name: 'a.wav' });
    const [asr, correction] = record.attempts ?? [];
    expect(asr?.model).toBe('my-own-whisper');
    expect(asr?.cost).toBeNull();
    expect(correction?.cost).toBeCloseTo(0.001 + 0.001, 9);
    // One unknown price makes the session's total unknown too.
    expect(record.cost).toBeNull();
    expect(kernel.history.usage().find((r) => r.stage === 'asr')?.cost).toBeNull();
  });

  it('transcribe() and correct() of the Node API are recorded too; whisper-1 is priced per minute', async () => {
    const s = await server();
    const kernel = await kernelAt(tempHome(), config(s, { asr: { model: 'whisper-1' } }));
    const t = await kernel.transcribe({ data: WAV, name: 'a.wav' });
    // The server bills whole seconds (`usage: {type: duration, seconds: 1}`): what it billed is priced, $0.006 per minute.
    expect(t.attempts[0]?.usage).toEqual({ audioSeconds: 1 });
    expect(t.cost).toBeCloseTo((1 / 60) * 0.006, 9);
    const c = await kernel.correct('some words');
    expect(c.attempts[0]?.stage).toBe('correction');
    expect(kernel.history.usage().map((r) => r.stage)).toEqual(['asr', 'correction']);
  });

  it('the monthly budget warns once when crossed, remembered across kernels (processes)', async () => {
    const s = await server();
    const home = tempHome();
    const cfg = config(s, { budget: { monthly: 0.004 } });
    const kernel = await kernelAt(home, cfg);
    knownUsage(s, { input_tokens: 1000, output_tokens: 200 }, { prompt_tokens: 2000, completion_tokens: 100 });
    const first = await kernel.run({ data: WAV, name: 'a.wav' });
    expect(first.warnings.join('\n')).not.toMatch(/budget/);
    knownUsage(s, { input_tokens: 1000, output_tokens: 200 }, { prompt_tokens: 2000, completion_tokens: 100 });
    const second = await kernel.run({ data: WAV, name: 'a.wav' });
    // $0.00321 × 2 = $0.00642 ≥ $0.004.
    expect(second.warnings.filter((w) => /budget/.test(w))).toEqual([
      "this month's estimated provider spend is $0.01, past budget.monthly ($0.004); `koto usage` shows where it went (this warning comes once a month)",
    ]);
    const third = await kernel.run({ data: WAV, name: 'a.wav' });
    expect(third.warnings.join('\n')).not.toMatch(/budget/);
    await kernel.close();
    const again = await kernelAt(home, cfg);
    const fourth = await again.run({ data: WAV, name: 'a.wav' });
    expect(fourth.warnings.join('\n')).not.toMatch(/budget/);
  });
});

describe('koto usage', () => {
  it('--json sums what the standalone CLI and the Node API recorded, by provider, model and day', async () => {
    const s = await server();
    const home = tempHome();
    const kernel = await kernelAt(home, config(s));
    knownUsage(s, { input_tokens: 1000, output_tokens: 200 }, { prompt_tokens: 2000, completion_tokens: 100 });
    await kernel.run({ data: WAV, name: 'a.wav' });
    await kernel.close();
    // A standalone `koto run` (no daemon) in the same data folder.
    const file = path.join(home, 'config.json');
    writeFileSync(file, JSON.stringify(config(s)));
    const wav = path.join(home, 'b.wav');
    writeFileSync(wav, WAV);
    knownUsage(s, { input_tokens: 3000, output_tokens: 0 }, { prompt_tokens: 0, completion_tokens: 1000 });
    const run = await koto(['--no-daemon', '--config', file, 'run', wav], { env: { KOTO_HOME: home } });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);

    const byProvider = await koto(['usage', '--json'], { env: { KOTO_HOME: home } });
    expect(byProvider.code).toBe(0);
    const summary = JSON.parse(byProvider.stdout) as {
      by: string;
      groups: { key: string; calls: number; inputTokens: number; outputTokens: number; cost: number | null }[];
      total: { cost: number };
    };
    expect(summary.by).toBe('provider');
    expect(summary.groups).toHaveLength(1);
    expect(summary.groups[0]).toMatchObject({ key: 'main', calls: 4, inputTokens: 6000, outputTokens: 1300 });
    // 0.00321 + (3000 × 1.25 + 1000 × 1.60) / 1e6
    expect(summary.total.cost).toBeCloseTo(0.00321 + 0.00375 + 0.0016, 9);

    const byModel = JSON.parse((await koto(['usage', '--by', 'model', '--json'], { env: { KOTO_HOME: home } })).stdout) as {
      groups: { key: string; inputTokens: number }[];
    };
    expect(byModel.groups.map((g) => [g.key, g.inputTokens])).toEqual([
      ['gpt-4o-mini-transcribe', 4000],
      ['gpt-4.1-mini', 2000],
    ]);
    const text = await koto(['usage', '--by', 'day'], { env: { KOTO_HOME: home } });
    expect(text.stdout).toMatch(new RegExp(`${new Date().toISOString().slice(0, 10)} +4 `));
    expect(text.stdout).toMatch(/total +4 .*\$0\.0086/);
  });

  it('a bad --since or --by is one line, exit 2', async () => {
    const home = tempHome();
    const since = await koto(['usage', '--since', 'last tuesday'], { env: { KOTO_HOME: home } });
    expect(since.code).toBe(2);
    expect(since.stderr).toMatch(/--since takes a duration such as 7d/);
    expect(since.stderr.trim().split('\n')).toHaveLength(1);
    const by = await koto(['usage', '--by', 'colour'], { env: { KOTO_HOME: home } });
    expect(by.code).toBe(2);
    expect(by.stderr).toMatch(/--by takes provider, model or day/);
  });
});

describe('pricing units', () => {
  it('prices by provider/model, model, provider name, then the defaults; local engines are free', () => {
    const pricing = { 'fast/gpt-4.1-mini': { input: 9 }, 'gpt-4.1-mini': { input: 8 }, groq: { perMinute: 0.001 } };
    expect(priceFor(pricing, { provider: 'fast', use: 'openai-compatible', model: 'gpt-4.1-mini' })).toEqual({ input: 9 });
    expect(priceFor(pricing, { provider: 'other', use: 'openai-compatible', model: 'gpt-4.1-mini' })).toEqual({ input: 8 });
    expect(priceFor(pricing, { provider: 'groq', use: 'openai-compatible', model: 'whisper-large-v3' })).toEqual({ perMinute: 0.001 });
    expect(priceFor({}, { provider: 'x', use: 'azure-foundry', model: 'gpt-4o-transcribe' })).toBe(DEFAULT_PRICES['gpt-4o-transcribe']);
    expect(priceFor({}, { provider: 'x', use: 'openai-compatible', model: 'llama3' })).toBeUndefined();
    expect(costOf(priceFor({}, { provider: 'offline', use: 'pocketsphinx', model: 'pocketsphinx/en-us' }), undefined, undefined)).toBe(0);
    // Token-priced without token counts: unknown, not a guess.
    expect(costOf({ input: 1, output: 1 }, undefined, 10)).toBeNull();
    expect(costOf(undefined, { inputTokens: 5 }, undefined)).toBeNull();
  });

  it('summarise keeps unknown costs apart from known ones', () => {
    const row = (cost: number | null) => ({
      sessionId: 's',
      at: '2026-12-01T00:00:00.000Z',
      stage: 'asr' as const,
      provider: 'p',
      model: 'm',
      outcome: 'answered' as const,
      audioSeconds: 1,
      inputTokens: 1,
      outputTokens: 1,
      cost,
    });
    expect(summarise([row(0.5), row(null)], 'provider').total).toMatchObject({ calls: 2, cost: 0.5, unpricedCalls: 1 });
    expect(summarise([row(null)], 'provider').total).toMatchObject({ cost: null, unpricedCalls: 1 });
    expect(parseSince('7d', Date.parse('2026-12-08T00:00:00Z')).toISOString()).toBe('2026-12-01T00:00:00.000Z');
    expect(parseSince('999999999w').toISOString()).toBe('1970-01-01T00:00:00.000Z');
    expect(() => parseSince('9999999999d')).toThrow(/--since takes a duration/);
    expect(() => parseSince('2026-13-45')).toThrow(/--since takes a duration/);
  });
});

describe('history store', () => {
  it('claim() says yes once per value', () => {
    const home = tempHome();
    const store = new HistoryStore(path.join(home, 'h.sqlite'));
    cleanups.push(() => store.close());
    expect(store.claim('budget-warned', '2026-12')).toBe(true);
    expect(store.claim('budget-warned', '2026-12')).toBe(false);
    expect(store.claim('budget-warned', '2027-01')).toBe(true);
  });
});
