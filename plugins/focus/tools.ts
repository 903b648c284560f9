/**
 * Asking a desktop's own command-line tool (swaymsg, hyprctl, kdotool, osascript): found on the
 * kernel's PATH, run with the lookup's signal, its output bounded. These tools answer and exit;
 * none forks a child that keeps its pipes open, so execFile is enough.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';

/** Absolute path of `name` on the PATH of `env`, or undefined. */
export function findTool(name: string, env: Readonly<NodeJS.ProcessEnv>): string | undefined {
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** A sway tree of a few hundred windows is well under this; anything larger is not a tool's answer. */
const MAX_OUTPUT = 8 * 1024 * 1024;

/** stdout of `file args`; rejects on a non-zero exit, the signal, or too much output. */
export function ask(file: string, args: readonly string[], env: Readonly<NodeJS.ProcessEnv>, signal: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { env: env as NodeJS.ProcessEnv, signal, maxBuffer: MAX_OUTPUT, encoding: 'utf8', windowsHide: true },
      (err, stdout) => (err ? reject(err) : resolve(stdout)),
    );
  });
}
