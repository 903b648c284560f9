/**
 * A real Wayland session for the typing tests: sway on its headless backend (no GPU, no input
 * devices) and foot, a Wayland terminal, running `stty raw -echo; cat > file` to show the exact
 * bytes it received.
 *
 * sway runs as a user that is not root (as root, the tests run it as `nobody` through setpriv),
 * with XDG_RUNTIME_DIR a fresh directory owned by that user. Koto's side (wtype) runs as the test
 * process and reaches the compositor through the socket path.
 * System packages: sway foot wtype (and util-linux's setpriv, always on Debian).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { until } from './type-x11-receivers.ts';

const exec = promisify(execFile);
export const WAYLAND_PACKAGES = 'sway foot wtype';

/** `nobody` on Debian and most distributions. */
const NOBODY = { uid: 65534, gid: 65534 };

export interface WaylandSession {
  /** Environment for a Wayland client of this session (WAYLAND_DISPLAY as an absolute socket path). */
  readonly env: NodeJS.ProcessEnv;
  openFoot(): Promise<FootTerminal>;
  stop(): Promise<void>;
}

export interface FootTerminal {
  contents(): string;
  close(): Promise<void>;
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}

function need(tool: string): Error {
  return new Error(
    tool === 'setpriv' ? 'setpriv is not installed: apt install util-linux' : `${tool} is not installed: apt install ${WAYLAND_PACKAGES}`,
  );
}

export async function startSway(): Promise<WaylandSession> {
  const root = process.getuid?.() === 0;
  const owner = root ? NOBODY : { uid: process.getuid!(), gid: process.getgid!() };
  const dir = mkdtempSync(path.join(os.tmpdir(), 'koto-wayland-'));
  const runtime = path.join(dir, 'runtime');
  const files = path.join(dir, 'files');
  for (const sub of [runtime, files]) {
    mkdirSync(sub, { mode: 0o700 });
    chownSync(sub, owner.uid, owner.gid);
  }
  chmodSync(dir, 0o755);
  const config = path.join(dir, 'sway.conf');
  // No bar, no borders; one headless output.
  writeFileSync(config, 'output HEADLESS-1 resolution 1024x768\ndefault_border none\nfocus_follows_mouse no\n', { mode: 0o644 });

  const userEnv: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: files,
    XDG_RUNTIME_DIR: runtime,
    LC_ALL: 'C.UTF-8',
  };
  const asUser = (command: string[]): [string, string[]] =>
    root
      ? ['setpriv', ['--reuid', String(owner.uid), '--regid', String(owner.gid), '--clear-groups', '--', ...command]]
      : [command[0]!, command.slice(1)];

  const [file, args] = asUser(['sway', '--config', config]);
  const sway = spawn(file, args, {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...userEnv, WLR_BACKENDS: 'headless', WLR_LIBINPUT_NO_DEVICES: '1', WLR_RENDERER: 'pixman' },
  });
  let log = '';
  sway.stderr!.setEncoding('utf8').on('data', (chunk: string) => (log = (log + chunk).slice(-4000)));
  let gone: Error | undefined;
  sway.on('error', (err: NodeJS.ErrnoException) => (gone = err.code === 'ENOENT' ? need(file === 'setpriv' ? 'setpriv' : 'sway') : err));
  sway.on('exit', (code) => (gone ??= new Error(`sway exited (${code}): ${log.split('\n').slice(-5).join(' | ')}`)));

  const cleanup = async () => {
    await stop(sway);
    rmSync(dir, { recursive: true, force: true });
  };
  let display: string;
  let ipc: string;
  try {
    ({ display, ipc } = await until('sway accepting clients', () => {
      if (gone) throw gone;
      const names = readdirSync(runtime);
      const socket = names.find((n) => /^wayland-\d+$/.test(n));
      const swaySocket = names.find((n) => n.startsWith('sway-ipc.') && n.endsWith('.sock'));
      return socket && swaySocket ? { display: path.join(runtime, socket), ipc: path.join(runtime, swaySocket) } : undefined;
    }).catch((err: Error) => {
      throw gone ?? err;
    }));
  } catch (err) {
    await cleanup();
    throw err;
  }

  const tree = async (): Promise<SwayNode> =>
    JSON.parse((await exec('swaymsg', ['-s', ipc, '-r', '-t', 'get_tree'], { encoding: 'utf8', timeout: 10_000 })).stdout) as SwayNode;
  let counter = 0;
  const foots = new Set<ChildProcess>();

  return {
    env: { WAYLAND_DISPLAY: display, XDG_RUNTIME_DIR: runtime },
    async openFoot() {
      const appId = `koto-foot-${(counter += 1)}`;
      const out = path.join(files, `${appId}.bytes`);
      const [footFile, footArgs] = asUser(['foot', '--app-id', appId, 'sh', '-c', `stty raw -echo && exec cat > '${out}'`]);
      const foot = spawn(footFile, footArgs, { stdio: 'ignore', env: { ...userEnv, WAYLAND_DISPLAY: display } });
      foots.add(foot);
      let footGone: Error | undefined;
      foot.on('error', (err: NodeJS.ErrnoException) => (footGone = err.code === 'ENOENT' ? need('foot') : err));
      foot.on('exit', (code) => (footGone ??= new Error(`foot exited (${code}) before it was ready`)));
      try {
        // Keys go to the focused view; the program is ready once the file exists (after stty).
        await until(`${appId} focused and ready`, async () => {
          if (footGone) throw footGone;
          if (gone) throw gone;
          return focusedAppId(await tree()) === appId && existsSync(out) ? true : undefined;
        });
      } catch (err) {
        await stop(foot);
        throw footGone ?? gone ?? err;
      }
      return {
        contents: () => readFileSync(out).toString('utf8'),
        close: async () => {
          await stop(foot);
          foots.delete(foot);
        },
      };
    },
    async stop() {
      for (const foot of foots) await stop(foot);
      await cleanup();
    },
  };
}

interface SwayNode {
  focused?: boolean;
  app_id?: string | null;
  nodes?: SwayNode[];
  floating_nodes?: SwayNode[];
}

function focusedAppId(node: SwayNode): string | undefined {
  if (node.focused) return node.app_id ?? undefined;
  for (const child of [...(node.nodes ?? []), ...(node.floating_nodes ?? [])]) {
    const found = focusedAppId(child);
    if (found !== undefined) return found;
  }
  return undefined;
}
