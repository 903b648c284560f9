import { afterEach, describe, expect, it } from 'vitest';
import { definePlugin, type Kernel } from '../../src/index.ts';
import { startOpenAIServer, testKernel, type OpenAIServer } from '../support/index.ts';

let server: OpenAIServer | undefined;
let kernel: Kernel | undefined;

afterEach(async () => {
  await kernel?.close();
  await server?.close();
  kernel = undefined;
  server = undefined;
});

async function get(k: Kernel, origin: string, path = '/v1/models'): Promise<number> {
  const res = await k.http.request({ origin, path, method: 'GET' });
  await res.body.dump();
  return res.statusCode;
}

describe('the shared HTTP client', () => {
  it('makes 30 sequential requests over one TLS handshake, on h2', async () => {
    server = await startOpenAIServer();
    ({ kernel } = await testKernel({ transport: { ca: server.ca } }));
    for (let i = 0; i < 30; i++) expect(await get(kernel, server.origin)).toBe(200);
    expect(server.stats.tlsHandshakes).toBe(1);
    expect(server.stats.protocols).toEqual({ h2: 30 });
    const stats = kernel.http.stats().origins[server.origin];
    expect(stats).toMatchObject({ connections: 1, tlsHandshakes: 1, requests: 30, inFlight: 0, lastProtocol: 'h2' });
  });

  it('multiplexes concurrent requests on one connection', async () => {
    server = await startOpenAIServer({ thinkMs: 50 });
    ({ kernel } = await testKernel({ transport: { ca: server.ca } }));
    const statuses = await Promise.all(Array.from({ length: 10 }, () => get(kernel!, server!.origin)));
    expect(statuses.every((s) => s === 200)).toBe(true);
    expect(server.stats.tlsHandshakes).toBe(1);
  });

  it('falls back to HTTP/1.1 when the server has no h2 (ALPN)', async () => {
    server = await startOpenAIServer({ http1Only: true });
    ({ kernel } = await testKernel({ transport: { ca: server.ca } }));
    for (let i = 0; i < 3; i++) expect(await get(kernel, server.origin)).toBe(200);
    expect(server.stats.protocols).toEqual({ 'http/1.1': 3 });
    expect(kernel.http.stats().origins[server.origin]?.lastProtocol).toBe('http/1.1');
  });

  it('uses HTTP/1.1 only when http2 is off', async () => {
    server = await startOpenAIServer();
    ({ kernel } = await testKernel({ transport: { ca: server.ca, http2: false } }));
    expect(await get(kernel, server.origin)).toBe(200);
    expect(server.stats.protocols).toEqual({ 'http/1.1': 1 });
  });

  it('rebuilds while a request is in flight: it completes, later ones use the new agent, old connections close', async () => {
    server = await startOpenAIServer();
    ({ kernel } = await testKernel({ transport: { ca: server.ca } }));
    expect(await get(kernel, server.origin)).toBe(200);
    expect(kernel.transportGeneration).toBe(1);

    // Held until the rebuild has begun: in flight during it however slow the machine.
    server.inject({ path: '/models', delayMs: 60_000 });
    const inFlight = get(kernel, server.origin);
    await server.waitForRequests(2);
    const rebuilt = kernel.rebuildTransport();
    expect(kernel.transportGeneration).toBe(2);
    server.release();
    expect(await inFlight).toBe(200);
    await rebuilt;

    expect(await get(kernel, server.origin)).toBe(200);
    // The new agent opened its own connection; the old one was closed after draining.
    expect(server.stats.tlsHandshakes).toBe(2);
    expect(server.openConnections).toBe(1);
    expect(kernel.http.stats().origins[server.origin]?.open).toBe(1);
  });

  it('destroys an old agent whose request outlives the drain deadline', async () => {
    server = await startOpenAIServer();
    ({ kernel } = await testKernel({ transport: { ca: server.ca, drainTimeoutMs: 100 } }));
    server.inject({ path: '/models', delayMs: 5000 });
    const stuck = get(kernel, server.origin).then(
      () => 'completed',
      () => 'aborted',
    );
    await server.waitForRequests(1);
    await kernel.rebuildTransport();
    expect(await stuck).toBe('aborted');
    expect(await get(kernel, server.origin)).toBe(200);
  });

  it('keeps idle connections for minutes (keepAliveMs), not undici’s 4 s default', async () => {
    server = await startOpenAIServer();
    ({ kernel } = await testKernel({ transport: { ca: server.ca } }));
    expect(await get(kernel, server.origin)).toBe(200);
    await new Promise((r) => setTimeout(r, 4500));
    expect(await get(kernel, server.origin)).toBe(200);
    expect(server.stats.tlsHandshakes).toBe(1);
  });

  it('survives a graceful GOAWAY: the next request opens a new connection', async () => {
    server = await startOpenAIServer();
    ({ kernel } = await testKernel({ transport: { ca: server.ca } }));
    expect(await get(kernel, server.origin)).toBe(200);
    server.inject({ path: '/models', goaway: true });
    expect(await get(kernel, server.origin)).toBe(200);
    expect(await get(kernel, server.origin)).toBe(200);
    expect(server.stats.tlsHandshakes).toBe(2);
  });

  it('pre-warms an origin so the first real request finds the connection open', async () => {
    server = await startOpenAIServer();
    ({ kernel } = await testKernel({ transport: { ca: server.ca } }));
    expect(await kernel.http.prewarm(server.origin, '/v1/models')).toBe(true);
    expect(server.stats.tlsHandshakes).toBe(1);
    expect(await get(kernel, server.origin, '/v1/models')).toBe(200);
    expect(server.stats.tlsHandshakes).toBe(1);
    expect(kernel.http.stats().origins[server.origin]?.prewarms).toBe(1);
  });

  it('runs the request hook on every request (auth headers through the shared client)', async () => {
    server = await startOpenAIServer({ apiKey: 'sk-hook-secret-1' });
    const auth = definePlugin({
      name: 'auth',
      apply(api) {
        api.hooks.request.tapPromise('auth', async (req) => ({
          ...req,
          headers: { ...req.headers, authorization: 'Bearer sk-hook-secret-1' },
        }));
      },
    });
    ({ kernel } = await testKernel({ transport: { ca: server.ca } }, { plugins: [auth] }));
    expect(await get(kernel, server.origin)).toBe(200);
    expect(server.requests[0]?.headers.authorization).toBe('Bearer sk-hook-secret-1');
  });

  it('refuses plain http to a non-loopback host, and cross-origin redirects', async () => {
    server = await startOpenAIServer();
    ({ kernel } = await testKernel({ transport: { ca: server.ca } }));
    await expect(kernel.http.request({ origin: 'http://example.invalid', path: '/', method: 'GET' })).rejects.toMatchObject({
      code: 'KOTO_ERR_INSECURE_ENDPOINT',
    });
    server.inject({ path: '/models', status: 307, body: '', headers: { location: 'https://elsewhere.invalid/v1/models' } });
    await expect(get(kernel, server.origin)).rejects.toMatchObject({ code: 'KOTO_ERR_REDIRECT_REFUSED' });
    // A same-origin redirect is handed to the caller untouched.
    server.inject({ path: '/models', status: 307, body: '', headers: { location: '/v1/models?again=1' } });
    expect(await get(kernel, server.origin)).toBe(307);
  });

  it('applies transportOptions taps before the agent is built', async () => {
    server = await startOpenAIServer();
    const seen: number[] = [];
    const tuner = definePlugin({
      name: 'tuner',
      apply(api) {
        api.hooks.transportOptions.tap('tuner', (options) => {
          seen.push(options.keepAliveTimeout);
          return { ...options, allowH2: false };
        });
      },
    });
    ({ kernel } = await testKernel({ transport: { ca: server.ca } }, { plugins: [tuner] }));
    // The first agent is built once every plugin has applied: the tap shapes it, no rebuild needed.
    expect(await get(kernel, server.origin)).toBe(200);
    expect(seen).toEqual([600000]);
    expect(server.stats.protocols).toEqual({ 'http/1.1': 1 });
  });

  it('does not replace the global fetch dispatcher of the host process', async () => {
    server = await startOpenAIServer();
    ({ kernel } = await testKernel({ transport: { ca: server.ca } }));
    const legacy = (globalThis as Record<symbol, unknown>)[Symbol.for('undici.globalDispatcher.1')];
    // Either untouched (undefined until Node's own fetch runs) or Node's own agent — never undici 8's wrapper.
    expect(legacy === undefined || (legacy as object).constructor.name !== 'Dispatcher1Wrapper').toBe(true);
  });
});
