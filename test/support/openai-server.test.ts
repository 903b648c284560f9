import { X509Certificate } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Agent, FormData, fetch, request } from 'undici';
import { createTestCertificate, getTestCertificate, startOpenAIServer, type OpenAIServer, type OpenAIServerOptions } from './index.ts';

// ---------------------------------------------------------------------------
// Fixtures: every server and agent made in a test is closed after it.
// ---------------------------------------------------------------------------

const servers: OpenAIServer[] = [];
const agents: Agent[] = [];

afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.destroy()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function serve(options: OpenAIServerOptions = {}): Promise<OpenAIServer> {
  const server = await startOpenAIServer(options);
  servers.push(server);
  return server;
}

function agentFor(server: OpenAIServer, options: ConstructorParameters<typeof Agent>[0] = {}): Agent {
  const agent = new Agent({ allowH2: true, ...options, connect: { ca: server.ca, preferH2: true } });
  agents.push(agent);
  return agent;
}

const KEY = 'sk-test-0123456789abcdef';
const auth = { authorization: `Bearer ${KEY}` };

function postJson(server: OpenAIServer, dispatcher: Agent, path: string, body: unknown, headers: Record<string, string> = auth) {
  return request(`${server.baseUrl}${path}`, {
    dispatcher,
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
}

/** Parse an SSE byte stream the way a client would (events split anywhere). */
async function readSse(body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<Array<{ event?: string; data: string }>> {
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of body) buffer += decoder.decode(chunk, { stream: true });
  buffer += decoder.decode();
  const events: Array<{ event?: string; data: string }> = [];
  for (const block of buffer.split('\n\n')) {
    if (block.trim() === '') continue;
    let event: string | undefined;
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('event: ')) event = line.slice(7);
      else if (line.startsWith('data: ')) data.push(line.slice(6));
    }
    events.push(event === undefined ? { data: data.join('\n') } : { event, data: data.join('\n') });
  }
  return events;
}

// ---------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------

describe('test certificate', () => {
  it('is cached per process and covers localhost, 127.0.0.1 and ::1', async () => {
    const a = await getTestCertificate();
    expect(await getTestCertificate()).toBe(a);
    const leaf = new X509Certificate(a.cert);
    const ca = new X509Certificate(a.ca);
    expect(leaf.subjectAltName).toContain('DNS:localhost');
    expect(leaf.subjectAltName).toContain('IP Address:127.0.0.1');
    expect(leaf.checkIssued(ca)).toBe(true);
    expect(leaf.verify(ca.publicKey)).toBe(true);
    expect(ca.ca).toBe(true);
    expect(leaf.ca).toBe(false);
    expect(leaf.publicKey.asymmetricKeyType).toBe('ec');
  });

  it('can make a fresh one with extra names', async () => {
    const cert = await createTestCertificate({ hosts: ['koto.test'] });
    expect(new X509Certificate(cert.cert).subjectAltName).toContain('DNS:koto.test');
    expect(cert.ca).not.toBe((await getTestCertificate()).ca);
  });
});

// ---------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------

describe('connections', () => {
  it('serves 30 sequential requests over one HTTP/2 connection: exactly 1 TLS handshake', async () => {
    const server = await serve({ apiKey: KEY });
    const agent = agentFor(server);
    for (let i = 0; i < 30; i++) {
      const res = await request(`${server.baseUrl}/models`, { dispatcher: agent, headers: auth });
      expect(res.statusCode).toBe(200);
      const body = (await res.body.json()) as { object: string; data: Array<{ id: string; object: string }> };
      expect(body.object).toBe('list');
      expect(body.data[0]?.object).toBe('model');
    }
    expect(server.stats.tlsHandshakes).toBe(1);
    expect(server.stats.connections).toBe(1);
    expect(server.stats.h2Sessions).toBe(1);
    expect(server.stats.protocols).toEqual({ h2: 30 });
    expect(server.requests).toHaveLength(30);
    expect(server.requests.every((r) => r.protocol === 'h2' && r.path === '/v1/models')).toBe(true);
  });

  it('http1Only: clients fall back to HTTP/1.1 with keep-alive', async () => {
    const server = await serve({ http1Only: true });
    // undici's pool may open a second HTTP/1.1 connection when a request is
    // dispatched a tick before the previous one has released its socket; one
    // connection per origin makes reuse deterministic.
    const agent = agentFor(server, { connections: 1 });
    for (let i = 0; i < 5; i++) {
      const res = await postJson(server, agent, '/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
      expect(res.statusCode).toBe(200);
      const body = (await res.body.json()) as { choices: Array<{ message: { content: string } }> };
      expect(body.choices[0]?.message.content).toBe('Hello, world.');
    }
    expect(server.stats.protocols).toEqual({ 'http/1.1': 5 });
    expect(server.stats.h2Sessions).toBe(0);
    expect(server.stats.tlsHandshakes).toBe(1);
    expect(server.requests[0]?.protocol).toBe('http/1.1');
  });

  it('the HTTP/2 server still answers HTTP/1.1-only clients', async () => {
    const server = await serve();
    const agent = new Agent({ allowH2: false, connect: { ca: server.ca } });
    agents.push(agent);
    const res = await request(`${server.baseUrl}/models`, { dispatcher: agent });
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    expect(server.stats.protocols).toEqual({ 'http/1.1': 1 });
  });

  it('goawayAll does not break a later request', async () => {
    const server = await serve();
    const agent = agentFor(server);
    expect((await request(`${server.baseUrl}/models`, { dispatcher: agent })).statusCode).toBe(200);
    await server.goawayAll();
    expect(server.stats.goaways).toBe(1);
    expect(server.openConnections).toBe(0);
    const res = await request(`${server.baseUrl}/models`, { dispatcher: agent });
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    expect(server.stats.tlsHandshakes).toBe(2);
  });

  it('a goaway fault still answers the request, and the next one uses a new connection', async () => {
    const server = await serve();
    const agent = agentFor(server);
    server.inject({ path: '/chat/completions', goaway: true });
    const first = await postJson(server, agent, '/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'x' }] });
    expect(first.statusCode).toBe(200);
    await first.body.json();
    const second = await postJson(server, agent, '/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'x' }] });
    expect(second.statusCode).toBe(200);
    await second.body.json();
    expect(server.stats.goaways).toBe(1);
    expect(server.stats.tlsHandshakes).toBe(2);
  });

  it('closes idle connections after idleTimeoutMs', async () => {
    const server = await serve({ idleTimeoutMs: 100 });
    const agent = agentFor(server);
    await (await request(`${server.baseUrl}/models`, { dispatcher: agent })).body.dump();
    await vi.waitFor(
      () => {
        expect(server.stats.idleCloses).toBe(1);
        expect(server.openConnections).toBe(0);
      },
      { timeout: 20_000, interval: 20 },
    );
    await (await request(`${server.baseUrl}/models`, { dispatcher: agent })).body.dump();
    expect(server.stats.tlsHandshakes).toBe(2);
  });

  it('release() ends a delay in progress: the held response goes out at once', async () => {
    const server = await serve();
    const agent = agentFor(server);
    server.inject({ path: '/models', delayMs: 60_000 });
    let answered = false;
    const pending = request(`${server.baseUrl}/models`, { dispatcher: agent }).then(async (res) => {
      answered = true;
      return { status: res.statusCode, json: await res.body.json() };
    });
    await server.waitForRequests(1);
    await new Promise((r) => setTimeout(r, 100));
    expect(answered).toBe(false); // held by the delay
    server.release();
    expect(await pending).toMatchObject({ status: 200, json: { object: 'list' } });
  });

  it('close() does not hang on open client connections or stalled responses', async () => {
    const server = await startOpenAIServer({ thinkMs: 60_000 });
    const agent = agentFor(server);
    const pending = request(`${server.baseUrl}/models`, { dispatcher: agent }).catch((err: unknown) => err);
    await server.waitForRequests(1);
    const started = Date.now();
    await server.close();
    expect(Date.now() - started).toBeLessThan(20_000); // the response would take 60 s
    expect(await pending).toBeInstanceOf(Error);
  });
});

// ---------------------------------------------------------------------------
// API routes
// ---------------------------------------------------------------------------

describe('routes', () => {
  it('401 with the OpenAI error shape on a wrong key, without echoing the key', async () => {
    const server = await serve({ apiKey: KEY });
    const agent = agentFor(server);
    const wrong = 'sk-wrong-key-9876543210zyxw';
    const res = await request(`${server.baseUrl}/models`, { dispatcher: agent, headers: { authorization: `Bearer ${wrong}` } });
    expect(res.statusCode).toBe(401);
    const text = await res.body.text();
    expect(text).not.toContain(wrong);
    const body = JSON.parse(text) as { error: Record<string, unknown> };
    expect(body.error).toMatchObject({ type: 'invalid_request_error', param: null, code: 'invalid_api_key' });
    expect(body.error['message']).toMatch(/^Incorrect API key provided: sk-\*+zyxw\./);

    const missing = await request(`${server.baseUrl}/models`, { dispatcher: agent });
    expect(missing.statusCode).toBe(401);
    expect(((await missing.body.json()) as { error: { code: string } }).error.code).toBe('invalid_api_key');
  });

  it('unknown path → 404, wrong method → 405, missing parameters → 400', async () => {
    const server = await serve();
    const agent = agentFor(server);
    const notFound = await request(`${server.baseUrl}/nope`, { dispatcher: agent });
    expect(notFound.statusCode).toBe(404);
    expect(await notFound.body.json()).toEqual({
      error: { message: 'Invalid URL (GET /v1/nope)', type: 'invalid_request_error', param: null, code: null },
    });
    const wrongMethod = await request(`${server.baseUrl}/chat/completions`, { dispatcher: agent });
    expect(wrongMethod.statusCode).toBe(405);
    await wrongMethod.body.dump();
    const noMessages = await postJson(server, agent, '/chat/completions', { model: 'm' }, {});
    expect(noMessages.statusCode).toBe(400);
    expect(await noMessages.body.json()).toMatchObject({ error: { param: 'messages', code: 'missing_required_parameter' } });
    const noModel = await postJson(server, agent, '/chat/completions', { messages: [] }, {});
    expect(noModel.statusCode).toBe(400);
    expect(await noModel.body.json()).toMatchObject({ error: { param: 'model' } });
    const badJson = await request(`${server.baseUrl}/chat/completions`, { dispatcher: agent, method: 'POST', body: '{nope' });
    expect(badJson.statusCode).toBe(400);
    await badJson.body.dump();
  });

  it('records a multipart upload with intact bytes and answers in json/text/verbose_json', async () => {
    const server = await serve({ transcribe: (req) => `got ${req.form?.files['file']?.data.length} bytes` });
    const agent = agentFor(server);
    const audio = Buffer.alloc(70_000);
    for (let i = 0; i < audio.length; i++) audio[i] = (i * 31 + (i >> 8)) & 0xff;

    const send = async (fields: Record<string, string>) => {
      const form = new FormData();
      form.append('file', new Blob([audio], { type: 'audio/wav' }), 'clip.wav');
      for (const [k, v] of Object.entries(fields)) form.append(k, v);
      return request(`${server.baseUrl}/audio/transcriptions`, { dispatcher: agent, method: 'POST', body: form });
    };

    const json = await send({ model: 'gpt-4o-transcribe', language: 'en' });
    expect(json.statusCode).toBe(200);
    const body = (await json.body.json()) as { text: string; usage: { type: string } };
    expect(body.text).toBe('got 70000 bytes');
    expect(body.usage.type).toBe('tokens');

    const recorded = server.requests[0];
    expect(recorded?.protocol).toBe('h2');
    expect(recorded?.headers['content-type']).toMatch(/^multipart\/form-data; boundary=/);
    expect(recorded?.form?.fields).toEqual({ model: ['gpt-4o-transcribe'], language: ['en'] });
    const file = recorded?.form?.files['file'];
    expect(file?.filename).toBe('clip.wav');
    expect(file?.contentType).toBe('audio/wav');
    expect(file?.data.equals(audio)).toBe(true);

    const text = await send({ model: 'whisper-1', response_format: 'text' });
    expect(text.headers['content-type']).toMatch(/^text\/plain/);
    expect(await text.body.text()).toBe('got 70000 bytes\n');

    const verbose = await send({ model: 'whisper-1', response_format: 'verbose_json' });
    expect(await verbose.body.json()).toMatchObject({ task: 'transcribe', text: 'got 70000 bytes', usage: { type: 'duration' } });

    const noModel = await send({});
    expect(noModel.statusCode).toBe(400);
    expect(await noModel.body.json()).toMatchObject({ error: { param: 'model', type: 'invalid_request_error' } });
  });

  it('streams a transcription as transcript.text.delta events then transcript.text.done (via fetch)', async () => {
    const server = await serve({ transcribe: () => 'the quick brown fox' });
    const agent = agentFor(server);
    const form = new FormData();
    form.append('file', new Blob([Buffer.from('RIFF')], { type: 'audio/wav' }), 'a.wav');
    form.append('model', 'gpt-4o-mini-transcribe');
    form.append('stream', 'true');
    const res = await fetch(`${server.baseUrl}/audio/transcriptions`, { dispatcher: agent, method: 'POST', body: form });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events = (await readSse(res.body!)).map((e) => JSON.parse(e.data) as Record<string, unknown>);
    const deltas = events.filter((e) => e['type'] === 'transcript.text.delta');
    expect(deltas.length).toBeGreaterThan(1);
    expect(deltas.map((d) => d['delta']).join('')).toBe('the quick brown fox');
    expect(events.at(-1)).toMatchObject({ type: 'transcript.text.done', text: 'the quick brown fox', usage: { type: 'tokens' } });
  });

  it('streams chat completions as chat.completion.chunk events ending in [DONE], split at odd byte boundaries', async () => {
    const text = 'Grüße, 世界 🌍 — done.';
    const server = await serve({ complete: () => text, sseChunkBytes: 7 });
    const agent = agentFor(server);
    const res = await postJson(server, agent, '/chat/completions', {
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(res.statusCode).toBe(200);
    const raw: Buffer[] = [];
    for await (const chunk of res.body) raw.push(Buffer.from(chunk as Uint8Array));
    expect(raw.length).toBeGreaterThan(10);
    const events = await readSse(raw);
    expect(events.at(-1)?.data).toBe('[DONE]');
    const chunks = events.slice(0, -1).map(
      (e) =>
        JSON.parse(e.data) as {
          object: string;
          choices: Array<{ delta: { role?: string; content?: string }; finish_reason: string | null }>;
          usage?: unknown;
        },
    );
    expect(chunks.every((c) => c.object === 'chat.completion.chunk')).toBe(true);
    expect(chunks[0]?.choices[0]?.delta.role).toBe('assistant');
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe(text);
    expect(chunks.at(-2)?.choices[0]?.finish_reason).toBe('stop');
    expect(chunks.at(-1)?.choices).toEqual([]);
    expect(chunks.at(-1)?.usage).toMatchObject({ total_tokens: expect.any(Number) });
  });

  it('answers the Responses API, plain and streaming', async () => {
    const server = await serve();
    const agent = agentFor(server);
    const plain = await postJson(server, agent, '/responses', { model: 'gpt-4.1-mini', input: 'fix this' }, {});
    expect(await plain.body.json()).toMatchObject({
      object: 'response',
      status: 'completed',
      output: [{ type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Hello, world.', annotations: [] }] }],
    });

    const streamed = await postJson(server, agent, '/responses', { model: 'gpt-4.1-mini', input: 'fix this', stream: true }, {});
    const events = await readSse(streamed.body);
    const types = events.map((e) => e.event);
    expect(types[0]).toBe('response.created');
    expect(types.at(-1)).toBe('response.completed');
    const parsed = events.map((e) => JSON.parse(e.data) as Record<string, unknown>);
    expect(parsed.every((e, i) => e['type'] === types[i] && e['sequence_number'] === i)).toBe(true);
    const deltas = parsed.filter((e) => e['type'] === 'response.output_text.delta').map((e) => e['delta']);
    expect(deltas.join('')).toBe('Hello, world.');
    expect(parsed.at(-1)).toMatchObject({ response: { status: 'completed', output: [{ content: [{ text: 'Hello, world.' }] }] } });
  });
});

// ---------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------

describe('faults', () => {
  it('an injected 500 applies once, then requests succeed', async () => {
    const server = await serve();
    const agent = agentFor(server);
    server.inject({ path: '/chat/completions', status: 500, headers: { 'retry-after': '0' } });
    const body = { model: 'm', messages: [{ role: 'user', content: 'x' }] };
    // A request to another path does not consume the fault.
    await (await request(`${server.baseUrl}/models`, { dispatcher: agent })).body.dump();
    const failed = await postJson(server, agent, '/chat/completions', body, {});
    expect(failed.statusCode).toBe(500);
    expect(failed.headers['retry-after']).toBe('0');
    expect(await failed.body.json()).toMatchObject({ error: { type: 'server_error' } });
    const ok = await postJson(server, agent, '/chat/completions', body, {});
    expect(ok.statusCode).toBe(200);
    await ok.body.json();
    expect(server.requests.map((r) => r.fault?.status)).toEqual([undefined, 500, undefined]);
  });

  it('reset before-response fails the request; the next one succeeds', async () => {
    const server = await serve();
    const agent = agentFor(server);
    server.inject({ reset: 'before-response' });
    await expect(request(`${server.baseUrl}/models`, { dispatcher: agent }).then((r) => r.body.text())).rejects.toThrow();
    const res = await request(`${server.baseUrl}/models`, { dispatcher: agent });
    expect(res.statusCode).toBe(200);
    await res.body.dump();
  });

  it('reset during-response fails while reading the body (HTTP/1.1 too)', async () => {
    for (const http1Only of [false, true]) {
      const server = await serve({ http1Only });
      const agent = agentFor(server);
      server.inject({ reset: 'during-response' });
      const res = await postJson(
        server,
        agent,
        '/chat/completions',
        { model: 'm', messages: [{ role: 'user', content: 'x' }], stream: true },
        {},
      );
      expect(res.statusCode).toBe(200);
      await expect(res.body.text()).rejects.toThrow();
    }
  });

  it('truncateJson ends the body early; sseMalformed inserts a bad event; stallBodyMs delays the body', async () => {
    const server = await serve();
    const agent = agentFor(server);
    const body = { model: 'm', messages: [{ role: 'user', content: 'x' }] };

    server.inject({ truncateJson: true });
    const truncated = await postJson(server, agent, '/chat/completions', body, {});
    await expect(truncated.body.json()).rejects.toThrow();

    server.inject({ sseMalformed: true });
    const malformed = await postJson(server, agent, '/chat/completions', { ...body, stream: true }, {});
    const events = await readSse(malformed.body);
    expect(
      events
        .filter((e) => e.data !== '[DONE]')
        .some((e) => {
          try {
            JSON.parse(e.data);
            return false;
          } catch {
            return true;
          }
        }),
    ).toBe(true);

    // The headers come at once and the body only when released: the order is the server's, not a
    // race between a 250 ms bound and a 300 ms stall.
    server.inject({ stallBodyMs: 60_000 });
    const stalled = await postJson(server, agent, '/chat/completions', body, {});
    let bodyDone = false;
    const json = stalled.body.json().then((value) => ((bodyDone = true), value));
    await new Promise((r) => setTimeout(r, 100));
    expect(bodyDone).toBe(false); // headers arrived, the body is held
    server.release();
    expect(await json).toMatchObject({ object: 'chat.completion' });
  });
});
