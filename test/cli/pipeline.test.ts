import { readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { encodeWav } from '../../src/index.ts';
import { startOpenAIServer, tempHome, type OpenAIServer, type RecordedRequest } from '../support/index.ts';
import { koto } from './support.ts';

const KEY = 'sk-cli-canary-9f8e7d6c5b4a';
const home = tempHome('koto-cli-pipeline-');
let server: OpenAIServer;
let inFlight = 0;
let maxInFlight = 0;
/** While set, a transcription is held until a second one is in flight too (at most 10 s). */
let awaitOverlap = false;
const wav = encodeWav(
  new Int16Array(16000).map((_, i) => Math.round(6000 * Math.sin(i / 7))),
  16000,
);
const files: string[] = [];

beforeAll(async () => {
  server = await startOpenAIServer({
    apiKey: KEY,
    transcribe: async (req: RecordedRequest) => {
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      // A concurrent client always shows its overlap, however slow the machine (40 ms of
      // server time alone did not); a sequential one waits the 10 s out and fails the test.
      const until = Date.now() + 10_000;
      while (awaitOverlap && maxInFlight < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, 40));
      inFlight -= 1;
      return `um hello from ${req.form?.files.file?.filename ?? 'stdin'}`;
    },
    complete: (req) => {
      const user = (req.json as { messages: { role: string; content: string }[] }).messages.at(-1)?.content ?? '';
      return user.includes('hello from') ? `Hello from ${/hello from (\S+)/.exec(user)?.[1]}.` : 'Fixed.';
    },
  });
  writeFileSync(path.join(home.dir, 'ca.pem'), server.ca);
  for (let i = 0; i < 10; i++) {
    const file = path.join(home.dir, `clip${i}.wav`);
    writeFileSync(file, wav);
    files.push(file);
  }
});

afterAll(async () => {
  await server.close();
  home.cleanup();
});

afterEach(() => {
  server.clearFaults();
});

/** A new user: no config file, only the two environment variables the OpenAI SDKs honour. */
function userEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    OPENAI_API_KEY: KEY,
    OPENAI_BASE_URL: server.baseUrl,
    NODE_EXTRA_CA_CERTS: path.join(home.dir, 'ca.pem'),
    KOTO_HOME: path.join(home.dir, 'home'),
    ...extra,
  };
}

const cwd = () => home.dir;

describe('koto run / transcribe / correct against an OpenAI-compatible server', () => {
  it('run: only OPENAI_API_KEY + OPENAI_BASE_URL → the corrected text on stdout', async () => {
    const result = await koto(['run', files[0]!], { env: userEnv(), cwd: cwd() });
    expect(result.stderr).toBe('');
    expect(result).toMatchObject({ code: 0, stdout: 'Hello from clip0.wav.\n' });
  });

  it('run --json prints the documented NDJSON shape', async () => {
    const result = await koto(['run', '--json', files[1]!, files[2]!], { env: userEnv(), cwd: cwd() });
    expect(result.code).toBe(0);
    const lines = result.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({
      input: files[1],
      raw: 'um hello from clip1.wav',
      text: 'Hello from clip1.wav.',
      fallback: false,
      provider: 'openai',
      model: 'gpt-4o-mini-transcribe',
      correctionProvider: 'openai',
      correctionModel: 'gpt-4.1-mini',
    });
    expect(Object.keys(lines[0]!.timings as object)).toEqual(expect.arrayContaining(['asr', 'correction', 'total']));
    expect(lines[1]?.input).toBe(files[2]);
  });

  it('transcribe: ten files, one line each in input order, one TLS handshake, concurrency bounded', async () => {
    server.reset();
    maxInFlight = 0;
    awaitOverlap = true;
    const result = await koto(['transcribe', '-j', '3', ...files], { env: userEnv(), cwd: cwd() }).finally(() => (awaitOverlap = false));
    expect(result.code).toBe(0);
    expect(result.stdout.trim().split('\n')).toEqual(files.map((f) => `um hello from ${path.basename(f)}`));
    expect(server.stats.tlsHandshakes).toBe(1);
    expect(maxInFlight).toBeLessThanOrEqual(3);
    expect(maxInFlight).toBeGreaterThan(1);
    expect(result.stderr).toContain('10 of 10 inputs done');
  });

  it('reads audio from stdin and keeps a copy before sending', async () => {
    const result = await koto(['transcribe', '-'], { env: userEnv(), cwd: cwd(), input: Buffer.from(wav) });
    expect(result).toMatchObject({ code: 0, stdout: 'um hello from stdin.wav\n' });
    expect(readdirSync(path.join(home.dir, 'home', 'data', 'recordings')).some((f) => f.endsWith('.wav'))).toBe(true);
  });

  it('one failed file does not stop the rest; the exit code says one failed', async () => {
    const missing = path.join(home.dir, 'nope.wav');
    const result = await koto(['transcribe', files[0]!, missing, files[1]!], { env: userEnv(), cwd: cwd() });
    expect(result.code).toBe(1);
    expect(result.stdout.trim().split('\n')).toEqual(['um hello from clip0.wav', 'um hello from clip1.wav']);
    expect(result.stderr).toContain('nope.wav');
    expect(result.stderr).toContain('KOTO_ERR_AUDIO_INPUT');
  });

  it('correct: a correction failure still prints the raw text, exit 0, warning on stderr', async () => {
    const ok = await koto(['correct', 'hello from here'], { env: userEnv(), cwd: cwd() });
    expect(ok).toMatchObject({ code: 0, stdout: 'Hello from here.\n' });
    server.inject({ path: '/chat/completions', status: 500, times: 5 });
    const fallback = await koto(['correct', '--json', 'keep me'], { env: userEnv(), cwd: cwd() });
    expect(fallback.code).toBe(0);
    expect(JSON.parse(fallback.stdout)).toMatchObject({ raw: 'keep me', text: 'keep me', fallback: true });
    expect(fallback.stderr).toContain('warning: correction skipped, raw transcript delivered');
  });

  it('a wrong key: one line naming the provider and the fix, exit 1, the key never printed', async () => {
    const wrong = 'sk-wrong-key-0000111122223333';
    const result = await koto(['run', files[0]!], { env: userEnv({ OPENAI_API_KEY: wrong }), cwd: cwd() });
    expect(result.code).toBe(1);
    const lines = result.stderr.trim().split('\n');
    expect(lines[0]).toContain('provider "openai" rejected the credentials (HTTP 401)');
    expect(lines[0]).toContain('KOTO_ERR_AUTH');
    expect(result.stderr).toContain('the recording is kept at');
    expect(result.stdout + result.stderr).not.toContain(wrong);
    expect(result.stdout + result.stderr).not.toContain(wrong.slice(3, 20));
  });

  it('a wrong URL: one clear line, no hang, no stack', async () => {
    const result = await koto(['transcribe', files[0]!], {
      env: userEnv({ OPENAI_BASE_URL: 'https://127.0.0.1:9/v1' }),
      cwd: cwd(),
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('KOTO_ERR_NETWORK');
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it('doctor: provider reachable and credentials accepted; a bad key fails the check', async () => {
    const ok = await koto(['doctor'], { env: userEnv(), cwd: cwd() });
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/ok\s+provider openai: .*answered 200/);
    expect(ok.stdout).toMatch(
      /ok\s+active: asr openai, correction openai \(defaults from the environment: no providers configured; OPENAI_API_KEY is set\)/,
    );
    expect(ok.stdout).toMatch(/ok\s+transport: .* h2, 1 TLS handshake/);
    const bad = await koto(['doctor'], { env: userEnv({ OPENAI_API_KEY: 'sk-bad-doctor-key-123' }), cwd: cwd() });
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/FAIL\s+provider openai: .*rejected the credentials/);
    expect(bad.stdout).not.toContain('sk-bad-doctor-key-123');
  });

  it('a file that is not audio: a clear error', async () => {
    const text = path.join(home.dir, 'notes.txt');
    writeFileSync(text, 'this is not audio at all, just some words in a file');
    const result = await koto(['transcribe', text], { env: userEnv({ PATH: '/nonexistent' }), cwd: cwd(), node: process.execPath });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/KOTO_ERR_AUDIO_FORMAT|KOTO_ERR_AUDIO_INPUT/);
  });
});
