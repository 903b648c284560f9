import { describeProviderConformance, type ConformanceServer } from 'koto-voice/testing';
import plugin from '../../plugins/azure-foundry/index.ts';
import { startAzureServer } from './azure-server.ts';

/** The loopback Azure server, driven by Koto's provider conformance suite. */
async function conformanceServer(secret: string): Promise<ConformanceServer> {
  const server = await startAzureServer({ apiKey: secret });
  const route = { asr: 'transcriptions', correction: 'chat' } as const;
  return {
    url: server.url,
    origin: server.origin,
    ca: server.ca,
    requestCount: () => server.requests.length,
    openConnections: () => server.openConnections,
    failNext(capability, status, message) {
      server.inject({ route: route[capability], status, body: { error: { code: String(status), message: message ?? `HTTP ${status}` } } });
    },
    hangNext(capability) {
      server.inject({ route: route[capability], hang: true });
    },
    rateLimitNext(capability, retryAfter) {
      server.inject({
        route: route[capability],
        status: 429,
        body: { error: { code: '429', message: 'Rate limit exceeded.' } },
        headers: retryAfter === undefined ? {} : { 'retry-after': retryAfter },
      });
    },
    dropNext(capability) {
      server.inject({ route: route[capability], drop: true });
    },
    malformedNext(capability) {
      server.inject({ route: route[capability], raw: '{"text": "cut off in the mid' });
    },
    heldRequests: () => server.held,
    close: () => server.close(),
  };
}

describeProviderConformance({
  plugin,
  server: ({ secret }) => conformanceServer(secret),
  provider: ({ server, secret }) => ({
    endpoint: server.url,
    auth: { type: 'api-key', apiKey: secret },
    deployments: { asr: 'whisper', correction: 'gpt-4o-mini' },
  }),
  expectText: 'hello from azure',
  expectCorrection: 'Hello from Azure.',
});
