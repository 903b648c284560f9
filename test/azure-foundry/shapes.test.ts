import { afterEach, describe, expect, test } from 'vitest';
import { DEFAULT_COMPLETION, DEFAULT_TRANSCRIPT } from './azure-server.ts';
import { API_KEY, audio, harness, type Harness } from './helpers.ts';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** The checks every answered request must pass: the exact credentials, no marker, h2. */
function expectAuthenticatedWithKey(harness: Harness) {
  for (const req of harness.server.requests) {
    expect(req.status, `${req.method} ${req.path}`).toBe(200);
    expect(req.headers['api-key']).toBe(API_KEY);
    expect(req.headers).not.toHaveProperty('authorization');
    expect(Object.keys(req.headers).filter((k) => k.startsWith('x-koto'))).toEqual([]);
    expect(req.protocol).toBe('h2');
  }
}

describe('deployments shape (https://{resource}.openai.azure.com/openai/deployments/{d}/…?api-version=…)', () => {
  test('transcription: multipart to the whisper deployment with the default GA api-version', async () => {
    h = await harness();
    const result = await h.kernel.transcribe({ data: audio(), name: 'a.wav' });
    expect(result).toMatchObject({ text: DEFAULT_TRANSCRIPT, provider: 'az', model: 'whisper' });
    const [req] = h.server.to('transcriptions');
    expect(req).toMatchObject({
      method: 'POST',
      path: '/openai/deployments/whisper/audio/transcriptions',
      query: { 'api-version': '2024-10-21' },
      shape: 'deployments',
    });
    expect(req!.form!.file).toMatchObject({ filename: 'a.wav', contentType: 'audio/wav' });
    expect(req!.form!.fields.model).toBe('whisper');
    expect(req!.form!.fields).not.toHaveProperty('stream'); // whisper never streams
    expectAuthenticatedWithKey(h);
  });

  test("correction: chat completions, streamed (SSE with Azure's empty-choices first chunk) and as JSON", async () => {
    h = await harness({}, { correction: { stream: true } });
    const deltas: string[] = [];
    const streamed = await h.kernel.correct('hello from azure', { onInterim: (text) => deltas.push(text) });
    expect(streamed).toMatchObject({ text: DEFAULT_COMPLETION, fallback: false, provider: 'az', model: 'gpt-4o-mini' });
    expect(deltas.at(-1)).toBe(DEFAULT_COMPLETION);
    const [req] = h.server.to('chat');
    expect(req).toMatchObject({ path: '/openai/deployments/gpt-4o-mini/chat/completions', query: { 'api-version': '2024-10-21' } });
    expect(req!.json).toMatchObject({ stream: true, messages: [{ role: 'system' }, { role: 'user' }] });
    expectAuthenticatedWithKey(h);
    await h.close();

    h = await harness({}, { correction: { stream: false } });
    expect(await h.kernel.correct('hello')).toMatchObject({ text: DEFAULT_COMPLETION, fallback: false });
    expect(h.server.to('chat')[0]!.json).not.toHaveProperty('stream');
  });

  test('any api-version is configurable (a preview for newer audio models)', async () => {
    h = await harness({}, { provider: { apiVersion: '2025-04-01-preview' } });
    await h.kernel.transcribe({ data: audio(), name: 'a.wav' });
    await h.kernel.correct('hello');
    for (const req of [...h.server.to('transcriptions'), ...h.server.to('chat')])
      expect(req.query).toEqual({ 'api-version': '2025-04-01-preview' });
  });

  test('a full Target URI pasted as endpoint: its path, deployment and api-version are understood', async () => {
    h = await harness({}, ({ server }) => ({
      provider: {
        endpoint: `${server.url}/openai/deployments/gpt-4o-mini/chat/completions?api-version=2025-01-01-preview`,
        deployments: { asr: 'whisper' },
      },
    }));
    expect(await h.kernel.correct('hello')).toMatchObject({ text: DEFAULT_COMPLETION, fallback: false, model: 'gpt-4o-mini' });
    expect(h.server.to('chat')[0]).toMatchObject({
      path: '/openai/deployments/gpt-4o-mini/chat/completions',
      query: { 'api-version': '2025-01-01-preview' },
    });
  });
});

describe('v1 shape (https://{resource}.openai.azure.com/openai/v1/…, model = deployment)', () => {
  test('transcription and correction, no api-version, the deployment as model', async () => {
    h = await harness({}, ({ server }) => ({ provider: { endpoint: `${server.url}/openai/v1` }, correction: { stream: false } }));
    expect(await h.kernel.transcribe({ data: audio(), name: 'a.wav' })).toMatchObject({ text: DEFAULT_TRANSCRIPT, model: 'whisper' });
    expect(await h.kernel.correct('hello')).toMatchObject({ text: DEFAULT_COMPLETION, fallback: false, model: 'gpt-4o-mini' });
    const [asr] = h.server.to('transcriptions');
    const [chat] = h.server.to('chat');
    expect(asr).toMatchObject({ path: '/openai/v1/audio/transcriptions', query: {}, shape: 'v1', deployment: 'whisper' });
    expect(chat).toMatchObject({ path: '/openai/v1/chat/completions', query: {}, shape: 'v1', deployment: 'gpt-4o-mini' });
    expect(chat!.json).toMatchObject({ model: 'gpt-4o-mini' });
    expectAuthenticatedWithKey(h);
  });

  test('apiShape: v1 with a resource origin; a gpt-4o-mini-transcribe deployment streams (SSE interim text)', async () => {
    h = await harness(
      {},
      {
        provider: { apiShape: 'v1', deployments: { asr: 'gpt-4o-mini-transcribe', correction: 'gpt-4o-mini' } },
      },
    );
    const interim: string[] = [];
    const result = await h.kernel.transcribe({ data: audio(), name: 'a.wav' }, { onInterim: (text) => interim.push(text) });
    expect(result).toMatchObject({ text: DEFAULT_TRANSCRIPT, model: 'gpt-4o-mini-transcribe' });
    expect(interim.at(-1)).toBe(DEFAULT_TRANSCRIPT);
    expect(interim.length).toBeGreaterThan(1);
    expect(h.server.to('transcriptions')[0]!.form!.fields).toMatchObject({ model: 'gpt-4o-mini-transcribe', stream: 'true' });
  });

  test('apiVersion: preview selects v1 and is sent as api-version=preview', async () => {
    h = await harness({}, { provider: { apiVersion: 'preview' } });
    await h.kernel.correct('hello');
    expect(h.server.to('chat')[0]).toMatchObject({ path: '/openai/v1/chat/completions', query: { 'api-version': 'preview' } });
  });
});

describe('Azure AI Foundry (https://{resource}.services.ai.azure.com, *.cognitiveservices.azure.com)', () => {
  // The Foundry portal shows a project endpoint; the OpenAI routes live at the resource root.
  for (const shape of ['deployments', 'v1'] as const) {
    test(`a Foundry project endpoint (…/api/projects/{project}), ${shape} shape: asr and correction`, async () => {
      h = await harness({}, ({ server }) => ({
        provider: { endpoint: `${server.url}/api/projects/dictation`, apiShape: shape },
        correction: { stream: true },
      }));
      expect(await h.kernel.transcribe({ data: audio(), name: 'a.wav' })).toMatchObject({ text: DEFAULT_TRANSCRIPT });
      expect(await h.kernel.correct('hello')).toMatchObject({ text: DEFAULT_COMPLETION, fallback: false });
      const prefix = shape === 'v1' ? '/openai/v1' : '/openai/deployments/whisper';
      expect(h.server.to('transcriptions')[0]!.path).toBe(`${prefix}/audio/transcriptions`);
      expect(h.server.requests.some((r) => r.path.includes('/api/projects'))).toBe(false);
      expectAuthenticatedWithKey(h);
    });
  }
});

describe('the shared client', () => {
  test('one TLS handshake across several sessions (asr + correction), pre-warms included, all over HTTP/2', async () => {
    h = await harness({}, { correction: { stream: true } });
    for (let i = 0; i < 3; i++) {
      await h.kernel.run({ data: audio(), name: `s${i}.wav` });
    }
    await h.kernel.correct('and one more');
    expect(h.server.to('transcriptions')).toHaveLength(3);
    expect(h.server.to('chat')).toHaveLength(4);
    expect(h.server.stats.tlsHandshakes).toBe(1);
    expect(h.server.stats.connections).toBe(1);
    const stats = h.kernel.http.stats().origins[h.server.origin]!;
    expect(stats.tlsHandshakes).toBe(1);
    expect(stats.requests).toBe(h.server.requests.length);
    expect(stats.lastProtocol).toBe('h2');
    expectAuthenticatedWithKey(h);
  });

  test('session start pre-warms the origin with an authenticated GET of the model list', async () => {
    h = await harness();
    await h.kernel.correct('hello');
    const warm = h.server.to('models');
    expect(warm.length).toBeGreaterThanOrEqual(1);
    expect(warm[0]).toMatchObject({ method: 'GET', path: '/openai/models', query: { 'api-version': '2024-10-21' }, status: 200 });
    expect(warm[0]!.seq).toBeLessThan(h.server.to('chat')[0]!.seq);
  });

  test('koto doctor: the probe reports the endpoint, shape and auth mode, never the key', async () => {
    h = await harness();
    const result = await h.kernel.probe('az');
    expect(result.ok).toBe(true);
    expect(result.detail).toContain(h.server.url);
    expect(result.detail).toMatch(/deployments API 2024-10-21, auth: api-key header/);
    expect(result.detail).not.toContain(API_KEY);
  });

  test('koto doctor: a wrong key or an unknown api-version fails the probe with the Azure explanation', async () => {
    h = await harness({}, { provider: { auth: { type: 'api-key', apiKey: 'not-the-key-0123456789' } } });
    const denied = await h.kernel.probe('az');
    expect(denied.ok).toBe(false);
    expect(denied.detail).toMatch(/rejected the credentials \(HTTP 401\); auth used: api-key header\. Fix: .*Keys and Endpoint/);
    expect(denied.detail).not.toContain('not-the-key-0123456789');
    await h.close();

    h = await harness({}, { provider: { apiVersion: '2022-01-01' } });
    const missing = await h.kernel.probe('az');
    expect(missing.ok).toBe(false);
    expect(missing.detail).toContain(
      `${h.server.url}/openai/models answered 404 Resource not found (deployments API, api-version 2022-01-01)`,
    );
  });
});
