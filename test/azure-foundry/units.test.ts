import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { jwtExpiry, parseExpiry, parseTokenOutput, TokenCache, tokenSource, type TokenSource } from '../../plugins/azure-foundry/auth.ts';
import { operationUrl, parseEndpoint, resolveEndpoint, streamsTranscription } from '../../plugins/azure-foundry/endpoint.ts';
import { authSchema, defaultProviders, providerSchema, type EntraAuth } from '../../plugins/azure-foundry/options.ts';
import { retryAfterMs } from '../../plugins/azure-foundry/rate-limit.ts';
import { makeToken } from './helpers.ts';

const parse = (options: Record<string, unknown>) => providerSchema.parse({ auth: { type: 'api-key', apiKey: 'k'.repeat(32) }, ...options });

const urls = (options: Record<string, unknown>) => {
  const endpoint = resolveEndpoint(parse(options));
  return {
    asr: operationUrl(endpoint, 'transcriptions', 'whisper').href,
    chat: operationUrl(endpoint, 'chat', 'gpt-4o-mini').href,
    responses: operationUrl(endpoint, 'responses', 'gpt-4o-mini').href,
    models: operationUrl(endpoint, 'models', undefined).href,
  };
};

describe('URL building from a resource name', () => {
  test('Azure OpenAI (*.openai.azure.com), deployments shape, default GA version', () => {
    expect(urls({ resource: 'myres' })).toEqual({
      asr: 'https://myres.openai.azure.com/openai/deployments/whisper/audio/transcriptions?api-version=2024-10-21',
      chat: 'https://myres.openai.azure.com/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21',
      responses: 'https://myres.openai.azure.com/openai/responses?api-version=2024-10-21',
      models: 'https://myres.openai.azure.com/openai/models?api-version=2024-10-21',
    });
  });

  test('Azure OpenAI, v1 shape: no dated version, the deployment travels as model', () => {
    expect(urls({ resource: 'myres', apiShape: 'v1' })).toEqual({
      asr: 'https://myres.openai.azure.com/openai/v1/audio/transcriptions',
      chat: 'https://myres.openai.azure.com/openai/v1/chat/completions',
      responses: 'https://myres.openai.azure.com/openai/v1/responses',
      models: 'https://myres.openai.azure.com/openai/v1/models',
    });
  });

  test('Azure AI Foundry (*.services.ai.azure.com) and *.cognitiveservices.azure.com, both shapes', () => {
    expect(urls({ resource: 'my-foundry', domain: 'services.ai.azure.com', apiVersion: '2025-04-01-preview' }).asr).toBe(
      'https://my-foundry.services.ai.azure.com/openai/deployments/whisper/audio/transcriptions?api-version=2025-04-01-preview',
    );
    expect(urls({ resource: 'my-foundry', domain: 'services.ai.azure.com', apiShape: 'v1' }).chat).toBe(
      'https://my-foundry.services.ai.azure.com/openai/v1/chat/completions',
    );
    expect(urls({ resource: 'legacy', domain: 'cognitiveservices.azure.com' }).chat).toBe(
      'https://legacy.cognitiveservices.azure.com/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21',
    );
    expect(urls({ resource: 'gov', domain: 'openai.azure.us' }).models).toBe(
      'https://gov.openai.azure.us/openai/models?api-version=2024-10-21',
    );
  });

  test('deployment names are path-encoded', () => {
    const endpoint = resolveEndpoint(parse({ resource: 'myres' }));
    expect(operationUrl(endpoint, 'chat', 'my model/v2').pathname).toBe('/openai/deployments/my%20model%2Fv2/chat/completions');
  });
});

describe('endpoint parsing', () => {
  test.each([
    ['https://myres.openai.azure.com', { origin: 'https://myres.openai.azure.com', prefix: '', shape: undefined }],
    ['https://myres.openai.azure.com/', { prefix: '', shape: undefined }],
    ['https://myres.openai.azure.com/openai', { prefix: '', shape: undefined }],
    ['https://myres.openai.azure.com/openai/v1/', { prefix: '', shape: 'v1' }],
    [
      'https://myres.services.ai.azure.com/api/projects/dictation',
      { origin: 'https://myres.services.ai.azure.com', prefix: '', shape: undefined },
    ],
    ['https://myres.services.ai.azure.com/models', { prefix: '', shape: undefined }],
    ['https://gw.azure-api.net/team-a', { origin: 'https://gw.azure-api.net', prefix: '/team-a', shape: undefined }],
    ['https://gw.azure-api.net/team-a/openai/v1', { prefix: '/team-a', shape: 'v1' }],
    ['https://127.0.0.1:8443', { origin: 'https://127.0.0.1:8443', prefix: '' }],
  ])('%s', (endpoint, expected) => {
    expect(parseEndpoint(endpoint)).toMatchObject(expected);
  });

  test('a pasted Target URI gives shape, api-version and the deployment of its capability', () => {
    expect(
      parseEndpoint('https://myres.openai.azure.com/openai/deployments/gpt-4o-mini/chat/completions?api-version=2025-01-01-preview'),
    ).toEqual({
      origin: 'https://myres.openai.azure.com',
      prefix: '',
      shape: 'deployments',
      apiVersion: '2025-01-01-preview',
      deployment: { name: 'gpt-4o-mini', capability: 'correction' },
    });
    const resolved = resolveEndpoint(
      parse({ endpoint: 'https://myres.openai.azure.com/openai/deployments/whisper/audio/transcriptions?api-version=2024-06-01' }),
    );
    expect(resolved).toMatchObject({
      shape: 'deployments',
      apiVersion: '2024-06-01',
      deployments: { asr: 'whisper', correction: undefined },
    });
  });

  test('shape and version: explicit wins; v1-ish versions pick v1; v1 drops dated versions', () => {
    expect(resolveEndpoint(parse({ resource: 'r' }))).toMatchObject({ shape: 'deployments', apiVersion: '2024-10-21' });
    expect(resolveEndpoint(parse({ resource: 'r', apiVersion: 'preview' }))).toMatchObject({ shape: 'v1', apiVersion: 'preview' });
    expect(resolveEndpoint(parse({ resource: 'r', apiVersion: 'v1' }))).toMatchObject({ shape: 'v1', apiVersion: undefined });
    expect(resolveEndpoint(parse({ resource: 'r', apiShape: 'v1', apiVersion: '2024-10-21' }))).toMatchObject({
      shape: 'v1',
      apiVersion: undefined,
    });
    expect(resolveEndpoint(parse({ resource: 'r', apiShape: 'deployments', apiVersion: 'preview' }))).toMatchObject({
      shape: 'deployments',
      apiVersion: '2024-10-21',
    });
    expect(resolveEndpoint(parse({ endpoint: 'https://r.openai.azure.com/openai/v1', apiShape: 'deployments' }))).toMatchObject({
      shape: 'deployments',
    });
  });

  test('streaming transcription is asked for only where Azure streams and the deployment name is a streaming model', () => {
    const v1 = resolveEndpoint(parse({ resource: 'r', apiShape: 'v1' }));
    const ga = resolveEndpoint(parse({ resource: 'r' }));
    const preview = resolveEndpoint(parse({ resource: 'r', apiVersion: '2025-03-01-preview' }));
    expect(streamsTranscription('auto', v1, 'gpt-4o-mini-transcribe')).toBe(true);
    expect(streamsTranscription('auto', preview, 'gpt-4o-transcribe')).toBe(true);
    expect(streamsTranscription('auto', ga, 'gpt-4o-transcribe')).toBe(false);
    expect(streamsTranscription('auto', v1, 'whisper')).toBe(false);
    expect(streamsTranscription('auto', v1, 'my-stt')).toBe(false);
    expect(streamsTranscription(true, ga, 'my-stt')).toBe(true);
  });
});

describe('config validation', () => {
  const issues = (options: Record<string, unknown>) => {
    const result = providerSchema.safeParse(options);
    return result.success ? [] : result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };
  const auth = { type: 'api-key', apiKey: 'secret-key-1234' };

  test('resource or endpoint, exactly one', () => {
    expect(issues({ auth }).join('\n')).toMatch(/endpoint: set `endpoint`.*or `resource`/);
    expect(issues({ auth, resource: 'r', endpoint: 'https://r.openai.azure.com' }).join('\n')).toMatch(
      /resource: give `resource` or `endpoint`, not both/,
    );
    expect(issues({ auth, resource: 'https://r.openai.azure.com' }).join('\n')).toMatch(/resource: must be an Azure resource name/);
  });

  test('https only (plain http for loopback), no credentials in the URL', () => {
    expect(issues({ auth, endpoint: 'http://r.openai.azure.com' }).join('\n')).toMatch(/must be https/);
    expect(issues({ auth, endpoint: 'http://127.0.0.1:8080' })).toEqual([]);
    expect(issues({ auth, endpoint: 'https://u:p@r.openai.azure.com' }).join('\n')).toMatch(/must not contain credentials/);
  });

  test('auth is required and must be one of the two kinds; one token source at a time', () => {
    expect(issues({ resource: 'r' }).join('\n')).toMatch(/^auth: must be \{ type: api-key/m);
    expect(issues({ resource: 'r', auth: { type: 'basic' } }).join('\n')).toMatch(/auth\.type: must be \{ type: api-key/);
    expect(issues({ resource: 'r', auth: { type: 'entra', env: 'A', command: 'az' } }).join('\n')).toMatch(
      /give one token source, not env and command/,
    );
    expect(issues({ resource: 'r', auth: { type: 'entra', env: 'not a name' } }).join('\n')).toMatch(/environment variable name/);
    expect(issues({ resource: 'r', auth: { type: 'entra', credential: 'managed-identity', clientId: 'abc' } })).toEqual([]);
    expect(issues({ resource: 'r', auth: { type: 'entra', command: 'az', clientId: 'abc' } }).join('\n')).toMatch(
      /clientId \/ tenantId apply only/,
    );
  });
});

describe('environment defaults', () => {
  test('as the SDKs read them', () => {
    expect(defaultProviders({})).toEqual({});
    expect(defaultProviders({ AZURE_OPENAI_API_KEY: 'k' })).toEqual({});
    expect(defaultProviders({ AZURE_OPENAI_ENDPOINT: 'https://r.openai.azure.com' })).toEqual({});
    expect(
      defaultProviders({
        AZURE_OPENAI_ENDPOINT: 'https://r.openai.azure.com/',
        AZURE_OPENAI_API_KEY: 'k',
        OPENAI_API_VERSION: '2025-04-01-preview',
      }),
    ).toEqual({
      azure: { endpoint: 'https://r.openai.azure.com/', apiVersion: '2025-04-01-preview', auth: { type: 'api-key', apiKey: 'k' } },
    });
    // The Python SDK's AZURE_OPENAI_AD_TOKEN, when there is no key.
    expect(defaultProviders({ AZURE_OPENAI_ENDPOINT: 'https://r.openai.azure.com', AZURE_OPENAI_AD_TOKEN: 'tok' })).toEqual({
      azure: { endpoint: 'https://r.openai.azure.com', auth: { type: 'entra', token: 'tok' } },
    });
  });
});

describe('token output', () => {
  const now = Date.UTC(2025, 0, 31, 12, 0, 0);

  test('az account get-access-token -o json (expires_on seconds, expiresOn local time)', () => {
    const out = JSON.stringify({
      accessToken: 'eyJ0.eyJ1.sig',
      expiresOn: '2025-01-31 13:00:00.000000',
      expires_on: 1738328400,
      tokenType: 'Bearer',
    });
    expect(parseTokenOutput(out, now)).toEqual({ token: 'eyJ0.eyJ1.sig', expiresAt: 1738328400_000 });
    // Older az: only expiresOn, in local time.
    const local = parseTokenOutput(JSON.stringify({ accessToken: 'abcd', expiresOn: '2025-01-31 13:00:00.500000' }), now);
    expect(local.expiresAt).toBe(new Date(2025, 0, 31, 13, 0, 0, 500).getTime());
  });

  test('azd auth token -o json, OAuth-style, bare JWT, bare opaque token', () => {
    expect(parseTokenOutput('{"token":"abcd","expiresOn":"2025-01-31T13:00:00Z"}', now)).toEqual({
      token: 'abcd',
      expiresAt: Date.UTC(2025, 0, 31, 13),
    });
    expect(parseTokenOutput('{"access_token":"abcd","expires_in":3600}', now)).toEqual({ token: 'abcd', expiresAt: now + 3600_000 });
    const jwt = makeToken(1738328400);
    expect(parseTokenOutput(`${jwt}\n`, now)).toEqual({ token: jwt, expiresAt: 1738328400_000 });
    expect(parseTokenOutput('opaque-token', now)).toEqual({ token: 'opaque-token', expiresAt: undefined });
  });

  test('what is not a token', () => {
    expect(() => parseTokenOutput('', now)).toThrow(/printed nothing/);
    expect(() => parseTokenOutput('{"foo":1}', now)).toThrow(/no accessToken/);
    expect(() => parseTokenOutput('{not json', now)).toThrow(/invalid JSON/);
    expect(() => parseTokenOutput('Please run az login\nto sign in', now)).toThrow(/more than one/);
    expect(() => parseTokenOutput('{"accessToken":"a b"}', now)).toThrow(/spaces/);
  });

  test('expiry formats', () => {
    expect(parseExpiry(1738328400)).toBe(1738328400_000);
    expect(parseExpiry(1738328400_000)).toBe(1738328400_000);
    expect(parseExpiry('1738328400')).toBe(1738328400_000);
    expect(parseExpiry('nonsense')).toBeUndefined();
    expect(jwtExpiry('not.a.jwt')).toBeUndefined();
  });
});

describe('token cache', () => {
  function fakeSource(expiresInMs: number | undefined, clock: { now: number }, delayMs = 0) {
    let n = 0;
    let fail = false;
    const source: TokenSource & { calls: () => number; failNext: () => void } = {
      description: 'entra (fake)',
      kind: 'command',
      unknownExpiryTtlMs: 60_000,
      calls: () => n,
      failNext: () => {
        fail = true;
      },
      getToken: async () => {
        n += 1;
        await new Promise((r) => setTimeout(r, delayMs));
        if (fail) {
          fail = false;
          throw new Error('az failed');
        }
        return { token: `tok-${n}`, expiresAt: expiresInMs === undefined ? undefined : clock.now + expiresInMs };
      },
    };
    return source;
  }

  test('concurrent callers share one fetch; refresh happens refreshMarginMs before expiry', async () => {
    const clock = { now: 1_000_000 };
    const source = fakeSource(3600_000, clock, 20);
    const seen: string[] = [];
    const cache = new TokenCache(source, { refreshMarginMs: 300_000, onToken: (t) => seen.push(t), now: () => clock.now });
    expect(await Promise.all([cache.token(), cache.token(), cache.token()])).toEqual(['tok-1', 'tok-1', 'tok-1']);
    expect(source.calls()).toBe(1);
    clock.now += 3600_000 - 300_001;
    expect(await cache.token()).toBe('tok-1');
    clock.now += 2;
    expect(await Promise.all([cache.token(), cache.token()])).toEqual(['tok-2', 'tok-2']);
    expect(source.calls()).toBe(2);
    expect(seen).toEqual(['tok-1', 'tok-2']);
  });

  test('a short-lived token is refreshed at half its lifetime, not on every call', async () => {
    const clock = { now: 0 };
    const source = fakeSource(60_000, clock);
    const cache = new TokenCache(source, { refreshMarginMs: 300_000, onToken: () => undefined, now: () => clock.now });
    await cache.token();
    clock.now += 29_000;
    await cache.token();
    expect(source.calls()).toBe(1);
    clock.now += 2_000;
    await cache.token();
    expect(source.calls()).toBe(2);
  });

  test('a failed refresh keeps using the still-valid token (with a warning); an expired one is an error', async () => {
    const clock = { now: 0 };
    const source = fakeSource(600_000, clock);
    const warnings: unknown[] = [];
    const cache = new TokenCache(source, {
      refreshMarginMs: 300_000,
      onToken: () => undefined,
      onStaleUse: (e) => warnings.push(e),
      now: () => clock.now,
    });
    await cache.token();
    clock.now += 400_000;
    source.failNext();
    expect(await cache.token()).toBe('tok-1');
    expect(warnings).toHaveLength(1);
    clock.now += 300_000; // past expiry
    source.failNext();
    await expect(cache.token()).rejects.toThrow('az failed');
  });

  test("invalidate() forces a new fetch; unknown expiry is reused for the source's ttl", async () => {
    const clock = { now: 0 };
    const source = fakeSource(undefined, clock);
    const cache = new TokenCache(source, { refreshMarginMs: 300_000, onToken: () => undefined, now: () => clock.now });
    await cache.token();
    clock.now += 59_000;
    await cache.token();
    expect(source.calls()).toBe(1);
    cache.invalidate();
    expect(await cache.token()).toBe('tok-2');
  });
});

describe('@azure/identity source', () => {
  const entra = (extra: Partial<EntraAuth>): EntraAuth =>
    ({
      type: 'entra',
      scope: 'https://cognitiveservices.azure.com/.default',
      refreshMarginMs: 300_000,
      commandTimeoutMs: 5000,
      ...extra,
    }) as EntraAuth;

  test('constructs the named credential once and asks it for the scope', async () => {
    const made: Record<string, unknown>[] = [];
    const asked: unknown[] = [];
    class ManagedIdentityCredential {
      constructor(options: Record<string, unknown>) {
        made.push(options);
      }
      async getToken(scope: string) {
        asked.push(scope);
        return { token: 'mi-token', expiresOnTimestamp: 42 };
      }
    }
    const source = tokenSource(entra({ credential: 'managed-identity', clientId: 'client-1' }), {
      provider: 'az',
      env: {},
      loadIdentity: async () => ({ ManagedIdentityCredential }),
    });
    expect(source.description).toBe('entra (@azure/identity ManagedIdentityCredential)');
    expect(await source.getToken()).toEqual({ token: 'mi-token', expiresAt: 42 });
    await source.getToken();
    expect(made).toEqual([{ clientId: 'client-1' }]);
    expect(asked).toEqual(['https://cognitiveservices.azure.com/.default', 'https://cognitiveservices.azure.com/.default']);
  });

  test('DefaultAzureCredential by default (a CommonJS default export works too); missing package or class', async () => {
    class DefaultAzureCredential {
      async getToken() {
        return { token: 'default-token', expiresOnTimestamp: 1 };
      }
    }
    const cjs = tokenSource(entra({}), { provider: 'az', env: {}, loadIdentity: async () => ({ default: { DefaultAzureCredential } }) });
    expect((await cjs.getToken()).token).toBe('default-token');
    const missing = tokenSource(entra({}), { provider: 'az', env: {}, loadIdentity: async () => undefined });
    await expect(missing.getToken()).rejects.toThrow('@azure/identity is not installed');
    const old = tokenSource(entra({ credential: 'workload-identity' }), { provider: 'az', env: {}, loadIdentity: async () => ({}) });
    await expect(old.getToken()).rejects.toThrow(/no WorkloadIdentityCredential/);
  });
});

test('retry-after headers: retry-after-ms first, then x-ms-retry-after-ms, then Retry-After (seconds or date)', () => {
  expect(retryAfterMs({ 'retry-after-ms': '250', 'retry-after': '3' })).toBe(250);
  expect(retryAfterMs({ 'x-ms-retry-after-ms': '1200.5' })).toBe(1201);
  expect(retryAfterMs({ 'retry-after': '3' })).toBe(3000);
  expect(retryAfterMs({ 'retry-after': new Date(Date.now() + 5000).toUTCString() })).toBeGreaterThan(3000);
  expect(retryAfterMs({})).toBeUndefined();
});

test('every YAML example of the README parses (as Koto parses config: YAML first, ${VAR} after) and validates', () => {
  const readme = readFileSync(new URL('../../plugins/azure-foundry/README.md', import.meta.url), 'utf8');
  const blocks = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
  expect(blocks.length).toBeGreaterThanOrEqual(4);
  let checked = 0;
  for (const block of blocks) {
    if (block.startsWith('auth:')) {
      for (const line of block.split('\n').filter((l) => l.startsWith('auth:'))) {
        expect(authSchema.safeParse((parseYaml(line) as { auth: unknown }).auth).error?.issues ?? []).toEqual([]);
        checked += 1;
      }
      continue;
    }
    const doc = parseYaml(block) as { providers: Record<string, Record<string, unknown>> };
    for (const { use, ...options } of Object.values(doc.providers)) {
      expect(use).toBe('azure-foundry');
      expect(providerSchema.safeParse(options).error?.issues ?? []).toEqual([]);
      checked += 1;
    }
  }
  expect(checked).toBeGreaterThanOrEqual(9);
});
