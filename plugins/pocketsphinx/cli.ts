import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AbortedError } from './library.ts';

/**
 * The pocketsphinx programs, one process per session. pocketsphinx_continuous reads raw
 * 16 kHz s16le PCM from `-infile /dev/stdin`, but refuses a socket, and Node's child stdin is a
 * socket pair: `cat` in front turns it into a pipe. pocketsphinx_batch decodes a file named in
 * a control file as one utterance.
 */

export const CONTINUOUS = 'pocketsphinx_continuous';
export const BATCH = 'pocketsphinx_batch';

/** The program's path: in `binDir`, or the first match on PATH; undefined when absent. */
export function findProgram(name: string, binDir: string | undefined, pathEnv = process.env.PATH ?? ''): string | undefined {
  const dirs = binDir ? [binDir] : pathEnv.split(path.delimiter).filter(Boolean);
  for (const dir of dirs) {
    const file = path.join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

export interface CliRun {
  readonly program: string;
  /** Model and decoder arguments (`-hmm …`). */
  readonly args: readonly string[];
  readonly samples: Int16Array;
  readonly signal: AbortSignal;
  readonly onText?: ((text: string) => void) | undefined;
}

function pcmBytes(samples: Int16Array): Buffer {
  const buf = Buffer.alloc(samples.length * 2);
  for (let i = 0; i < samples.length; i++) buf.writeInt16LE(samples[i]!, i * 2);
  return buf;
}

async function lastLogLines(file: string): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  const errors = text.split('\n').filter((l) => /ERROR|FATAL/.test(l));
  return (errors.length ? errors : text.split('\n').filter(Boolean)).slice(-2).join(' | ');
}

interface Spawned {
  readonly code: number | null;
  readonly stdout: string;
}

/** Runs a program in its own process group so an abort ends it and everything it started. */
function run(command: string, args: readonly string[], input: Buffer | undefined, signal: AbortSignal, onLine?: (line: string) => void): Promise<Spawned> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new AbortedError());
    const child = spawn(command, [...args], { stdio: [input ? 'pipe' : 'ignore', 'pipe', 'ignore'], detached: true });
    let stdout = '';
    let pending = '';
    const kill = () => {
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    };
    signal.addEventListener('abort', kill, { once: true });
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      stdout += chunk;
      if (!onLine) return;
      pending += chunk;
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        onLine(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
      }
    });
    child.on('error', (err) => {
      signal.removeEventListener('abort', kill);
      reject(err);
    });
    child.on('close', (code) => {
      signal.removeEventListener('abort', kill);
      if (pending && onLine) onLine(pending);
      if (signal.aborted) reject(new AbortedError());
      else resolve({ code, stdout });
    });
    if (input && child.stdin) {
      child.stdin.on('error', () => undefined); // the program may exit early; its exit code tells.
      child.stdin.end(input);
    }
  });
}

/** pocketsphinx_continuous: utterances cut at pauses, each reported as it is recognised. */
export async function runContinuous(options: CliRun): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'koto-ps-'));
  const log = path.join(dir, 'decoder.log');
  try {
    const utterances: string[] = [];
    // `"$0" "$@"` runs the program with its arguments untouched by the shell.
    const result = await run('/bin/sh', ['-c', 'cat | "$0" "$@"', options.program, '-infile', '/dev/stdin', '-logfn', log, ...options.args], pcmBytes(options.samples), options.signal, (line) => {
      const text = line.trim();
      if (!text) return;
      utterances.push(text);
      options.onText?.(utterances.join(' '));
    });
    if (result.code !== 0) throw new Error(`${path.basename(options.program)} exited with code ${result.code}: ${await lastLogLines(log)}`);
    return utterances.join(' ');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** pocketsphinx_batch: the whole recording as one utterance. */
export async function runBatch(options: CliRun): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'koto-ps-'));
  const log = path.join(dir, 'decoder.log');
  const hyp = path.join(dir, 'hyp.txt');
  try {
    await writeFile(path.join(dir, 'utt.raw'), pcmBytes(options.samples));
    await writeFile(path.join(dir, 'ctl.txt'), 'utt\n');
    const args = ['-adcin', 'yes', '-cepdir', dir, '-cepext', '.raw', '-ctl', path.join(dir, 'ctl.txt'), '-hyp', hyp, '-logfn', log, ...options.args];
    const result = await run(options.program, args, undefined, options.signal);
    if (result.code !== 0) throw new Error(`${path.basename(options.program)} exited with code ${result.code}: ${await lastLogLines(log)}`);
    const line = (await readFile(hyp, 'utf8').catch(() => '')).split('\n')[0] ?? '';
    // `text (utt score)`: the utterance id and score close the line.
    const text = line.replace(/\s*\(utt(?:\s+-?\d+)*\)\s*$/, '').trim();
    if (text) options.onText?.(text);
    return text;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
