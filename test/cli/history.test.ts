/**
 * `koto history`: `-n` is checked, the data folder must be private (issue #17, point 1), and
 * several processes write the one history file at once without losing a row.
 */
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Daemon } from '../../src/daemon/daemon.ts';
import { HistoryStore } from '../../src/history/store.ts';
import { createKernel, KotoError } from '../../src/index.ts';
import { startOpenAIServer, tempHome, type OpenAIServer } from '../support/index.ts';
import { toneSource, userEnv, wav, KEY } from '../daemon/nothing-lost-support.ts';
import { koto, type CliResult } from './support.ts';

const home = tempHome('koto-cli-history-');
let server: OpenAIServer;

beforeAll(async () => {
  server = await startOpenAIServer({ apiKey: KEY, transcribe: () => 'hello', complete: () => 'Hello.' });
});
afterAll(async () => {
  await server.close();
  home.cleanup();
});

function oneErrorLine(result: CliResult, code: string, exit: number): string {
  expect(result.code).toBe(exit);
  expect(result.stdout).toBe('');
  const lines = result.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`^koto: .*\\(${code}\\)$`));
  return lines[0]!;
}

function fresh(name: string): { dir: string; env: NodeJS.ProcessEnv; data: string } {
  const dir = path.join(home.dir, name);
  mkdirSync(dir, { recursive: true });
  const env = userEnv(server, dir);
  return { dir, env, data: path.join(env.KOTO_HOME!, 'data') };
}

describe('koto history -n', () => {
  it.each(['0', '-5', 'abc', '1e9', '2.5', '100001', ''])('-n %j is a usage error (exit 2, one line)', async (value) => {
    const { dir, env } = fresh(`n-${value || 'empty'}`);
    const line = oneErrorLine(await koto(['history', '-n', value], { env, cwd: dir }), 'KOTO_ERR_USAGE', 2);
    expect(line).toContain('-n must be a whole number from 1 to 100000');
  });

  it('-n N lists at most N rows, newest first', async () => {
    const { dir, env, data } = fresh('n-ok');
    const store = new HistoryStore(path.join(data, 'history.sqlite'));
    for (let i = 0; i < 3; i++)
      store.finish({
        id: `2026010${i}-000000-aaaaa${i}`,
        state: 'done',
        input: 'x',
        raw: 'r',
        text: `t${i}`,
        fallback: false,
        asrProvider: undefined,
        asrModel: undefined,
        correctionProvider: undefined,
        correctionModel: undefined,
        audioPath: undefined,
        timings: {},
        error: undefined,
        warnings: [],
      });
    store.close();
    const result = await koto(['history', '-n', '2'], { env, cwd: dir });
    expect(result.code).toBe(0);
    expect(
      result.stdout
        .trim()
        .split('\n')
        .map((l) => l.split(/\s+/)[0]),
    ).toEqual(['20260102-000000-aaaaa2', '20260101-000000-aaaaa1']);
  });
});

describe('the data folder must be private', () => {
  it('a data folder that is a symlink: history, run - and the Node API refuse with KOTO_ERR_UNSAFE_FOLDER, and nothing is sent', async () => {
    const { dir, env, data } = fresh('symlink');
    const elsewhere = path.join(dir, 'elsewhere');
    mkdirSync(elsewhere, { mode: 0o700 });
    mkdirSync(path.dirname(data), { recursive: true, mode: 0o700 });
    symlinkSync(elsewhere, data);
    const before = server.requests.length;

    const line = oneErrorLine(await koto(['history'], { env, cwd: dir }), 'KOTO_ERR_UNSAFE_FOLDER', 3);
    expect(line).toContain(`the data folder ${data} is not private to you: it is a symbolic link`);
    // `koto run` exits 1 when an input failed (docs/cli.md); the line names the code.
    oneErrorLine(await koto(['run', '-'], { env, cwd: dir, input: Buffer.from(wav) }), 'KOTO_ERR_UNSAFE_FOLDER', 1);
    const clip = path.join(dir, 'clip.wav');
    writeFileSync(clip, wav);
    oneErrorLine(await koto(['run', clip], { env, cwd: dir }), 'KOTO_ERR_UNSAFE_FOLDER', 1);

    const kernel = await createKernel({
      config: {
        providers: { main: { use: 'openai-compatible', baseUrl: server.baseUrl, apiKey: KEY } },
        transport: { ca: server.ca },
        audio: { source: 'tone' },
      },
      search: false,
      builtins: ['openai-compatible'],
      plugins: [toneSource],
      env: { KOTO_HOME: env.KOTO_HOME },
      logLevel: 'silent',
    });
    try {
      const run = await kernel.run(clip).catch((e: unknown) => e);
      expect(KotoError.is(run) && run.code).toBe('KOTO_ERR_UNSAFE_FOLDER');
      // A live recording is refused before the microphone opens.
      const record = await kernel.record().catch((e: unknown) => e);
      expect(KotoError.is(record) && record.code).toBe('KOTO_ERR_UNSAFE_FOLDER');
    } finally {
      await kernel.close();
    }
    expect(server.requests.slice(before).filter((r) => r.path.endsWith('/audio/transcriptions'))).toHaveLength(0);
    expect(existsSync(path.join(elsewhere, 'history.sqlite'))).toBe(false);
  });

  it.runIf(process.getuid?.() === 0)(
    'a data folder owned by another user (uid 65534): refused, naming the owner; the daemon does not start',
    async () => {
      const { dir, env, data } = fresh('other-owner');
      mkdirSync(data, { recursive: true, mode: 0o700 });
      chownSync(data, 65534, 65534);
      const line = oneErrorLine(await koto(['history'], { env, cwd: dir }), 'KOTO_ERR_UNSAFE_FOLDER', 3);
      expect(line).toContain('it is owned by uid 65534, not by you (uid 0)');
      expect(line).toContain('Fix: ');
      oneErrorLine(await koto(['run', '-'], { env, cwd: dir, input: Buffer.from(wav) }), 'KOTO_ERR_UNSAFE_FOLDER', 1);
      const err = await Daemon.start({
        config: {},
        search: false,
        builtins: false,
        env: { KOTO_HOME: env.KOTO_HOME },
        logLevel: 'silent',
        watch: false,
      }).catch((e: unknown) => e);
      expect(KotoError.is(err) && err.code).toBe('KOTO_ERR_UNSAFE_FOLDER');
      expect(existsSync(path.join(env.KOTO_HOME!, 'run', 'koto.sock'))).toBe(false);
    },
  );

  it('a data folder of ours left readable by others (an old umask) is tightened to 0700; the history file is 0600', async () => {
    const { dir, env, data } = fresh('loose');
    mkdirSync(data, { recursive: true });
    chmodSync(data, 0o755);
    const result = await koto(['run', '-'], { env, cwd: dir, input: Buffer.from(wav) });
    expect(result).toMatchObject({ code: 0, stdout: 'Hello.\n' });
    expect(statSync(data).mode & 0o777).toBe(0o700);
    expect(statSync(path.join(data, 'recordings')).mode & 0o777).toBe(0o700);
    expect(statSync(path.join(data, 'history.sqlite')).mode & 0o777).toBe(0o600);
  });
});

describe('a history file that cannot be opened', () => {
  it('koto history says so in one line with the fix; a dictation is still delivered, with a warning', async () => {
    const { dir, env, data } = fresh('corrupt');
    mkdirSync(data, { recursive: true, mode: 0o700 });
    const file = path.join(data, 'history.sqlite');
    writeFileSync(file, 'this is not a database, it is a text file that got in the way'.repeat(100), { mode: 0o600 });
    const line = oneErrorLine(await koto(['history'], { env, cwd: dir }), 'KOTO_ERR_HISTORY_UNREADABLE', 1);
    expect(line).toContain(`the history ${file} cannot be opened`);
    expect(line).toContain(`mv ${file} ${file}.broken`);
    const run = await koto(['run', '-'], { env, cwd: dir, input: Buffer.from(wav) });
    expect(run).toMatchObject({ code: 0, stdout: 'Hello.\n' });
    expect(run.stderr).toMatch(/^koto: warning: -: the session is not in the history: the history .* cannot be opened/m);
  });
});

describe('several processes write one history', () => {
  it('four processes, 150 sessions each, begun and finished at once: every row is there, none failed', async () => {
    const { data } = fresh('concurrent');
    const file = path.join(data, 'history.sqlite');
    const store = fileURLToPath(new URL('../../dist/src/history/store.js', import.meta.url));
    const script = `
      const { HistoryStore } = await import(${JSON.stringify(store)});
      const [file, tag] = process.argv.slice(-2);
      const h = new HistoryStore(file);
      for (let i = 0; i < 150; i++) {
        const id = tag + '-' + i;
        h.begin({ id, input: 'x' });
        h.finish({ id, state: 'done', input: 'x', raw: 'r', text: 't', fallback: false, timings: {}, warnings: [] });
      }
      h.close();
    `;
    const runs = ['a', 'b', 'c', 'd'].map(
      (tag) =>
        new Promise<{ code: number | null; err: string }>((resolve) => {
          const child = spawn(process.execPath, ['--input-type=module', '-e', script, file, tag], { stdio: ['ignore', 'ignore', 'pipe'] });
          let err = '';
          child.stderr.on('data', (d: Buffer) => (err += d.toString()));
          child.on('close', (code) => resolve({ code, err }));
        }),
    );
    const results = await Promise.all(runs);
    expect(results).toEqual(results.map(() => ({ code: 0, err: '' })));
    const reader = new HistoryStore(file);
    try {
      const rows = reader.list(1000);
      expect(rows).toHaveLength(600);
      expect(rows.every((r) => r.state === 'done')).toBe(true);
    } finally {
      reader.close();
    }
  });
});
