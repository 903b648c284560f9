import { spawn } from 'node:child_process';

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Wall time, for the timings a test prints (never asserted). */
  ms: number;
}

/** Runs a command to completion (killed after `timeoutMs`, a hang guard), capturing its output. */
export function run(command: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<Run> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Math.round(performance.now() - started) });
    });
  });
}

/** The run, or an error with the end of its output when it did not exit 0. */
export function ok(result: Run, what: string): Run {
  if (result.code !== 0)
    throw new Error(`${what} failed (exit ${result.code}):\n${result.stderr.slice(-4000)}\n${result.stdout.slice(-2000)}`);
  return result;
}
