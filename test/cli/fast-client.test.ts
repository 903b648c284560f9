/**
 * The fast control client (src/cli/fast.ts, issue #16): the real bin against a real daemon's
 * socket. Every control command, its exit codes, --json, --wait, and what it loads: a key bound
 * to `koto start` must not pay for commander, zod, undici, tapable or any plugin.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../../src/daemon/daemon.ts';
import { testDaemon } from '../support/daemon.ts';
import { startOpenAIServer, tempHome, type OpenAIServer } from '../support/index.ts';
import { koto } from './support.ts';

const TRACE = fileURLToPath(new URL('../support/trace-modules.mjs', import.meta.url));
const HEAVY = [
  '/commander/',
  '/zod/',
  '/undici/',
  '/tapable/',
  '/yaml/',
  '/chokidar/',
  '/plugins/',
  '/kernel/kernel.js',
  '/kernel/config/',
  // Loading node:crypto costs a key press several milliseconds; only a large stdin upload needs it.
  'node:crypto',
];

let server: OpenAIServer;
let home: ReturnType<typeof tempHome>;
let daemon: Daemon;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  server = await startOpenAIServer({ transcribe: () => 'hello fast client', complete: () => 'Hello, fast client.' });
  home = tempHome('koto-fast-');
  const config = path.join(home.dir, 'koto.yaml');
  writeFileSync(
    config,
    [
      'providers:',
      `  main: { use: openai-compatible, baseUrl: ${server.baseUrl}, apiKey: sk-fast-client-canary-77 }`,
      'asr: { model: whisper-1 }',
      'correction: { model: gpt-test, stream: false }',
      'audio: { source: tone }',
      'output: [ { use: file, path: ./out.txt } ]',
      `transport: { ca: ${JSON.stringify(server.ca)} }`,
      '',
    ].join('\n'),
  );
  env = { KOTO_HOME: home.dir };
  daemon = await testDaemon({ configPath: config, env });
});

afterAll(async () => {
  await daemon?.close();
  await server?.close();
  home?.cleanup();
});

/** Runs the bin with the module tracer; returns the result and every module URL it loaded. */
async function traced(args: string[], extraEnv: NodeJS.ProcessEnv = env) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'koto-trace-'));
  const file = path.join(dir, 'modules.txt');
  writeFileSync(file, '');
  try {
    const result = await koto(args, { env: { ...extraEnv, NODE_OPTIONS: `--import=${TRACE}`, KOTO_TRACE_MODULES: file } });
    return { ...result, modules: readFileSync(file, 'utf8').split('\n').filter(Boolean) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function heavy(modules: string[]): string[] {
  return modules.filter((url) => HEAVY.some((part) => url.includes(part)));
}

describe('the fast control client', () => {
  it('start, status, stop --wait, status --json: answers from the daemon without loading any heavy module', async () => {
    const start = await traced(['start']);
    expect(start.stderr).toBe('');
    expect(start.code).toBe(0);
    expect(start.stdout).toMatch(/^recording \(\d{8}-\d{6}-[0-9a-f]+\)\n$/);
    // The tracer works (it saw the fast client), and nothing heavy came with it.
    expect(start.modules.some((m) => m.endsWith('/dist/src/cli/fast.js'))).toBe(true);
    expect(heavy(start.modules)).toEqual([]);

    const status = await traced(['status']);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/^recording \d{8}-/);
    expect(status.stdout).toMatch(/last start \(cli\)/);
    expect(heavy(status.modules)).toEqual([]);

    const stop = await traced(['stop', '--wait']);
    expect(stop.stderr).toBe('');
    expect(stop.code).toBe(0);
    expect(stop.stdout).toBe('Hello, fast client.\n');
    expect(heavy(stop.modules)).toEqual([]);
    expect(readFileSync(path.join(home.dir, 'out.txt'), 'utf8')).toContain('Hello, fast client.');

    const json = await traced(['status', '--json']);
    const parsed = JSON.parse(json.stdout) as {
      state: string;
      pid: number;
      audio: { lastStart: { source: string; keyToStartMs: number } };
    };
    expect(parsed.state).toBe('idle');
    expect(parsed.pid).toBe(process.pid);
    // The fast client sent its own start time: the daemon measured trigger → recording from it.
    expect(parsed.audio.lastStart.source).toBe('cli');
    expect(parsed.audio.lastStart.keyToStartMs).toBeGreaterThanOrEqual(0);
    expect(heavy(json.modules)).toEqual([]);
  });

  it('toggle, cancel and --json answers', async () => {
    const on = await koto(['toggle', '--json'], { env });
    expect(on.code).toBe(0);
    const started = JSON.parse(on.stdout) as { state: string; id: string };
    expect(started.state).toBe('recording');
    const again = await koto(['start'], { env });
    expect(again.stdout).toBe('already recording (no change)\n');
    const cancel = await koto(['cancel'], { env });
    expect(cancel.code).toBe(0);
    expect(cancel.stdout).toBe(`cancelled (${started.id})\n`);
    const idle = await koto(['stop'], { env });
    expect(idle.stdout).toBe('not recording (no change)\n');
  });

  it('no daemon: exit 4 with the readable error, for every control command', async () => {
    const empty = tempHome('koto-fast-none-');
    try {
      for (const cmd of ['start', 'stop', 'toggle', 'cancel', 'status']) {
        const result = await traced([cmd], { KOTO_HOME: empty.dir });
        expect(result.code, cmd).toBe(4);
        expect(result.stdout).toBe('');
        expect(result.stderr).toMatch(/^koto: no Koto daemon is running .*Fix: start one with `koto daemon`.*\(KOTO_ERR_NO_DAEMON\)\n$/);
        expect(heavy(result.modules)).toEqual([]);
      }
    } finally {
      empty.cleanup();
    }
  });

  it('anything it does not handle goes to the full CLI: --help, unknown flags, status --wait', async () => {
    const help = await traced(['start', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: koto start');
    const unknown = await koto(['stop', '--bogus'], { env });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown option '--bogus'");
  });

  it('`koto --help` starts lazily: commander only, no kernel, no zod, no undici', async () => {
    const help = await traced(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: koto');
    expect(help.modules.some((m) => m.includes('/commander/'))).toBe(true);
    expect(heavy(help.modules).filter((m) => !m.includes('/commander/'))).toEqual([]);
  });
});
