import os from 'node:os';
import path from 'node:path';

export interface KotoPaths {
  readonly userConfig: string;
  readonly dataDir: string;
  readonly history: string;
  readonly recordings: string;
  readonly stateDir: string;
  readonly log: string;
  readonly runtimeDir: string;
  readonly socket: string;
}

/**
 * File locations of docs/cli.md. XDG everywhere (macOS too); `KOTO_HOME` puts everything
 * under one folder, which is what tests and portable installs want.
 *
 * A relative XDG_* value is ignored, as the XDG spec asks: it would name a different folder in
 * every working directory, so `koto status` would miss the daemon's socket.
 */
export function kotoPaths(env: NodeJS.ProcessEnv = process.env): KotoPaths {
  const home = env.HOME || os.homedir();
  const kotoHome = env.KOTO_HOME;
  const xdg = (name: string) => absolute(env[name]);
  const configDir = kotoHome ?? path.join(xdg('XDG_CONFIG_HOME') ?? path.join(home, '.config'), 'koto');
  const dataDir = kotoHome ? path.join(kotoHome, 'data') : path.join(xdg('XDG_DATA_HOME') ?? path.join(home, '.local', 'share'), 'koto');
  const stateDir = kotoHome ? path.join(kotoHome, 'state') : path.join(xdg('XDG_STATE_HOME') ?? path.join(home, '.local', 'state'), 'koto');
  const uid = typeof process.getuid === 'function' ? process.getuid() : 'user';
  const runtime = xdg('XDG_RUNTIME_DIR');
  // Without XDG_RUNTIME_DIR the folder lands in a shared temp folder where another user may
  // create it first: the daemon and the client check it is private before using it (private-dir.ts).
  const runtimeDir = kotoHome
    ? path.join(kotoHome, 'run')
    : runtime
      ? path.join(runtime, 'koto')
      : path.join(absolute(env.TMPDIR) ?? absolute(os.tmpdir()) ?? '/tmp', `koto-${uid}`);
  return Object.freeze({
    userConfig: path.join(configDir, 'config.yaml'),
    dataDir,
    history: path.join(dataDir, 'history.sqlite'),
    recordings: path.join(dataDir, 'recordings'),
    stateDir,
    log: path.join(stateDir, 'koto.log'),
    runtimeDir,
    socket: path.join(runtimeDir, 'koto.sock'),
  });
}

function absolute(value: string | undefined): string | undefined {
  return value && path.isAbsolute(value) ? value : undefined;
}
