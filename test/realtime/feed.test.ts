import { afterEach, describe, expect, it } from 'vitest';
import { definePlugin, KotoError, type Kernel } from '../../src/index.ts';
import { RealtimeTranscription, transcriptionSessionUpdate, type RealtimeTarget } from '../../plugins/openai-compatible/realtime.ts';
import { schemaNamed, validate } from '../openai-compatible/spec.ts';
import { tempHome, testKernel } from '../support/index.ts';
import { amplitudeAt, samplesOf, tone } from './helpers.ts';
import { startRealtimeServer, type RealtimeServer, type RealtimeServerOptions } from './server.ts';

const home = tempHome('koto-realtime-feed-');
let kernel: Kernel | undefined;
let server: RealtimeServer | undefined;

afterEach(async () => {
  await kernel?.close();
  kernel = undefined;
  await server?.close();
  server = undefined;
});

/** A kernel (for its client) and a realtime server; the request hook adds a tracing header. */
async function setup(options: RealtimeServerOptions = {}): Promise<{ target: RealtimeTarget; server: RealtimeServer }> {
  server = await startRealtimeServer(options);
  const tracing = definePlugin({
    name: 'tracing',
    apply(api) {
      api.hooks.request.tapPromise('tracing', async (req) => ({ ...req, headers: { ...req.headers, 'x-trace': 'rt-1' } }));
    },
  });
  ({ kernel } = await testKernel({ transport: { ca: server.ca } }, { plugins: [tracing], env: { KOTO_HOME: home.dir } }));
  const target: RealtimeTarget = {
    provider: 'rt',
    http: kernel.http,
    url: new URL(`${server.url}?intent=transcription`),
    headers: () => ({ authorization: 'Bearer sk-feed-secret-1' }),
    secrets: ['sk-feed-secret-1'],
  };
  return { target, server };
}

/** Pushes `pcm` in 20 ms frames, as the audioFrame hook would. */
function pushFrames(feed: RealtimeTranscription, pcm: Int16Array, rate = 16_000): void {
  const frame = (rate * 20) / 1000;
  for (let offset = 0; offset < pcm.length; offset += frame) feed.push(pcm.slice(offset, offset + frame), rate);
}

const ptt = transcriptionSessionUpdate({ model: 'gpt-4o-mini-transcribe', language: 'en' });

describe('a realtime transcription feed over the kernel client', () => {
  it('sends the session update, then 24 kHz PCM of exactly 3/2 the captured length, commits, and resolves with the transcript', async () => {
    const { target, server } = await setup();
    const interims: string[] = [];
    const feed = RealtimeTranscription.open(target, ptt, { onInterim: (text) => interims.push(text) });
    const pcm = tone(1000, 1, 16_000, 0.5);
    pushFrames(feed, pcm);
    // Deltas arrive while the audio does, before any commit.
    await expect.poll(() => interims.length, { timeout: 30_000 }).toBeGreaterThan(1);
    expect(server.connections[0]!.events.some((e) => e.type === 'input_audio_buffer.commit')).toBe(false);
    const text = await feed.finish();
    expect(text).toBe('heard 24000 samples');

    const connection = server.connections[0]!;
    expect(connection.path).toBe('/v1/realtime');
    expect(connection.query).toEqual({ intent: 'transcription' });
    expect(connection.headers.authorization).toBe('Bearer sk-feed-secret-1');
    expect(connection.headers['x-trace']).toBe('rt-1');
    expect(connection.problems).toEqual([]);
    // session.update first (valid per the spec), appends, then one commit last.
    const types = connection.events.map((e) => e.type);
    expect(types[0]).toBe('session.update');
    expect(validate(connection.events[0], schemaNamed('RealtimeClientEventSessionUpdate'))).toEqual([]);
    expect(types.at(-1)).toBe('input_audio_buffer.commit');
    expect(types.slice(1, -1).every((t) => t === 'input_audio_buffer.append')).toBe(true);
    for (const event of connection.events.slice(1, -1))
      expect(validate(event, schemaNamed('RealtimeClientEventInputAudioBufferAppend'))).toEqual([]);
    // ~100 ms per append rather than one event per 20 ms frame.
    expect(types.length - 2).toBeLessThanOrEqual(11);
    // The server heard 24 kHz audio: 24000 samples for 1 s, and the tone is at 1 kHz at that rate
    // (16 kHz samples sent as if they were 24 kHz would put it at 1.5 kHz).
    const heard = samplesOf(connection.audio());
    expect(heard).toHaveLength(24_000);
    expect(feed.appendedSamples).toBe(24_000);
    const body = heard.subarray(200, -200);
    expect(amplitudeAt(body, 24_000, 1000)).toBeCloseTo(0.5, 2);
    expect(amplitudeAt(body, 24_000, 1500)).toBeLessThan(0.001);
    // Interim text grew with the deltas and ended as the transcript; the socket was closed cleanly.
    expect(interims[0]).toBe('w1');
    expect(interims).toContain('w1 w2 w3 w4');
    expect(interims.at(-1)).toBe('heard 24000 samples');
    expect(feed.interimHistory).toEqual(['w1 w2 w3 w4 done']);
    await expect.poll(() => connection.closeCode, { timeout: 30_000 }).toBe(1000);
  });

  it('queues frames pushed before the socket opens and sends them in order once it does; a throwing interim listener is ignored', async () => {
    const { target, server } = await setup();
    // A live display that throws must not disturb the stream.
    const feed = RealtimeTranscription.open(target, ptt, {
      onInterim: () => {
        throw new Error('display crashed');
      },
    });
    pushFrames(feed, tone(440, 0.5, 16_000));
    expect(feed.state).toBe('connecting');
    expect(await feed.finish()).toBe('heard 12000 samples');
    expect(server.connections[0]!.events[0]!.type).toBe('session.update');
  });

  it('a socket dropped mid-session makes finish() reject with a network error (the caller uploads instead)', async () => {
    const { target, server } = await setup({ dropAfterBytes: 10_000 });
    const feed = RealtimeTranscription.open(target, ptt);
    pushFrames(feed, tone(440, 1, 16_000));
    const err = await feed.finish().catch((e: unknown) => e);
    expect(KotoError.is(err)).toBe(true);
    expect((err as KotoError).code).toBe('KOTO_ERR_NETWORK');
    expect((err as KotoError).message).toMatch(/closed before the transcript was complete/);
    expect(server.connections[0]!.events.some((e) => e.type === 'input_audio_buffer.commit')).toBe(false);
    // Later frames are dropped quietly.
    expect(() => feed.push(new Int16Array(320), 16_000)).not.toThrow();
  });

  it('a .failed transcription rejects with the server’s message', async () => {
    const { target } = await setup({ failTranscription: true });
    const feed = RealtimeTranscription.open(target, ptt);
    pushFrames(feed, tone(440, 0.3, 16_000));
    const err = (await feed.finish().catch((e: unknown) => e)) as KotoError;
    expect(err.code).toBe('KOTO_ERR_UPSTREAM');
    expect(err.message).toContain('The audio could not be transcribed. (audio_unintelligible)');
    expect(err.details).toMatchObject({ upstreamCode: 'audio_unintelligible' });
  });

  it('an error event for the session update fails the feed at once', async () => {
    const { target } = await setup({ rejectSessionUpdate: true });
    const feed = RealtimeTranscription.open(target, ptt);
    await expect.poll(() => feed.state, { timeout: 30_000 }).toBe('failed');
    expect(feed.failure?.message).toContain('Invalid session configuration. (invalid_value)');
    await expect(feed.finish()).rejects.toThrow(/Invalid session configuration/);
  });

  it('a refused upgrade rejects with a network error that names no secret', async () => {
    const { target } = await setup({ refuseStatus: 401 });
    const feed = RealtimeTranscription.open(target, ptt);
    pushFrames(feed, tone(440, 0.2, 16_000));
    const err = (await feed.finish().catch((e: unknown) => e)) as KotoError;
    expect(err.code).toBe('KOTO_ERR_NETWORK');
    expect(err.message).toMatch(/did not open/);
    expect(JSON.stringify(err.toJSON())).not.toContain('sk-feed-secret-1');
  });

  it('finish() gives up after finalTimeoutMs when the transcript never comes, and stops at once when aborted', async () => {
    const { target } = await setup({ neverComplete: true });
    const slow = RealtimeTranscription.open(target, ptt, { finalTimeoutMs: 200 });
    pushFrames(slow, tone(440, 0.2, 16_000));
    await expect(slow.finish()).rejects.toMatchObject({ code: 'KOTO_ERR_TIMEOUT' });
    expect(slow.state).toBe('failed');

    const aborted = RealtimeTranscription.open(target, ptt, { finalTimeoutMs: 60_000 });
    pushFrames(aborted, tone(440, 0.2, 16_000));
    const abort = new AbortController();
    const pending = aborted.finish(abort.signal);
    abort.abort();
    await expect(pending).rejects.toMatchObject({ code: 'KOTO_ERR_ABORTED' });
  });

  it('server VAD: segments committed by the server while the user speaks are joined in order, the rest is committed at stop', async () => {
    const { target, server } = await setup({ vadSegmentMs: 400 });
    const feed = RealtimeTranscription.open(
      target,
      transcriptionSessionUpdate({ model: 'gpt-4o-transcribe', turnDetection: 'server_vad' }),
    );
    const interims: string[] = [];
    feed.onInterim = (text) => interims.push(text);
    pushFrames(feed, tone(440, 1, 16_000));
    const text = await feed.finish();
    const items = server.connections[0]!.items;
    expect(items.length).toBe(3);
    expect(text).toBe(items.map((item) => `heard ${item.bytes.length / 2} samples`).join(' '));
    expect(items.reduce((n, item) => n + item.bytes.length / 2, 0)).toBe(24_000);
    const types = server.connections[0]!.events.map((e) => e.type);
    expect(types.slice(-2)).toEqual(['input_audio_buffer.commit', 'input_audio_buffer.clear']);
    // Earlier segments were final before the user stopped.
    expect(interims.some((t) => t.startsWith('heard ') && t.includes(' w'))).toBe(true);
  });

  it('server VAD: a final commit that finds the buffer already committed is not a failure', async () => {
    const { target, server } = await setup({ vadSegmentMs: 100 });
    const feed = RealtimeTranscription.open(
      target,
      transcriptionSessionUpdate({ model: 'gpt-4o-transcribe', turnDetection: 'server_vad' }),
      { chunkMs: 250 },
    );
    // Every 250 ms append is a whole segment for this server: it commits each by itself, so the
    // buffer is empty when the user stops.
    pushFrames(feed, tone(440, 0.5, 16_000));
    const text = await feed.finish();
    const connection = server.connections[0]!;
    expect(connection.sent.some((e) => (e.error as { code?: string } | undefined)?.code === 'input_audio_buffer_commit_empty')).toBe(true);
    expect(text).toBe(connection.items.map((item) => `heard ${item.bytes.length / 2} samples`).join(' '));
    expect(connection.items.reduce((n, item) => n + item.bytes.length / 2, 0)).toBe(12_000);
  });

  it('close() before finish ends the socket and a later finish rejects as aborted', async () => {
    const { target, server } = await setup();
    const feed = RealtimeTranscription.open(target, ptt);
    await expect.poll(() => feed.state, { timeout: 30_000 }).toBe('open');
    feed.close();
    await expect.poll(() => server.connections[0]?.closed, { timeout: 30_000 }).toBe(true);
    await expect(feed.finish()).rejects.toMatchObject({ code: 'KOTO_ERR_ABORTED' });
  });
});
