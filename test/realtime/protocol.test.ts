import { describe, expect, it } from 'vitest';
import { providerSchema } from '../../plugins/openai-compatible/options.ts';
import { azureRealtimeUrl } from '../../plugins/azure-foundry/realtime.ts';
import {
  pcmToBase64,
  realtimeSendsKeywords,
  realtimeSettings,
  realtimeUrl,
  transcriptionSessionUpdate,
} from '../../plugins/openai-compatible/realtime.ts';
import { schemaNamed, validate } from '../openai-compatible/spec.ts';

/** The event against the spec's client event, and its session against the GA transcription session. */
function specProblems(event: ReturnType<typeof transcriptionSessionUpdate>): string[] {
  return [
    ...validate(event, schemaNamed('RealtimeClientEventSessionUpdate')),
    ...validate(event.session, schemaNamed('RealtimeTranscriptionSessionCreateRequestGA'), '$.session'),
  ];
}

describe('session.update of a transcription session', () => {
  it('push-to-talk: 24 kHz PCM, the model and language, turn detection null; valid against the spec', () => {
    const event = transcriptionSessionUpdate({ model: 'gpt-4o-mini-transcribe', language: 'de', prompt: 'Ein Diktat.' });
    expect(event).toEqual({
      type: 'session.update',
      session: {
        type: 'transcription',
        audio: {
          input: {
            format: { type: 'audio/pcm', rate: 24000 },
            transcription: { model: 'gpt-4o-mini-transcribe', language: 'de', prompt: 'Ein Diktat.' },
            turn_detection: null,
          },
        },
      },
    });
    expect(specProblems(event)).toEqual([]);
  });

  it('the dictionary becomes keywords for models that take them, else it is folded into the prompt', () => {
    const dictionary = ['Koto', 'Kubernetes', ' '];
    const live = transcriptionSessionUpdate({
      model: 'gpt-live-transcribe',
      prompt: 'Tech talk.',
      dictionary,
      keywords: realtimeSendsKeywords('auto', 'gpt-live-transcribe'),
    });
    expect(live.session.audio.input.transcription).toEqual({
      model: 'gpt-live-transcribe',
      prompt: 'Tech talk.',
      keywords: ['Koto', 'Kubernetes'],
    });
    expect(specProblems(live)).toEqual([]);
    const folded = transcriptionSessionUpdate({
      model: 'gpt-4o-transcribe',
      prompt: 'Tech talk.',
      dictionary,
      keywords: realtimeSendsKeywords('auto', 'gpt-4o-transcribe'),
    });
    expect(folded.session.audio.input.transcription).toEqual({
      model: 'gpt-4o-transcribe',
      prompt: 'Tech talk. Vocabulary: Koto, Kubernetes.',
    });
    expect(realtimeSendsKeywords(true, 'gpt-4o-transcribe')).toBe(true);
    expect(realtimeSendsKeywords(false, 'gpt-live-transcribe')).toBe(false);
  });

  it('server VAD for hands-free, with its tuning in the API’s names; noise reduction', () => {
    const event = transcriptionSessionUpdate({
      model: 'gpt-4o-transcribe',
      turnDetection: { type: 'server_vad', threshold: 0.6, prefixPaddingMs: 200, silenceDurationMs: 700 },
      noiseReduction: 'near_field',
    });
    expect(event.session.audio.input.turn_detection).toEqual({
      type: 'server_vad',
      threshold: 0.6,
      prefix_padding_ms: 200,
      silence_duration_ms: 700,
    });
    expect(event.session.audio.input.noise_reduction).toEqual({ type: 'near_field' });
    expect(specProblems(event)).toEqual([]);
    expect(
      transcriptionSessionUpdate({ model: 'gpt-4o-transcribe', turnDetection: 'server_vad' }).session.audio.input.turn_detection,
    ).toEqual({ type: 'server_vad' });
  });

  it('gpt-realtime-whisper gets no prompt, no keywords and no turn detection (the spec rules them out)', () => {
    const event = transcriptionSessionUpdate({
      model: 'gpt-realtime-whisper',
      prompt: 'x',
      dictionary: ['Koto'],
      keywords: true,
      turnDetection: 'server_vad',
    });
    expect(event.session.audio.input.transcription).toEqual({ model: 'gpt-realtime-whisper' });
    expect(event.session.audio.input.turn_detection).toBeNull();
  });

  it('the spec check is not vacuous', () => {
    const bad = transcriptionSessionUpdate({ model: 'gpt-4o-transcribe' }) as unknown as {
      session: { audio: { input: Record<string, unknown> } };
    };
    bad.session.audio.input.format = { type: 'audio/pcm', rate: 16000 };
    bad.session.audio.input.turn_detections = null;
    expect(specProblems(bad as never).join('\n')).toMatch(/16000|turn_detections/);
  });
});

describe('URLs and headers', () => {
  it('OpenAI: {baseUrl}/realtime over wss with intent=transcription and the instance query; no model in the URL', () => {
    expect(realtimeUrl('https://api.openai.com/v1').href).toBe('wss://api.openai.com/v1/realtime?intent=transcription');
    expect(realtimeUrl('https://gw.example.com/openai/v1/', { 'api-version': 'x' }).href).toBe(
      'wss://gw.example.com/openai/v1/realtime?api-version=x&intent=transcription',
    );
    expect(realtimeUrl('http://127.0.0.1:8080/v1').href).toBe('ws://127.0.0.1:8080/v1/realtime?intent=transcription');
    // An explicit URL (a gateway) keeps its own query, and its intent when it has one.
    expect(realtimeUrl('https://api.openai.com/v1', {}, 'wss://rt.example.com/socket?team=a').href).toBe(
      'wss://rt.example.com/socket?team=a&intent=transcription',
    );
  });

  it("Azure: {resource}/openai/v1/realtime, the deployment as the transcription model (the URL is the Azure plugin's own)", () => {
    expect(azureRealtimeUrl({ origin: 'https://myres.openai.azure.com' }).href).toBe(
      'wss://myres.openai.azure.com/openai/v1/realtime?intent=transcription',
    );
    expect(
      azureRealtimeUrl({
        origin: 'https://gw.example.com',
        prefix: '/team',
        apiVersion: 'preview',
        deployment: 'my-transcribe',
        deploymentInUrl: true,
      }).href,
    ).toBe('wss://gw.example.com/team/openai/v1/realtime?intent=transcription&api-version=preview&model=my-transcribe');
    expect(azureRealtimeUrl({ origin: 'http://127.0.0.1:8443' }).href).toBe('ws://127.0.0.1:8443/openai/v1/realtime?intent=transcription');
    const event = transcriptionSessionUpdate({ model: 'my-transcribe-deployment' });
    expect(event.session.audio.input.transcription.model).toBe('my-transcribe-deployment');
  });

  it('audio goes out as base64 of little-endian 16-bit samples', () => {
    expect(Buffer.from(pcmToBase64(Int16Array.from([1, -2, 256])), 'base64')).toEqual(Buffer.from([1, 0, 0xfe, 0xff, 0, 1]));
    expect(pcmToBase64(new Int16Array([0, 1, 2]).subarray(1))).toBe(Buffer.from([1, 0, 2, 0]).toString('base64'));
  });
});

describe('the realtime option', () => {
  const base = { apiKey: 'sk-x' };
  it('is off by default; true takes the defaults; settings are checked', () => {
    expect(realtimeSettings(providerSchema.parse(base).realtime)).toBeUndefined();
    expect(realtimeSettings(providerSchema.parse({ ...base, realtime: true }).realtime)).toEqual({
      enabled: true,
      turnDetection: 'off',
      finalTimeoutMs: 15_000,
      chunkMs: 100,
    });
    expect(realtimeSettings(providerSchema.parse({ ...base, realtime: { enabled: false } }).realtime)).toBeUndefined();
    expect(
      providerSchema.parse({ ...base, realtime: { turnDetection: { type: 'server_vad', silenceDurationMs: 400 } } }).realtime,
    ).toMatchObject({
      turnDetection: { type: 'server_vad', silenceDurationMs: 400 },
    });
    expect(providerSchema.safeParse({ ...base, realtime: { url: 'https://api.openai.com/v1/realtime' } }).success).toBe(false);
    expect(providerSchema.safeParse({ ...base, realtime: { turnDetection: 'semantic' } }).success).toBe(false);
    expect(providerSchema.safeParse({ ...base, realtime: { modle: 'x' } }).success).toBe(false);
  });
});
