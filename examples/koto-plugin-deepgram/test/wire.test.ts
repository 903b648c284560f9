import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { createKernel, KotoError, type Kernel } from 'koto-voice';
import { toneWav } from 'koto-voice/testing';
import plugin from '../src/index.ts';
import { DEFAULT_TRANSCRIPT, startDeepgramServer, type DeepgramServer } from './server.ts';

const KEY = 'dg-test-key-0123456789abcdef';
const wav = toneWav({ seconds: 0.5 });

interface Setup {
  server: DeepgramServer;
  kernel: Kernel;
  logs: string[];
}

let cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  cleanups = [];
});

async function setup(config: Record<string, unknown> = {}, provider: Record<string, unknown> = {}): Promise<Setup> {
  const server = await startDeepgramServer({ apiKey: KEY });
  cleanups.push(() => server.close());
  const home = await mkdtemp(path.join(os.tmpdir(), 'koto-plugin-deepgram-'));
  cleanups.push(() => rm(home, { recursive: true, force: true }));
  const logs: string[] = [];
  const kernel = await createKernel({
    search: false,
    builtins: false,
    plugins: [plugin],
    env: { KOTO_HOME: home },
    logLevel: 'debug',
    logSink: (entry) => logs.push(`${entry.level} ${entry.message} ${JSON.stringify(entry.fields ?? {})}`),
    config: {
      providers: { dg: { use: 'koto-plugin-deepgram', baseUrl: server.url, apiKey: KEY, ...provider } },
      transport: { ca: server.ca },
      ...config,
    },
  });
  cleanups.push(() => kernel.close());
  return { server, kernel, logs };
}

function listens(server: DeepgramServer) {
  return server.requests.filter((r) => r.path === '/v1/listen');
}

async function rejection(promise: Promise<unknown>): Promise<KotoError> {
  try {
    await promise;
  } catch (err) {
    expect(KotoError.is(err)).toBe(true);
    return err as KotoError;
  }
  throw new Error('expected a rejection');
}

describe('the /v1/listen wire format', () => {
  test('raw audio body, Token auth, model and smart_format in the query, over HTTP/2', async () => {
    const { server, kernel } = await setup({ asr: { language: 'de' } });
    const result = await kernel.transcribe({ data: wav, name: 'clip.wav' });
    expect(result.text).toBe(DEFAULT_TRANSCRIPT);
    expect(result.provider).toBe('dg');
    expect(result.model).toBe('nova-3');

    const [req] = listens(server);
    expect(req).toBeDefined();
    expect(req!.method).toBe('POST');
    expect(req!.protocol).toBe('h2');
    expect(req!.headers.authorization).toBe(`Token ${KEY}`);
    expect(req!.headers['content-type']).toBe('audio/wav');
    expect(req!.headers.accept).toBe('application/json');
    expect(Buffer.compare(req!.body, Buffer.from(wav))).toBe(0);
    expect(Object.fromEntries(req!.query)).toEqual({ model: 'nova-3', smart_format: 'true', language: 'de' });
  });

  test('no language: detect_language; the dictionary as keyterm (Nova-3) or keywords (older models)', async () => {
    const { server, kernel } = await setup({}, {});
    const dir = await mkdtemp(path.join(os.tmpdir(), 'koto-dict-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await kernel.transcribe({ data: wav, name: 'a.wav' });
    expect(listens(server)[0]!.query.get('detect_language')).toBe('true');

    const { server: other, kernel: withDictionary } = await setup(
      { asr: { model: 'nova-2' }, dictionary: await writeDictionary(dir, 'Koto\nKubernetes\n') },
      { smartFormat: false, query: { diarize: 'false' } },
    );
    await withDictionary.transcribe({ data: wav, name: 'a.wav' });
    const query = listens(other)[0]!.query;
    expect(query.get('model')).toBe('nova-2');
    expect(query.getAll('keywords')).toEqual(['Koto', 'Kubernetes']);
    expect(query.has('keyterm')).toBe(false);
    expect(query.has('smart_format')).toBe(false);
    expect(query.get('diarize')).toBe('false');

    const { server: third, kernel: nova3 } = await setup({ dictionary: await writeDictionary(dir, 'Koto\n') });
    await nova3.transcribe({ data: wav, name: 'a.wav' });
    expect(listens(third)[0]!.query.getAll('keyterm')).toEqual(['Koto']);
  });

  test('a session pre-warms the connection; two sessions share one TLS connection', async () => {
    const { server, kernel } = await setup();
    await kernel.transcribe({ data: wav, name: 'a.wav' });
    await kernel.transcribe({ data: wav, name: 'b.wav' });
    const projects = server.requests.filter((r) => r.path === '/v1/projects');
    expect(projects.length).toBeGreaterThanOrEqual(1);
    expect(projects[0]!.headers.authorization).toBe(`Token ${KEY}`);
    const stats = kernel.http.stats().origins[server.origin]!;
    expect(stats.connections).toBe(1);
    expect(stats.requests).toBe(server.requestCount());
    expect(stats.lastProtocol).toBe('h2');
  });

  test('pre-warming can be switched off with a plugin option', async () => {
    const { server, kernel } = await setup({ pluginOptions: { 'koto-plugin-deepgram': { prewarm: false } } });
    await kernel.transcribe({ data: wav, name: 'a.wav' });
    expect(server.requests.map((r) => r.path)).toEqual(['/v1/listen']);
  });
});

describe('errors a user can act on', () => {
  test('401 → KOTO_ERR_AUTH naming the provider instance, tagged with plugin and hook', async () => {
    const { server, kernel } = await setup({}, { apiKey: 'wrong-key-000' });
    const err = await rejection(kernel.transcribe({ data: wav, name: 'a.wav' }));
    expect(err.code).toBe('KOTO_ERR_AUTH');
    expect(err.message).toBe('provider "dg" rejected the credentials (HTTP 401)');
    expect(err.plugin).toBe('koto-plugin-deepgram');
    expect(err.hook).toBe('asr:koto-plugin-deepgram');
    expect(err.details).toMatchObject({ status: 401, upstreamCode: 'INVALID_AUTH', retryable: false });
    expect(listens(server)).toHaveLength(1);
  });

  test('429 → KOTO_ERR_RATE_LIMITED with retry-after; 503 → KOTO_ERR_UPSTREAM with the upstream message', async () => {
    // With retries off the errors come straight back; see the next test for the kernel's retries.
    const { server, kernel } = await setup({ asr: { retries: 0 } });
    server.inject({ status: 429, headers: { 'retry-after': '2' } });
    const limited = await rejection(kernel.transcribe({ data: wav, name: 'a.wav' }));
    expect(limited.code).toBe('KOTO_ERR_RATE_LIMITED');
    expect(limited.message).toBe('provider "dg" is rate limiting (HTTP 429) (retry after 2 s)');
    expect(limited.details).toMatchObject({ retryable: true, retryAfter: 2 });

    server.inject({ status: 503, body: { err_code: 'SERVICE_UNAVAILABLE', err_msg: 'Try again soon.', request_id: 'r1' } });
    const upstream = await rejection(kernel.transcribe({ data: wav, name: 'a.wav' }));
    expect(upstream.code).toBe('KOTO_ERR_UPSTREAM');
    expect(upstream.message).toBe('provider "dg" failed (HTTP 503): Try again soon.');
    expect(upstream.details).toMatchObject({ requestId: 'r1', upstreamCode: 'SERVICE_UNAVAILABLE' });
  });

  test('429 and 5xx are marked retryable: the kernel retries them, honouring Retry-After', async () => {
    const { server, kernel, logs } = await setup();
    server.inject({ status: 503, headers: { 'retry-after': '1' } });
    const started = performance.now();
    const result = await kernel.transcribe({ data: wav, name: 'a.wav' });
    expect(result.text).toBe(DEFAULT_TRANSCRIPT);
    expect(performance.now() - started).toBeGreaterThanOrEqual(900);
    expect(listens(server)).toHaveLength(2);
    expect(logs.some((line) => /transcription attempt 2 in 1000 ms after: provider "dg" failed \(HTTP 503\)/.test(line))).toBe(true);
    // A 400 is not worth another try.
    server.inject({ status: 400 });
    expect((await rejection(kernel.transcribe({ data: wav, name: 'a.wav' }))).code).toBe('KOTO_ERR_BAD_REQUEST');
    expect(listens(server)).toHaveLength(3);
  });

  test('the newer error body (category / message) is read too; the key is scrubbed from upstream text', async () => {
    const { server, kernel } = await setup();
    server.inject({ status: 400, body: { category: 'INVALID_QUERY_PARAMETER', message: `Unknown model for key ${KEY}` } });
    const err = await rejection(kernel.transcribe({ data: wav, name: 'a.wav' }));
    expect(err.code).toBe('KOTO_ERR_BAD_REQUEST');
    expect(err.message).toBe('provider "dg" refused the request (HTTP 400): Unknown model for key [redacted]');
  });

  test('an answer that is not a transcript → KOTO_ERR_BAD_RESPONSE', async () => {
    const { server, kernel } = await setup();
    server.inject({ status: 200, body: '{"results": ' });
    expect((await rejection(kernel.transcribe({ data: wav, name: 'a.wav' }))).message).toBe(
      'provider "dg" sent a response Koto cannot read: invalid JSON (12 bytes)',
    );
    server.inject({ status: 200, body: { results: { channels: [] } } });
    expect((await rejection(kernel.transcribe({ data: wav, name: 'a.wav' }))).message).toMatch(
      /without results\.channels\[0\]\.alternatives\[0\]\.transcript/,
    );
  });

  test('a plain-http endpoint off loopback is refused by the kernel before anything is sent', async () => {
    const { kernel } = await setup({}, { baseUrl: 'http://deepgram.example.invalid' });
    const err = await rejection(kernel.transcribe({ data: wav, name: 'a.wav' }));
    expect(err.code).toBe('KOTO_ERR_INSECURE_ENDPOINT');
    expect(err.plugin).toBe('koto-plugin-deepgram');
  });
});

describe('config', () => {
  test('a bad provider option fails at start, naming the key', async () => {
    const err = await rejection(setup({}, { model: 42 }));
    expect(err.code).toBe('KOTO_ERR_CONFIG_INVALID');
    expect(err.message).toMatch(/providers\.dg\.model: Invalid input: expected string, received number/);
  });

  test('a bad plugin option fails at start, naming the plugin and the key', async () => {
    const err = await rejection(setup({ pluginOptions: { 'koto-plugin-deepgram': { prewarm: 'yes' } } }));
    expect(err.code).toBe('KOTO_ERR_PLUGIN_OPTIONS');
    expect(err.message).toMatch(/^plugin "koto-plugin-deepgram": bad option prewarm: /);
  });

  test('`koto doctor` probe: a good key is accepted, a bad one explained', async () => {
    const good = await setup();
    expect(await good.kernel.probe('dg')).toEqual({ ok: true, detail: `${good.server.origin} accepted the key (GET /v1/projects)` });
    const bad = await setup({}, { apiKey: 'wrong-key-000' });
    const result = await bad.kernel.probe('dg');
    expect(result.ok).toBe(false);
    expect(result.detail).toMatch(/^provider "dg" rejected the credentials \(HTTP 401\)\. Fix: check the API key/);
  });

  test('DEEPGRAM_API_KEY alone makes a default `deepgram` provider', async () => {
    const home = await mkdtemp(path.join(os.tmpdir(), 'koto-plugin-deepgram-'));
    cleanups.push(() => rm(home, { recursive: true, force: true }));
    const kernel = await createKernel({
      search: false,
      builtins: false,
      plugins: [plugin],
      env: { KOTO_HOME: home, DEEPGRAM_API_KEY: 'from-the-env-123' },
      logLevel: 'silent',
      config: {},
    });
    cleanups.push(() => kernel.close());
    expect(kernel.config.resolved.asrProvider).toBe('deepgram');
    expect(kernel.config.resolved.providers.deepgram?.options).toMatchObject({ baseUrl: 'https://api.deepgram.com', model: 'nova-3' });
    expect(kernel.scrub('from-the-env-123')).not.toContain('from-the-env-123');
  });
});

async function writeDictionary(dir: string, content: string): Promise<string> {
  const { writeFile } = await import('node:fs/promises');
  const file = path.join(dir, `dictionary-${Math.random().toString(36).slice(2)}.txt`);
  await writeFile(file, content);
  return file;
}
