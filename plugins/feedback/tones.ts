/**
 * The built-in cues: short sine blips synthesised here (no sound files shipped), written once as
 * WAV into a private folder, before any recording needs them: the `recording` hook runs on the
 * capture path and must only start a player, never write a file.
 */
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { encodeWav } from 'koto-voice';

export type CueKind = 'start' | 'stop' | 'error';
export const CUE_KINDS: readonly CueKind[] = ['start', 'stop', 'error'];

export const TONE_RATE = 44_100;

/** A note (`hz` for `ms`) or a rest. */
type Step = { readonly hz: number; readonly ms: number } | { readonly rest: number };

/**
 * Start rises above stop so the two are told apart without looking; error is a lower double
 * tone, with a second harmonic so small laptop speakers still play it.
 */
export const TONES: Readonly<Record<CueKind, readonly Step[]>> = {
  start: [{ hz: 880, ms: 90 }],
  stop: [{ hz: 587.33, ms: 90 }],
  error: [{ hz: 311.13, ms: 110 }, { rest: 60 }, { hz: 311.13, ms: 110 }],
};

/** Fades at both ends of each note: a sine cut at full level clicks. */
const FADE_MS = 8;
/** Peak level (of full scale): a cue, not an alarm. */
const LEVEL = 0.35;
const HARMONIC = 0.25;

export function toneSamples(kind: CueKind, rate = TONE_RATE): Int16Array {
  const steps = TONES[kind];
  const total = steps.reduce((n, s) => n + Math.round((('rest' in s ? s.rest : s.ms) * rate) / 1000), 0);
  const out = new Int16Array(total);
  const fade = Math.round((FADE_MS * rate) / 1000);
  const harmonic = kind === 'error' ? HARMONIC : 0;
  const scale = (LEVEL * 32767) / (1 + harmonic);
  let offset = 0;
  for (const step of steps) {
    if ('rest' in step) {
      offset += Math.round((step.rest * rate) / 1000);
      continue;
    }
    const n = Math.round((step.ms * rate) / 1000);
    for (let i = 0; i < n; i++) {
      const t = i / rate;
      const edge = Math.min(i, n - 1 - i);
      // Raised-cosine ramp: smooth at both of its ends, so no step in the slope either.
      const envelope = edge >= fade ? 1 : 0.5 - 0.5 * Math.cos((Math.PI * edge) / fade);
      const wave = Math.sin(2 * Math.PI * step.hz * t) + harmonic * Math.sin(4 * Math.PI * step.hz * t);
      out[offset + i] = Math.round(scale * envelope * wave);
    }
    offset += n;
  }
  return out;
}

export function toneWav(kind: CueKind): Uint8Array {
  return encodeWav(toneSamples(kind), TONE_RATE);
}

const uid = typeof process.getuid === 'function' && process.platform !== 'win32' ? process.getuid() : undefined;

/**
 * Our folder must be a real folder of ours that nobody else can enter: a player reads files
 * from here, and another user swapping them would choose what Koto plays.
 */
async function ensurePrivateFolder(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const info = await lstat(dir);
  if (info.isSymbolicLink() || !info.isDirectory()) throw new Error(`${dir} is not a folder`);
  if (uid === undefined) return;
  if (info.uid !== uid) throw new Error(`${dir} is owned by uid ${info.uid}, not by you (uid ${uid}); remove it`);
  if ((info.mode & 0o077) !== 0)
    throw new Error(`${dir} can be entered by other users (mode ${(info.mode & 0o777).toString(8)}); run chmod 700 ${dir}`);
}

async function isCurrent(file: string, bytes: Uint8Array): Promise<boolean> {
  try {
    const info = await lstat(file);
    if (!info.isFile() || info.size !== bytes.byteLength || (uid !== undefined && (info.mode & 0o077) !== 0)) return false;
    return Buffer.from(bytes).equals(await readFile(file));
  } catch {
    return false;
  }
}

/**
 * Writes the built-in tones into `dir` (0700, files 0600) unless they are already there, intact;
 * a file is replaced atomically, so a player never reads half of one. Paths by kind.
 */
export async function writeTones(dir: string): Promise<Readonly<Record<CueKind, string>>> {
  await ensurePrivateFolder(dir);
  const files = {} as Record<CueKind, string>;
  for (const kind of CUE_KINDS) {
    const file = path.join(dir, `${kind}.wav`);
    const bytes = toneWav(kind);
    if (!(await isCurrent(file, bytes))) {
      const tmp = `${file}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
      try {
        await writeFile(tmp, bytes, { mode: 0o600, flag: 'wx' });
        await rename(tmp, file);
      } catch (err) {
        await rm(tmp, { force: true });
        throw err;
      }
    }
    files[kind] = file;
  }
  return Object.freeze(files);
}
