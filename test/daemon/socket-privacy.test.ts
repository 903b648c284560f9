import {
  chmodSync,
  chownSync,
  existsSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  renameSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { sendCommand } from '../../src/daemon/client.ts';
import { Daemon } from '../../src/daemon/daemon.ts';
import { kotoPaths } from '../../src/kernel/paths.ts';
import { encodeWav, KotoError } from '../../src/index.ts';
import { koto as kotoCli } from '../cli/support.ts';
import { startOpenAIServer, tempHome, type OpenAIServer } from '../support/index.ts';

// Real child processes on a shared 2-core machine: generous deadlines, never asserted on.
vi.setConfig({ testTimeout: 180_000, hookTimeout: 60_000 });
const koto: typeof kotoCli = (args, options = {}) => kotoCli(args, { timeoutMs: 120_000, ...options });

/**
 * Issue #17: with XDG_RUNTIME_DIR unset the control socket lives under $TMPDIR, where another
 * local user can create Koto's folder first. Neither the daemon nor any client may use a runtime
 * folder or socket that is not private to the user: each case is refused with one readable line,
 * and the "attacker" listening in the hijacked place never receives a connection.
 */

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const NOBODY = 65534;
const uid = process.getuid?.() ?? 0;
const rootOnly = isRoot ? it : it.skip; // chown to another user needs root (tests run as root in CI)
if (!isRoot) console.warn('socket-privacy: not root, so the "owned by another user" cases are skipped (chown to 65534 needs root)');

let home: ReturnType<typeof tempHome>;
let attackers: Attacker[] = [];

interface Attacker {
  connections: number;
  server: net.Server;
}

/** Someone else's socket, counting every connection it receives. */
async function attackerAt(socketPath: string): Promise<Attacker> {
  const attacker: Attacker = { connections: 0, server: net.createServer() };
  attacker.server.on('connection', (socket) => {
    attacker.connections += 1;
    socket.on('data', () => socket.write('{"id":1,"ok":true,"result":{"pid":1,"state":"idle"}}\n'));
  });
  await new Promise<void>((resolve) => attacker.server.listen(socketPath, () => resolve()));
  attackers.push(attacker);
  return attacker;
}

/** The environment of a user without KOTO_HOME (koto() passes nothing else through). */
function userEnv(runtimeParent: string): NodeJS.ProcessEnv {
  return {
    HOME: home.dir,
    XDG_RUNTIME_DIR: runtimeParent,
    XDG_CONFIG_HOME: path.join(home.dir, 'config'),
    XDG_DATA_HOME: path.join(home.dir, 'data'),
    XDG_STATE_HOME: path.join(home.dir, 'state'),
  };
}

function startDaemon(env: NodeJS.ProcessEnv, extra: Partial<Parameters<typeof Daemon.start>[0]> = {}): Promise<Daemon> {
  return Daemon.start({
    config: {},
    search: false,
    builtins: false,
    env,
    logLevel: 'silent',
    watch: false,
    shutdownTimeoutMs: 2000,
    ...extra,
  });
}

async function refusal(promise: Promise<unknown>): Promise<KotoError> {
  try {
    await promise;
  } catch (err) {
    if (KotoError.is(err)) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

/** One line on stderr, with the code, and no stack trace. */
function expectOneLine(stderr: string, code: string): void {
  const lines = stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`^koto: .*\\(${code}\\)$`));
  expect(stderr).not.toMatch(/\n\s+at /);
}

beforeAll(() => {
  home = tempHome('koto-socket-privacy-');
});

afterAll(() => home.cleanup());

afterEach(async () => {
  for (const a of attackers) await new Promise<void>((r) => a.server.close(() => r()));
  attackers = [];
});

let caseNo = 0;
/** A fresh XDG_RUNTIME_DIR (0700, ours); Koto's folder would be <it>/koto. */
function freshRuntimeParent(): { parent: string; runtime: string; socket: string } {
  const parent = path.join(home.dir, `rt${++caseNo}`);
  mkdirSync(parent, { mode: 0o700 });
  chmodSync(parent, 0o700);
  const runtime = path.join(parent, 'koto');
  return { parent, runtime, socket: path.join(runtime, 'koto.sock') };
}

interface HijackCase {
  name: string;
  root: boolean;
  code: 'KOTO_ERR_UNSAFE_FOLDER' | 'KOTO_ERR_UNSAFE_SOCKET';
  problem: RegExp;
  /** Builds the hijacked state; returns the attacker and a check that nothing of it was changed. */
  setup: (where: { parent: string; runtime: string; socket: string }) => Promise<{ attacker: Attacker; unchanged: () => void }>;
}

const cases: HijackCase[] = [
  {
    name: 'the runtime folder belongs to another user',
    root: true,
    code: 'KOTO_ERR_UNSAFE_FOLDER',
    problem: /owned by uid 65534, not by you/,
    setup: async ({ runtime, socket }) => {
      mkdirSync(runtime, { mode: 0o777 });
      chmodSync(runtime, 0o777);
      const attacker = await attackerAt(socket);
      chownSync(runtime, NOBODY, NOBODY);
      lchownSync(socket, NOBODY, NOBODY);
      return { attacker, unchanged: () => expect([statSync(runtime).uid, statSync(runtime).mode & 0o777]).toEqual([NOBODY, 0o777]) };
    },
  },
  {
    name: 'the runtime folder is a symbolic link',
    root: false,
    code: 'KOTO_ERR_UNSAFE_FOLDER',
    problem: /symbolic link/,
    setup: async ({ parent, runtime }) => {
      const elsewhere = path.join(parent, 'elsewhere');
      mkdirSync(elsewhere, { mode: 0o700 });
      const attacker = await attackerAt(path.join(elsewhere, 'koto.sock'));
      symlinkSync(elsewhere, runtime);
      return { attacker, unchanged: () => expect(lstatSync(runtime).isSymbolicLink()).toBe(true) };
    },
  },
  {
    name: 'the runtime folder is 0755',
    root: false,
    code: 'KOTO_ERR_UNSAFE_FOLDER',
    problem: /mode is 0755, not 0700/,
    setup: async ({ runtime, socket }) => {
      mkdirSync(runtime);
      chmodSync(runtime, 0o755);
      const attacker = await attackerAt(socket);
      chmodSync(socket, 0o600);
      return { attacker, unchanged: () => expect(statSync(runtime).mode & 0o777).toBe(0o755) };
    },
  },
  {
    name: "another user's socket is planted at the socket path",
    root: true,
    code: 'KOTO_ERR_UNSAFE_SOCKET',
    problem: /owned by uid 65534/,
    setup: async ({ runtime, socket }) => {
      mkdirSync(runtime, { mode: 0o700 });
      const attacker = await attackerAt(socket);
      chmodSync(socket, 0o600);
      lchownSync(socket, NOBODY, NOBODY);
      return { attacker, unchanged: () => expect(lstatSync(socket).uid).toBe(NOBODY) };
    },
  },
  {
    name: 'a symbolic link to another socket is planted at the socket path',
    root: false,
    code: 'KOTO_ERR_UNSAFE_SOCKET',
    problem: /symbolic link/,
    setup: async ({ parent, runtime, socket }) => {
      mkdirSync(runtime, { mode: 0o700 });
      const evil = path.join(parent, 'evil.sock');
      const attacker = await attackerAt(evil);
      symlinkSync(evil, socket);
      return { attacker, unchanged: () => expect(lstatSync(socket).isSymbolicLink()).toBe(true) };
    },
  },
  {
    name: 'XDG_RUNTIME_DIR itself is writable by everyone, without the sticky bit',
    root: false,
    code: 'KOTO_ERR_UNSAFE_FOLDER',
    problem: /other users may write into it and it has no sticky bit/,
    setup: async ({ parent, runtime, socket }) => {
      mkdirSync(runtime, { mode: 0o700 });
      const attacker = await attackerAt(socket);
      chmodSync(parent, 0o777);
      return { attacker, unchanged: () => expect(statSync(parent).mode & 0o7777).toBe(0o777) };
    },
  },
  {
    name: 'XDG_RUNTIME_DIR belongs to another user',
    root: true,
    code: 'KOTO_ERR_UNSAFE_FOLDER',
    problem: /owned by uid 65534, who could replace Koto's folder/,
    setup: async ({ parent, runtime, socket }) => {
      mkdirSync(runtime, { mode: 0o700 });
      const attacker = await attackerAt(socket);
      chmodSync(parent, 0o755);
      chownSync(parent, NOBODY, NOBODY);
      return { attacker, unchanged: () => expect(statSync(parent).uid).toBe(NOBODY) };
    },
  },
];

describe('an unsafe runtime folder or socket is refused, never used', () => {
  for (const c of cases) {
    (c.root ? rootOnly : it)(`${c.name}: the daemon refuses to start`, async () => {
      const where = freshRuntimeParent();
      const { attacker, unchanged } = await c.setup(where);
      const err = await refusal(startDaemon(userEnv(where.parent)));
      expect(err.code).toBe(c.code);
      expect(err.message).toMatch(c.problem);
      expect(err.fix).toMatch(/XDG_RUNTIME_DIR|rm /);
      expect(attacker.connections).toBe(0);
      unchanged(); // nothing chmod-ed, chown-ed or removed that is not ours
    });

    (c.root ? rootOnly : it)(`${c.name}: \`koto status\` refuses, in one line, without connecting`, async () => {
      const where = freshRuntimeParent();
      const { attacker, unchanged } = await c.setup(where);
      const result = await koto(['status'], { env: userEnv(where.parent) });
      expect(result.code).toBe(3);
      expect(result.stdout).toBe('');
      expectOneLine(result.stderr, c.code);
      expect(result.stderr).toMatch(c.problem);
      expect(attacker.connections).toBe(0);
      unchanged();
    });
  }

  rootOnly('the issue as reported: XDG_RUNTIME_DIR unset, $TMPDIR/koto-$UID created first by another user', async () => {
    const tmp = path.join(home.dir, 'shared-tmp');
    mkdirSync(tmp);
    chmodSync(tmp, 0o1777); // like /tmp
    const runtime = path.join(tmp, `koto-${uid}`);
    expect(kotoPaths({ HOME: home.dir, TMPDIR: tmp }).runtimeDir).toBe(runtime);
    mkdirSync(runtime);
    chmodSync(runtime, 0o777);
    const attacker = await attackerAt(path.join(runtime, 'koto.sock'));
    chownSync(runtime, NOBODY, NOBODY);
    lchownSync(path.join(runtime, 'koto.sock'), NOBODY, NOBODY);
    const env = {
      HOME: home.dir,
      TMPDIR: tmp,
      XDG_DATA_HOME: path.join(home.dir, 'data-tmp'),
      XDG_STATE_HOME: path.join(home.dir, 'state-tmp'),
    };

    for (const args of [['status'], ['start'], ['stop'], ['toggle'], ['cancel'], ['reload'], ['retry', '20260101-000000-abcd']]) {
      const result = await koto(args, { env });
      expect(result.code, args.join(' ')).toBe(3);
      expectOneLine(result.stderr, 'KOTO_ERR_UNSAFE_FOLDER');
      expect(result.stderr).toContain(`the runtime folder ${runtime} is not private to you: it is owned by uid 65534`);
      expect(result.stderr).toMatch(/Fix: remove it if it is not yours .* or set XDG_RUNTIME_DIR/);
    }
    // The daemon itself: a clear refusal instead of the internal EPERM of the report.
    const daemon = await koto(['daemon'], { env });
    expect(daemon.code).toBe(3);
    expect(daemon.stderr).toContain('(KOTO_ERR_UNSAFE_FOLDER)');
    expect(daemon.stderr).not.toMatch(/EPERM|KOTO_ERR_INTERNAL|\n\s+at /);
    expect(attacker.connections).toBe(0);
    expect(statSync(runtime).uid).toBe(NOBODY);
  });
});

describe('a private runtime folder works as before', () => {
  let daemon: Daemon | undefined;
  afterEach(async () => {
    await daemon?.close();
    daemon = undefined;
  });

  it('the client never creates the folder; the daemon creates it 0700 with the socket 0600; `koto status` answers', async () => {
    const where = freshRuntimeParent();
    const before = await koto(['status'], { env: userEnv(where.parent) });
    expect(before.code).toBe(4);
    expectOneLine(before.stderr, 'KOTO_ERR_NO_DAEMON');
    expect(existsSync(where.runtime)).toBe(false);

    daemon = await startDaemon(userEnv(where.parent));
    expect(daemon.socketPath).toBe(where.socket);
    expect(statSync(where.runtime).mode & 0o777).toBe(0o700);
    expect(lstatSync(where.socket).isSocket()).toBe(true);
    expect(statSync(where.socket).mode & 0o777).toBe(0o600);
    const status = await koto(['status', '--json'], { env: userEnv(where.parent) });
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ state: 'idle', pid: process.pid });
  });

  it('a stale socket left by a crash is replaced; a socket loosened to 0666 is refused by client and daemon', async () => {
    const where = freshRuntimeParent();
    mkdirSync(where.runtime, { mode: 0o700 });
    const crashed = net.createServer();
    await new Promise<void>((r) => crashed.listen(where.socket, () => r()));
    chmodSync(where.socket, 0o600); // as the daemon makes it
    // A crash leaves the socket file behind (a clean close removes it): keep it out of close's way.
    const kept = path.join(where.parent, 'kept.sock');
    renameSync(where.socket, kept);
    await new Promise<void>((r) => crashed.close(() => r()));
    renameSync(kept, where.socket);
    expect(lstatSync(where.socket).isSocket()).toBe(true);
    await expect(sendCommand(where.socket, 'ping')).rejects.toMatchObject({ code: 'KOTO_ERR_NO_DAEMON' });
    daemon = await startDaemon(userEnv(where.parent));
    expect(await sendCommand(where.socket, 'ping')).toMatchObject({ pid: process.pid });

    chmodSync(where.socket, 0o666);
    await expect(sendCommand(where.socket, 'ping')).rejects.toMatchObject({
      code: 'KOTO_ERR_UNSAFE_SOCKET',
      message: expect.stringMatching(/mode is 0666/),
    });
    const refused = await refusal(startDaemon(userEnv(where.parent)));
    expect(refused.code).toBe('KOTO_ERR_UNSAFE_SOCKET');
    chmodSync(where.socket, 0o600);
    expect(await sendCommand(where.socket, 'ping')).toMatchObject({ pid: process.pid });
  });

  it('a regular file at the socket path: the client refuses it, the daemon (its owner) replaces it', async () => {
    const where = freshRuntimeParent();
    mkdirSync(where.runtime, { mode: 0o700 });
    writeFileSync(where.socket, 'not a socket');
    const result = await koto(['status'], { env: userEnv(where.parent) });
    expect(result.code).toBe(3);
    expectOneLine(result.stderr, 'KOTO_ERR_UNSAFE_SOCKET');
    expect(result.stderr).toContain('it is a regular file, not a socket');
    daemon = await startDaemon(userEnv(where.parent));
    expect(lstatSync(where.socket).isSocket()).toBe(true);
  });

  it('a relative XDG_RUNTIME_DIR is ignored (it would name another folder in every working directory)', () => {
    const tmp = path.join(home.dir, 'abs-tmp');
    expect(kotoPaths({ HOME: home.dir, XDG_RUNTIME_DIR: 'run/user', TMPDIR: tmp }).runtimeDir).toBe(path.join(tmp, `koto-${uid}`));
    expect(kotoPaths({ HOME: home.dir, XDG_RUNTIME_DIR: '/run/user/7' }).socket).toBe('/run/user/7/koto/koto.sock');
  });
});

describe('delegation (`koto run`, `koto correct`) with an unsafe runtime folder', () => {
  let server: OpenAIServer;
  const KEY = 'sk-socket-privacy-canary-1234';
  const wav = encodeWav(
    new Int16Array(16000).map((_, i) => Math.round(6000 * Math.sin(i / 7))),
    16000,
  );
  beforeAll(async () => {
    server = await startOpenAIServer({ apiKey: KEY, transcribe: () => 'hello there', complete: () => 'Hello there.' });
    writeFileSync(path.join(home.dir, 'ca.pem'), server.ca);
    writeFileSync(path.join(home.dir, 'clip.wav'), wav);
  });
  afterAll(() => server.close());

  it('works standalone, with one warning naming the problem, and sends nothing to the hijacked socket', async () => {
    const where = freshRuntimeParent();
    mkdirSync(where.runtime);
    chmodSync(where.runtime, 0o777);
    const attacker = await attackerAt(where.socket);
    if (isRoot) chownSync(where.runtime, NOBODY, NOBODY);
    const env = {
      ...userEnv(where.parent),
      OPENAI_API_KEY: KEY,
      OPENAI_BASE_URL: server.baseUrl,
      NODE_EXTRA_CA_CERTS: path.join(home.dir, 'ca.pem'),
    };
    const run = await koto(['run', path.join(home.dir, 'clip.wav')], { env, cwd: home.dir });
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('Hello there.\n');
    expectWarning(run.stderr);

    const correct = await koto(['correct', 'hello there'], { env, cwd: home.dir });
    expect(correct.code).toBe(0);
    expect(correct.stdout).toBe('Hello there.\n');
    expectWarning(correct.stderr);

    // --no-daemon does not look at the socket at all.
    const standalone = await koto(['--no-daemon', 'correct', 'hello there'], { env, cwd: home.dir });
    expect(standalone).toMatchObject({ code: 0, stderr: '', stdout: 'Hello there.\n' });
    expect(attacker.connections).toBe(0);
  });
});

function expectWarning(stderr: string): void {
  const lines = stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(
    /^koto: warning: not using the daemon: the runtime folder .* is not private to you: .*\(KOTO_ERR_UNSAFE_FOLDER\)$/,
  );
}
