/**
 * Issue #17, point 3: only Koto's files are deleted. History rows point at the user's own inputs
 * too (`koto run ~/meeting.wav`); retention, `koto history --clear` and `daemon.keepAudio: false`
 * delete only regular files whose real folder is the real recordings folder.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sendCommand } from '../../src/daemon/client.ts';
import type { Daemon } from '../../src/daemon/daemon.ts';
import { testDaemon } from '../support/daemon.ts';
import { KotoError } from '../../src/index.ts';
import { deleteIfOwned, isKotoOwned } from '../../src/kernel/owned-files.ts';
import { pruneRecordings } from '../../src/kernel/retention.ts';
import { startOpenAIServer, tempHome, type OpenAIServer } from '../support/index.ts';
import { koto } from '../cli/support.ts';
import { configText, historyRows, KEY, socketIn, spawnKoto, userEnv, waitFor, wav } from './nothing-lost-support.ts';

const TEXT = 'hello from the loopback';
let server: OpenAIServer;
const homes: ReturnType<typeof tempHome>[] = [];
const cleanups: (() => Promise<unknown> | unknown)[] = [];

function home(): string {
  const h = tempHome('koto-owned-');
  homes.push(h);
  return h.dir;
}

beforeAll(async () => {
  server = await startOpenAIServer({ apiKey: KEY, transcribe: () => TEXT, complete: () => TEXT });
});
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
  server.clearFaults();
});
afterAll(async () => {
  await server.close();
  for (const h of homes) h.cleanup();
});

/** The user's own files, which must survive everything below. */
function precious(dir: string, name: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, wav);
  return file;
}

function intact(file: string): boolean {
  return existsSync(file) && readFileSync(file).equals(Buffer.from(wav));
}

describe('isKotoOwned / deleteIfOwned', () => {
  it('only a regular file whose real folder is the real recordings folder', async () => {
    const dir = home();
    const recordings = path.join(dir, 'data', 'recordings');
    mkdirSync(recordings, { recursive: true });
    const own = precious(recordings, 'own.wav');
    const outside = precious(dir, 'meeting.wav');
    const link = path.join(recordings, 'link.wav');
    symlinkSync(outside, link);
    const alias = path.join(dir, 'alias');
    symlinkSync(recordings, alias);

    expect(await isKotoOwned(own, recordings)).toBe(true);
    // The same file through a symlinked alias of the folder is still ours (real paths compared).
    expect(await isKotoOwned(path.join(alias, 'own.wav'), recordings)).toBe(true);
    expect(await isKotoOwned(outside, recordings)).toBe(false);
    // `..` out of the folder, and a symlink inside pointing out: not ours.
    expect(await isKotoOwned(`${recordings}/../../meeting.wav`, recordings)).toBe(false);
    expect(await isKotoOwned(link, recordings)).toBe(false);
    expect(await isKotoOwned(recordings, recordings)).toBe(false);
    expect(await isKotoOwned(path.join(recordings, 'missing.wav'), recordings)).toBe(false);

    expect(await deleteIfOwned(link, recordings)).toBe(false);
    expect(await deleteIfOwned(outside, recordings)).toBe(false);
    expect(intact(outside)).toBe(true);
    expect(existsSync(link)).toBe(true);
    expect(await deleteIfOwned(own, recordings)).toBe(true);
    expect(existsSync(own)).toBe(false);
  });
});

describe('retention (pruneRecordings)', () => {
  it('never follows a symlink inside the recordings folder; the target and the link survive', async () => {
    const dir = home();
    const recordings = path.join(dir, 'recordings');
    mkdirSync(recordings);
    const outside = precious(dir, 'meeting.wav');
    symlinkSync(outside, path.join(recordings, 'aaa.wav'));
    const old = precious(recordings, 'old.wav');
    utimesSync(old, new Date('2020-01-01'), new Date('2020-01-01'));
    precious(recordings, 'new.wav');
    const deleted = await pruneRecordings(recordings, { recordings: 1, days: 0 }, 0);
    expect(deleted).toEqual([old]);
    expect(intact(outside)).toBe(true);
    expect(existsSync(path.join(recordings, 'aaa.wav'))).toBe(true);
  });

  it("refuses a recordings folder that is a symlink (it may be a folder of the user's own audio)", async () => {
    const dir = home();
    const music = path.join(dir, 'Music');
    mkdirSync(music);
    const song = precious(music, 'song.wav');
    utimesSync(song, new Date('2020-01-01'), new Date('2020-01-01'));
    symlinkSync(music, path.join(dir, 'recordings'));
    const err = await pruneRecordings(path.join(dir, 'recordings'), { recordings: 0, days: 1 }, 0).catch((e: unknown) => e);
    expect(KotoError.is(err) && err.code).toBe('KOTO_ERR_UNSAFE_FOLDER');
    expect(intact(song)).toBe(true);
  });
});

describe('the issue as reported: `koto run ~/meeting.wav` delegated to the daemon, then `koto history --clear`', () => {
  it("the user's file survives; Koto's own recording of stdin audio is deleted", async () => {
    const dir = home();
    const env: NodeJS.ProcessEnv = { ...userEnv(server, dir), HOME: dir };
    const configFile = path.join(dir, 'koto.yaml');
    writeFileSync(configFile, configText(server), { mode: 0o600 });
    const daemon = spawnKoto(['--config', configFile, 'daemon'], env, dir);
    cleanups.push(() => daemon.child.kill('SIGKILL'));
    await waitFor(() => /daemon listening/.test(daemon.output()), 'the daemon to listen');
    expect(await sendCommand(socketIn(env.KOTO_HOME!), 'ping')).toMatchObject({ pid: daemon.child.pid });

    const meeting = precious(dir, 'meeting.wav');
    expect(await koto(['run', '~/meeting.wav'.replace('~', dir)], { env, cwd: dir })).toMatchObject({ code: 0, stdout: `${TEXT}\n` });
    expect(await koto(['run', '-'], { env, cwd: dir, input: Buffer.from(wav) })).toMatchObject({ code: 0 });
    const rows = await historyRows(env, dir);
    expect(rows.map((r) => r.audioPath)).toContain(meeting);
    const own = rows.map((r) => r.audioPath!).find((p) => p !== meeting)!;
    expect(path.dirname(own)).toBe(path.join(env.KOTO_HOME!, 'data', 'recordings'));

    const cleared = await koto(['history', '--clear'], { env, cwd: dir });
    expect(cleared).toMatchObject({ code: 0, stdout: 'history cleared (2 sessions, 1 recordings removed)\n' });
    expect(intact(meeting)).toBe(true);
    expect(existsSync(own)).toBe(false);
    expect(await historyRows(env, dir)).toEqual([]);
  });
});

describe('the daemon: keepAudio: false and retention', () => {
  async function startDaemon(dir: string, extra: string[]): Promise<Daemon> {
    const configFile = path.join(dir, 'koto.yaml');
    writeFileSync(configFile, configText(server, extra), { mode: 0o600 });
    const daemon = await testDaemon({ configPath: configFile, env: { KOTO_HOME: path.join(dir, 'koto') } });
    cleanups.push(() => daemon.close());
    return daemon;
  }

  it('keepAudio: false deletes the recording of a delivered dictation, never an input file outside; failures keep theirs', async () => {
    const dir = home();
    const daemon = await startDaemon(dir, ['daemon:', '  keepAudio: false']);
    const socket = daemon.socketPath;
    const meeting = precious(dir, 'meeting.wav');
    const run = (await sendCommand(socket, 'run', { path: meeting })) as { id: string; state: string };
    expect(run.state).toBe('done');
    expect(intact(meeting)).toBe(true);
    expect(daemon.history.get(run.id)?.audioPath).toBe(meeting);

    await sendCommand(socket, 'start');
    await new Promise((r) => setTimeout(r, 100));
    const dictation = (await sendCommand(socket, 'stop', { wait: true })) as { id: string; audioPath: string };
    expect(existsSync(dictation.audioPath)).toBe(false);
    expect(daemon.history.get(dictation.id)?.audioPath).toBeNull();

    server.inject({ path: '/audio/transcriptions', status: 500 });
    await sendCommand(socket, 'start');
    await new Promise((r) => setTimeout(r, 100));
    const failed = await sendCommand(socket, 'stop', { wait: true }).catch((e: unknown) => e);
    expect((failed as KotoError).code).toBe('KOTO_ERR_UPSTREAM');
    const row = daemon.history.list(1)[0]!;
    expect(row.state).toBe('failed');
    expect(existsSync(row.audioPath!)).toBe(true);
  });

  it("retention at start prunes only its own recordings; rows of outside inputs keep their path; a symlink's target survives", async () => {
    const dir = home();
    const first = await startDaemon(dir, []);
    const meeting = precious(dir, 'meeting.wav');
    const outsideRun = (await sendCommand(first.socketPath, 'run', { path: meeting })) as { id: string };
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = (await sendCommand(first.socketPath, 'run', { data: Buffer.from(wav).toString('base64'), name: `clip${i}.wav` })) as {
        id: string;
        audioPath: string;
      };
      ids.push(r.id);
      // Distinct ages, oldest first, without waiting.
      utimesSync(r.audioPath, new Date(Date.now() - (10 - i) * 60_000), new Date(Date.now() - (10 - i) * 60_000));
    }
    await first.close();
    const recordings = path.join(dir, 'koto', 'data', 'recordings');
    const target = precious(dir, 'precious.wav');
    symlinkSync(target, path.join(recordings, '00-link.wav'));

    const next = await startDaemon(dir, ['daemon:', '  retention:', '    recordings: 1']);
    expect(intact(meeting)).toBe(true);
    expect(intact(target)).toBe(true);
    expect(existsSync(path.join(recordings, '00-link.wav'))).toBe(true);
    expect(readdirSync(recordings).sort()).toEqual(['00-link.wav', `${ids[2]}.wav`]);
    expect(next.history.get(outsideRun.id)?.audioPath).toBe(meeting);
    expect(next.history.get(ids[0]!)?.audioPath).toBeNull();
    expect(next.history.get(ids[2]!)?.audioPath).toBe(path.join(recordings, `${ids[2]}.wav`));
  });

  it('refuses to start when the recordings folder is a symlink, and deletes nothing behind it', async () => {
    const dir = home();
    const music = path.join(dir, 'Music');
    mkdirSync(music);
    const song = precious(music, 'song.wav');
    mkdirSync(path.join(dir, 'koto', 'data'), { recursive: true, mode: 0o700 });
    symlinkSync(music, path.join(dir, 'koto', 'data', 'recordings'));
    chmodSync(path.join(dir, 'koto'), 0o700);
    const err = await startDaemon(dir, ['daemon:', '  retention:', '    recordings: 1', '    days: 1']).catch((e: unknown) => e);
    expect(KotoError.is(err) && err.code).toBe('KOTO_ERR_UNSAFE_FOLDER');
    expect((err as KotoError).message).toContain('symbolic link');
    expect(intact(song)).toBe(true);
    expect(existsSync(path.join(dir, 'koto', 'run', 'koto.sock'))).toBe(false);
  });
});
