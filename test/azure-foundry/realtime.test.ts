import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { definePlugin, encodeWav, parseWav, type PluginApi } from 'koto-voice';
import { AUTH_MARKER } from '../../plugins/azure-foundry/index.ts';
import { realtimeSchema, providerSchema } from '../../plugins/azure-foundry/options.ts';
import { realtimeSocketUrl } from '../../plugins/azure-foundry/realtime.ts';
import { resolveEndpoint } from '../../plugins/azure-foundry/endpoint.ts';
import { DEFAULT_TRANSCRIPT } from './azure-server.ts';
import { API_KEY, tokenCommand, tokenNumber, verifyToken } from './helpers.ts';
import { liveAzure, second, type LiveAzure } from './realtime-helpers.ts';

let h: LiveAzure | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

type Update = { session: { type: string; audio: { input: Record<string, unknown> } } };

describe('azure-foundry realtime: options and the socket URL', () => {
  const instance = (extra: Record<string, unknown>) =>
    providerSchema.parse({
      resource: 'myres',
      auth: { type: 'api-key', apiKey: 'k' },
      deployments: { asr: 'gpt-4o-transcribe' },
      ...extra,
    });

  it("defaults to off; true takes every default; the socket is the resource's v1 realtime URL", () => {
    expect(instance({}).realtime).toBe(false);
    const on = instance({ realtime: true });
    expect(on.realtime).toBe(true);
    const settings = realtimeSchema.parse({});
    expect(settings).toMatchObject({ enabled: true, turnDetection: 'off', finalTimeoutMs: 15_000, chunkMs: 100 });
    expect(realtimeSocketUrl(resolveEndpoint(on), settings).href).toBe(
      'wss://myres.openai.azure.com/openai/v1/realtime?intent=transcription',
    );
    // A deployments-shape instance (dated api-version) still streams to v1, without the dated version.
    const dated = instance({ apiVersion: '2025-04-01-preview', apiShape: 'deployments', realtime: true });
    expect(realtimeSocketUrl(resolveEndpoint(dated), settings).href).toBe(
      'wss://myres.openai.azure.com/openai/v1/realtime?intent=transcription',
    );
  });

  it('a gateway prefix, a realtime.endpoint elsewhere and an explicit apiVersion', () => {
    const gateway = instance({ resource: undefined, endpoint: 'https://apim.example.com/azure/openai/v1' });
    expect(realtimeSocketUrl(resolveEndpoint(gateway), realtimeSchema.parse({})).href).toBe(
      'wss://apim.example.com/azure/openai/v1/realtime?intent=transcription',
    );
    const elsewhere = realtimeSchema.parse({ endpoint: 'wss://rt.example.com/gw', apiVersion: 'preview' });
    expect(realtimeSocketUrl(resolveEndpoint(gateway), elsewhere).href).toBe(
      'wss://rt.example.com/gw/openai/v1/realtime?intent=transcription&api-version=preview',
    );
  });

  it('refuses a plain-text realtime.endpoint off loopback, an unknown key, and a model (it is a deployment here)', () => {
    expect(realtimeSchema.safeParse({ endpoint: 'ws://rt.example.com' }).success).toBe(false);
    expect(realtimeSchema.safeParse({ endpoint: 'http://127.0.0.1:8080' }).success).toBe(true);
    expect(realtimeSchema.safeParse({ model: 'gpt-4o-transcribe' }).success).toBe(false);
    expect(realtimeSchema.safeParse({ deployment: 'rt', turnDetection: { type: 'server_vad', silenceDurationMs: 500 } }).success).toBe(
      true,
    );
  });
});

describe('azure-foundry realtime: live recordings stream while the user speaks', () => {
  it('api-key: streams to /openai/v1/realtime with the api-key header and the ASR deployment as model; no upload', async () => {
    h = await liveAzure();
    const interims: string[] = [];
    const recording = await h.kernel.record({ onInterim: (text, stage) => interims.push(`${stage}:${text}`) });
    const rt = h.realtime;
    await expect.poll(() => rt.connections[0]?.audio().length ?? 0, { timeout: 30_000 }).toBeGreaterThan(40_000);
    expect(recording.state).toBe('recording');
    const record = await recording.stop();

    expect(record.state).toBe('done');
    expect(record.text).toBe('heard 24000 samples');
    expect(rt.connections[0]!.audio().length).toBe(48_000);
    expect(record.asrModel).toBe('gpt-4o-mini-transcribe');
    expect(h.azure.to('transcriptions')).toHaveLength(0);
    const connection = rt.connections[0]!;
    expect(connection.path).toBe('/openai/v1/realtime');
    expect(connection.query).toEqual({ intent: 'transcription' });
    expect(connection.headers['api-key']).toBe(API_KEY);
    expect(connection.headers.authorization).toBeUndefined();
    expect(Object.keys(connection.headers).filter((k) => k.startsWith('x-koto'))).toEqual([]);
    expect(connection.problems).toEqual([]);
    const update = connection.events[0] as Update;
    expect(update.session.type).toBe('transcription');
    expect(update.session.audio.input).toMatchObject({
      format: { type: 'audio/pcm', rate: 24000 },
      transcription: { model: 'gpt-4o-mini-transcribe' },
      turn_detection: null,
    });
    expect(interims[0]).toMatch(/^asr:w1( |$)/);
    expect(interims.at(-1)).toBe('asr:heard 24000 samples');
    const wav = parseWav(readFileSync(record.audioPath!));
    expect(wav.ok && wav.pcm?.samples.length).toBe(16_000);
    await expect.poll(() => connection.closed, { timeout: 30_000 }).toBe(true);
  });

  it('Entra: the handshake carries a bearer token from the token command (no api-key), fetched once for socket and session', async () => {
    let command: Awaited<ReturnType<typeof tokenCommand>> | undefined;
    h = await liveAzure({
      provider: async (home) => {
        command = await tokenCommand(home, { ttlSeconds: 3600 });
        return { auth: { type: 'entra', command: command.command } };
      },
    });
    const record = await (await h.kernel.record()).stop();
    expect(record.text).toBe('heard 24000 samples');
    expect(h.azure.to('transcriptions')).toHaveLength(0);
    const connection = h.realtime.connections[0]!;
    const authorization = connection.headers.authorization as string;
    expect(authorization).toMatch(/^Bearer /);
    expect(verifyToken(authorization.slice('Bearer '.length))).toBe('ok');
    expect(tokenNumber(authorization)).toBe(1);
    expect(connection.headers['api-key']).toBeUndefined();
    expect(await command!.invocations()).toBe(1);
    expect(h.warnings()).not.toContain(authorization.slice('Bearer '.length));
  });

  it('a socket dropped mid-session falls back to uploading the whole recording to Azure', async () => {
    h = await liveAzure({ server: { dropAfterBytes: 20_000 } });
    const recording = await h.kernel.record();
    const rt = h.realtime;
    await expect.poll(() => rt.connections[0]?.closed, { timeout: 30_000 }).toBe(true);
    const record = await recording.stop();
    expect(record.state).toBe('done');
    expect(record.text).toBe(DEFAULT_TRANSCRIPT);
    const uploads = h.azure.to('transcriptions');
    expect(uploads).toHaveLength(1);
    expect(uploads[0]!.path).toBe('/openai/v1/audio/transcriptions');
    expect(uploads[0]!.headers['api-key']).toBe(API_KEY);
    expect(uploads[0]!.form?.fields.model).toBe('gpt-4o-mini-transcribe');
    expect(uploads[0]!.form?.file?.size).toBe(encodeWav(second(), 16_000).length);
    expect(h.warnings()).toMatch(
      /provider "az": realtime transcription failed, uploading the recording instead: .*closed before the transcript was complete/,
    );
  });

  it('a refused handshake (401) and a .failed transcription fall back to the upload; the key never shows', async () => {
    h = await liveAzure({ server: { refuseStatus: 401 } });
    const refused = await (await h.kernel.record()).stop();
    expect(refused.text).toBe(DEFAULT_TRANSCRIPT);
    expect(h.azure.to('transcriptions')).toHaveLength(1);
    expect(h.warnings()).toMatch(/did not open/);
    expect(h.warnings()).not.toContain(API_KEY);
    await h.close();

    h = await liveAzure({ server: { failTranscription: true } });
    const failed = await (await h.kernel.record()).stop();
    expect(failed.text).toBe(DEFAULT_TRANSCRIPT);
    expect(h.azure.to('transcriptions')).toHaveLength(1);
    expect(h.warnings()).toContain('The audio could not be transcribed. (audio_unintelligible)');
  });

  it('realtime.deployment, a gateway prefix, apiVersion and server VAD reach the socket', async () => {
    h = await liveAzure({
      server: { vadSegmentMs: 400 },
      realtime: (rt) => ({
        endpoint: `${rt.url.replace(/\/v1\/realtime$/, '')}/gateway`,
        deployment: 'rt-transcribe',
        apiVersion: 'preview',
        turnDetection: { type: 'server_vad', silenceDurationMs: 600 },
      }),
    });
    const record = await (await h.kernel.record()).stop();
    const connection = h.realtime.connections[0]!;
    expect(connection.path).toBe('/gateway/openai/v1/realtime');
    expect(connection.query).toEqual({ intent: 'transcription', 'api-version': 'preview' });
    expect(connection.headers['api-key']).toBe(API_KEY);
    expect(connection.items.length).toBeGreaterThan(1);
    expect(record.text).toBe(connection.items.map((item) => `heard ${item.bytes.length / 2} samples`).join(' '));
    expect(record.asrModel).toBe('rt-transcribe');
    const input = (connection.events[0] as Update).session.audio.input;
    expect(input.transcription).toMatchObject({ model: 'rt-transcribe' });
    expect(input.turn_detection).toEqual({ type: 'server_vad', silence_duration_ms: 600 });
    expect(h.azure.to('transcriptions')).toHaveLength(0);
  });

  it('without realtime.endpoint the socket goes to the resource itself, with its credentials', async () => {
    // The loopback Azure server speaks no WebSocket: the handshake reaches it (and is answered
    // without an upgrade), then the recording is uploaded.
    h = await liveAzure({ realtime: true });
    const record = await (await h.kernel.record()).stop();
    expect(record.text).toBe(DEFAULT_TRANSCRIPT);
    const handshake = h.azure.requests.find((r) => r.path === '/openai/v1/realtime');
    expect(handshake?.query).toEqual({ intent: 'transcription' });
    expect(handshake?.headers['api-key']).toBe(API_KEY);
    expect(h.realtime.connections).toHaveLength(0);
    expect(h.azure.to('transcriptions')).toHaveLength(1);
  });

  it('a WebSocket handshake carrying the marker to an origin the instance does not name gets no credentials', async () => {
    let api: PluginApi | undefined;
    h = await liveAzure({ realtime: false, plugins: [definePlugin({ name: 'spy', apply: (a) => void (api = a) })] });
    // The instance's credentials id, as its requests carry it.
    await h.kernel.transcribe({ data: encodeWav(second(), 16_000), name: 'clip.wav' });
    const socket = api!.http.websocket(h.realtime.url, { headers: { [AUTH_MARKER]: 'az#1' } });
    await new Promise((resolve) => socket.addEventListener('open', resolve, { once: true }));
    socket.close();
    const connection = h.realtime.connections[0]!;
    expect(connection.headers['api-key']).toBeUndefined();
    expect(connection.headers[AUTH_MARKER]).toBeUndefined();
    expect(h.logs.some((l) => l.level === 'debug' && /carried Azure credentials id "az#1" of another origin/.test(l.message))).toBe(true);
  });

  it('files never open a socket; an instance without realtime never streams', async () => {
    h = await liveAzure();
    const result = await h.kernel.transcribe({ data: encodeWav(second(), 16_000), name: 'clip.wav' });
    expect(result.text).toBe(DEFAULT_TRANSCRIPT);
    expect(h.realtime.connections).toHaveLength(0);
    await h.close();

    h = await liveAzure({ realtime: false });
    const record = await (await h.kernel.record()).stop();
    expect(record.text).toBe(DEFAULT_TRANSCRIPT);
    expect(h.realtime.connections).toHaveLength(0);
  });

  it('a cancelled recording closes its socket and uploads nothing', async () => {
    h = await liveAzure();
    const recording = await h.kernel.record();
    const rt = h.realtime;
    await expect.poll(() => rt.connections.length, { timeout: 30_000 }).toBe(1);
    await recording.cancel();
    await expect.poll(() => rt.connections[0]!.closed, { timeout: 30_000 }).toBe(true);
    expect(rt.connections[0]!.events.some((e) => e.type === 'input_audio_buffer.commit')).toBe(false);
    expect(h.azure.to('transcriptions')).toHaveLength(0);
  });
});
