import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { createKernel, KotoError, type Kernel } from 'koto-voice';
import { startOpenAIServer, type OpenAIServer } from '../support/index.ts';
import { API_KEY, caught, everythingShown, harness, requestsTo, sineWav, type Harness } from './helpers.ts';

let h: Harness | undefined;
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await h?.close();
  h = undefined;
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

const wav = sineWav(0.5);

describe('pre-warm and connection reuse', () => {
  test('a session makes a GET /models (with auth) before the transcription', async () => {
    h = await harness({}, { asr: { model: 'whisper-1' } });
    await h.kernel.transcribe({ data: wav, name: 'a.wav' });
    const [first, second] = h.server.requests;
    expect(first).toMatchObject({ method: 'GET', path: '/v1/models' });
    expect(first!.headers['authorization']).toBe(`Bearer ${API_KEY}`);
    expect(second).toMatchObject({ method: 'POST', path: '/v1/audio/transcriptions' });
    expect(h.kernel.diagnostics().transport.origins[h.server.origin]?.prewarms).toBe(1);
  });

  test('the pre-warm does not delay the session: a slow /models does not hold up the transcription', async () => {
    // /models answers after 60 s: a session that waited for the pre-warm would run into the test timeout.
    h = await harness({}, { asr: { model: 'whisper-1' } });
    h.server.inject({ path: '/models', delayMs: 60_000 });
    await h.kernel.transcribe({ data: wav, name: 'a.wav' });
    // The pre-warm was sent (and is still unanswered): the session did not wait for it.
    expect(h.server.requests.map((r) => r.path)).toContain('/v1/models');
  });

  test('10 sequential transcriptions through one kernel make exactly 1 TLS handshake', async () => {
    h = await harness({}, { asr: { model: 'gpt-4o-mini-transcribe' } });
    for (let i = 0; i < 10; i++) {
      const result = await h.kernel.transcribe({ data: wav, name: `take-${i}.wav` });
      expect(result.text).toBe('hello world');
    }
    expect(requestsTo(h.server, '/audio/transcriptions')).toHaveLength(10);
    expect(h.server.stats.tlsHandshakes).toBe(1);
    expect(h.server.stats.connections).toBe(1);
    expect(h.server.stats.protocols).toEqual({ h2: h.server.requests.length });
  });

  test('transport.uploadsOverHttp1 sends the audio over HTTP/1.1 and JSON over HTTP/2; the instance can opt out', async () => {
    h = await harness({}, { transport: { uploadsOverHttp1: true } });
    await h.kernel.run({ data: wav, name: 'a.wav' });
    expect(requestsTo(h.server, '/audio/transcriptions')[0]!.protocol).toBe('http/1.1');
    expect(requestsTo(h.server, '/chat/completions')[0]!.protocol).toBe('h2');
    await h.close();

    h = await harness({}, { transport: { uploadsOverHttp1: true }, provider: { uploadsOverHttp1: false } });
    await h.kernel.transcribe({ data: wav, name: 'a.wav' });
    expect(requestsTo(h.server, '/audio/transcriptions')[0]!.protocol).toBe('h2');
  });

  test('an HTTP/1.1-only server works too', async () => {
    h = await harness({ http1Only: true }, { asr: { model: 'gpt-4o-mini-transcribe' } });
    const result = await h.kernel.run({ data: wav, name: 'a.wav' });
    expect(result.text).toBe('Hello, world.');
    expect(h.server.stats.protocols).toEqual({ 'http/1.1': 3 });
  });
});

describe('endpoint configuration', () => {
  test('extra headers and query parameters reach the server; user-agent names Koto', async () => {
    h = await harness(
      {},
      {
        asr: { model: 'whisper-1' },
        provider: { headers: { 'OpenAI-Organization': 'org-123' }, query: { 'api-version': '2025-04-01' } },
      },
    );
    await h.kernel.run({ data: wav, name: 'a.wav' });
    for (const req of h.server.requests) {
      expect(req.headers['openai-organization']).toBe('org-123');
      expect(req.query).toEqual({ 'api-version': '2025-04-01' });
      expect(req.headers['user-agent']).toMatch(/^koto-voice\//);
    }
  });

  test('a base URL with a trailing slash works', async () => {
    h = await harness({}, ({ server }) => ({ asr: { model: 'whisper-1' }, provider: { baseUrl: `${server.baseUrl}/` } }));
    await h.kernel.transcribe({ data: wav, name: 'a.wav' });
    expect(requestsTo(h.server, '/audio/transcriptions')[0]!.path).toBe('/v1/audio/transcriptions');
  });

  test('OPENAI_API_KEY / OPENAI_BASE_URL give a default "openai" provider', async () => {
    const server = await startOpenAIServer({ apiKey: API_KEY });
    const home = await mkdtemp(path.join(os.tmpdir(), 'koto-openai-test-'));
    let kernel: Kernel | undefined;
    cleanups.push(async () => {
      await kernel?.close();
      await server.close();
      await rm(home, { recursive: true, force: true });
    });
    kernel = await createKernel({
      search: false,
      builtins: ['openai-compatible'],
      env: { KOTO_HOME: home, OPENAI_API_KEY: API_KEY, OPENAI_BASE_URL: server.baseUrl },
      config: { transport: { ca: server.ca } },
    });
    const result = await kernel.transcribe({ data: wav, name: 'a.wav' });
    expect(result).toMatchObject({ text: 'hello world', provider: 'openai', model: 'gpt-4o-mini-transcribe' });
    expect(kernel.config.resolved.providers['openai']?.options).toMatchObject({ baseUrl: server.baseUrl, correctionModel: 'gpt-4.1-mini' });
  });

  test('plain http to a non-loopback host is refused at config time unless allowInsecureHttp', async () => {
    const home = await mkdtemp(path.join(os.tmpdir(), 'koto-openai-test-'));
    cleanups.push(() => rm(home, { recursive: true, force: true }));
    const err = await caught(() =>
      createKernel({
        search: false,
        builtins: ['openai-compatible'],
        env: { KOTO_HOME: home },
        config: { providers: { lan: { use: 'openai-compatible', baseUrl: 'http://gpu-box.example:8000/v1' } } },
      }),
    );
    expect(KotoError.is(err) && err.code).toBe('KOTO_ERR_CONFIG_INVALID');
    expect((err as KotoError).message).toContain('providers.lan.baseUrl');
    expect((err as KotoError).message).toContain('allowInsecureHttp');
  });

  test('allowInsecureHttp lets the request go out over plain http, with one warning', async () => {
    // 0.0.0.0 is not a loopback name, yet connecting to it reaches this machine only.
    h = await harness({}, ({ server }) => ({
      asr: { model: 'whisper-1' },
      provider: { baseUrl: `http://0.0.0.0:${server.port}/v1`, allowInsecureHttp: true },
    }));
    for (let i = 0; i < 2; i++) {
      const err = await caught(() => h!.kernel.transcribe({ data: wav, name: 'a.wav' }));
      // The test server only speaks TLS, so the exchange fails, but not because Koto refused it.
      expect(KotoError.is(err) && err.code).not.toBe('KOTO_ERR_INSECURE_ENDPOINT');
    }
    const warnings = h.logs.filter((l) => l.level === 'warn' && l.message.includes('plain http'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.message).toContain('provider "main"');
  });

  test('loopback http needs no opt-in', async () => {
    h = await harness({}, { provider: { baseUrl: 'http://127.0.0.1:9/v1' } });
    expect(h.kernel.config.resolved.providers['main']?.options).toMatchObject({ allowInsecureHttp: false });
  });
});

describe('error mapping', () => {
  test('a wrong API key is KOTO_ERR_AUTH naming the provider; the key is nowhere in the error or the logs', async () => {
    const wrongKey = 'sk-wrong-canary-key-778899';
    h = await harness({}, { asr: { model: 'whisper-1' }, provider: { apiKey: wrongKey } });
    const err = await caught(() => h!.kernel.transcribe({ data: wav, name: 'a.wav' }));
    expect(KotoError.is(err)).toBe(true);
    const e = err as KotoError;
    expect(e.code).toBe('KOTO_ERR_AUTH');
    expect(e.message).toBe('provider "main" rejected the credentials (HTTP 401)');
    expect(e.fix).toContain('providers.main.apiKey');
    expect(e.details).toMatchObject({ provider: 'main', status: 401, retryable: false });
    expect(e.plugin).toBe('openai-compatible');
    expect(everythingShown(e)).not.toContain(wrongKey);
    expect(JSON.stringify(h.logs)).not.toContain(wrongKey);
    // The server did receive it (so the test is not vacuous).
    expect(requestsTo(h.server, '/audio/transcriptions')[0]!.headers['authorization']).toBe(`Bearer ${wrongKey}`);
  });

  test('run() with a wrong key fails the session with KOTO_ERR_AUTH; the record does not leak the key', async () => {
    const wrongKey = 'sk-wrong-canary-key-112233';
    h = await harness({}, { provider: { apiKey: wrongKey } });
    const err = await caught(() => h!.kernel.run({ data: wav, name: 'a.wav' }));
    expect((err as KotoError).code).toBe('KOTO_ERR_AUTH');
    const record = (err as { record?: unknown }).record;
    expect(record).toMatchObject({ state: 'failed', error: { code: 'KOTO_ERR_AUTH' } });
    expect(JSON.stringify(record)).not.toContain(wrongKey);
  });

  test('403 is KOTO_ERR_AUTH too', async () => {
    h = await harness({}, { asr: { model: 'whisper-1' } });
    h.server.inject({ path: '/audio/transcriptions', status: 403 });
    const err = await caught(() => h!.kernel.transcribe({ data: wav, name: 'a.wav' }));
    expect(err).toMatchObject({ code: 'KOTO_ERR_AUTH', details: { status: 403 } });
  });

  test('404 is KOTO_ERR_ENDPOINT_NOT_FOUND with the URL but without its query', async () => {
    const secretQuery = 'query-secret-value-4455';
    h = await harness({}, ({ server }) => ({
      asr: { model: 'whisper-1' },
      provider: { baseUrl: `${server.url}/wrong`, query: { 'api-version': '1', 'subscription-key': secretQuery } },
    }));
    const err = await caught(() => h!.kernel.transcribe({ data: wav, name: 'a.wav' }));
    expect(err).toMatchObject({ code: 'KOTO_ERR_ENDPOINT_NOT_FOUND', details: { status: 404, retryable: false } });
    const e = err as KotoError;
    expect(e.message).toContain(`${h.server.url}/wrong/audio/transcriptions`);
    expect(e.message).not.toContain('?');
    expect(everythingShown(e)).not.toContain(secretQuery);
  });

  test('400 is KOTO_ERR_BAD_REQUEST with the upstream message, scrubbed of the key', async () => {
    h = await harness({}, { asr: { model: 'whisper-1' } });
    h.server.inject({
      path: '/audio/transcriptions',
      status: 400,
      body: { error: { message: `Invalid file format for key ${API_KEY}.`, type: 'invalid_request_error', param: 'file', code: null } },
    });
    const err = await caught(() => h!.kernel.transcribe({ data: wav, name: 'a.wav' }));
    expect(err).toMatchObject({ code: 'KOTO_ERR_BAD_REQUEST', details: { status: 400, retryable: false } });
    const e = err as KotoError;
    expect(e.message).toContain('Invalid file format for key [redacted].');
    expect(everythingShown(e)).not.toContain(API_KEY);
  });

  test('429 is KOTO_ERR_RATE_LIMITED with Retry-After in the details', async () => {
    h = await harness({}, { asr: { model: 'whisper-1' } });
    h.server.inject({ path: '/audio/transcriptions', status: 429, headers: { 'retry-after': '7' } });
    const err = await caught(() => h!.kernel.transcribe({ data: wav, name: 'a.wav' }));
    expect(err).toMatchObject({ code: 'KOTO_ERR_RATE_LIMITED', details: { status: 429, retryable: true, retryAfter: 7 } });
    expect((err as KotoError).message).toContain('retry after 7 s');
  });

  test('a 502 with an HTML body is KOTO_ERR_UPSTREAM', async () => {
    h = await harness({}, { asr: { model: 'whisper-1' } });
    h.server.inject({
      path: '/audio/transcriptions',
      status: 502,
      body: '<html><body>Bad gateway</body></html>',
      headers: { 'content-type': 'text/html' },
    });
    const err = await caught(() => h!.kernel.transcribe({ data: wav, name: 'a.wav' }));
    expect(err).toMatchObject({ code: 'KOTO_ERR_UPSTREAM', details: { status: 502, retryable: true } });
  });

  test('a refused connection is KOTO_ERR_NETWORK naming the origin', async () => {
    const closed: OpenAIServer = await startOpenAIServer();
    const port = closed.port;
    await closed.close();
    h = await harness({}, { asr: { model: 'whisper-1' }, provider: { baseUrl: `https://127.0.0.1:${port}/v1` } });
    const err = await caught(() => h!.kernel.transcribe({ data: wav, name: 'a.wav' }));
    expect(err).toMatchObject({ code: 'KOTO_ERR_NETWORK', details: { provider: 'main', retryable: true } });
    expect((err as KotoError).message).toContain(`https://127.0.0.1:${port}`);
  });

  test('an untrusted certificate is KOTO_ERR_NETWORK', async () => {
    h = await harness({}, { asr: { model: 'whisper-1' }, transport: { ca: undefined } });
    const err = await caught(() => h!.kernel.transcribe({ data: wav, name: 'a.wav' }));
    expect(err).toMatchObject({ code: 'KOTO_ERR_NETWORK' });
    expect((err as KotoError).message).toContain(h.server.origin);
  });

  test('a headers timeout of the transport is KOTO_ERR_TIMEOUT', async () => {
    h = await harness({}, { asr: { model: 'whisper-1' }, transport: { headersTimeoutMs: 300 } });
    h.server.inject({ path: '/audio/transcriptions', delayMs: 60_000 });
    const err = await caught(() => h!.kernel.transcribe({ data: wav, name: 'a.wav' }));
    expect(err).toMatchObject({ code: 'KOTO_ERR_TIMEOUT', details: { retryable: true } });
    expect((err as KotoError).message).toContain('300 ms');
  });

  test('a body timeout of the transport is KOTO_ERR_TIMEOUT', async () => {
    h = await harness({}, { asr: { model: 'gpt-4o-mini-transcribe' }, transport: { bodyTimeoutMs: 300 } });
    h.server.inject({ path: '/audio/transcriptions', stallBodyMs: 60_000 });
    const err = await caught(() => h!.kernel.transcribe({ data: wav, name: 'a.wav' }));
    expect(err).toMatchObject({ code: 'KOTO_ERR_TIMEOUT' });
  });

  test('a stream reset mid-response is KOTO_ERR_NETWORK (retryable)', async () => {
    h = await harness({ transcribe: () => 'one two three four five six seven' }, { asr: { model: 'gpt-4o-mini-transcribe' } });
    h.server.inject({ path: '/audio/transcriptions', reset: 'during-response' });
    const err = await caught(() => h!.kernel.transcribe({ data: wav, name: 'a.wav' }));
    expect(err).toMatchObject({ code: 'KOTO_ERR_NETWORK', details: { retryable: true } });
  });
});

describe('why multipart is encoded by hand', () => {
  test("undici 8's Dispatcher.request refuses the global FormData", async () => {
    h = await harness();
    const form = new FormData();
    form.set('model', 'whisper-1');
    const err = await caught(() =>
      h!.kernel.http.request({ origin: h!.server.origin, path: '/v1/audio/transcriptions', method: 'POST', body: form as never }),
    );
    expect((err as { code?: string }).code).toBe('UND_ERR_INVALID_ARG');
  });
});
