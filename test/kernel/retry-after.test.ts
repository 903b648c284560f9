/**
 * Retry-After against the stage deadline (docs/failure-behaviour.md): a wait that would end past
 * the deadline is not waited for; the rate-limit error, saying when to retry, comes at once.
 * "At once" is asserted by what would differ if Koto waited: it would retry (a second request)
 * or hit the deadline (KOTO_ERR_TIMEOUT instead of KOTO_ERR_RATE_LIMITED).
 */
import { afterEach, describe, expect, test, vi } from 'vitest';
import { createKernel, encodeWav, KotoError, kotoError, type Kernel } from '../../src/index.ts';
import { withRetry } from '../../src/kernel/retry.ts';
import { failure, startOpenAIServer, tempHome, type OpenAIServer } from '../support/index.ts';
import { AZURE_BODIES } from '../azure-foundry/azure-server.ts';
import { audio as azureAudio, harness as azureHarness, type Harness as AzureHarness } from '../azure-foundry/helpers.ts';

const wav = encodeWav(new Int16Array(1600), 16000);
const home = tempHome('koto-retry-after-');
let server: OpenAIServer | undefined;
let kernel: Kernel | undefined;
let azure: AzureHarness | undefined;

afterEach(async () => {
  vi.useRealTimers();
  await kernel?.close();
  await server?.close();
  await azure?.close();
  kernel = undefined;
  server = undefined;
  azure = undefined;
});

async function openai(timeoutMs: number) {
  server = await startOpenAIServer();
  kernel = await createKernel({
    search: false,
    builtins: ['openai-compatible'],
    env: { KOTO_HOME: home.dir },
    logLevel: 'silent',
    config: {
      providers: { main: { use: 'openai-compatible', baseUrl: server.baseUrl, apiKey: 'sk-retry-after-test' } },
      asr: { model: 'whisper-1', timeoutMs, retries: 2 },
      transport: { ca: server.ca },
    },
  });
  return { server, kernel };
}

const uploads = () => server!.requests.filter((r) => r.path.endsWith('/audio/transcriptions')).length;

describe('Retry-After longer than the stage deadline', () => {
  test('429 with Retry-After: 120 and a 5 s deadline: the rate-limit error at once, saying when to retry; one request', async () => {
    const { server, kernel } = await openai(5000);
    server.inject({ path: '/audio/transcriptions', status: 429, headers: { 'retry-after': '120' }, times: Infinity });
    const err = await failure(kernel.transcribe({ data: wav, name: 'a.wav' }));
    expect(err.code).toBe('KOTO_ERR_RATE_LIMITED');
    expect(err.message).toBe('provider "main" is rate limiting (HTTP 429); retry after 120 s');
    expect(err.details).toMatchObject({ status: 429, retryAfter: 120 });
    expect(uploads()).toBe(1);
  });

  test('the same for Retry-After as an HTTP date', async () => {
    const { server, kernel } = await openai(5000);
    const when = new Date(Date.now() + 120_000).toUTCString();
    server.inject({ path: '/audio/transcriptions', status: 429, headers: { 'retry-after': when }, times: Infinity });
    const err = await failure(kernel.transcribe({ data: wav, name: 'a.wav' }));
    expect(err.code).toBe('KOTO_ERR_RATE_LIMITED');
    expect(err.message).toMatch(/retry after 1[12]\d s$/);
    expect(uploads()).toBe(1);
  });

  test('Azure: a retry-after-ms within maxRetryWaitMs but past the deadline is not slept into a timeout', async () => {
    azure = await azureHarness({}, { asr: { timeoutMs: 3000, retries: 0 } });
    azure.server.inject({
      route: 'transcriptions',
      status: 429,
      body: AZURE_BODIES.rateLimited,
      headers: { 'retry-after-ms': '8000' },
      times: 10,
    });
    const err = await failure(azure.kernel.transcribe({ data: azureAudio(), name: 'a.wav' }));
    expect(err.code).toBe('KOTO_ERR_RATE_LIMITED');
    expect(err.message).toBe('provider "az" is rate limiting deployment "whisper" (HTTP 429); Azure asks to wait 8 s');
    expect(azure.server.to('transcriptions')).toHaveLength(1);
  });
});

describe('withRetry honours Retry-After as given', () => {
  const limited = (seconds: number) =>
    kotoError(
      'KOTO_ERR_RATE_LIMITED',
      { provider: 'p', retry: `; retry after ${seconds} s` },
      { details: { status: 429, retryable: true, retryAfter: seconds } },
    );

  test('a 15 s Retry-After within a 60 s deadline is waited in full (not cut to the 10 s backoff cap)', async () => {
    vi.useFakeTimers();
    const controller = new AbortController();
    let calls = 0;
    const done = withRetry(
      async () => {
        calls += 1;
        if (calls === 1) throw limited(15);
        return 'ok';
      },
      { retries: 2, signal: controller.signal, deadline: Date.now() + 60_000 },
    );
    await vi.advanceTimersByTimeAsync(14_000);
    expect(calls).toBe(1);
    await vi.advanceTimersByTimeAsync(1_500);
    expect(calls).toBe(2);
    await expect(done).resolves.toBe('ok');
  });

  test('a Retry-After ending past the deadline throws the rate-limit error without waiting', async () => {
    vi.useFakeTimers();
    let calls = 0;
    const done = withRetry(
      async () => {
        calls += 1;
        throw limited(30);
      },
      { retries: 5, signal: new AbortController().signal, deadline: Date.now() + 20_000 },
    );
    const err = await done.catch((e: unknown) => e);
    expect(KotoError.is(err) && err.code).toBe('KOTO_ERR_RATE_LIMITED');
    expect(calls).toBe(1);
    expect(vi.getTimerCount()).toBe(0);
  });
});
