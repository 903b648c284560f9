/**
 * Helper programs for cues and notifications: found on PATH by the plugin itself (no `which`),
 * started detached with their output ignored, one at a time per slot, never awaited by a session.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'koto-voice';

/**
 * The first of `names` (in that order of preference) that is an executable file in a folder of
 * `searchPath`. Relative PATH entries (`.`, an empty entry) are skipped: they would make the
 * program depend on whatever folder Koto was started in.
 */
export async function findOnPath(names: readonly string[], searchPath: string | undefined): Promise<string | undefined> {
  const dirs = (searchPath ?? '').split(path.delimiter).filter((dir) => path.isAbsolute(dir));
  for (const name of names) {
    for (const dir of dirs) {
      const file = path.join(dir, name);
      try {
        if (!(await stat(file)).isFile()) continue;
        await access(file, constants.X_OK);
        return file;
      } catch {
        // not here
      }
    }
  }
  return undefined;
}

export interface Launch {
  readonly file: string;
  readonly args: readonly string[];
  readonly env: NodeJS.ProcessEnv;
}

export interface SlotOptions {
  /** A program still running after this long is killed (a player stuck on a frozen sound server). */
  readonly maxMs: number;
  /** Called once per launch that failed: could not start, non-zero exit, killed. Never with the program's output. */
  readonly onFailure: (message: string, reason: 'missing' | 'failed') => void;
  /** Called when the slot is free again. */
  readonly onIdle?: (() => void) | undefined;
}

/**
 * At most one running program. A flood of events cannot pile up processes: while one runs,
 * `start` declines (the caller drops or queues), and a hung one is killed after `maxMs`.
 */
export class ProcessSlot {
  #child: ChildProcess | undefined;
  readonly #options: SlotOptions;

  constructor(options: SlotOptions) {
    this.#options = options;
  }

  get busy(): boolean {
    return this.#child !== undefined;
  }

  /** Starts the program unless one is still running here; whether it started. Never throws. */
  start(launch: Launch): boolean {
    if (this.#child) return false;
    const name = path.basename(launch.file);
    let child: ChildProcess;
    try {
      // Detached: its own process group, so a Ctrl-C meant for Koto does not cut a cue short,
      // and unref-ed below, so a cue never keeps a finished CLI run alive.
      child = spawn(launch.file, launch.args, { stdio: 'ignore', detached: true, env: launch.env, windowsHide: true });
    } catch (err) {
      this.#options.onFailure(`${name} could not be started: ${(err as Error).message}`, 'failed');
      return false;
    }
    this.#child = child;
    let killed = false;
    let ended = false;
    const watchdog = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, this.#options.maxMs);
    watchdog.unref();
    const end = (failure?: { message: string; reason: 'missing' | 'failed' }) => {
      if (ended) return;
      ended = true;
      clearTimeout(watchdog);
      if (this.#child === child) this.#child = undefined;
      if (failure) this.#options.onFailure(failure.message, failure.reason);
      this.#options.onIdle?.();
    };
    child.once('error', (err: NodeJS.ErrnoException) => {
      end(
        err.code === 'ENOENT'
          ? { message: `${name} is no longer installed (${launch.file})`, reason: 'missing' }
          : { message: `${name} could not be started: ${err.code ?? err.message}`, reason: 'failed' },
      );
    });
    child.once('exit', (code, signal) => {
      if (killed) end({ message: `${name} was still running after ${this.#options.maxMs} ms and was stopped`, reason: 'failed' });
      else if (code !== 0)
        end({ message: `${name} ${code === null ? `was killed (${signal ?? 'signal'})` : `exited with code ${code}`}`, reason: 'failed' });
      else end();
    });
    child.unref();
    return true;
  }
}

/**
 * The first time a problem is seen it is a warning (one line, with the fix); the same problem
 * again is debug noise, so a broken player does not fill the log with a line per dictation.
 */
export function reportOnce(log: Logger): (key: string, message: string) => void {
  const seen = new Set<string>();
  return (key, message) => {
    if (seen.has(key)) return log.debug(message);
    seen.add(key);
    log.warn(message);
  };
}
