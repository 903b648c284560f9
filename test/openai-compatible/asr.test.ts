import { afterEach, describe, expect, test } from 'vitest';
import { KotoError } from 'koto-voice';
import { API_KEY, caught, fileIn, harness, requestsTo, sineWav, type Harness } from './helpers.ts';
import { formToObject, schemaNamed, validate } from './spec.ts';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const wav = sineWav(0.5);

function transcriptionRequest(harness: Harness) {
  const posts = requestsTo(harness.server, '/audio/transcriptions');
  expect(posts).toHaveLength(1);
  return posts[0]!;
}

describe('transcription upload', () => {
  test('the multipart body is parsed by the server with the right fields and the audio bytes intact', async () => {
    h = await harness({}, { asr: { model: 'whisper-1', language: 'de', prompt: 'Ein Diktat.', temperature: 0.2 } });
    const result = await h.kernel.transcribe({ data: wav, name: 'clip.wav' });
    expect(result.text).toBe('hello world');
    expect(result.provider).toBe('main');
    expect(result.model).toBe('whisper-1');

    const req = transcriptionRequest(h);
    expect(req.method).toBe('POST');
    expect(req.path).toBe('/v1/audio/transcriptions');
    expect(req.protocol).toBe('h2');
    expect(req.headers['authorization']).toBe(`Bearer ${API_KEY}`);
    expect(req.headers['content-type']).toMatch(/^multipart\/form-data; boundary=/);
    expect(req.formError).toBeUndefined();
    const form = req.form!;
    expect(form.fields).toEqual({
      model: ['whisper-1'],
      language: ['de'],
      prompt: ['Ein Diktat.'],
      response_format: ['json'],
      temperature: ['0.2'],
    });
    const file = form.files['file']!;
    expect(file.filename).toBe('clip.wav');
    expect(file.contentType).toBe('audio/wav');
    expect(Buffer.compare(file.data, Buffer.from(wav))).toBe(0);
  });

  test('the multipart fields validate against CreateTranscriptionRequest', async () => {
    h = await harness({}, async ({ home }) => ({
      dictionary: await fileIn(home, 'dictionary.txt', 'Koto\nKubernetes\n'),
      provider: { keywords: true },
      asr: { model: 'gpt-4o-mini-transcribe', language: 'en', prompt: 'Dictation.', temperature: 0 },
    }));
    await h.kernel.transcribe({ data: wav, name: 'clip.wav' });
    const req = transcriptionRequest(h);
    const body = formToObject(req.form!, 'CreateTranscriptionRequest');
    expect(body).toMatchObject({ model: 'gpt-4o-mini-transcribe', stream: true, keywords: ['Koto', 'Kubernetes'], file: '<binary>' });
    expect(validate(body, schemaNamed('CreateTranscriptionRequest'))).toEqual([]);
  });

  test('a non-ASCII filename and a large file survive the hand-made multipart encoding', async () => {
    h = await harness({}, { asr: { model: 'whisper-1' } });
    const big = sineWav(20); // ~640 KB: many HTTP/2 DATA frames
    await h.kernel.transcribe({ data: big, name: 'Grüße "x".wav' });
    const file = transcriptionRequest(h).form!.files['file']!;
    expect(file.data.length).toBe(big.length);
    expect(Buffer.compare(file.data, Buffer.from(big))).toBe(0);
  });
});

describe('streaming and non-streaming models', () => {
  test('whisper-1 gets a non-streaming request, even when streaming is on', async () => {
    h = await harness({}, { asr: { model: 'whisper-1', stream: true } });
    const interims: string[] = [];
    const result = await h.kernel.transcribe({ data: wav, name: 'a.wav' }, { onInterim: (t) => interims.push(t) });
    expect(result.text).toBe('hello world');
    const req = transcriptionRequest(h);
    expect(req.form!.fields['stream']).toBeUndefined();
    expect(req.headers['accept']).not.toContain('text/event-stream');
    expect(interims).toEqual([]);
  });

  test('an unknown model does not stream unless streamingAsrModels lists it', async () => {
    h = await harness({}, { asr: { model: 'local-whisper-large' } });
    await h.kernel.transcribe({ data: wav, name: 'a.wav' });
    expect(transcriptionRequest(h).form!.fields['stream']).toBeUndefined();
    await h.close();

    h = await harness({}, { asr: { model: 'local-whisper-large' }, provider: { streamingAsrModels: ['/^local-/'] } });
    const interims: string[] = [];
    await h.kernel.transcribe({ data: wav, name: 'a.wav' }, { onInterim: (t) => interims.push(t) });
    expect(transcriptionRequest(h).form!.fields['stream']).toEqual(['true']);
    expect(interims.length).toBeGreaterThan(0);
  });

  test('asr.stream: false turns streaming off for a streaming model', async () => {
    h = await harness({}, { asr: { model: 'gpt-4o-transcribe', stream: false } });
    await h.kernel.transcribe({ data: wav, name: 'a.wav' });
    expect(transcriptionRequest(h).form!.fields['stream']).toBeUndefined();
  });

  const spoken = 'Grüße aus Köln — 日本語のテキスト ✓ and emoji 🎙️ too';
  for (const sseChunkBytes of [1, 7]) {
    // 1-byte writes are thousands of HTTP/2 frames: seconds on a loaded machine (asr.timeoutMs is 120 s).
    test(
      `SSE transcript.text.delta / done split every ${sseChunkBytes} byte(s) gives growing interims and the exact text`,
      { timeout: 90_000 },
      async () => {
        h = await harness({ transcribe: () => spoken, sseChunkBytes }, { asr: { model: 'gpt-4o-mini-transcribe' } });
        const interims: string[] = [];
        const stages = new Set<string>();
        const result = await h.kernel.transcribe(
          { data: wav, name: 'a.wav' },
          {
            onInterim: (text, stage) => {
              interims.push(text);
              stages.add(stage);
            },
          },
        );
        expect(result.text).toBe(spoken);
        expect(transcriptionRequest(h).form!.fields['stream']).toEqual(['true']);
        expect(stages).toEqual(new Set(['asr']));
        expect(interims.length).toBeGreaterThan(3);
        for (let i = 1; i < interims.length; i++) {
          expect(interims[i]!.startsWith(interims[i - 1]!)).toBe(true);
          expect(interims[i]!.length).toBeGreaterThan(interims[i - 1]!.length);
        }
        expect(interims.at(-1)).toBe(spoken);
        expect(interims.join('')).not.toContain('\uFFFD');
      },
    );
  }

  test('a throwing interim listener does not fail the transcription (one warning)', async () => {
    h = await harness({}, { asr: { model: 'gpt-4o-mini-transcribe' } });
    const result = await h.kernel.transcribe(
      { data: wav, name: 'a.wav' },
      {
        onInterim: () => {
          throw new Error('the UI broke');
        },
      },
    );
    expect(result.text).toBe('hello world');
    const warnings = h.logs.filter((l) => l.level === 'warn' && l.message.includes('the UI broke'));
    expect(warnings).toHaveLength(1);
  });

  test('a server that ignores stream: true and answers JSON is understood', async () => {
    h = await harness({}, { asr: { model: 'gpt-4o-mini-transcribe' } });
    h.server.inject({ path: '/audio/transcriptions', body: { text: ' plain json answer ' } });
    const result = await h.kernel.transcribe({ data: wav, name: 'a.wav' });
    expect(result.text).toBe('plain json answer');
  });

  test('a plain-text answer is understood', async () => {
    h = await harness({}, { asr: { model: 'whisper-1' } });
    h.server.inject({ path: '/audio/transcriptions', body: 'just text\n' });
    const result = await h.kernel.transcribe({ data: wav, name: 'a.wav' });
    expect(result.text).toBe('just text');
  });
});

describe('dictionary terms', () => {
  test('are folded into the prompt ("Vocabulary: …") for models not known to take keywords', async () => {
    h = await harness({}, async ({ home }) => ({
      dictionary: await fileIn(home, 'dictionary.txt', 'Koto\nKubernetes # the orchestrator\nPostgreSQL\n'),
      asr: { model: 'gpt-4o-mini-transcribe', prompt: 'Tech talk.' },
    }));
    await h.kernel.transcribe({ data: wav, name: 'a.wav' });
    const fields = transcriptionRequest(h).form!.fields;
    expect(fields['prompt']).toEqual(['Tech talk. Vocabulary: Koto, Kubernetes, PostgreSQL.']);
    expect(fields['keywords[]']).toBeUndefined();
    expect(fields['keywords']).toBeUndefined();
  });

  test('are sent as keywords when the instance says so, leaving the prompt alone', async () => {
    h = await harness({}, async ({ home }) => ({
      dictionary: await fileIn(home, 'dictionary.txt', 'Koto\nKubernetes\n'),
      provider: { keywords: true },
      asr: { model: 'gpt-4o-mini-transcribe' },
    }));
    await h.kernel.transcribe({ data: wav, name: 'a.wav' });
    const fields = transcriptionRequest(h).form!.fields;
    expect(fields['keywords[]']).toEqual(['Koto', 'Kubernetes']);
    expect(fields['prompt']).toBeUndefined();
  });

  test('keywords: auto sends keywords to gpt-transcribe', async () => {
    h = await harness({}, async ({ home }) => ({
      dictionary: await fileIn(home, 'dictionary.txt', 'Koto\n'),
      asr: { model: 'gpt-transcribe' },
    }));
    await h.kernel.transcribe({ data: wav, name: 'a.wav' });
    expect(transcriptionRequest(h).form!.fields['keywords[]']).toEqual(['Koto']);
  });
});

describe('transcription errors', () => {
  test('a truncated JSON answer is KOTO_ERR_BAD_RESPONSE', async () => {
    h = await harness({}, { asr: { model: 'whisper-1' } });
    h.server.inject({ path: '/audio/transcriptions', truncateJson: true });
    const err = await caught(() => h!.kernel.transcribe({ data: wav, name: 'a.wav' }));
    expect(KotoError.is(err) && err.code).toBe('KOTO_ERR_BAD_RESPONSE');
    expect((err as KotoError).message).toContain('provider "main"');
    expect((err as KotoError).plugin).toBe('openai-compatible');
  });

  test('a malformed SSE event is KOTO_ERR_BAD_RESPONSE', async () => {
    h = await harness({}, { asr: { model: 'gpt-4o-mini-transcribe' } });
    h.server.inject({ path: '/audio/transcriptions', sseMalformed: true });
    const err = await caught(() => h!.kernel.transcribe({ data: wav, name: 'a.wav' }));
    expect(KotoError.is(err) && err.code).toBe('KOTO_ERR_BAD_RESPONSE');
  });

  test('an SSE stream cut before transcript.text.done is KOTO_ERR_BAD_RESPONSE, not a partial text', async () => {
    h = await harness({ transcribe: () => 'one two three four five six' }, { asr: { model: 'gpt-4o-mini-transcribe' } });
    h.server.inject({ path: '/audio/transcriptions', truncateJson: true });
    const err = await caught(() => h!.kernel.transcribe({ data: wav, name: 'a.wav' }));
    expect(KotoError.is(err) && err.code).toBe('KOTO_ERR_BAD_RESPONSE');
    expect((err as KotoError).details).toMatchObject({ retryable: true });
  });

  test('a 500 is KOTO_ERR_UPSTREAM with status and retryable', async () => {
    h = await harness({}, { asr: { model: 'whisper-1' } });
    h.server.inject({ path: '/audio/transcriptions', status: 500 });
    const err = await caught(() => h!.kernel.transcribe({ data: wav, name: 'a.wav' }));
    expect(KotoError.is(err) && err.code).toBe('KOTO_ERR_UPSTREAM');
    expect((err as KotoError).details).toMatchObject({ status: 500, retryable: true });
    expect((err as KotoError).message).toContain('The server had an error');
  });

  test('a response larger than 10 MB is refused with KOTO_ERR_BAD_RESPONSE', async () => {
    h = await harness({}, { asr: { model: 'whisper-1' } });
    h.server.inject({
      path: '/audio/transcriptions',
      body: `{"text":"${'a'.repeat(11 * 1024 * 1024)}"}`,
      headers: { 'content-type': 'application/json' },
    });
    const err = await caught(() => h!.kernel.transcribe({ data: wav, name: 'a.wav' }));
    expect(KotoError.is(err) && err.code).toBe('KOTO_ERR_BAD_RESPONSE');
    expect((err as KotoError).message).toContain('10 MB');
  });

  test('the kernel deadline (asr.timeoutMs) turns a slow answer into KOTO_ERR_TIMEOUT', async () => {
    // The answer would take 60 s: only the 300 ms deadline can end this within the test timeout.
    h = await harness({}, { asr: { model: 'whisper-1', timeoutMs: 300 } });
    h.server.inject({ path: '/audio/transcriptions', delayMs: 60_000 });
    const err = await caught(() => h!.kernel.transcribe({ data: wav, name: 'a.wav' }));
    expect(KotoError.is(err) && err.code).toBe('KOTO_ERR_TIMEOUT');
    expect((err as KotoError).message).toContain('300 ms');
  });

  test('a caller abort is KOTO_ERR_ABORTED', async () => {
    h = await harness({}, { asr: { model: 'whisper-1' } });
    h.server.inject({ path: '/audio/transcriptions', delayMs: 60_000 });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 200);
    const err = await caught(() => h!.kernel.transcribe({ data: wav, name: 'a.wav' }, { signal: controller.signal }));
    expect(KotoError.is(err) && err.code).toBe('KOTO_ERR_ABORTED');
  });
});
