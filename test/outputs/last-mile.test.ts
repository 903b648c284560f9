/**
 * Nothing is lost at the last mile (issue #23): when every configured output fails, the text
 * still reaches the user — on stdout for `koto run` and `koto stop --wait`, in the history — and
 * `koto paste ID` delivers it again through the outputs without a new transcription.
 * Real CLI runs (the bin), a real daemon on its socket, a loopback OpenAI-compatible server.
 */
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../../src/daemon/daemon.ts';
import { testDaemon } from '../support/daemon.ts';
import { encodeWav } from '../../src/index.ts';
import { koto } from '../cli/support.ts';
import { startOpenAIServer, tempHome, type OpenAIServer } from '../support/index.ts';

const KEY = 'sk-last-mile-canary-3131';
const TEXT = 'Hello from the last mile.';
let server: OpenAIServer;
const home = tempHome('koto-last-mile-');
const wav = path.join(home.dir, 'clip.wav');
const blocked = path.join(home.dir, 'a-folder');
const good = path.join(home.dir, 'delivered.txt');

function config(file: string, output: string): string {
  writeFileSync(
    file,
    [
      'providers:',
      `  main: { use: openai-compatible, baseUrl: ${server.baseUrl}, apiKey: ${KEY} }`,
      'asr: { model: whisper-1 }',
      'correction: { model: gpt-test, stream: false }',
      'audio: { source: tone }',
      // A folder where a file is expected: the file output fails on every machine, for any user.
      `output: [ { use: file, path: ${output} } ]`,
      `transport: { ca: ${JSON.stringify(server.ca)} }`,
      '',
    ].join('\n'),
  );
  // It holds an API key: private, as Koto asks of such files.
  chmodSync(file, 0o600);
  return file;
}

beforeAll(async () => {
  server = await startOpenAIServer({
    apiKey: KEY,
    transcribe: () => 'hello from the last mile',
    complete: (req) => {
      if ((req.json as { model?: string } | undefined)?.model === 'gpt-broken') throw new Error('the model is down');
      return TEXT;
    },
  });
  writeFileSync(
    wav,
    encodeWav(
      new Int16Array(16000).map((_, i) => Math.round(6000 * Math.sin(i / 7))),
      16000,
    ),
  );
  mkdirSync(blocked);
});

afterAll(async () => {
  await server?.close();
  home.cleanup();
});

describe('koto run when every output fails', () => {
  it('prints the text on stdout (exit 1, the error and `koto paste ID` on stderr); `koto paste ID` delivers it later', async () => {
    const dir = path.join(home.dir, 'run');
    mkdirSync(dir);
    const file = config(path.join(dir, 'koto.yaml'), blocked);
    const env = { KOTO_HOME: path.join(dir, 'home') };
    const run = await koto(['--no-daemon', '-c', file, 'run', wav], { env });
    expect(run.stdout).toBe(`${TEXT}\n`);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('(KOTO_ERR_OUTPUT)');
    const id = /koto paste (\S+)`/.exec(run.stderr)?.[1];
    expect(id, run.stderr).toMatch(/^\d{8}-\d{6}-[0-9a-f]{6}$/);
    expect(run.stderr).not.toContain('koto retry');
    expect(run.stderr).not.toContain(KEY);

    const history = await koto(['history', '--json', '-n', '1'], { env });
    expect(JSON.parse(history.stdout)).toMatchObject({ id, state: 'failed', text: TEXT, errorCode: 'KOTO_ERR_OUTPUT' });

    // --json carries the text in the object (and nothing else on stdout).
    const json = await koto(['--no-daemon', '-c', file, 'run', '--json', wav], { env });
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ text: TEXT, error: { code: 'KOTO_ERR_OUTPUT' } });

    // The output is fixed; the text goes out again without a new transcription.
    config(file, good);
    const transcriptions = server.requests.filter((r) => r.path.endsWith('/audio/transcriptions')).length;
    const paste = await koto(['--no-daemon', '-c', file, 'paste', id!], { env });
    expect(paste.stderr).toBe('');
    expect(paste.code).toBe(0);
    expect(paste.stdout).toBe(`${TEXT}\n`);
    expect(readFileSync(good, 'utf8')).toBe(`${TEXT}\n`);
    expect(server.requests.filter((r) => r.path.endsWith('/audio/transcriptions')).length).toBe(transcriptions);
    const rows = (await koto(['history', '--json', '-n', '5'], { env })).stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(rows[0]).toMatchObject({ state: 'done', text: TEXT, retryOf: id });
  });

  it('`koto paste` of an unknown id: one line, the fix, exit 1', async () => {
    const env = { KOTO_HOME: path.join(home.dir, 'empty-home') };
    const unknown = await koto(['--no-daemon', 'paste', '20990101-000000-abcdef'], { env });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^koto: no session 20990101-000000-abcdef in the history\. Fix: .*\(KOTO_ERR_HISTORY_NOT_FOUND\)\n$/);
  });
});

describe('the daemon when every output fails', () => {
  let daemon: Daemon;
  const dir = path.join(home.dir, 'daemon');
  let file: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    mkdirSync(dir);
    file = config(path.join(dir, 'koto.yaml'), blocked);
    env = { KOTO_HOME: path.join(dir, 'home') };
    daemon = await testDaemon({ configPath: file, env });
  });

  afterAll(async () => {
    await daemon?.close();
  });

  it('`koto stop --wait` prints the text with the output error (fast client and full CLI); `koto paste ID` through the daemon delivers it', async () => {
    expect((await koto(['start'], { env })).code).toBe(0);
    const fast = await koto(['stop', '--wait'], { env });
    expect(fast.stdout).toBe(`${TEXT}\n`);
    expect(fast.code).toBe(1);
    expect(fast.stderr).toContain('(KOTO_ERR_OUTPUT)');
    const id = /koto paste (\S+)`/.exec(fast.stderr)?.[1];
    expect(id, fast.stderr).toBeDefined();

    // The full CLI (a global flag before the command skips the fast client) says the same.
    expect((await koto(['start'], { env })).code).toBe(0);
    const full = await koto(['--quiet', 'stop', '--wait', '--json'], { env });
    expect(full.code).toBe(1);
    expect(JSON.parse(full.stdout)).toMatchObject({ state: 'failed', text: TEXT });

    config(file, good);
    expect((await koto(['reload'], { env })).code).toBe(0);
    const paste = await koto(['paste', id!], { env });
    expect(paste.code).toBe(0);
    expect(paste.stdout).toBe(`${TEXT}\n`);
    expect(readFileSync(good, 'utf8')).toContain(TEXT);
  });

  it('a session that delivered with a warning says so in `koto status` (line and --json), not only in the log', async () => {
    writeFileSync(file, readFileSync(file, 'utf8').replace('model: gpt-test', 'model: gpt-broken, retries: 0'));
    expect((await koto(['reload'], { env })).code).toBe(0);
    expect((await koto(['start'], { env })).code).toBe(0);
    const stop = await koto(['stop', '--wait'], { env });
    // The correction failed: the raw transcript is delivered, with a warning.
    expect(stop).toMatchObject({ code: 0, stdout: 'hello from the last mile\n' });
    const json = JSON.parse((await koto(['status', '--json'], { env })).stdout) as { lastSession: { warnings: string[] } };
    expect(json.lastSession.warnings.join('\n')).toMatch(/correction/i);
    const line = (await koto(['status'], { env })).stdout;
    expect(line).toMatch(/last session \S+ done, warning: .*correction/i);
    expect(line + JSON.stringify(json)).not.toContain(KEY);
  });
});

describe('koto run with no reachable display', () => {
  function pasteConfig(dir: string): string {
    mkdirSync(dir);
    const file = path.join(dir, 'koto.yaml');
    config(file, good);
    writeFileSync(file, readFileSync(file, 'utf8').replace(/^output: .*$/m, 'output: [paste]'));
    return file;
  }

  it('DISPLAY and WAYLAND_DISPLAY unset: the text on stdout and in history, exit 1, the fix says where to run Koto', async () => {
    const dir = path.join(home.dir, 'no-display');
    const file = pasteConfig(dir);
    // The CLI helper passes PATH and HOME only: neither display variable reaches the run.
    const env = { KOTO_HOME: path.join(dir, 'home') };
    const run = await koto(['--no-daemon', '-c', file, 'run', wav], { env });
    expect(run.stdout).toBe(`${TEXT}\n`);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('neither DISPLAY nor WAYLAND_DISPLAY is set');
    expect(run.stderr).toContain('(KOTO_ERR_OUTPUT)');
    const history = await koto(['history', '--json', '-n', '1'], { env });
    expect(JSON.parse(history.stdout)).toMatchObject({ text: TEXT, errorCode: 'KOTO_ERR_OUTPUT' });
  });

  it('a dead WAYLAND_DISPLAY with wl-clipboard and wtype installed: the fix names the display, not packages to install', async () => {
    const dir = path.join(home.dir, 'dead-wayland');
    const file = pasteConfig(dir);
    const runtime = path.join(dir, 'run');
    mkdirSync(runtime, { mode: 0o700 });
    const env = { KOTO_HOME: path.join(dir, 'home'), WAYLAND_DISPLAY: 'wayland-koto-gone', XDG_RUNTIME_DIR: runtime };
    const run = await koto(['--no-daemon', '-c', file, 'run', wav], { env });
    expect(run.stdout).toBe(`${TEXT}\n`);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('WAYLAND_DISPLAY=wayland-koto-gone) cannot be reached');
    expect(run.stderr).not.toMatch(/apt install|xsel/);
  });
});
