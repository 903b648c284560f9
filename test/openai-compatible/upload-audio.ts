/**
 * Audio whose "words" a test server can hear back exactly: each word is a burst (a 440 Hz tone,
 * or white noise, which FLAC cannot shrink much) at one of 25 loudness levels, separated by
 * pauses over a faint noise floor. Transcribing a part means listening for bursts and naming
 * each by its level (`w0` … `w24`), so a transcript proves which words a part held, in which
 * order, and a cut through a word shows up as a word heard twice.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { parseWav } from 'koto-voice';
import { findFfmpeg } from '../../src/audio/ffmpeg.ts';

const run = promisify(execFile);

export type BurstKind = 'tone' | 'noise';

const LEVELS = 25;
const BASE_AMPLITUDE = 1500;
const STEP = 1000;
const FLOOR = 40;
const FRAME_SEC = 0.01;
/** Bursts are louder than this RMS; pauses are quieter. */
const ACTIVE_RMS = 500;

export interface WordsAudio {
  readonly wav: Uint8Array;
  readonly words: readonly string[];
  readonly seconds: number;
}

/** A deterministic pseudo-random sequence (tests must not depend on Math.random). */
function lcg(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

/** 16-bit PCM WAV of `seconds` of words, `channels` identical channels at `sampleRate`. */
export function wordsWav(
  seconds: number,
  options: { kind?: BurstKind; sampleRate?: number; channels?: number; seed?: number } = {},
): WordsAudio {
  const { kind = 'tone', sampleRate = 16_000, channels = 1, seed = 7 } = options;
  const random = lcg(seed);
  const total = Math.round(seconds * sampleRate);
  const mono = new Int16Array(total);
  for (let i = 0; i < total; i++) mono[i] = Math.round((random() * 2 - 1) * FLOOR);
  const words: string[] = [];
  let at = Math.round(0.2 * sampleRate);
  for (let w = 0; ; w++) {
    const length = Math.round((0.3 + 0.1 * (w % 5)) * sampleRate);
    const gap = Math.round((0.25 + 0.05 * (w % 3)) * sampleRate);
    if (at + length + gap > total) break;
    const level = (w * 7) % LEVELS;
    const amplitude = BASE_AMPLITUDE + STEP * level;
    for (let i = 0; i < length; i++) {
      const value = kind === 'tone' ? Math.sin((2 * Math.PI * 440 * i) / sampleRate) * amplitude : (random() * 2 - 1) * amplitude;
      mono[at + i] = Math.round(value);
    }
    words.push(`w${level}`);
    at += length + gap;
  }
  return { wav: wav16(mono, sampleRate, channels), words, seconds };
}

function wav16(mono: Int16Array, sampleRate: number, channels: number): Uint8Array {
  const bytes = mono.length * 2 * channels;
  const out = Buffer.alloc(44 + bytes);
  out.write('RIFF', 0, 'latin1');
  out.writeUInt32LE(36 + bytes, 4);
  out.write('WAVEfmt ', 8, 'latin1');
  out.writeUInt32LE(16, 16);
  out.writeUInt16LE(1, 20);
  out.writeUInt16LE(channels, 22);
  out.writeUInt32LE(sampleRate, 24);
  out.writeUInt32LE(sampleRate * 2 * channels, 28);
  out.writeUInt16LE(2 * channels, 32);
  out.writeUInt16LE(16, 34);
  out.write('data', 36, 'latin1');
  out.writeUInt32LE(bytes, 40);
  for (let i = 0; i < mono.length; i++) for (let c = 0; c < channels; c++) out.writeInt16LE(mono[i]!, 44 + (i * channels + c) * 2);
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

export interface Heard {
  readonly words: string[];
  /** RMS of the first and last 20 ms: low when the part was cut in a pause. */
  readonly edges: readonly [number, number];
  readonly sampleRate: number;
}

/** Listens to a mono 16-bit WAV: the words in it, in order. */
export function hear(wav: Uint8Array, kind: BurstKind = 'tone'): Heard {
  const parsed = parseWav(wav);
  if (!parsed.ok || !parsed.pcm)
    throw new Error(`the test server got audio it cannot read: ${parsed.ok ? 'not 16-bit PCM' : parsed.reason}`);
  const { samples, sampleRate } = parsed.pcm;
  const frame = Math.round(sampleRate * FRAME_SEC);
  const rms = (from: number, to: number) => {
    let sum = 0;
    for (let i = from; i < to; i++) sum += samples[i]! * samples[i]!;
    return Math.sqrt(sum / Math.max(1, to - from));
  };
  const words: string[] = [];
  let runStart = -1;
  const frames = Math.floor(samples.length / frame);
  for (let f = 0; f <= frames; f++) {
    const active = f < frames && rms(f * frame, (f + 1) * frame) > ACTIVE_RMS;
    if (active && runStart < 0) runStart = f;
    if (!active && runStart >= 0) {
      const length = f - runStart;
      if (length >= 3) {
        // The middle of the burst: its edges are smeared by resampling.
        const from = (runStart + Math.floor(length / 5)) * frame;
        const to = (f - Math.floor(length / 5)) * frame;
        const amplitude = rms(from, to) * (kind === 'tone' ? Math.SQRT2 : Math.sqrt(3));
        words.push(`w${Math.round((amplitude - BASE_AMPLITUDE) / STEP)}`);
      }
      runStart = -1;
    }
  }
  const edge = Math.round(sampleRate * 0.02);
  return { words, edges: [rms(0, edge), rms(samples.length - edge, samples.length)], sampleRate };
}

/** Decodes FLAC (or anything ffmpeg reads) to 16-bit mono WAV with ffmpeg. */
export async function decodeWithFfmpeg(data: Uint8Array): Promise<Uint8Array> {
  const { mkdtemp, writeFile, readFile, rm } = await import('node:fs/promises');
  const os = await import('node:os');
  const path = await import('node:path');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'koto-test-decode-'));
  try {
    await writeFile(path.join(dir, 'in'), data);
    await run('ffmpeg', [
      '-hide_banner',
      '-nostdin',
      '-loglevel',
      'error',
      '-i',
      path.join(dir, 'in'),
      '-ac',
      '1',
      '-sample_fmt',
      's16',
      '-f',
      'wav',
      '-y',
      path.join(dir, 'out.wav'),
    ]);
    return new Uint8Array(await readFile(path.join(dir, 'out.wav')));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Fails (never skips) when ffmpeg is missing: the test needs it, and the deps script installs it. */
export async function requireFfmpeg(): Promise<void> {
  if (!(await findFfmpeg())) {
    throw new Error('ffmpeg is not installed: run `bash scripts/system-deps.sh audio` (scripts/test.sh does), then run the tests again');
  }
}
