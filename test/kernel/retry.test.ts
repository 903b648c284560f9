import { afterEach, describe, expect, it } from 'vitest';
import { createKernel, encodeWav, type Kernel } from '../../src/index.ts';
import { startOpenAIServer, tempHome, type OpenAIServer } from '../support/index.ts';

let server: OpenAIServer | undefined;
let kernel: Kernel | undefined;
const home = tempHome('koto-retry-');
const wav = encodeWav(new Int16Array(1600), 16000);

afterEach(async () => {
  await kernel?.close();
  await server?.close();
});

async function setup(asr: Record<string, unknown> = {}, correction: Record<string, unknown> = {}) {
  server = await startOpenAIServer();
  kernel = await createKernel({
    search: false,
    builtins: ['openai-compatible'],
    env: { KOTO_HOME: home.dir },
    logLevel: 'silent',
    config: {
      providers: { main: { use: 'openai-compatible', baseUrl: server.baseUrl, apiKey: 'sk-retry-test' } },
      asr: { model: 'whisper-1', ...asr },
      correction: { stream: false, ...correction },
      transport: { ca: server.ca },
    },
  });
  return { server, kernel };
}

const uploads = () => server!.requests.filter((r) => r.path.endsWith('/audio/transcriptions')).length;

describe('retries', () => {
  it('retries a transcription after a 503 and succeeds', async () => {
    const { server, kernel } = await setup();
    server.inject({ path: '/audio/transcriptions', status: 503 });
    expect((await kernel.transcribe({ data: wav, name: 'a.wav' })).text).toBe('hello world');
    expect(uploads()).toBe(2);
  });

  it('honours Retry-After on a 429', async () => {
    const { server, kernel } = await setup();
    server.inject({ path: '/audio/transcriptions', status: 429, headers: { 'retry-after': '1' } });
    expect((await kernel.transcribe({ data: wav, name: 'a.wav' })).text).toBe('hello world');
    const [first, second] = server.requests.filter((r) => r.path.endsWith('/audio/transcriptions'));
    expect(second!.receivedAt - first!.receivedAt).toBeGreaterThanOrEqual(900);
  });

  it('does not retry what retrying cannot fix (401)', async () => {
    const { server, kernel } = await setup();
    server.inject({ path: '/audio/transcriptions', status: 401 });
    await expect(kernel.transcribe({ data: wav, name: 'a.wav' })).rejects.toMatchObject({ code: 'KOTO_ERR_AUTH' });
    expect(uploads()).toBe(1);
  });

  it('is bounded: persistent 500s fail after 1 + retries attempts, with the recording kept', async () => {
    const { server, kernel } = await setup({ retries: 2 });
    server.inject({ path: '/audio/transcriptions', status: 500, times: Infinity });
    const err = await kernel.run({ data: wav, name: 'a.wav' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'KOTO_ERR_UPSTREAM', record: { state: 'failed' } });
    expect((err as { record: { audioPath: string } }).record.audioPath).toContain('recordings');
    expect(uploads()).toBe(3);
  });

  it('never waits past the stage deadline: a long Retry-After gives the clear error at once', async () => {
    // 30 s past a 10 s deadline: the first answer only has to come within 10 s, even on a loaded machine.
    const { server, kernel } = await setup({ timeoutMs: 10_000 });
    server.inject({ path: '/audio/transcriptions', status: 429, headers: { 'retry-after': '30' } });
    await expect(kernel.transcribe({ data: wav, name: 'a.wav' })).rejects.toMatchObject({ code: 'KOTO_ERR_RATE_LIMITED' });
    expect(uploads()).toBe(1);
  });

  it('retries a correction within its deadline, else falls back to the raw text', async () => {
    const { server, kernel } = await setup({}, { retries: 1 });
    server.inject({ path: '/chat/completions', status: 502 });
    expect(await kernel.correct('hello')).toMatchObject({ text: 'Hello, world.', fallback: false });
    server.inject({ path: '/chat/completions', status: 502, times: 2 });
    expect(await kernel.correct('hello')).toMatchObject({ text: 'hello', fallback: true });
  });
});
