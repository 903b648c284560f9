import { readdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { sendCommand } from '../../src/daemon/client.ts';
import { Daemon } from '../../src/daemon/daemon.ts';
import { MAX_REQUEST_BYTES } from '../../src/daemon/protocol.ts';
import { ERRORS } from '../../src/kernel/errors.ts';
import { encodeWav } from '../../src/index.ts';
import { koto as kotoCli } from '../cli/support.ts';
import { startOpenAIServer, tempHome, type OpenAIServer } from '../support/index.ts';
import { seededRandom } from '../../bench/lib/stats.ts';

// Real child processes on a shared 2-core machine: generous deadlines, never asserted on.
vi.setConfig({ testTimeout: 180_000, hookTimeout: 60_000 });
const koto: typeof kotoCli = (args, options = {}) => kotoCli(args, { timeoutMs: 120_000, ...options });

/**
 * Whatever a client writes on the control socket, the daemon answers with an error reply (never
 * a crash, an unhandled rejection or a hang) and goes on serving everyone else.
 */

let server: OpenAIServer;
let home: ReturnType<typeof tempHome>;
let daemon: Daemon;
const texts: string[] = [];
const problems: unknown[] = [];
const onProblem = (err: unknown) => problems.push(err);

interface Reply {
  id: number | null;
  ok: boolean;
  result?: unknown;
  error?: { code: string; message: string; fix: string; exitCode: number };
}

beforeAll(async () => {
  process.on('unhandledRejection', onProblem);
  process.on('uncaughtException', onProblem);
  server = await startOpenAIServer({
    transcribe: () => 'fuzzed words',
    complete: (req) => {
      const text = (req.json as { messages: { content: string }[] }).messages.at(-1)?.content ?? '';
      texts.push(text);
      return 'Corrected.';
    },
  });
  home = tempHome('koto-protocol-fuzz-');
  daemon = await Daemon.start({
    config: {
      providers: { main: { use: 'openai-compatible', baseUrl: server.baseUrl, apiKey: 'sk-fuzz-canary-5150' } },
      asr: { model: 'whisper-1' },
      correction: { model: 'gpt-test', stream: false },
      transport: { ca: server.ca },
    },
    search: false,
    builtins: ['openai-compatible', 'outputs'],
    env: { KOTO_HOME: home.dir },
    logLevel: 'silent',
    watch: false,
    shutdownTimeoutMs: 5000,
  });
});

afterAll(async () => {
  await daemon?.close();
  await server.close();
  home.cleanup();
  process.off('unhandledRejection', onProblem);
  process.off('uncaughtException', onProblem);
});

/**
 * Writes raw bytes on a fresh connection, ends our side, and collects every reply until the
 * daemon closes (it does once all answers are out). Replies may come in any order (matched by
 * id). `hungUp`: the daemon closed before our bytes were all taken (an oversized line).
 */
function exchange(bytes: Buffer | string): Promise<{ replies: Reply[]; hungUp: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(daemon.socketPath);
    const replies: Reply[] = [];
    let buffer = '';
    let done = false;
    const finish = (hungUp: boolean) => {
      if (done) return;
      done = true;
      socket.destroy();
      resolve({ replies, hungUp });
    };
    socket.on('data', (chunk) => {
      buffer += chunk.toString('utf8');
      let newline: number;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        replies.push(JSON.parse(line) as Reply);
      }
    });
    // EPIPE/ECONNRESET while we still write an oversized line: the daemon hung up, as it should.
    socket.on('error', (err: NodeJS.ErrnoException) => (['EPIPE', 'ECONNRESET'].includes(err.code ?? '') ? finish(true) : reject(err)));
    socket.on('close', () => finish(!flushed));
    let flushed = false;
    socket.end(bytes, () => (flushed = true));
  });
}

const ping = (id: number) => `${JSON.stringify({ id, cmd: 'ping' })}\n`;

/** The reply to one line; a ping follows on the same connection and must be served too. */
async function answerTo(line: Buffer | string): Promise<Reply> {
  const { replies, hungUp } = await exchange(Buffer.concat([Buffer.from(line), Buffer.from(`\n${ping(777_777)}`)]));
  expect(hungUp).toBe(false);
  expect(replies).toHaveLength(2);
  expect(replies.find((r) => r.id === 777_777)).toMatchObject({ ok: true });
  return replies.find((r) => r.id !== 777_777)!;
}

const wav = encodeWav(
  new Int16Array(8000).map((_, i) => Math.round(4000 * Math.sin(i / 5))),
  16000,
);

describe('malformed control messages get an error reply', () => {
  const control = 'KOTO_ERR_CONTROL_MESSAGE';
  const cases: [string, string, string, RegExp?][] = [
    ['null', 'null', control, /expected a JSON object, got null/],
    ['a number', '42', control],
    ['a string', '"status"', control],
    ['an array', '[{"id":1,"cmd":"status"}]', control, /got an array/],
    ['an object without cmd', '{"id":1}', control, /"cmd" must be a string/],
    ['an object without id', '{"cmd":"status"}', control, /"id" must be an integer/],
    ['a string id', '{"id":"1","cmd":"status"}', control, /"id" must be an integer, got a string/],
    ['a fractional id', '{"id":1.5,"cmd":"status"}', control],
    ['an object id', '{"id":{},"cmd":"status"}', control],
    ['cmd __proto__', '{"id":1,"cmd":"__proto__"}', 'KOTO_ERR_USAGE', /unknown daemon command "__proto__"/],
    ['cmd constructor', '{"id":1,"cmd":"constructor"}', 'KOTO_ERR_USAGE', /unknown daemon command "constructor"/],
    ['cmd toString', '{"id":1,"cmd":"toString"}', 'KOTO_ERR_USAGE'],
    ['a number cmd', '{"id":1,"cmd":7}', control],
    ['args null', '{"id":1,"cmd":"status","args":null}', control, /"args" must be an object, got null/],
    ['args a string', '{"id":1,"cmd":"status","args":"x"}', control],
    ['args an array', '{"id":1,"cmd":"status","args":[]}', control],
    ['args with __proto__', '{"id":1,"cmd":"status","args":{"__proto__":{"polluted":true}}}', control, /__proto__/],
    ['a nested __proto__', '{"id":1,"cmd":"correct","args":{"text":"x","a":{"__proto__":{"polluted":true}}}}', control, /__proto__/],
    ['a top-level __proto__', '{"__proto__":{"cmd":"status"},"id":1}', control, /__proto__/],
    ['not JSON', '{"id":1,"cmd":', control, /not JSON/],
    ['path not a string', '{"id":1,"cmd":"transcribe","args":{"path":123}}', control, /transcribe: args\.path/],
    ['a relative path', '{"id":1,"cmd":"transcribe","args":{"path":"clip.wav"}}', control, /absolute path/],
    ['a path with NUL', '{"id":1,"cmd":"run","args":{"path":"/tmp/a\\u0000b.wav"}}', control, /NUL/],
    ['path and data', `{"id":1,"cmd":"run","args":{"path":"/a.wav","data":"AAAA"}}`, control, /exactly one of/],
    ['no audio at all', '{"id":1,"cmd":"transcribe","args":{}}', control, /exactly one of/],
    ['data not base64', '{"id":1,"cmd":"transcribe","args":{"data":"not base64!"}}', control, /base64/],
    ['data an object', '{"id":1,"cmd":"run","args":{"data":{"length":1e9}}}', control],
    ['an upload outside the runtime folder', '{"id":1,"cmd":"run","args":{"upload":"/etc/passwd"}}', control, /next to the control socket/],
    ['correct as a string', '{"id":1,"cmd":"run","args":{"path":"/a.wav","correct":"yes"}}', control],
    ['wait as a string', '{"id":1,"cmd":"stop","args":{"wait":"yes"}}', control],
    ['text an array', '{"id":1,"cmd":"correct","args":{"text":["a"]}}', control],
    ['retry without id', '{"id":1,"cmd":"retry","args":{}}', control, /retry: args\.id/],
    ['retry with a number id', '{"id":1,"cmd":"retry","args":{"id":5}}', control],
    ['rewrite with an object template', '{"id":1,"cmd":"rewrite","args":{"template":{}}}', control],
    ['provider "constructor"', '{"id":1,"cmd":"correct","args":{"text":"x","provider":"constructor"}}', 'KOTO_ERR_PROVIDER_UNKNOWN'],
    ['provider "__proto__"', '{"id":1,"cmd":"transcribe","args":{"path":"/a.wav","provider":"__proto__"}}', 'KOTO_ERR_PROVIDER_UNKNOWN'],
    ['provider "hasOwnProperty"', '{"id":1,"cmd":"run","args":{"path":"/a.wav","provider":"hasOwnProperty"}}', 'KOTO_ERR_PROVIDER_UNKNOWN'],
  ];

  for (const [name, line, code, message] of cases) {
    it(name, async () => {
      const reply = await answerTo(line);
      expect(reply.ok).toBe(false);
      expect(reply.error?.code).toBe(code);
      if (message) expect(reply.error?.message).toMatch(message);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    });
  }

  it('invalid UTF-8 and random bytes', async () => {
    for (const bytes of [Buffer.from([0xff, 0xfe, 0x80]), Buffer.from([0x7b, 0xc3]), Buffer.from([0x00, 0x01, 0x1b, 0x5b, 0x41])]) {
      const reply = await answerTo(bytes);
      expect(reply).toMatchObject({ id: null, ok: false, error: { code: 'KOTO_ERR_CONTROL_MESSAGE' } });
    }
  });

  it('200 000 levels of nesting', async () => {
    const reply = await answerTo(`${'['.repeat(200_000)}${']'.repeat(200_000)}`);
    expect(reply).toMatchObject({ ok: false, error: { code: 'KOTO_ERR_CONTROL_MESSAGE' } });
  });

  it('a UTF-8 character split across writes survives (the parser works on bytes)', async () => {
    const line = Buffer.from(`${JSON.stringify({ id: 5, cmd: 'correct', args: { text: 'héllo ✓ 日本' } })}\n`);
    const socket = net.createConnection(daemon.socketPath);
    const answer = new Promise<Reply>((resolve) => socket.once('data', (d) => resolve(JSON.parse(d.toString()) as Reply)));
    for (const byte of line) socket.write(Buffer.from([byte]));
    expect(await answer).toMatchObject({ id: 5, ok: true, result: { text: 'Corrected.' } });
    socket.destroy();
    expect(texts.at(-1)).toContain('héllo ✓ 日本');
  });

  it('unknown args keys are dropped, not applied', async () => {
    const reply = await answerTo('{"id":3,"cmd":"status","args":{"constructor":{"x":1},"extra":1}}');
    expect(reply).toMatchObject({ id: 3, ok: true, result: { state: 'idle' } });
  });
});

describe('the 1 MiB line cap', () => {
  it('a line of exactly 1 MiB is served; one byte more is refused and the connection closed', async () => {
    const base = JSON.stringify({ id: 11, cmd: 'ping' });
    const exact = base + ' '.repeat(MAX_REQUEST_BYTES - base.length);
    expect(Buffer.byteLength(exact)).toBe(MAX_REQUEST_BYTES);
    const served = await exchange(`${exact}\n`);
    expect(served).toEqual({ hungUp: false, replies: [{ id: 11, ok: true, result: { pid: process.pid } }] });

    const refused = await exchange(`${exact} \n${ping(12)}`);
    expect(refused.replies).toHaveLength(1); // the ping after the oversized line is never read
    expect(refused.replies[0]).toMatchObject({
      id: null,
      ok: false,
      error: { code: 'KOTO_ERR_CONTROL_MESSAGE', message: expect.stringMatching(/longer than 1048576 bytes \(1 MiB\)/) },
    });
  });

  it('an endless line (no newline, 8 MiB) is cut off at the cap; a huge correct never reaches the provider', async () => {
    const before = server.requests.length;
    const huge = `{"id":13,"cmd":"correct","args":{"text":"${'a'.repeat(8 * MAX_REQUEST_BYTES)}`;
    const refused = await exchange(huge);
    expect(refused.hungUp).toBe(true);
    expect(refused.replies[0]).toMatchObject({ ok: false, error: { code: 'KOTO_ERR_CONTROL_MESSAGE' } });
    expect(server.requests.length).toBe(before);
    // The client refuses to send such a request in the first place.
    await expect(sendCommand(daemon.socketPath, 'correct', { text: 'a'.repeat(2 * MAX_REQUEST_BYTES) })).rejects.toMatchObject({
      code: 'KOTO_ERR_CONTROL_MESSAGE',
    });
    expect(server.requests.length).toBe(before);
  });

  it('a client holding a half-sent line does not block others', async () => {
    const slow = net.createConnection(daemon.socketPath);
    await new Promise<void>((r) => slow.once('connect', () => r()));
    slow.write('{"id":1,"cmd":"sta');
    expect(await sendCommand(daemon.socketPath, 'status')).toMatchObject({ state: 'idle' });
    slow.destroy();
  });

  it('audio larger than a line goes by file: `transcribe`/`run` with 3 MiB of stdin audio still work', async () => {
    const big = encodeWav(
      new Int16Array(1_600_000).map((_, i) => Math.round(3000 * Math.sin(i / 9))),
      16000,
    );
    expect(big.length).toBeGreaterThan(3 * 1024 * 1024);
    const data = Buffer.from(big).toString('base64');
    const t = (await sendCommand(daemon.socketPath, 'transcribe', { data, name: 'big.wav' })) as { text: string; audioPath: string };
    expect(t.text).toBe('fuzzed words');
    const upload = server.requests.filter((r) => r.path.endsWith('/audio/transcriptions')).at(-1);
    expect(upload?.form?.files.file?.data.equals(Buffer.from(big))).toBe(true);
    const r = (await sendCommand(daemon.socketPath, 'run', { data, name: 'big.wav' })) as { text: string; id: string; audioPath: string };
    expect(r.text).toBe('Corrected.');
    // Saved to the recordings folder like inline audio; no upload file left beside the socket.
    expect(r.audioPath.startsWith(path.join(home.dir, 'data', 'recordings'))).toBe(true);
    expect(readdirSync(path.dirname(daemon.socketPath))).toEqual(['koto.sock']);
  });

  it('the real CLI delegates 3 MiB of stdin audio (`koto transcribe -`, `koto run -`)', async () => {
    const big = Buffer.from(
      encodeWav(
        new Int16Array(1_600_000).map((_, i) => Math.round(2500 * Math.sin(i / 11))),
        16000,
      ),
    );
    const env = { KOTO_HOME: home.dir };
    const t = await koto(['transcribe', '-'], { env, input: big });
    expect(t).toMatchObject({ code: 0, stdout: 'fuzzed words\n', stderr: '' });
    const upload = server.requests.filter((r) => r.path.endsWith('/audio/transcriptions')).at(-1);
    expect(upload?.form?.files.file?.data.equals(big)).toBe(true);
    const r = await koto(['run', '-'], { env, input: big });
    expect(r).toMatchObject({ code: 0, stdout: 'Corrected.\n', stderr: '' });
    expect(readdirSync(path.dirname(daemon.socketPath))).toEqual(['koto.sock']);
  });
});

describe('fuzz', () => {
  it('500 seeded random messages: every reply well-formed, no internal error, the daemon keeps serving', async () => {
    // The benchmark's seeded PRNG: the same 500 messages on every run.
    const random = seededRandom(0x6b6f746f);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const keys = [
      'id',
      'cmd',
      'args',
      '__proto__',
      'constructor',
      'prototype',
      'path',
      'data',
      'upload',
      'text',
      'wait',
      'provider',
      'template',
      'name',
      'correct',
      'toString',
    ];
    const commands = [
      'ping',
      'status',
      'stop',
      'toggle',
      'cancel',
      'reload',
      'transcribe',
      'run',
      'correct',
      'retry',
      'rewrite',
      '__proto__',
      'constructor',
      'hasOwnProperty',
      '',
    ];
    const strings = ['', 'a', '/tmp/none.wav', '../../etc/passwd', '/etc/passwd', 'AAAA', '\u0000', 'é✓', '{"id":1}', 'x'.repeat(300)];
    const value = (depth: number): unknown => {
      const kind = Math.floor(random() * (depth > 2 ? 5 : 7));
      switch (kind) {
        case 0:
          return null;
        case 1:
          return pick([0, -1, 1.5, 1e308, Number.MAX_SAFE_INTEGER, 2 ** 53 + 2]);
        case 2:
          return pick(strings);
        case 3:
          return random() < 0.5;
        case 4:
          return pick(commands);
        case 5:
          return Array.from({ length: Math.floor(random() * 4) }, () => value(depth + 1));
        default:
          return Object.fromEntries(Array.from({ length: Math.floor(random() * 5) }, () => [pick(keys), value(depth + 1)]));
      }
    };
    // Args of the right names with plausible values, so the fuzz also reaches past validation.
    const known: Record<string, string[]> = {
      transcribe: ['path', 'data', 'name', 'provider'],
      run: ['path', 'data', 'upload', 'name', 'provider', 'correct'],
      correct: ['text', 'provider'],
      retry: ['id'],
      rewrite: ['template', 'text', 'id'],
      stop: ['wait'],
    };
    const plausible: Record<string, () => unknown> = {
      path: () => pick(['/tmp/none.wav', '/', '/dev/null', path.join(home.dir, 'clip.wav'), '/etc/passwd']),
      data: () => pick(['', 'AAAA', Buffer.from(wav).toString('base64'), Buffer.from('RIFF....WAVE').toString('base64')]),
      upload: () => path.join(path.dirname(daemon.socketPath), pick(['upload-1-x.audio', 'koto.sock', 'upload-../x.audio'])),
      name: () => pick(['-', 'x.wav', 'é✓']),
      provider: () => pick(['main', 'nope', 'constructor', '__proto__', 'valueOf']),
      correct: () => random() < 0.5,
      wait: () => random() < 0.5,
      text: () => pick(['', 'hello', 'é✓'.repeat(100)]),
      id: () => pick(['', 'x', '20260101-000000-abcd', "1' OR '1'='1"]),
      template: () => pick(['email', '__proto__', 'constructor', '']),
    };
    const message = (): Buffer => {
      const roll = random();
      if (roll < 0.25) {
        const cmd = pick(Object.keys(known));
        const args = Object.fromEntries(known[cmd]!.filter(() => random() < 0.6).map((k) => [k, plausible[k]!()]));
        return Buffer.from(JSON.stringify({ id: Math.floor(random() * 1000), cmd, args }));
      }
      if (roll < 0.5) {
        // Envelope-shaped: a real command name with random args (type confusion).
        const envelope: Record<string, unknown> = { id: random() < 0.8 ? Math.floor(random() * 1000) : value(2), cmd: pick(commands) };
        if (random() < 0.9)
          envelope.args =
            random() < 0.8 ? Object.fromEntries(Array.from({ length: Math.floor(random() * 4) }, () => [pick(keys), value(2)])) : value(2);
        let text = JSON.stringify(envelope);
        if (random() < 0.2) text = text.replace('"args":{', '"args":{"__proto__":{"x":1},');
        return Buffer.from(text);
      }
      if (roll < 0.75) return Buffer.from(JSON.stringify(value(0)) ?? 'undefined');
      // Random bytes (a newline inside just makes two lines).
      return Buffer.from(Array.from({ length: 1 + Math.floor(random() * 200) }, () => Math.floor(random() * 256)));
    };

    let errors = 0;
    const codes = new Map<string, number>();
    writeFileSync(path.join(home.dir, 'clip.wav'), wav);
    for (let i = 0; i < 500; i++) {
      const sentinel = 1_000_000 + i;
      const bytes = message();
      const { replies, hungUp } = await exchange(Buffer.concat([bytes, Buffer.from(`\n${ping(sentinel)}`)]));
      expect(hungUp, `message ${i}: ${bytes.toString('latin1').slice(0, 80)}`).toBe(false);
      expect(replies.filter((r) => r.id === sentinel)).toMatchObject([{ ok: true }]);
      for (const reply of replies.filter((r) => r.id !== sentinel)) {
        expect(typeof reply.ok).toBe('boolean');
        expect(reply.id === null || Number.isSafeInteger(reply.id)).toBe(true);
        if (!reply.ok) {
          errors += 1;
          codes.set(reply.error!.code, (codes.get(reply.error!.code) ?? 0) + 1);
          expect(Object.hasOwn(ERRORS, reply.error!.code)).toBe(true);
          expect(reply.error!.code, `message ${i}: ${bytes.toString('latin1').slice(0, 120)} → ${reply.error!.message}`).not.toBe(
            'KOTO_ERR_INTERNAL',
          );
          expect(reply.error!.message.length).toBeGreaterThan(0);
        }
      }
    }
    // The run exercised the error paths (not 500 pings), and the daemon is whole afterwards.
    expect(errors).toBeGreaterThan(250);
    expect(codes.get('KOTO_ERR_CONTROL_MESSAGE')).toBeGreaterThan(100);
    expect(await sendCommand(daemon.socketPath, 'status')).toMatchObject({ state: 'idle', pending: 0 });
    expect(problems).toEqual([]);
  });

  it('the real CLI still talks to the daemon afterwards', async () => {
    const status = await koto(['status', '--json'], { env: { KOTO_HOME: home.dir } });
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ state: 'idle', pid: process.pid });
    expect(problems).toEqual([]);
  });
});
