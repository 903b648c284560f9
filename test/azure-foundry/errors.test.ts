import { afterEach, describe, expect, test } from 'vitest';
import { KotoError } from 'koto-voice';
import { AZURE_BODIES, DEFAULT_COMPLETION, DEFAULT_TRANSCRIPT } from './azure-server.ts';
import { API_KEY, audio, caught, everythingShown, harness, type Harness } from './helpers.ts';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe('404', () => {
  test('DeploymentNotFound names the deployment, the endpoint and how to list deployments', async () => {
    h = await harness({}, { provider: { deployments: { asr: 'whisper-large', correction: 'gpt-4o-mini' } } });
    const err = (await caught(() => h!.kernel.transcribe({ data: audio(), name: 'a.wav' }))) as KotoError;
    expect(KotoError.is(err)).toBe(true);
    expect(err.code).toBe('AZURE_FOUNDRY_ERR_DEPLOYMENT_NOT_FOUND');
    expect(err.exitCode).toBe(1); // the runtime exit of the kernel code it replaced
    expect(err.message).toBe(
      `provider "az": deployment "whisper-large" does not exist on ${h.server.url} (Azure DeploymentNotFound, used for transcription)`,
    );
    expect(err.fix).toContain('providers.az.deployments.asr');
    expect(err.fix).toContain('az cognitiveservices account deployment list -g <resource-group> -n <resource-name>');
    expect(err.details).toMatchObject({ reason: 'deployment-not-found', deployment: 'whisper-large', status: 404 });
    expect([err.plugin, err.hook]).toEqual(['azure-foundry', 'asr:azure-foundry']);
    expect(err.stack?.split('\n')[0]).toContain('whisper-large');
    expect(h.server.to('transcriptions')).toHaveLength(1); // not retried
  });

  test('DeploymentNotFound on the v1 shape (model = deployment) and for correction: raw text with the reason', async () => {
    h = await harness({}, ({ server }) => ({
      provider: { endpoint: `${server.url}/openai/v1`, deployments: { correction: 'gpt-5-mini' } },
    }));
    const result = await h.kernel.correct('raw words');
    expect(result).toMatchObject({ text: 'raw words', fallback: true });
    expect(result.warnings.join('\n')).toContain(
      `deployment "gpt-5-mini" does not exist on ${h.server.url} (Azure DeploymentNotFound, used for correction)`,
    );
    expect(h.server.to('chat')[0]).toMatchObject({ status: 404, deployment: 'gpt-5-mini' });
  });

  test("a wrong URL shape gets Azure's 404 Resource not found, explained with shape and api-version", async () => {
    // The v1 API has no dated versions: forcing the deployments shape with an unsupported version.
    h = await harness({}, { provider: { apiVersion: '2023-01-01' } });
    const err = (await caught(() => h!.kernel.transcribe({ data: audio(), name: 'a.wav' }))) as KotoError;
    expect(err.code).toBe('KOTO_ERR_ENDPOINT_NOT_FOUND');
    expect(err.message).toBe(
      `provider "az": ${h.server.url}/openai/deployments/whisper/audio/transcriptions answered 404 Resource not found (deployments API, api-version 2023-01-01)`,
    );
    expect(err.fix).toMatch(/apiShape.*apiVersion/);
    expect(h.server.to('transcriptions')[0]!.status).toBe(404);
  });

  test('a gateway prefix the service does not have: 404 Resource not found', async () => {
    h = await harness({}, ({ server }) => ({ provider: { endpoint: `${server.url}/not-azure` } }));
    const err = (await caught(() => h!.kernel.transcribe({ data: audio(), name: 'a.wav' }))) as KotoError;
    expect(err.message).toContain(
      `${h.server.url}/not-azure/openai/deployments/whisper/audio/transcriptions answered 404 Resource not found`,
    );
  });

  test('no deployment configured for a capability: says which key to set', async () => {
    h = await harness({}, { provider: { deployments: { correction: 'gpt-4o-mini' } } });
    const err = (await caught(() => h!.kernel.transcribe({ data: audio(), name: 'a.wav' }))) as KotoError;
    expect(err.message).toBe('provider "az" has no deployment for transcription');
    expect(err.fix).toContain('providers.az.deployments.asr');
    expect(h.server.to('transcriptions')).toHaveLength(0);
  });

  test('asr.model is the deployment when deployments.asr is not set', async () => {
    h = await harness({}, { provider: { deployments: {} }, asr: { model: 'whisper' }, correction: { model: 'gpt-4o-mini' } });
    expect(await h.kernel.transcribe({ data: audio(), name: 'a.wav' })).toMatchObject({ text: DEFAULT_TRANSCRIPT, model: 'whisper' });
    expect(await h.kernel.correct('x')).toMatchObject({ fallback: false, model: 'gpt-4o-mini' });
  });
});

describe('400 content filter on correction', () => {
  test('ResponsibleAIPolicyViolation: the raw text is delivered, with a warning in the log', async () => {
    h = await harness({}, { correction: { stream: true } });
    h.server.inject({ route: 'chat', status: 400, body: AZURE_BODIES.contentFilter });
    const result = await h.kernel.correct('some words the filter dislikes');
    expect(result).toMatchObject({ text: 'some words the filter dislikes', fallback: true });
    const warning = h.logs.find((l) => l.level === 'warn' && /content filter/.test(l.message));
    expect(warning?.message).toMatch(
      /Azure's content filter blocked the correction by deployment "gpt-4o-mini" \(ResponsibleAIPolicyViolation\); the raw transcript is delivered/,
    );
    expect(h.server.to('chat')).toHaveLength(1); // not retried
  });

  test('a completion cut by the content filter (finish_reason content_filter) is not used either', async () => {
    h = await harness({}, { correction: { stream: false } });
    h.server.inject({
      route: 'chat',
      status: 200,
      body: {
        id: 'chatcmpl-1',
        object: 'chat.completion',
        created: 1,
        model: 'gpt-4o-mini',
        choices: [{ index: 0, finish_reason: 'content_filter', message: { role: 'assistant', content: 'Half a' } }],
      },
    });
    const result = await h.kernel.correct('half a sentence');
    expect(result).toMatchObject({ text: 'half a sentence', fallback: true });
    expect(h.logs.some((l) => l.level === 'warn' && /content filter/.test(l.message))).toBe(true);
  });

  test('another 400 is an ordinary refused request, not a content filter', async () => {
    h = await harness({}, { provider: { deployments: { asr: 'whisper', correction: 'whisper' } } });
    const result = await h.kernel.correct('hello');
    expect(result.fallback).toBe(true);
    expect(result.warnings.join('\n')).toMatch(/refused the request \(HTTP 400\).*does not work with the specified model, whisper/);
    expect(h.logs.some((l) => /content filter/.test(l.message))).toBe(false);
  });
});

describe('429', () => {
  test('retry-after-ms is honoured: the kernel retries after exactly that wait, then success', async () => {
    h = await harness();
    // Retry-After alone (30 s, past maxRetryWaitMs) would end in KOTO_ERR_RATE_LIMITED: only the
    // ms header gives the success, and the log names the wait taken — no clock reading needed.
    h.server.inject({
      route: 'transcriptions',
      status: 429,
      body: AZURE_BODIES.rateLimited,
      headers: { 'retry-after-ms': '150', 'retry-after': '30' },
    });
    const started = performance.now();
    const result = await h.kernel.transcribe({ data: audio(), name: 'a.wav' });
    const elapsed = performance.now() - started;
    expect(result.text).toBe(DEFAULT_TRANSCRIPT);
    expect(h.server.to('transcriptions').map((r) => r.status)).toEqual([429, 200]);
    expect(elapsed).toBeGreaterThanOrEqual(140); // it did wait (a timer never fires early)
    expect(
      h.logs.some((l) => /transcription attempt 2 in 150 ms after: provider "az" is rate limiting deployment "whisper"/.test(l.message)),
    ).toBe(true);
  });

  test('persistent 429: retried as often as asr.retries says, then a clear KOTO_ERR_RATE_LIMITED naming the deployment', async () => {
    h = await harness({}, { asr: { retries: 1 } });
    h.server.inject({
      route: 'transcriptions',
      status: 429,
      body: AZURE_BODIES.rateLimited,
      headers: { 'retry-after-ms': '50' },
      times: 10,
    });
    const err = (await caught(() => h!.kernel.transcribe({ data: audio(), name: 'a.wav' }))) as KotoError;
    expect(err.code).toBe('KOTO_ERR_RATE_LIMITED');
    expect(err.message).toBe('provider "az" is rate limiting deployment "whisper" (HTTP 429); Azure asks to wait 50 ms');
    expect(err.fix).toMatch(/quota/);
    expect(err.details).toMatchObject({ retryable: true, retryAfter: 0.05, status: 429, deployment: 'whisper' });
    expect(h.server.to('transcriptions')).toHaveLength(2);
  });

  test('a wait longer than maxRetryWaitMs is not waited for: the error comes at once', async () => {
    h = await harness({}, { provider: { maxRetryWaitMs: 2000 } });
    h.server.inject({ route: 'chat', status: 429, body: AZURE_BODIES.rateLimited, headers: { 'retry-after': '30' }, times: 10 });
    const result = await h.kernel.correct('hello');
    // No wait was started (a started wait logs its retry), so the error came at once.
    expect(h.logs.some((l) => /attempt 2 in/.test(l.message))).toBe(false);
    expect(result).toMatchObject({ text: 'hello', fallback: true });
    expect(result.warnings.join('\n')).toContain('is rate limiting deployment "gpt-4o-mini" (HTTP 429); Azure asks to wait 30 s');
    expect(h.server.to('chat')).toHaveLength(1);
  });

  test('the wait never outlasts the request: the correction deadline cuts it short', async () => {
    // A 30 s wait that maxRetryWaitMs allows, past the 5 s deadline. Had the plugin waited it out,
    // its retry would have been answered (text, not the fallback, and a second request); the
    // deadline ends it instead. No clock reading: 5 s is only the time the 429 has to arrive in.
    h = await harness({}, { correction: { timeoutMs: 5000 }, provider: { maxRetryWaitMs: 60_000 } });
    h.server.inject({ route: 'chat', status: 429, body: AZURE_BODIES.rateLimited, headers: { 'retry-after-ms': '30000' } });
    const result = await h.kernel.correct('hello');
    expect(result).toMatchObject({ text: 'hello', fallback: true });
    expect(h.server.to('chat')).toHaveLength(1);
  });
});

describe('secrets', () => {
  test('the key never appears in errors or logs, even when the service echoes it back', async () => {
    h = await harness();
    h.server.inject({
      route: 'transcriptions',
      status: 400,
      body: { error: { code: 'BadRequest', message: `bad request for key ${API_KEY}` } },
    });
    const err = await caught(() => h!.kernel.transcribe({ data: audio(), name: 'a.wav' }));
    expect(everythingShown(err)).not.toContain(API_KEY);
    h.server.inject({ route: 'chat', status: 500, body: { error: { code: '500', message: `oops ${API_KEY}` } }, times: 5 });
    const result = await h.kernel.correct('hello');
    expect(result.warnings.join('\n')).not.toContain(API_KEY);
    expect(h.logText()).not.toContain(API_KEY);
  });
});

describe('environment defaults (as the official SDKs read them)', () => {
  test('AZURE_OPENAI_ENDPOINT + AZURE_OPENAI_API_KEY + OPENAI_API_VERSION make an `azure` provider', async () => {
    h = await harness({}, { provider: null, asr: { model: 'whisper' }, correction: { model: 'gpt-4o-mini', stream: false } }, (server) => ({
      AZURE_OPENAI_ENDPOINT: server.url,
      AZURE_OPENAI_API_KEY: API_KEY,
      OPENAI_API_VERSION: '2025-04-01-preview',
    }));
    expect(h.kernel.config.resolved.asrProvider).toBe('azure');
    expect(h.kernel.config.resolved.correctionProvider).toBe('azure');
    expect(await h.kernel.transcribe({ data: audio(), name: 'a.wav' })).toMatchObject({ text: DEFAULT_TRANSCRIPT, provider: 'azure' });
    expect(await h.kernel.correct('hello')).toMatchObject({ text: DEFAULT_COMPLETION, fallback: false, provider: 'azure' });
    expect(h.server.to('transcriptions')[0]).toMatchObject({
      path: '/openai/deployments/whisper/audio/transcriptions',
      query: { 'api-version': '2025-04-01-preview' },
    });
    expect(h.server.to('chat')[0]!.headers['api-key']).toBe(API_KEY);
    expect(h.kernel.scrub(API_KEY)).not.toContain(API_KEY);
  });

  test('without OPENAI_API_VERSION the GA default is used; without a key there is no azure provider', async () => {
    h = await harness({}, { provider: null, asr: { model: 'whisper' } }, (server) => ({
      AZURE_OPENAI_ENDPOINT: server.url,
      AZURE_OPENAI_API_KEY: API_KEY,
    }));
    await h.kernel.transcribe({ data: audio(), name: 'a.wav' });
    expect(h.server.to('transcriptions')[0]!.query).toEqual({ 'api-version': '2024-10-21' });
    await h.close();

    h = await harness({}, { provider: null }, (server) => ({ AZURE_OPENAI_ENDPOINT: server.url }));
    expect(h.kernel.config.resolved.providers).toEqual({});
  });
});
