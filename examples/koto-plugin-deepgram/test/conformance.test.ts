import { describeProviderConformance } from 'koto-voice/testing';
import plugin from '../src/index.ts';
import { DEFAULT_TRANSCRIPT, startDeepgramServer } from './server.ts';

// Koto's provider conformance suite, against this package's own Deepgram-style loopback server:
// shared client, catalogue errors with plugin + hook, abort, deadline, secrets, clean close.
describeProviderConformance({
  plugin,
  server: ({ secret }) => startDeepgramServer({ apiKey: secret }),
  provider: ({ server, secret }) => ({ baseUrl: server.url, apiKey: secret }),
  expectText: DEFAULT_TRANSCRIPT,
});
