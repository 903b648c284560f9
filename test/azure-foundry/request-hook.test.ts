import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { createKernel, definePlugin, type Kernel, type PluginApi } from 'koto-voice';
import { startOpenAIServer, type OpenAIServer } from 'koto-voice/testing';
import { AUTH_MARKER } from '../../plugins/azure-foundry/index.ts';
import { startAzureServer, type AzureServer } from './azure-server.ts';
import { API_KEY, audio } from './helpers.ts';

let azure: AzureServer | undefined;
let other: OpenAIServer | undefined;
let kernel: Kernel | undefined;
let home: string | undefined;
afterEach(async () => {
  await kernel?.close();
  await azure?.close();
  await other?.close();
  if (home) await rm(home, { recursive: true, force: true });
  kernel = azure = other = home = undefined;
});

test("credentials are added by the request hook only to marked requests to the instance's own origin", async () => {
  azure = await startAzureServer({ apiKey: API_KEY });
  other = await startOpenAIServer({ apiKey: 'sk-openai-0123456789' });
  let api: PluginApi | undefined;
  const spy = definePlugin({ name: 'spy', apply: (a) => void (api = a) });
  kernel = await createKernel({
    search: false,
    builtins: ['azure-foundry', 'openai-compatible'],
    plugins: [spy],
    env: { KOTO_HOME: (home = await mkdtemp(path.join(os.tmpdir(), 'koto-azure-hook-'))) },
    config: {
      providers: {
        az: { use: 'azure-foundry', endpoint: azure.url, auth: { type: 'api-key', apiKey: API_KEY }, deployments: { asr: 'whisper' } },
        oa: { use: 'openai-compatible', baseUrl: other.baseUrl, apiKey: 'sk-openai-0123456789' },
      },
      asr: { provider: 'az' },
      correction: { provider: 'oa', model: 'gpt-4.1-mini' },
      transport: { ca: azure.ca },
      output: [],
    },
  });
  // An Azure session, then an OpenAI one: each provider's requests carry only its own credentials.
  await kernel.transcribe({ data: audio(), name: 'a.wav' });
  await kernel.correct('hello');
  expect(azure.requests.length).toBeGreaterThan(0);
  for (const req of azure.requests) expect(req.headers['api-key']).toBe(API_KEY);
  for (const req of other.requests) {
    expect(req.headers['api-key']).toBeUndefined();
    expect(req.headers.authorization).toBe('Bearer sk-openai-0123456789');
  }
  // The marker (the id of az's credentials) is what the hook turns into the key on az's origin…
  const own = await api!.http.request({
    origin: azure.url,
    path: '/openai/models?api-version=2024-10-21',
    method: 'GET',
    headers: { [AUTH_MARKER]: 'az#1' },
  });
  await own.body.dump();
  expect(own.statusCode).toBe(200);
  expect(azure.requests.at(-1)!.headers['api-key']).toBe(API_KEY);
  // …but a request that carries it to another origin gets no Azure key, and the marker itself
  // never reaches the network.
  const res = await api!.http.request({
    origin: other.url,
    path: '/v1/models',
    method: 'GET',
    headers: { [AUTH_MARKER]: 'az#1', authorization: 'Bearer sk-openai-0123456789' },
  });
  await res.body.dump();
  const last = other.requests.at(-1)!;
  expect(last.path).toBe('/v1/models');
  expect(last.headers['api-key']).toBeUndefined();
  expect(Object.keys(last.headers).some((h) => h.startsWith('x-koto'))).toBe(false);
});
