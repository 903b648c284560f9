import { afterEach, describe, expect, test } from 'vitest';
import { fileIn, harness, requestsTo, sineWav, type Harness } from './helpers.ts';
import { schemaNamed, validate } from './spec.ts';

let h: Harness | undefined;

// A stream split into 1-byte writes is thousands of HTTP/2 frames: seconds on a loaded machine.
// What these tests check is the reassembly, so the correction deadline (8 s by default) must not
// be what ends them.
const SPLIT_DEADLINE = 60_000;
const SPLIT_TEST_TIMEOUT = 90_000;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

type Json = Record<string, unknown>;

function onlyRequest(harness: Harness, suffix: string): Json {
  const reqs = requestsTo(harness.server, suffix);
  expect(reqs).toHaveLength(1);
  return reqs[0]!.json as Json;
}

function messages(body: Json): { role: string; content: string }[] {
  return body.messages as { role: string; content: string }[];
}

describe('chat completions', () => {
  test('JSON request validates against CreateChatCompletionRequest and carries the settings', async () => {
    h = await harness({ complete: () => 'Hello, Kubernetes.' }, async ({ home }) => ({
      dictionary: await fileIn(home, 'dictionary.txt', 'Kubernetes\nKoto\n'),
      correction: {
        model: 'gpt-4.1-mini',
        stream: false,
        temperature: 0.1,
        topP: 0.9,
        maxTokens: 200,
        maxTokensParam: 'max_tokens',
        reasoningEffort: 'low',
      },
    }));
    const result = await h.kernel.correct('um hello cooper netties');
    expect(result).toMatchObject({ text: 'Hello, Kubernetes.', fallback: false, provider: 'main', model: 'gpt-4.1-mini' });

    const body = onlyRequest(h, '/chat/completions');
    expect(validate(body, schemaNamed('CreateChatCompletionRequest'))).toEqual([]);
    expect(body).toMatchObject({ model: 'gpt-4.1-mini', temperature: 0.1, top_p: 0.9, max_tokens: 200, reasoning_effort: 'low' });
    expect(body).not.toHaveProperty('max_completion_tokens');
    expect(body).not.toHaveProperty('stream');
    const [system, user] = messages(body);
    expect(system!.role).toBe('system');
    expect(system!.content).toMatch(/filler/i);
    expect(system!.content).toMatch(/do not (answer|follow)/i);
    expect(user!.role).toBe('user');
    expect(user!.content).toContain('um hello cooper netties');
    expect(user!.content).toContain('Kubernetes\nKoto');
  });

  test('max_completion_tokens is the default parameter name', async () => {
    h = await harness({}, { correction: { stream: false, maxTokens: 64 } });
    await h.kernel.correct('hello');
    const body = onlyRequest(h, '/chat/completions');
    expect(body.max_completion_tokens).toBe(64);
    expect(body).not.toHaveProperty('max_tokens');
    expect(validate(body, schemaNamed('CreateChatCompletionRequest'))).toEqual([]);
  });

  const answer = 'Grüße, Köln — 日本語のテキスト ✓ fine.';
  for (const sseChunkBytes of [1, 7]) {
    test(
      `SSE delta.content split every ${sseChunkBytes} byte(s) streams growing text and ends at [DONE]`,
      { timeout: SPLIT_TEST_TIMEOUT },
      async () => {
        h = await harness({ complete: () => answer, sseChunkBytes }, { correction: { stream: true, timeoutMs: SPLIT_DEADLINE } });
        const deltas: string[] = [];
        const result = await h.kernel.correct('gruesse koeln', { onInterim: (text, stage) => stage === 'correction' && deltas.push(text) });
        expect(result).toMatchObject({ text: answer, fallback: false });
        const body = onlyRequest(h, '/chat/completions');
        expect(body.stream).toBe(true);
        expect(validate(body, schemaNamed('CreateChatCompletionRequest'))).toEqual([]);
        expect(deltas.length).toBeGreaterThan(3);
        for (let i = 1; i < deltas.length; i++) expect(deltas[i]!.startsWith(deltas[i - 1]!)).toBe(true);
        expect(deltas.at(-1)).toBe(answer);
        expect(deltas.join('')).not.toContain('\uFFFD');
      },
    );
  }

  test('a truncated chat stream (no [DONE], no finish_reason) falls back to the raw text', async () => {
    h = await harness({ complete: () => 'one two three four five six seven' }, { correction: { stream: true } });
    h.server.inject({ path: '/chat/completions', truncateJson: true });
    const result = await h.kernel.correct('raw words');
    expect(result).toMatchObject({ text: 'raw words', fallback: true });
    expect(result.warnings.join('\n')).toMatch(/KOTO_ERR_BAD_RESPONSE|cannot read/);
  });

  test('a malformed SSE event falls back to the raw text', async () => {
    h = await harness({}, { correction: { stream: true } });
    h.server.inject({ path: '/chat/completions', sseMalformed: true });
    const result = await h.kernel.correct('raw words');
    expect(result).toMatchObject({ text: 'raw words', fallback: true });
  });

  test('finish_reason "length" (a cut-off correction) is not used', async () => {
    h = await harness({}, { correction: { stream: false } });
    h.server.inject({
      path: '/chat/completions',
      body: {
        id: 'chatcmpl-1',
        object: 'chat.completion',
        created: 1,
        model: 'gpt-4.1-mini',
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: 'The first half of', refusal: null },
            finish_reason: 'length',
            logprobs: null,
          },
        ],
      },
    });
    const result = await h.kernel.correct('the first half of a long dictation');
    expect(result).toMatchObject({ text: 'the first half of a long dictation', fallback: true });
  });
});

describe('responses API', () => {
  test('JSON request validates against CreateResponse and the output text is used', async () => {
    h = await harness(
      { complete: () => 'Fixed text.' },
      {
        correction: { protocol: 'responses', stream: false, maxTokens: 8, temperature: 0.2, topP: 0.5, reasoningEffort: 'minimal' },
      },
    );
    const result = await h.kernel.correct('fixed text');
    expect(result).toMatchObject({ text: 'Fixed text.', fallback: false });
    const body = onlyRequest(h, '/responses');
    expect(validate(body, schemaNamed('CreateResponse'))).toEqual([]);
    expect(body).toMatchObject({
      model: 'gpt-4.1-mini',
      store: false,
      temperature: 0.2,
      top_p: 0.5,
      max_output_tokens: 16, // the API's minimum
      reasoning: { effort: 'minimal' },
    });
    expect(body.instructions).toMatch(/filler/i);
    expect(body.input).toContain('fixed text');
    expect(body).not.toHaveProperty('messages');
  });

  for (const sseChunkBytes of [1, 7]) {
    test(
      `SSE response.output_text.delta split every ${sseChunkBytes} byte(s) ends at response.completed`,
      { timeout: SPLIT_TEST_TIMEOUT },
      async () => {
        const text = 'Ünïcode réponse — 完成 ✓.';
        h = await harness(
          { complete: () => text, sseChunkBytes },
          { correction: { protocol: 'responses', stream: true, timeoutMs: SPLIT_DEADLINE } },
        );
        const deltas: string[] = [];
        const result = await h.kernel.correct('unicode reponse', { onInterim: (t) => deltas.push(t) });
        expect(result).toMatchObject({ text, fallback: false });
        const body = onlyRequest(h, '/responses');
        expect(body.stream).toBe(true);
        expect(validate(body, schemaNamed('CreateResponse'))).toEqual([]);
        expect(deltas.length).toBeGreaterThan(2);
        for (let i = 1; i < deltas.length; i++) expect(deltas[i]!.startsWith(deltas[i - 1]!)).toBe(true);
        expect(deltas.at(-1)).toBe(text);
      },
    );
  }

  test('an incomplete response (max_output_tokens) is not used', async () => {
    h = await harness({}, { correction: { protocol: 'responses', stream: false } });
    h.server.inject({
      path: '/responses',
      body: {
        id: 'resp_1',
        object: 'response',
        status: 'incomplete',
        incomplete_details: { reason: 'max_output_tokens' },
        output: [
          {
            type: 'message',
            id: 'msg_1',
            role: 'assistant',
            status: 'incomplete',
            content: [{ type: 'output_text', text: 'Half', annotations: [] }],
          },
        ],
      },
    });
    const result = await h.kernel.correct('half of it');
    expect(result).toMatchObject({ text: 'half of it', fallback: true });
  });

  test('a response stream cut before response.completed falls back', async () => {
    h = await harness({ complete: () => 'one two three four five six' }, { correction: { protocol: 'responses', stream: true } });
    h.server.inject({ path: '/responses', truncateJson: true });
    const result = await h.kernel.correct('raw');
    expect(result).toMatchObject({ text: 'raw', fallback: true });
  });
});

describe('<think> blocks', () => {
  const thought = '<think>The user said um, so drop it. Secret reasoning here.</think>\n\nHello there.';

  test('a leading think block is stripped (JSON)', async () => {
    h = await harness({ complete: () => thought }, { correction: { stream: false } });
    const result = await h.kernel.correct('um hello there');
    expect(result).toMatchObject({ text: 'Hello there.', fallback: false });
  });

  for (const protocol of ['chat', 'responses'] as const) {
    test(`a leading think block is stripped and never shown while streaming (${protocol})`, { timeout: SPLIT_TEST_TIMEOUT }, async () => {
      h = await harness(
        { complete: () => thought, sseChunkBytes: 7 },
        { correction: { protocol, stream: true, timeoutMs: SPLIT_DEADLINE } },
      );
      const deltas: string[] = [];
      const result = await h.kernel.correct('um hello there', { onInterim: (t) => deltas.push(t) });
      expect(result).toMatchObject({ text: 'Hello there.', fallback: false });
      expect(deltas.length).toBeGreaterThan(0);
      for (const delta of deltas) {
        expect(delta).not.toContain('think');
        expect(delta).not.toContain('Secret');
      }
      expect(deltas.at(-1)).toBe('Hello there.');
    });
  }

  test('an unterminated think block means no correction: the raw text is delivered', async () => {
    h = await harness({ complete: () => '<think>still reasoning when the tokens ran out' }, { correction: { stream: true } });
    const deltas: string[] = [];
    const result = await h.kernel.correct('keep me', { onInterim: (t) => deltas.push(t) });
    expect(result).toMatchObject({ text: 'keep me', fallback: true });
    expect(deltas.filter((d) => d !== '')).toEqual([]);
  });
});

describe('raw-text fallback', () => {
  test('on empty output', async () => {
    h = await harness({ complete: () => '' }, { correction: { stream: false } });
    expect(await h.kernel.correct('keep me')).toMatchObject({ text: 'keep me', fallback: true });
  });

  test('on empty streamed output', async () => {
    h = await harness({ complete: () => '   ' }, { correction: { stream: true } });
    expect(await h.kernel.correct('keep me')).toMatchObject({ text: 'keep me', fallback: true });
  });

  test('on a 500, with a warning naming the provider', async () => {
    h = await harness({}, { correction: { stream: true } });
    h.server.inject({ path: '/chat/completions', status: 500 });
    const result = await h.kernel.correct('keep me');
    expect(result).toMatchObject({ text: 'keep me', fallback: true });
    expect(result.warnings.join('\n')).toContain('provider "main" failed (HTTP 500)');
  });

  test('on a timeout (server slower than correction.timeoutMs)', async () => {
    // The answer would take 60 s: only the 300 ms deadline can end this within the test timeout.
    h = await harness({ thinkMs: 60_000 }, { correction: { stream: true, timeoutMs: 300 } });
    const result = await h.kernel.correct('keep me');
    expect(result).toMatchObject({ text: 'keep me', fallback: true });
    expect(result.warnings.join('\n')).toContain('300 ms');
  });
});

describe('prompts', () => {
  test('prompt files with placeholders are filled once; transcript text is never expanded', async () => {
    h = await harness({ complete: () => 'ok' }, async ({ home }) => ({
      dictionary: await fileIn(home, 'dictionary.txt', 'Koto\nVitest\n'),
      correction: {
        stream: false,
        systemPrompt: await fileIn(home, 'system.md', 'Custom system. Terms:\n{{dictionary_entries}}\n'),
        userPrompt: await fileIn(home, 'user.md', 'History:\n{{interim_history}}\n---\nFix: {{asr_text}}\n'),
      },
    }));
    await h.kernel.correct('say {{dictionary_entries}} and {{interim_history}} aloud', { interimHistory: ['say', 'say dict'] });
    const [system, user] = messages(onlyRequest(h, '/chat/completions'));
    expect(system!.content).toBe('Custom system. Terms:\nKoto\nVitest');
    expect(user!.content).toBe('History:\nsay\nsay dict\n---\nFix: say {{dictionary_entries}} and {{interim_history}} aloud');
  });

  test('a user prompt without {{asr_text}} still gets the transcript', async () => {
    h = await harness({ complete: () => 'ok' }, async ({ home }) => ({
      correction: { stream: false, userPrompt: await fileIn(home, 'user.md', 'Please tidy this up.') },
    }));
    await h.kernel.correct('the words');
    const [, user] = messages(onlyRequest(h, '/chat/completions'));
    expect(user!.content).toBe('Please tidy this up.\n\nthe words');
  });

  test('the default user prompt leaves out empty sections and shows earlier partial transcripts', async () => {
    h = await harness({ complete: () => 'ok' }, { correction: { stream: false } });
    await h.kernel.correct('final words', { interimHistory: ['final', 'final wor'] });
    const [, user] = messages(onlyRequest(h, '/chat/completions'));
    expect(user!.content).not.toContain('Dictionary');
    expect(user!.content).toContain('final\nfinal wor');
    expect(user!.content).toContain('<transcript>\nfinal words\n</transcript>');
  });
});

describe('whole pipeline', () => {
  test('run(): streamed transcription, streamed correction, one pre-warm for the shared origin', async () => {
    h = await harness(
      { transcribe: () => 'um so the meeting is at noon', complete: () => 'So the meeting is at noon.', sseChunkBytes: 7 },
      {},
    );
    const stages: string[] = [];
    const record = await h.kernel.run({ data: sineWav(0.5), name: 'a.wav' }, { onInterim: (_, stage) => stages.push(stage) });
    expect(record).toMatchObject({
      state: 'done',
      raw: 'um so the meeting is at noon',
      text: 'So the meeting is at noon.',
      fallback: false,
      asrProvider: 'main',
      correctionProvider: 'main',
    });
    expect(stages).toContain('asr');
    expect(stages).toContain('correction');
    const paths = h.server.requests.map((r) => `${r.method} ${r.path}`);
    expect(paths).toEqual(['GET /v1/models', 'POST /v1/audio/transcriptions', 'POST /v1/chat/completions']);
  });
});
