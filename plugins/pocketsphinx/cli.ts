import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { int16ToLE } from './audio.ts';
import { AbortedError } from './library.ts';
import { MAX_UTTERANCE_SAMPLES, pieces } from './segmenter.ts';

/**
 * The pocketsphinx programs, one process per session. pocketsphinx_continuous reads raw
 * 16 kHz s16le PCM from `-infile /dev/stdin`, but refuses a socket, and Node's child stdin is a
 * socket pair: `cat` in front turns it into a pipe. pocketsphinx_batch decodes a file named in
 * a control file as one utterance; a long recording is cut at pauses into several such files
 * (at most 30 s each, as the library engine does), one line of the control file each.
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
function run(
  command: string,
  args: readonly string[],
  input: Buffer | undefined,
  signal: AbortSignal,
  onLine?: (line: string) => void,
): Promise<Spawned> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new AbortedError());
    const child = spawn(command, [...args], { stdio: [input ? 'pipe' : 'ignore', 'pipe', 'ignore'], detached: true });
    const stdout: string[] = [];
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
      stdout.push(chunk);
      if (!onLine) return;
      // Lines are cut by index: the unfinished rest is copied once per chunk, never per line.
      let from = 0;
      let nl: number;
      while ((nl = chunk.indexOf('\n', from)) >= 0) {
        onLine(pending + chunk.slice(from, nl));
        pending = '';
        from = nl + 1;
      }
      pending += chunk.slice(from);
    });
    child.on('error', (err) => {
      signal.removeEventListener('abort', kill);
      reject(err);
    });
    child.on('close', (code) => {
      signal.removeEventListener('abort', kill);
      if (pending && onLine) onLine(pending);
      if (signal.aborted) reject(new AbortedError());
      else resolve({ code, stdout: stdout.join('') });
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
    // The text so far grows by appending: reporting it after each utterance stays linear.
    let text = '';
    // `"$0" "$@"` runs the program with its arguments untouched by the shell.
    const result = await run(
      '/bin/sh',
      ['-c', 'cat | "$0" "$@"', options.program, '-infile', '/dev/stdin', '-logfn', log, ...options.args],
      int16ToLE(options.samples),
      options.signal,
      (line) => {
        const heard = line.trim();
        if (!heard) return;
        text = text ? `${text} ${heard}` : heard;
        options.onText?.(text);
      },
    );
    if (result.code !== 0) throw new Error(`${path.basename(options.program)} exited with code ${result.code}: ${await lastLogLines(log)}`);
    return text;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The text of one `-hyp` line: `text (uttid score)`, the id and score removed. */
export function hypText(line: string): string {
  const trimmed = line.trimEnd();
  const open = trimmed.lastIndexOf(' (');
  if (!trimmed.endsWith(')') || open < 0 || !/^\(u\d+(?: -?\d+)*\)$/.test(trimmed.slice(open + 1))) {
    // A line that is only the id (nothing was heard).
    return /^\(u\d+(?: -?\d+)*\)$/.test(trimmed.trim()) ? '' : trimmed.trim();
  }
  return trimmed.slice(0, open).trim();
}

/**
 * pocketsphinx_batch: each piece of the recording (the whole of it up to 30 s, else pieces cut
 * at pauses) is one utterance, named in the control file; the hypotheses come back in order.
 */
export async function runBatch(options: CliRun & { readonly maxUtteranceSamples?: number | undefined }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'koto-ps-'));
  const log = path.join(dir, 'decoder.log');
  const hyp = path.join(dir, 'hyp.txt');
  try {
    const ids: string[] = [];
    for (const piece of pieces(options.samples, options.maxUtteranceSamples ?? MAX_UTTERANCE_SAMPLES)) {
      if (options.signal.aborted) throw new AbortedError();
      const id = `u${String(ids.length).padStart(4, '0')}`;
      await writeFile(path.join(dir, `${id}.raw`), int16ToLE(piece));
      ids.push(id);
    }
    if (ids.length === 0) return '';
    await writeFile(path.join(dir, 'ctl.txt'), `${ids.join('\n')}\n`);
    const args = [
      '-adcin',
      'yes',
      '-cepdir',
      dir,
      '-cepext',
      '.raw',
      '-ctl',
      path.join(dir, 'ctl.txt'),
      '-hyp',
      hyp,
      '-logfn',
      log,
      ...options.args,
    ];
    const result = await run(options.program, args, undefined, options.signal);
    if (result.code !== 0) throw new Error(`${path.basename(options.program)} exited with code ${result.code}: ${await lastLogLines(log)}`);
    const lines = (await readFile(hyp, 'utf8').catch(() => '')).split('\n');
    const text = lines.map(hypText).filter(Boolean).join(' ');
    if (text) options.onText?.(text);
    return text;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
