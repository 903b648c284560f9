/**
 * Issue #17, point 5: nothing is lost, for every entry point. Standalone `koto run FILE`,
 * `koto run -` and the Node API's `kernel.run()` leave a `failed` history row that `koto retry`
 * runs again; `koto cancel` during transcription aborts the request in flight and records
 * `cancelled`; one daemon per data folder, and a daemon starting never takes a live session
 * (its own predecessor's killed one, yes) for an interrupted one.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sendCommand } from '../../src/daemon/client.ts';
import type { Daemon } from '../../src/daemon/daemon.ts';
import { testDaemon } from '../support/daemon.ts';
import { createKernel, KotoError, type Kernel } from '../../src/index.ts';
import { startOpenAIServer, tempHome, type OpenAIServer } from '../support/index.ts';
import { koto } from '../cli/support.ts';
import {
  ASR,
  configText,
  errorCode,
  historyRows,
  KEY,
  socketIn,
  spawnKoto,
  toneStopped,
  transcriptionGate,
  userEnv,
  waitFor,
  wav,
} from './nothing-lost-support.ts';

const TEXT = 'hello from the loopback';
const gate = transcriptionGate(TEXT);
let server: OpenAIServer;
const homes: ReturnType<typeof tempHome>[] = [];
const cleanups: (() => Promise<unknown> | unknown)[] = [];

function home(): string {
  const h = tempHome('koto-nothing-lost-');
  homes.push(h);
  return h.dir;
}

beforeAll(async () => {
  server = await startOpenAIServer({ apiKey: KEY, transcribe: gate.transcribe, complete: () => TEXT });
});

afterEach(async () => {
  gate.releaseAll();
  for (const fn of cleanups.splice(0).reverse()) await fn();
  server.clearFaults();
});

afterAll(async () => {
  await server.close();
  for (const h of homes) h.cleanup();
});

async function startDaemon(dir: string, options: { socketPath?: string; extra?: string[] } = {}): Promise<Daemon> {
  const configFile = path.join(dir, 'koto.yaml');
  writeFileSync(configFile, configText(server, options.extra), { mode: 0o600 });
  const daemon = await testDaemon({ configPath: configFile, env: { KOTO_HOME: path.join(dir, 'koto') }, socketPath: options.socketPath });
  cleanups.push(() => daemon.close());
  return daemon;
}

function transcriptions() {
  return server.requests.filter((r) => r.path.endsWith(ASR));
}

describe('standalone `koto run` failures leave a failed row that `koto retry` runs again', () => {
  it('koto run FILE against an upstream failing with 500s → failed row pointing at the file; koto retry once it recovers → done', async () => {
    const dir = home();
    const env = userEnv(server, dir);
    const clip = path.join(dir, 'clip.wav');
    writeFileSync(clip, wav);
    server.inject({ path: ASR, status: 500, times: Infinity });
    const failed = await koto(['run', clip], { env, cwd: dir });
    expect(failed.code).toBe(1);
    expect(errorCode(failed)).toBe('KOTO_ERR_UPSTREAM');
    const [row] = await historyRows(env, dir);
    expect(row).toMatchObject({ state: 'failed', errorCode: 'KOTO_ERR_UPSTREAM', audioPath: clip, input: clip });
    expect(failed.stderr).toContain(`koto retry ${row!.id}`);

    server.clearFaults();
    const retried = await koto(['retry', row!.id], { env, cwd: dir });
    expect(retried).toMatchObject({ code: 0, stdout: `${TEXT}\n` });
    const rows = await historyRows(env, dir);
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatchObject({ state: 'done', text: TEXT, retryOf: row!.id, audioPath: clip });
    expect(rows[1]).toMatchObject({ id: row!.id, state: 'failed' });
  });

  it('a bad key → failed row (KOTO_ERR_AUTH), the key never in it; koto retry with the right key → done', async () => {
    const dir = home();
    const clip = path.join(dir, 'clip.wav');
    writeFileSync(clip, wav);
    const badKey = 'sk-wrong-key-0000';
    const failed = await koto(['run', clip], { env: userEnv(server, dir, { OPENAI_API_KEY: badKey }), cwd: dir });
    expect(failed.code).toBe(1);
    expect(errorCode(failed)).toBe('KOTO_ERR_AUTH');
    const env = userEnv(server, dir);
    const [row] = await historyRows(env, dir);
    expect(row).toMatchObject({ state: 'failed', errorCode: 'KOTO_ERR_AUTH', audioPath: clip });
    const history = readFileSync(path.join(dir, 'koto', 'data', 'history.sqlite'));
    expect(history.includes(badKey)).toBe(false);
    expect(await koto(['retry', row!.id], { env, cwd: dir })).toMatchObject({ code: 0, stdout: `${TEXT}\n` });
  });

  it('koto run - : the stdin audio is saved before sending, the failed row points at that copy, and koto retry works', async () => {
    const dir = home();
    const env = userEnv(server, dir);
    server.inject({ path: ASR, status: 503, times: Infinity });
    const failed = await koto(['run', '-'], { env, cwd: dir, input: Buffer.from(wav) });
    expect(failed.code).toBe(1);
    expect(errorCode(failed)).toBe('KOTO_ERR_UPSTREAM');
    const [row] = await historyRows(env, dir);
    expect(row).toMatchObject({ state: 'failed', input: '-' });
    expect(path.dirname(row!.audioPath!)).toBe(path.join(dir, 'koto', 'data', 'recordings'));
    expect(readFileSync(row!.audioPath!).equals(Buffer.from(wav))).toBe(true);
    // What was sent (and failed) is exactly what was saved.
    expect(transcriptions().at(-1)?.form?.files.file?.data.equals(Buffer.from(wav))).toBe(true);

    server.clearFaults();
    expect(await koto(['retry', row!.id], { env, cwd: dir })).toMatchObject({ code: 0, stdout: `${TEXT}\n` });
    expect((await historyRows(env, dir))[0]).toMatchObject({ state: 'done', retryOf: row!.id });
  });

  it('koto retry of an unknown id, or of a row whose file is gone: one line, the code, exit 1', async () => {
    const dir = home();
    const env = userEnv(server, dir);
    const clip = path.join(dir, 'gone.wav');
    writeFileSync(clip, wav);
    server.inject({ path: ASR, status: 500, times: Infinity });
    await koto(['run', clip], { env, cwd: dir });
    const [row] = await historyRows(env, dir);
    const unknown = await koto(['retry', 'no-such-id'], { env, cwd: dir });
    expect(unknown.code).toBe(1);
    expect(errorCode(unknown)).toBe('KOTO_ERR_HISTORY_NOT_FOUND');
    await import('node:fs/promises').then((fs) => fs.rm(clip));
    const gone = await koto(['retry', row!.id], { env, cwd: dir });
    expect(gone.code).toBe(1);
    expect(errorCode(gone)).toBe('KOTO_ERR_NO_RECORDING');
    expect(gone.stderr.trim().split('\n')).toHaveLength(1);
  });
});

describe('Node API', () => {
  async function kernel(dir: string, history?: boolean): Promise<Kernel> {
    const k = await createKernel({
      config: {
        providers: { main: { use: 'openai-compatible', baseUrl: server.baseUrl, apiKey: KEY } },
        asr: { retries: 0 },
        correction: { enabled: false },
        transport: { ca: server.ca },
      },
      search: false,
      builtins: ['openai-compatible'],
      env: { KOTO_HOME: path.join(dir, 'koto') },
      logLevel: 'silent',
      ...(history === undefined ? {} : { history }),
    });
    cleanups.push(() => k.close());
    return k;
  }

  it('kernel.run() failing → a failed row with the saved audio; a later kernel.run of it is recorded as its retry', async () => {
    const dir = home();
    const k = await kernel(dir);
    server.inject({ path: ASR, status: 500, times: Infinity });
    const err = await k.run({ data: wav, name: 'api.wav' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(KotoError.is(err) && err.code).toBe('KOTO_ERR_UPSTREAM');
    const record = (err as { record: { id: string; audioPath: string } }).record;
    expect(k.history.get(record.id)).toMatchObject({
      state: 'failed',
      errorCode: 'KOTO_ERR_UPSTREAM',
      audioPath: record.audioPath,
      input: 'api.wav',
    });
    expect(existsSync(record.audioPath)).toBe(true);
    server.clearFaults();
    const again = await k.run(record.audioPath, { retryOf: record.id });
    expect(k.history.get(again.id)).toMatchObject({ state: 'done', text: TEXT, retryOf: record.id });
  });

  it('history: false opts out: no row, no history file', async () => {
    const dir = home();
    const k = await kernel(dir, false);
    const clip = path.join(dir, 'clip.wav');
    writeFileSync(clip, wav);
    expect((await k.run(clip)).text).toBe(TEXT);
    expect(existsSync(path.join(dir, 'koto', 'data', 'history.sqlite'))).toBe(false);
  });
});

describe('koto cancel during transcription', () => {
  it('aborts the request in flight, records `cancelled`, delivers nothing, keeps the recording; the session queued behind it still lands', async () => {
    const dir = home();
    const daemon = await startDaemon(dir);
    const socket = daemon.socketPath;
    const before = transcriptions().length;
    gate.holdNext();
    await sendCommand(socket, 'start');
    await new Promise((r) => setTimeout(r, 150));
    const first = (await sendCommand(socket, 'stop')) as { id: string };
    await waitFor(() => transcriptions().length === before + 1, 'the first transcription to reach the server');
    const held = transcriptions().at(-1)!;
    // A second dictation, stopped while the first is still transcribing: queued behind it.
    await sendCommand(socket, 'start');
    await new Promise((r) => setTimeout(r, 100));
    const second = (await sendCommand(socket, 'stop')) as { id: string };
    // Queued behind the first, but its microphone is released at once, not when its turn comes.
    await waitFor(() => toneStopped.includes(second.id), 'the second capture to stop');

    const cancelled = (await sendCommand(socket, 'cancel')) as { id: string; message: string };
    expect(cancelled).toMatchObject({ id: first.id });
    expect(cancelled.message).toContain(`koto retry ${first.id}`);
    // The server saw the upload aborted by the client, not answered.
    await waitFor(() => held.aborted === true, 'the server to see the request aborted');
    const row = daemon.history.get(first.id);
    expect(row).toMatchObject({ state: 'cancelled', errorCode: 'KOTO_ERR_ABORTED', text: null });
    expect(existsSync(row!.audioPath!)).toBe(true);

    // The second one goes on, in order, and is the only text the output got.
    await waitFor(() => daemon.history.get(second.id)?.state === 'done', 'the queued session to finish');
    expect(readFileSync(path.join(dir, 'out.txt'), 'utf8')).toBe(`${TEXT}\n`);
    expect(held.aborted).toBe(true);
    expect(transcriptions().at(-1)?.aborted).toBeUndefined();

    // Nothing is in flight now; the cancelled one can be retried.
    expect(await sendCommand(socket, 'cancel')).toMatchObject({ message: 'nothing to cancel' });
    const retried = (await sendCommand(socket, 'retry', { id: first.id })) as { text: string; id: string };
    expect(retried.text).toBe(TEXT);
    expect(daemon.history.get(retried.id)).toMatchObject({ state: 'done', retryOf: first.id });
  });

  it('a retry in flight is cancelled the same way', async () => {
    const dir = home();
    const daemon = await startDaemon(dir);
    const clip = path.join(dir, 'clip.wav');
    writeFileSync(clip, wav);
    server.inject({ path: ASR, status: 500 });
    const failed = await sendCommand(daemon.socketPath, 'run', { path: clip }).catch((e: unknown) => e);
    expect((failed as KotoError).code).toBe('KOTO_ERR_UPSTREAM');
    const id = daemon.history.list(1)[0]!.id;
    const before = transcriptions().length;
    gate.holdNext();
    const retry = sendCommand(daemon.socketPath, 'retry', { id }).catch((e: unknown) => e);
    await waitFor(() => transcriptions().length === before + 1, 'the retry to reach the server');
    expect(await sendCommand(daemon.socketPath, 'cancel')).toMatchObject({ id });
    expect(((await retry) as KotoError).code).toBe('KOTO_ERR_ABORTED');
    await waitFor(() => transcriptions().at(-1)?.aborted === true, 'the server to see the retry aborted');
    expect(daemon.history.list(1)[0]).toMatchObject({ state: 'cancelled', retryOf: id });
    expect(existsSync(clip)).toBe(true);
  });
});

describe('daemon.maxRecordingMs', () => {
  it('a recording that reaches its maximum length is finished by itself, through the queue, and recorded', async () => {
    const dir = home();
    const daemon = await startDaemon(dir, { extra: ['daemon:', '  maxRecordingMs: 300'] });
    const started = (await sendCommand(daemon.socketPath, 'start')) as { id: string };
    await waitFor(() => daemon.history.get(started.id)?.state === 'done', 'the session to finish by itself');
    expect(daemon.status()).toMatchObject({ state: 'idle', recording: undefined });
    expect(readFileSync(path.join(dir, 'out.txt'), 'utf8')).toBe(`${TEXT}\n`);
    expect(await sendCommand(daemon.socketPath, 'stop')).toMatchObject({ message: 'not recording (no change)' });
  });
});

describe('one daemon per data folder', () => {
  it('a second daemon with its own runtime folder but the same data folder refuses to start, naming the first; the live session stays live', async () => {
    const dir = home();
    const first = await startDaemon(dir);
    await sendCommand(first.socketPath, 'start');
    const id = ((await sendCommand(first.socketPath, 'status')) as { recording: { id: string } }).recording.id;
    const otherSocket = path.join(dir, 'other-run', 'koto.sock');
    const err = await startDaemon(dir, { socketPath: otherSocket }).catch((e: unknown) => e);
    expect(KotoError.is(err) && err.code).toBe('KOTO_ERR_DATA_FOLDER_IN_USE');
    expect((err as KotoError).message).toContain(`pid ${process.pid}`);
    expect((err as KotoError).message).toContain(path.join(dir, 'koto', 'data'));
    expect(existsSync(otherSocket)).toBe(false);
    expect(first.history.get(id)?.state).toBe('recording');
    const record = (await sendCommand(first.socketPath, 'stop', { wait: true })) as { state: string };
    expect(record.state).toBe('done');
    // Once the first is gone, the folder is free.
    await first.close();
    const next = await startDaemon(dir, { socketPath: otherSocket });
    expect(next.status().interrupted).toEqual([]);
  });

  it("`koto daemon` twice on one data folder (two runtime folders): the second exits with the code and the first one's pid", async () => {
    const dir = home();
    const configFile = path.join(dir, 'koto.yaml');
    writeFileSync(configFile, configText(server), { mode: 0o600 });
    // XDG layout: one data folder, two runtime folders (two sockets).
    const env = (run: string) => {
      mkdirSync(path.join(dir, run), { recursive: true, mode: 0o700 });
      return {
        HOME: dir,
        XDG_DATA_HOME: path.join(dir, 'data'),
        XDG_STATE_HOME: path.join(dir, 'state'),
        XDG_RUNTIME_DIR: path.join(dir, run),
      };
    };
    const first = spawnKoto(['--config', configFile, 'daemon'], env('run1'), dir);
    cleanups.push(() => first.child.kill('SIGKILL'));
    await waitFor(() => /daemon listening/.test(first.output()), 'the first daemon to listen');
    const second = spawnKoto(['--config', configFile, 'daemon'], env('run2'), dir);
    cleanups.push(() => second.child.kill('SIGKILL'));
    expect(await second.exited).toBe(1);
    const lines = second.output().trim().split('\n');
    expect(lines, second.output()).toHaveLength(1);
    expect(lines[0]).toContain('(KOTO_ERR_DATA_FOLDER_IN_USE)');
    expect(lines[0]).toContain(`pid ${first.child.pid}`);
    expect(existsSync(path.join(dir, 'run2', 'koto', 'koto.sock'))).toBe(false);
    // The first one is unharmed.
    expect(await sendCommand(path.join(dir, 'run1', 'koto', 'koto.sock'), 'ping')).toMatchObject({ pid: first.child.pid });
  });

  it('a daemon killed with -9 mid-session leaves no lock behind: the next one starts, marks the session interrupted, and it can be retried', async () => {
    const dir = home();
    const configFile = path.join(dir, 'koto.yaml');
    writeFileSync(configFile, configText(server), { mode: 0o600 });
    const kotoHome = path.join(dir, 'koto');
    const crashed = spawnKoto(['--config', configFile, 'daemon'], { KOTO_HOME: kotoHome }, dir);
    cleanups.push(() => crashed.child.kill('SIGKILL'));
    await waitFor(() => /daemon listening/.test(crashed.output()), 'the daemon to listen');
    const clip = path.join(dir, 'clip.wav');
    writeFileSync(clip, wav);
    const before = transcriptions().length;
    gate.holdNext();
    const delegated = sendCommand(socketIn(kotoHome), 'run', { path: clip }, 60_000).catch((e: unknown) => e);
    await waitFor(() => transcriptions().length === before + 1, 'the delegated run to reach the server');
    crashed.child.kill('SIGKILL');
    await crashed.exited;
    await delegated;
    expect(existsSync(path.join(kotoHome, 'data', 'daemon.lock'))).toBe(true);

    const next = await startDaemon(dir);
    const interrupted = next.status().interrupted;
    expect(interrupted).toHaveLength(1);
    const id = interrupted[0]!;
    expect(next.history.get(id)).toMatchObject({ state: 'interrupted', audioPath: clip });
    gate.releaseAll();
    const retried = (await sendCommand(next.socketPath, 'retry', { id })) as { text: string };
    expect(retried.text).toBe(TEXT);
  });

  it('a daemon starting does not mark a standalone `koto run` still in flight as interrupted', async () => {
    const dir = home();
    const env = userEnv(server, dir);
    const clip = path.join(dir, 'clip.wav');
    writeFileSync(clip, wav);
    const before = transcriptions().length;
    const release = gate.holdNext();
    const run = spawnKoto(['--no-daemon', 'run', clip], env, dir);
    cleanups.push(() => run.child.kill('SIGKILL'));
    await waitFor(() => transcriptions().length === before + 1, 'the standalone run to reach the server');
    const daemon = await startDaemon(dir);
    expect(daemon.status().interrupted).toEqual([]);
    const row = daemon.history.list(1)[0]!;
    expect(row).toMatchObject({ state: 'transcribing', audioPath: clip });
    release();
    expect(await run.exited).toBe(0);
    expect(run.output()).toBe(`${TEXT}\n`);
    expect(daemon.history.get(row.id)).toMatchObject({ state: 'done', text: TEXT });
  });
});
