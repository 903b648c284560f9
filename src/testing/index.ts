/**
 * koto-voice/testing: what a plugin author (and Koto itself) tests with.
 *
 * - A loopback HTTPS + HTTP/2 server that speaks the OpenAI-compatible API, and the TLS helper
 *   to build servers of your own (`getTestCertificate`).
 * - Fake audio: WAV bytes of a tone or silence, and audio sources that play PCM.
 * - The provider conformance suite (`describeProviderConformance`, needs vitest).
 * - The output conformance suite (`describeOutputConformance`, needs vitest).
 */
// First: says "Node too old" before any dependency fails to load on it.
import '../kernel/node-check.ts';
export * from './openai-server.ts';
export * from './fake-audio.ts';
export * from './conformance.ts';
export * from './output-conformance.ts';
