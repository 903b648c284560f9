import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { definePlugin, type Kernel } from '../../src/index.ts';
import { getTestCertificate, testKernel } from '../support/index.ts';

let kernel: Kernel | undefined;
let server: https.Server | undefined;

afterEach(async () => {
  await kernel?.close();
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
});

describe('WebSockets through the kernel', () => {
  it('opens wss through the kernel client, with request-hook headers, counted per origin', async () => {
    const cert = await getTestCertificate();
    server = https.createServer({ cert: cert.cert, key: cert.key });
    const wss = new WebSocketServer({ server });
    const seen: string[] = [];
    wss.on('connection', (socket, req) => {
      seen.push(String(req.headers.authorization));
      socket.on('message', (data) => socket.send(`echo:${String(data)}`));
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const auth = definePlugin({
      name: 'ws-auth',
      apply(api) {
        api.hooks.request.tapPromise('ws-auth', async (req) => ({
          ...req,
          headers: { ...req.headers, authorization: 'Bearer ws-token-1' },
        }));
      },
    });
    ({ kernel } = await testKernel({ transport: { ca: cert.ca } }, { plugins: [auth] }));
    const ws = kernel.http.websocket(`${origin.replace('https', 'wss')}/v1/realtime`);
    const reply = await new Promise<string>((resolve, reject) => {
      ws.addEventListener('open', () => ws.send('ping'));
      ws.addEventListener('message', (event) => resolve(String(event.data)));
      ws.addEventListener('error', (event) => reject(new Error(String((event as { message?: string }).message))));
    });
    ws.close();
    expect(reply).toBe('echo:ping');
    expect(seen).toEqual(['Bearer ws-token-1']);
    expect(kernel.http.stats().origins[origin]).toMatchObject({ tlsHandshakes: 1, lastProtocol: 'http/1.1' });
  });

  it('refuses plain ws: to a non-loopback host', async () => {
    ({ kernel } = await testKernel({}));
    expect(() => kernel!.http.websocket('ws://example.invalid/x')).toThrow(/plain http/);
  });
});
