import { describeProviderConformance } from 'koto-voice/testing';
import openaiCompatible from '../../plugins/openai-compatible/index.ts';

// Koto's own OpenAI-compatible plugin passes the suite third-party providers run.
describeProviderConformance({
  plugin: openaiCompatible,
  provider: ({ server, secret }) => ({ baseUrl: server.url, apiKey: secret }),
  config: () => ({ asr: { model: 'whisper-1' }, correction: { model: 'gpt-4.1-mini' } }),
  expectText: 'hello world',
  expectCorrection: 'Hello, world.',
});
