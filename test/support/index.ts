/**
 * Test support: fake upstream servers and TLS material.
 * Tests import from here; the code lives in `src/testing` (shipped as `koto-voice/testing`).
 */
export * from '../../src/testing/openai-server.ts';
export * from '../../src/testing/tls.ts';
export * from './kernel.ts';
