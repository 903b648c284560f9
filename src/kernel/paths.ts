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
 */
export function kotoPaths(env: NodeJS.ProcessEnv = process.env): KotoPaths {
  const home = env.HOME || os.homedir();
  const kotoHome = env.KOTO_HOME;
  const configDir = kotoHome ?? path.join(env.XDG_CONFIG_HOME || path.join(home, '.config'), 'koto');
  const dataDir = kotoHome ? path.join(kotoHome, 'data') : path.join(env.XDG_DATA_HOME || path.join(home, '.local', 'share'), 'koto');
  const stateDir = kotoHome ? path.join(kotoHome, 'state') : path.join(env.XDG_STATE_HOME || path.join(home, '.local', 'state'), 'koto');
  const uid = typeof process.getuid === 'function' ? process.getuid() : 'user';
  const runtimeDir = kotoHome
    ? path.join(kotoHome, 'run')
    : env.XDG_RUNTIME_DIR
      ? path.join(env.XDG_RUNTIME_DIR, 'koto')
      : path.join(env.TMPDIR || os.tmpdir(), `koto-${uid}`);
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
