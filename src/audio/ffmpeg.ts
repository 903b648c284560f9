import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/**
 * ffmpeg as Koto uses it: found on PATH at the moment it is needed (so a PATH change, or an
 * install while the daemon runs, is seen), run on private temp files (MP4 and friends need a
 * seekable input, and FLAC writes its length back into the header at the end), and its own
 * words kept when it fails.
 */

/** Longest reason kept from ffmpeg's stderr. */
const MAX_REASON_CHARS = 200;

/** The ffmpeg executable on PATH, or undefined. */
export async function findFfmpeg(env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const names = process.platform === 'win32' ? ['ffmpeg.exe', 'ffmpeg.cmd', 'ffmpeg'] : ['ffmpeg'];
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    for (const name of names) {
      const file = path.join(dir, name);
      try {
        await access(file, constants.X_OK);
        if ((await stat(file)).isFile()) return file;
      } catch {
        // not here
      }
    }
  }
  return undefined;
}

/** ffmpeg failed: `reason` is its own last words, scrubbed of temp paths and bounded. */
export class FfmpegError extends Error {
  readonly reason: string;
  constructor(reason: string) {
    super(`ffmpeg failed: ${reason}`);
    this.name = 'FfmpegError';
    this.reason = reason;
  }
}

// Lines ffmpeg prints that say nothing about why it failed.
const NOISE = /^(conversion failed!?|exiting normally.*|error opening (input|output) files?:?.*|)$/i;
// Lines that say only that something failed; the line before them says why.
const GENERIC = /(^|: )(invalid argument|error number -?\d+ occurred)$/i;

/**
 * The line of ffmpeg's stderr that explains a failure: the last meaningful one (with the line
 * before it when the last only says "Invalid argument"), the `[demuxer @ 0x…]` prefixes and
 * every temp path (replaced by `label`) removed, cut to a readable length.
 */
export function ffmpegReason(stderr: string, replacements: ReadonlyArray<readonly [string, string]> = []): string {
  const lines: string[] = [];
  for (const raw of stderr.split(/\r?\n|\r/)) {
    let line = raw.replace(/\[[\w:.-]+ @ 0x[0-9a-f]+\]\s*/gi, '').trim();
    for (const [from, to] of replacements) if (from) line = line.split(from).join(to);
    // Whatever path is left (ffmpeg's own temp names) is ours, not the user's.
    line = line.replace(/\S*koto-ffmpeg-[^\s:]*/g, 'the audio');
    // "<file>: Invalid data…": the caller names the file already.
    for (const [, to] of replacements) if (to && line.startsWith(`${to}: `)) line = line.slice(to.length + 2);
    if (!NOISE.test(line)) lines.push(line);
  }
  let reason = lines.at(-1) ?? '';
  if (GENERIC.test(reason) && lines.length > 1) reason = `${lines.at(-2)} (${reason})`;
  reason = reason.replace(/\s+/g, ' ').replace(/[\u0000-\u001f\u007f]/g, '');
  if (!reason) return 'it exited with an error and printed no reason';
  return reason.length > MAX_REASON_CHARS ? `${reason.slice(0, MAX_REASON_CHARS - 1)}…` : reason;
}

export interface FfmpegRun {
  /** Bytes to convert (written to a private temp file). */
  readonly input: Uint8Array;
  /** Arguments placed after `-i <input>`: codec, rate, format… */
  readonly args: readonly string[];
  /** Extension of the output file (it decides the container when `-f` is not given). */
  readonly outputExtension: string;
  /** How the input is named in a reason (the user's file name). */
  readonly label: string;
  readonly signal?: AbortSignal | undefined;
  /** The executable; default: ffmpeg found on PATH. */
  readonly ffmpeg?: string | undefined;
}

/**
 * Runs one conversion and returns the output bytes. Throws {@link FfmpegError} with ffmpeg's
 * reason when it fails (or is not installed), an AbortError when the signal fires (ffmpeg is
 * killed, the temp files removed).
 */
export async function runFfmpeg(run: FfmpegRun): Promise<Uint8Array> {
  const executable = run.ffmpeg ?? (await findFfmpeg());
  if (!executable) throw new FfmpegError('ffmpeg is not installed (not found on PATH)');
  run.signal?.throwIfAborted();
  // mkdtemp makes the folder 0700: the recording stays private while it is converted.
  const dir = await mkdtemp(path.join(os.tmpdir(), 'koto-ffmpeg-'));
  try {
    const input = path.join(dir, 'input');
    const output = path.join(dir, `output.${run.outputExtension}`);
    await writeFile(input, run.input, { mode: 0o600 });
    const args = ['-hide_banner', '-nostdin', '-loglevel', 'error', '-i', input, ...run.args, '-y', output];
    const stderr = await spawnFfmpeg(executable, args, run.signal);
    if (stderr.code !== 0) {
      throw new FfmpegError(
        ffmpegReason(stderr.text, [
          [input, run.label],
          [output, 'the output'],
          [dir, ''],
        ]),
      );
    }
    return await readFile(output);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function spawnFfmpeg(
  executable: string,
  args: readonly string[],
  signal: AbortSignal | undefined,
): Promise<{ code: number | null; text: string }> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason ?? new DOMException('aborted', 'AbortError'));
    const child = spawn(executable, args, { stdio: ['ignore', 'ignore', 'pipe'], signal });
    // Only the tail matters; a chatty ffmpeg must not fill memory.
    let text = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      text = (text + chunk).slice(-16_384);
    });
    child.on('error', (err: NodeJS.ErrnoException) => {
      if (err.name === 'AbortError') return reject(signal?.reason ?? err);
      reject(
        new FfmpegError(
          err.code === 'ENOENT' || err.code === 'EACCES'
            ? 'ffmpeg is not installed (not found on PATH)'
            : `ffmpeg could not start (${err.message})`,
        ),
      );
    });
    child.on('close', (code) => {
      if (signal?.aborted) return reject(signal.reason ?? new DOMException('aborted', 'AbortError'));
      resolve({ code, text });
    });
  });
}
