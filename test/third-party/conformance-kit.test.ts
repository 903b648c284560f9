import { describe, expect, test } from 'vitest';
import { Agent } from 'undici';
import { definePlugin, describeError, kotoError, z, type AnyKotoPlugin, type CorrectionRequest, type PluginApi } from 'koto-voice';
import { retryAfterSeconds } from 'koto-voice/openai-wire';
import {
  ConformanceFailure,
  conformanceChecks,
  describeProviderConformance,
  type ConformanceCheckId,
  type ProviderConformanceOptions,
} from 'koto-voice/testing';

/**
 * The conformance suite must catch what it promises to catch: each flawed plugin below fails
 * exactly the check for its flaw, and the well-behaved one passes every check.
 */

interface Flaws {
  /** Sends through an undici Agent of its own instead of api.http. */
  ownClient?: boolean;
  /** Throws `new Error(...)` instead of catalogue errors. */
  plainErrors?: boolean;
  /** Does not pass request.signal to the request. */
  ignoreSignal?: boolean;
  /** Copies the upstream error body into the error. */
  echoBody?: boolean;
  /** Reads its key from an option the kernel does not recognise as secret, and never registers it. */
  hiddenKey?: boolean;
  /** Never marks an error retryable. */
  neverRetryable?: boolean;
  /** Throws a plain Error for a 429 (and only then). */
  plainRateLimit?: boolean;
  /** Maps a 429 right but drops its Retry-After. */
  ignoreRetryAfter?: boolean;
  /** Starts an interval in apply() and never clears it. */
  leakTimer?: boolean;
}

/** A minimal correction provider over the OpenAI chat wire, with optional flaws. */
function miniProvider(flaws: Flaws = {}): AnyKotoPlugin {
  const name = 'mini';
  return definePlugin({
    name,
    capabilities: ['correction'],
    provider: z.strictObject({ baseUrl: z.url(), apiKey: z.string().optional(), auth: z.string().optional() }),
    apply(api: PluginApi) {
      let own: Agent | undefined;
      if (flaws.leakTimer) setInterval(() => undefined, 60_000);
      const keyOf = (options: { apiKey?: string; auth?: string }) => (flaws.hiddenKey ? options.auth : options.apiKey) ?? '';
      if (!flaws.hiddenKey) {
        for (const ref of Object.values(api.config().resolved.providers)) {
          if (ref.use === name) api.registerSecret(keyOf(ref.options as { apiKey?: string }));
        }
      }
      api.hooks.close.tapPromise(name, async () => {
        await own?.close();
      });
      api.hooks.correction.for(name).tapPromise(name, async (req: CorrectionRequest) => {
        const options = req.provider.options as { baseUrl: string; apiKey?: string; auth?: string };
        const url = new URL(`${options.baseUrl}/chat/completions`);
        own ??= flaws.ownClient ? new Agent({ allowH2: true, connect: { ca: api.config().transport.ca } }) : undefined;
        const client = own ?? api.http;
        let res;
        try {
          res = await client.request({
            origin: url.origin,
            path: url.pathname,
            method: 'POST',
            headers: { authorization: `Bearer ${keyOf(options)}`, 'content-type': 'application/json' },
            body: JSON.stringify({ model: 'gpt-4.1-mini', messages: [{ role: 'user', content: req.text }] }),
            ...(flaws.ignoreSignal ? {} : { signal: req.signal }),
          });
        } catch (err) {
          if (req.signal.aborted) throw kotoError('KOTO_ERR_ABORTED', { what: 'the correction' });
          // Dropped before an answer: worth another try.
          throw kotoError(
            'KOTO_ERR_NETWORK',
            { origin: url.origin, detail: describeError(err) },
            { details: { retryable: !flaws.neverRetryable } },
          );
        }
        const body = await res.body.text();
        if (res.statusCode >= 400) {
          if (flaws.plainErrors) throw new Error(`HTTP ${res.statusCode}`);
          const provider = req.provider.name;
          if (res.statusCode === 401 || res.statusCode === 403) throw kotoError('KOTO_ERR_AUTH', { provider, status: res.statusCode });
          if (res.statusCode === 404) throw kotoError('KOTO_ERR_ENDPOINT_NOT_FOUND', { provider, url: `${url.origin}${url.pathname}` });
          if (res.statusCode === 429) {
            if (flaws.plainRateLimit) throw new Error('HTTP 429');
            const header = res.headers['retry-after'];
            const after = flaws.ignoreRetryAfter ? undefined : retryAfterSeconds(Array.isArray(header) ? header[0] : header);
            throw kotoError(
              'KOTO_ERR_RATE_LIMITED',
              { provider, retry: after === undefined ? '' : ` (retry after ${after} s)` },
              { details: { status: 429, retryable: !flaws.neverRetryable, ...(after === undefined ? {} : { retryAfter: after }) } },
            );
          }
          if (res.statusCode >= 500) {
            throw kotoError(
              'KOTO_ERR_UPSTREAM',
              { provider, status: res.statusCode, detail: '' },
              { details: { retryable: !flaws.neverRetryable } },
            );
          }
          throw kotoError('KOTO_ERR_BAD_REQUEST', {
            provider,
            status: res.statusCode,
            detail: flaws.echoBody ? body : 'refused',
          });
        }
        let json: { choices: { message: { content: string } }[] };
        try {
          json = JSON.parse(body) as typeof json;
        } catch (err) {
          throw kotoError('KOTO_ERR_BAD_RESPONSE', { provider: req.provider.name, detail: describeError(err) });
        }
        return { text: json.choices[0]?.message.content ?? null };
      });
    },
  });
}

function optionsFor(flaws: Flaws): ProviderConformanceOptions {
  return {
    plugin: miniProvider(flaws),
    provider: ({ server, secret }) => (flaws.hiddenKey ? { baseUrl: server.url, auth: secret } : { baseUrl: server.url, apiKey: secret }),
    // A plugin that ignores the signal leaves a request in flight: don't wait 10 s to drain it.
    config: () => ({ transport: { drainTimeoutMs: 200 } }),
    settleMs: 1500,
    expectCorrection: 'Hello, world.',
  };
}

async function outcomes(flaws: Flaws): Promise<Record<ConformanceCheckId, string>> {
  const out: Partial<Record<ConformanceCheckId, string>> = {};
  for (const check of conformanceChecks(optionsFor(flaws))) {
    try {
      const outcome = await check.run();
      out[check.id] = outcome?.skipped ? `skipped: ${outcome.skipped}` : 'pass';
    } catch (err) {
      expect(err).toBeInstanceOf(ConformanceFailure);
      out[check.id] = (err as Error).message;
    }
  }
  return out as Record<ConformanceCheckId, string>;
}

const ALL_PASS = {
  'shared-client': 'pass',
  errors: 'pass',
  failures: 'pass',
  dropped: 'pass',
  malformed: 'pass',
  retry: 'pass',
  'retry-after': 'pass',
  abort: 'pass',
  timeout: 'pass',
  secrets: 'pass',
  close: 'pass',
};

describe('the conformance suite catches what it promises', () => {
  test('a well-behaved provider passes every check', async () => {
    expect(await outcomes({})).toEqual(ALL_PASS);
  });

  test('a provider with its own HTTP client fails the shared-client check', async () => {
    const result = await outcomes({ ownClient: true });
    expect(result['shared-client']).toMatch(/server received 1 request\(s\) but only 0 went through the kernel's client/);
    expect(result['shared-client']).toMatch(/api\.http\.request/);
  });

  test('a provider throwing plain Errors fails the errors check', async () => {
    const result = await outcomes({ plainErrors: true });
    expect(result.errors).toMatch(/HTTP 401: the plugin threw a plain Error \(plugin "mini" failed in hook correction:mini: HTTP 401\)/);
    // A plain Error carries no `retryable`, so the kernel cannot retry it either.
    expect(result.retry).toMatch(/failed in hook correction:mini: HTTP 503/);
    expect(result.failures).toMatch(/HTTP 403: the plugin threw a plain Error/);
    expect(result['retry-after']).toMatch(/HTTP 429 with Retry-After: 1: the plugin threw a plain Error/);
    expect({ ...result, errors: 'pass', retry: 'pass', failures: 'pass', 'retry-after': 'pass' }).toEqual(ALL_PASS);
  });

  test('a provider that never marks errors retryable fails the retry check', async () => {
    const result = await outcomes({ neverRetryable: true });
    expect(result.retry).toMatch(/one HTTP 503 should be retried by the kernel, but a normal correction fell back to the raw text/);
    expect(result.retry).toMatch(/details: \{ retryable: true \}/);
    expect(result.failures).toMatch(/HTTP 500: details\.retryable is false, expected true/);
    expect(result.dropped).toMatch(/a connection dropped before the answer: details\.retryable is false, expected true/);
    expect(result['retry-after']).toMatch(/details\.retryable is false, expected true/);
    expect({ ...result, retry: 'pass', failures: 'pass', dropped: 'pass', 'retry-after': 'pass' }).toEqual(ALL_PASS);
  });

  test('a provider throwing a plain Error for a 429 fails the failures and Retry-After checks (and only those)', async () => {
    const result = await outcomes({ plainRateLimit: true });
    expect(result.failures).toMatch(/HTTP 429: the plugin threw a plain Error .*KOTO_ERR_RATE_LIMITED/);
    expect(result['retry-after']).toMatch(/HTTP 429 with Retry-After: 1: the plugin threw a plain Error/);
    expect({ ...result, failures: 'pass', 'retry-after': 'pass' }).toEqual(ALL_PASS);
  });

  test('a provider dropping Retry-After fails the Retry-After check (and only that)', async () => {
    const result = await outcomes({ ignoreRetryAfter: true });
    expect(result['retry-after']).toMatch(/details\.retryAfter is undefined, expected 1 \(seconds, from the header\)/);
    expect({ ...result, 'retry-after': 'pass' }).toEqual(ALL_PASS);
  });

  test('a provider ignoring the signal fails the abort and timeout checks', async () => {
    const result = await outcomes({ ignoreSignal: true });
    expect(result.abort).toMatch(/still pending 1500 ms after the session was cancelled/);
    expect(result.timeout).toMatch(/still pending 3000 ms after it started, with correction\.timeoutMs = 1500/);
    expect(result['shared-client']).toBe('pass');
  });

  test('a provider echoing upstream bodies into errors fails the secrets check', async () => {
    const result = await outcomes({ echoBody: true });
    expect(result.secrets).toMatch(/canary credential appears in an error \(KOTO_ERR_BAD_REQUEST/);
    expect(result.secrets).not.toMatch(/canary[0-9a-f]{32}/);
  });

  test('a credential the kernel does not know fails the secrets check', async () => {
    const result = await outcomes({ hiddenKey: true });
    expect(result.secrets).toMatch(/the kernel does not know the credential: call api\.registerSecret/);
  });

  test('a timer left running after close fails the close check', async () => {
    const result = await outcomes({ leakTimer: true });
    expect(result.close).toMatch(/handles left that keep the process alive: Timeout ×1/);
    expect({ ...result, close: 'pass' }).toEqual(ALL_PASS);
  });

  test('a plugin without capabilities is refused when the suite is declared', () => {
    const plugin = definePlugin({ name: 'nothing', apply() {} });
    expect(() => describeProviderConformance({ plugin, provider: () => ({}) })).toThrow(
      /plugin "nothing" declares no capabilities: add `capabilities: \['asr'\]`/,
    );
  });
});
