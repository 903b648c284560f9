import { afterEach, describe, expect, test } from 'vitest';
import { KotoError } from 'koto-voice';
import plugin from '../../plugins/openai-compatible/index.ts';
import { isStreamingAsrModel, providerSchema, sendsKeywords } from '../../plugins/openai-compatible/options.ts';
import { foldVocabulary, transcribe } from '../../plugins/openai-compatible/asr.ts';
import {
  joinUrl,
  OPERATION_PATHS,
  retryAfterSeconds,
  scrub,
  secretValues,
  type WireTarget,
} from '../../plugins/openai-compatible/client.ts';
import { complete } from '../../plugins/openai-compatible/correction.ts';
import { encodeMultipart } from '../../plugins/openai-compatible/multipart.ts';
import { buildPrompts, DEFAULT_USER_PROMPT, fillTemplate } from '../../plugins/openai-compatible/prompts.ts';
import { stripThink, visibleText } from '../../plugins/openai-compatible/think.ts';
import { prewarm } from '../../plugins/openai-compatible/wire.ts';
import { API_KEY, caught, harness, sineWav, type Harness } from './helpers.ts';
import { schemaNamed, validate } from './spec.ts';

describe('think', () => {
  test('stripThink', () => {
    expect(stripThink('<think>a\nb</think>\n\nHello.')).toBe('Hello.');
    expect(stripThink('  <THINK>x</THINK> Hi')).toBe('Hi');
    expect(stripThink('<think>never closed')).toBeNull();
    expect(stripThink('<think>only</think>   ')).toBeNull();
    expect(stripThink('   ')).toBeNull();
    expect(stripThink('Plain <think>inside</think> text')).toBe('Plain <think>inside</think> text');
  });

  test('visibleText hides an open or possible think block', () => {
    expect(visibleText('')).toBe('');
    expect(visibleText('<th')).toBe('');
    expect(visibleText('<think>reasoning')).toBe('');
    expect(visibleText('<think>r</think>\n\nHel')).toBe('Hel');
    expect(visibleText('Hello <th')).toBe('Hello <th');
    expect(visibleText('<b>bold</b>')).toBe('<b>bold</b>');
  });
});

describe('prompts', () => {
  test('fillTemplate fills in one pass and drops empty sections', () => {
    const values = { asrText: 'x {{asr_text}} {{dictionary_entries}}', dictionary: ['A', 'B'], interimHistory: [] };
    expect(fillTemplate('[{{asr_text}}] [{{ dictionary_entries }}]', values)).toBe('[x {{asr_text}} {{dictionary_entries}}] [A\nB]');
    expect(fillTemplate('{{#interim_history}}H: {{interim_history}}{{/interim_history}}T', values)).toBe('T');
    expect(fillTemplate('{{#dictionary_entries}}D: {{dictionary_entries}}{{/dictionary_entries}}', values)).toBe('D: A\nB');
  });

  test('the default prompts', () => {
    const { system, user } = buildPrompts({ asrText: 'hello', dictionary: ['Koto'], interimHistory: [] });
    expect(system).toMatch(/only the corrected text/i);
    expect(user).toBe('Dictionary (preferred spellings):\nKoto\n\nTranscript to correct:\n<transcript>\nhello\n</transcript>');
    expect(DEFAULT_USER_PROMPT).toContain('{{asr_text}}');
  });

  test('foldVocabulary', () => {
    expect(foldVocabulary(undefined, [])).toBeUndefined();
    expect(foldVocabulary('P.', [])).toBe('P.');
    expect(foldVocabulary(undefined, ['a', 'b'])).toBe('Vocabulary: a, b.');
    const many = Array.from({ length: 500 }, (_, i) => `term${i}`);
    expect(foldVocabulary(undefined, many)!.length).toBeLessThan(900);
  });
});

describe('options', () => {
  test('defaults, streaming and keyword rules', () => {
    const options = providerSchema.parse({});
    expect(options).toMatchObject({
      baseUrl: 'https://api.openai.com/v1',
      asrModel: 'gpt-4o-mini-transcribe',
      correctionModel: 'gpt-4.1-mini',
      keywords: 'auto',
      allowInsecureHttp: false,
    });
    expect(isStreamingAsrModel(options, 'gpt-4o-transcribe')).toBe(true);
    expect(isStreamingAsrModel(options, 'gpt-4o-mini-transcribe-2025-12-15')).toBe(true);
    expect(isStreamingAsrModel(options, 'whisper-1')).toBe(false);
    expect(isStreamingAsrModel(options, 'my-model')).toBe(false);
    expect(isStreamingAsrModel({ streamingAsrModels: '.*' }, 'whisper-1')).toBe(false);
    expect(isStreamingAsrModel({ streamingAsrModels: '^my-' }, 'my-model')).toBe(true);
    expect(isStreamingAsrModel({ streamingAsrModels: ['exact', '/^pre-/i'] }, 'PRE-x')).toBe(true);
    expect(isStreamingAsrModel({ streamingAsrModels: ['exact'] }, 'exact-not')).toBe(false);
    expect(sendsKeywords(options, 'gpt-transcribe')).toBe(true);
    expect(sendsKeywords(options, 'gpt-4o-transcribe')).toBe(false);
    expect(sendsKeywords({ keywords: true }, 'anything')).toBe(true);
    expect(sendsKeywords({ keywords: false }, 'gpt-transcribe')).toBe(false);
  });

  test('bad values are refused', () => {
    expect(providerSchema.safeParse({ baseUrl: 'ftp://x/v1' }).success).toBe(false);
    expect(providerSchema.safeParse({ baseUrl: 'http://10.0.0.5/v1' }).success).toBe(false);
    expect(providerSchema.safeParse({ baseUrl: 'http://10.0.0.5/v1', allowInsecureHttp: true }).success).toBe(true);
    expect(providerSchema.safeParse({ baseUrl: 'http://localhost:8080/v1' }).success).toBe(true);
    expect(providerSchema.safeParse({ baseUrl: 'https://user:pw@x/v1' }).success).toBe(false);
    expect(providerSchema.safeParse({ streamingAsrModels: '(' }).success).toBe(false);
    expect(providerSchema.safeParse({ apiKye: 'typo' }).success).toBe(false);
  });

  test('defaultProviders', () => {
    expect(plugin.defaultProviders?.({})).toEqual({});
    expect(plugin.defaultProviders?.({ OPENAI_API_KEY: 'sk-x' })).toEqual({
      openai: { baseUrl: 'https://api.openai.com/v1', apiKey: 'sk-x' },
    });
    expect(plugin.defaultProviders?.({ OPENAI_API_KEY: 'sk-x', OPENAI_BASE_URL: 'http://localhost:1/v1' })).toEqual({
      openai: { baseUrl: 'http://localhost:1/v1', apiKey: 'sk-x' },
    });
    expect(plugin.capabilities).toEqual(['asr', 'correction']);
  });
});

describe('client helpers', () => {
  test('joinUrl keeps the base path and query', () => {
    expect(joinUrl('https://h/v1/', '/models').href).toBe('https://h/v1/models');
    expect(joinUrl('https://h/openai?api-version=1', '/responses', { x: 'y' }).href).toBe('https://h/openai/responses?api-version=1&x=y');
  });

  test('scrub and secretValues', () => {
    expect(scrub('key sk-abcdef and sk%2Babc', ['sk-abcdef', 'sk+abc'])).toBe('key [redacted] and [redacted]');
    expect(secretValues('sk-1234', { Authorization: 'Bearer tok-5678', 'x-trace': 'abcd' }, { 'subscription-key': 'qqqq' }).sort()).toEqual(
      ['Bearer tok-5678', 'qqqq', 'sk-1234', 'tok-5678'].sort(),
    );
  });

  test('retryAfterSeconds', () => {
    expect(retryAfterSeconds('12')).toBe(12);
    expect(retryAfterSeconds(undefined)).toBeUndefined();
    expect(retryAfterSeconds('soon')).toBeUndefined();
    const inTen = new Date(Date.now() + 10_000).toUTCString();
    expect(retryAfterSeconds(inTen)).toBeGreaterThanOrEqual(8);
  });

  test('encodeMultipart escapes names and normalises newlines', () => {
    const { body, contentType } = encodeMultipart([
      ['a"b', 'line1\nline2'],
      ['list', ['x', 'y']],
      ['skip', undefined],
      ['file', { data: new Uint8Array([0, 1, 2]), filename: 'we"ird\r\n.wav', contentType: 'audio/wav' }],
    ]);
    const boundary = contentType.split('boundary=')[1]!;
    const text = body.toString('latin1');
    expect(text).toContain('name="a%22b"\r\n\r\nline1\r\nline2\r\n');
    expect(text).toContain('name="list[]"\r\n\r\nx\r\n');
    expect(text).not.toContain('skip');
    expect(text).toContain('filename="we%22ird%0D%0A.wav"\r\nContent-Type: audio/wav\r\n\r\n\u0000\u0001\u0002\r\n');
    expect(text.endsWith(`--${boundary}--\r\n`)).toBe(true);
  });
});

describe('the spec checker is not vacuous', () => {
  test('it rejects misspelled keys, wrong types and out-of-range values', () => {
    const chat = schemaNamed('CreateChatCompletionRequest');
    expect(validate({ model: 'm', messages: [{ role: 'user', content: 'x' }] }, chat)).toEqual([]);
    expect(validate({ model: 'm', messages: [{ role: 'user', content: 'x' }], max_token: 5 }, chat).join()).toContain(
      'unknown property max_token',
    );
    expect(validate({ model: 'm', messages: [] }, chat).join()).toContain('fewer than 1');
    expect(validate({ model: 'm', messages: [{ role: 'robot', content: 'x' }] }, chat).length).toBeGreaterThan(0);
    expect(validate({ model: 'm', input: 'x', max_output_tokens: 8 }, schemaNamed('CreateResponse')).join()).toContain('minimum 16');
    expect(validate({ model: 'm', file: 'f', stream: 'yes' }, schemaNamed('CreateTranscriptionRequest')).length).toBeGreaterThan(0);
  });
});

describe('wire.ts reused with another URL scheme and headers (the Azure shape)', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  function target(harness: Harness, calls: string[]): WireTarget {
    return {
      provider: 'azure-like',
      http: harness.kernel.http,
      url: (operation, model) => {
        calls.push(`${operation}:${model ?? '-'}`);
        return new URL(`${harness.server.baseUrl}${OPERATION_PATHS[operation]}?api-version=2025-04-01-preview`);
      },
      headers: async () => ({ Authorization: `Bearer ${API_KEY}`, 'x-ms-client': 'koto' }),
      secrets: [API_KEY],
    };
  }

  test('transcribe, complete and prewarm go through the given URL builder and headers', async () => {
    h = await harness({ transcribe: () => 'azure words', complete: () => 'Azure words.' });
    const calls: string[] = [];
    const t = target(h, calls);
    const interims: string[] = [];
    const asr = await transcribe(
      t,
      { model: 'gpt-4o-transcribe', file: { data: sineWav(0.2), filename: 'a.wav', contentType: 'audio/wav' }, stream: true },
      { signal: AbortSignal.timeout(5000), onInterim: (x) => interims.push(x) },
    );
    expect(asr.text).toBe('azure words');
    expect(interims.at(-1)).toBe('azure words');
    const corrected = await complete(
      t,
      { protocol: 'responses', model: 'dep-1', system: 'S', user: 'U', stream: false },
      { signal: AbortSignal.timeout(5000) },
    );
    expect(corrected.text).toBe('Azure words.');
    expect(await prewarm(t, h.kernel.http).done).toBe(true);
    expect(calls).toEqual(['transcriptions:gpt-4o-transcribe', 'responses:dep-1', 'models:-']);
    for (const req of h.server.requests) {
      expect(req.query).toEqual({ 'api-version': '2025-04-01-preview' });
      expect(req.headers['x-ms-client']).toBe('koto');
    }
    const responsesBody = h.server.requests.find((r) => r.path.endsWith('/responses'))!.json;
    expect(validate(responsesBody, schemaNamed('CreateResponse'))).toEqual([]);
  });

  test('errors name the target provider', async () => {
    h = await harness();
    h.server.inject({ path: '/chat/completions', status: 401 });
    const err = await caught(() =>
      complete(
        target(h!, []),
        { protocol: 'chat', model: 'm', system: 'S', user: 'U', stream: true },
        { signal: AbortSignal.timeout(5000) },
      ),
    );
    expect(KotoError.is(err) && err.code).toBe('KOTO_ERR_AUTH');
    expect((err as KotoError).message).toContain('provider "azure-like"');
  });
});
