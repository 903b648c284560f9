import path from 'node:path';
import pLimit from 'p-limit';
import { KotoError, kotoError } from '../kernel/errors.ts';
import type { AudioData } from '../kernel/types.ts';
import { FfmpegError, findFfmpeg, runFfmpeg } from './ffmpeg.ts';
import { resample } from './resample.ts';
import { encodeWav, pcm16Mono } from './wav.ts';

/**
 * Makes a recording fit a provider's upload limit: as it is when it fits; else one FLAC file
 * (16 kHz mono, through ffmpeg); else consecutive parts cut at the quietest moment before each
 * limit, every part under it. Only the upload changes: the recording on disk is never touched.
 *
 * Speech recognisers work at 16 kHz, so parts are made at (at most) 16 kHz mono: a 44.1 kHz
 * stereo meeting becomes a fifth of the bytes, hence a fifth of the requests, at no cost to
 * the transcript.
 */

/** The rate parts are made at (never upsampled). */
export const UPLOAD_SAMPLE_RATE = 16_000;
const WAV_HEADER_BYTES = 44;
/** Smallest limit a recording can be split for (about 2 s of 16 kHz audio per part). */
export const MIN_UPLOAD_BYTES = 64 * 1024;
/** How far from its ideal place a cut may move to find a pause (a fraction of a part, at most 30 s). */
const SEARCH_FRACTION = 0.25;
const MAX_SEARCH_SEC = 30;
const MIN_ROOM_SEC = 5;
/** Energy frames and the length of pause looked for. */
const FRAME_SEC = 0.02;
const PAUSE_FRAMES = 10;
/** FLAC sizes vary with what is said: aim parts this far below the limit. */
const FLAC_MARGIN = 0.9;
/** Encode the whole recording as FLAC only when the estimate says it may fit (within this factor). */
const WHOLE_FLAC_SLACK = 1.15;
const RATIO_SAMPLE_SEC = 20;
const FFMPEG_CONCURRENCY = 2;

export interface UploadPart {
  /** 0-based position in the recording. */
  readonly index: number;
  readonly filename: string;
  readonly mimeType: string;
  /** Exact size of what `data()` returns. */
  readonly bytes: number;
  /** Where the part starts in the recording, and how long it is. */
  readonly startSec: number;
  /** Undefined for a recording passed on whole in a format Koto does not decode. */
  readonly durationSec: number | undefined;
  /** The bytes to upload (split WAV parts are encoded on demand, so a long recording is not held twice). */
  data(): Uint8Array;
}

export interface UploadPlan {
  /** `whole`: the recording as it is; `compressed`: one FLAC; `split`: consecutive parts. */
  readonly how: 'whole' | 'compressed' | 'split';
  readonly originalBytes: number;
  readonly parts: readonly UploadPart[];
  /** Something worth a log line (ffmpeg failed and WAV parts were sent instead). */
  readonly note?: string | undefined;
}

export interface FitUploadOptions {
  /** Largest audio file one upload may carry (the request's other bytes already taken off). */
  readonly maxBytes: number;
  /** Named in the refusal: the provider instance, its limit (the request size) and the option that sets it. */
  readonly provider: string;
  readonly limitBytes?: number | undefined;
  readonly limitOption?: string | undefined;
  /** Named in messages (default: the audio's path or filename). */
  readonly label?: string | undefined;
  readonly signal?: AbortSignal | undefined;
}

/** `230.4 MB`: MB as the providers count them (MiB). */
export function formatBytes(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(0)} KB`;
  return `${bytes} bytes`;
}

/** Plans the upload of `audio` under `options.maxBytes`; throws KOTO_ERR_UPLOAD_TOO_LARGE when it cannot. */
export async function fitUpload(audio: AudioData, options: FitUploadOptions): Promise<UploadPlan> {
  const originalBytes = audio.data.length;
  const whole: UploadPart = {
    index: 0,
    filename: audio.filename,
    mimeType: audio.mimeType,
    bytes: originalBytes,
    startSec: 0,
    durationSec: audio.pcm ? audio.pcm.samples.length / audio.pcm.sampleRate : undefined,
    data: () => audio.data,
  };
  if (originalBytes <= options.maxBytes) return { how: 'whole', originalBytes, parts: [whole] };

  const label = options.label ?? audio.path ?? audio.filename;
  const refuse = (reason: string) =>
    kotoError(
      'KOTO_ERR_UPLOAD_TOO_LARGE',
      {
        input: label,
        size: formatBytes(originalBytes),
        provider: options.provider,
        limit: formatBytes(options.limitBytes ?? options.maxBytes),
        reason,
        option: options.limitOption ?? `providers.${options.provider}.maxUploadBytes`,
      },
      {
        details: { provider: options.provider, bytes: originalBytes, limitBytes: options.limitBytes ?? options.maxBytes, retryable: false },
      },
    );

  if (options.maxBytes < MIN_UPLOAD_BYTES) {
    throw refuse(`a limit this small leaves no room to split it (at least ${formatBytes(MIN_UPLOAD_BYTES)} of audio per request)`);
  }
  const base = path.basename(audio.filename).replace(/\.[^.]*$/, '') || 'audio';
  const ffmpeg = await findFfmpeg();
  const wavPcm = pcm16Mono(audio.data);

  const splitWav = (pcm16: { sampleRate: number; samples: Int16Array }, note?: string): UploadPlan => {
    const pcm = toUploadRate(pcm16);
    const parts = wavParts(pcm, splitPoints(pcm.samples, pcm.sampleRate, wavSamplesFor(options.maxBytes)), base);
    return { how: 'split', originalBytes, parts, ...(note ? { note } : {}) };
  };
  if (!ffmpeg) {
    if (!wavPcm) {
      throw refuse('ffmpeg, which Koto needs to compress or split it, is not installed (without ffmpeg only 16-bit PCM WAV can be split)');
    }
    return splitWav(wavPcm);
  }
  try {
    return await withFfmpeg(audio, options, { ffmpeg, wavPcm, base, label, refuse });
  } catch (err) {
    // A broken ffmpeg (no FLAC encoder, a crash) must not stop a WAV that splits without it.
    if (!wavPcm || options.signal?.aborted || !KotoError.is(err) || err.code !== 'KOTO_ERR_AUDIO_INPUT') throw err;
    return splitWav(
      wavPcm,
      `ffmpeg failed (${err.message.replace(/^.*?ffmpeg could not convert it for upload: /, '')}), so WAV parts were sent`,
    );
  }
}

async function withFfmpeg(
  audio: AudioData,
  options: FitUploadOptions,
  context: {
    ffmpeg: string;
    wavPcm: { sampleRate: number; samples: Int16Array } | undefined;
    base: string;
    label: string;
    refuse: (reason: string) => KotoError;
  },
): Promise<UploadPlan> {
  const { ffmpeg, wavPcm, base, label, refuse } = context;
  const originalBytes = audio.data.length;
  const rate = wavPcm ? Math.min(wavPcm.sampleRate, UPLOAD_SAMPLE_RATE) : UPLOAD_SAMPLE_RATE;
  // Two conversions at a time: parts of a long recording encode while the other core works.
  const slots = pLimit(FFMPEG_CONCURRENCY);
  // `input` may be a function: a part's WAV is made only once its turn comes, not all at once.
  const convert = (input: Uint8Array | (() => Uint8Array), args: string[], extension: string): Promise<Uint8Array> =>
    slots(async () => {
      try {
        const bytes = typeof input === 'function' ? input() : input;
        return await runFfmpeg({
          input: bytes,
          args,
          outputExtension: extension,
          label: path.basename(label),
          signal: options.signal,
          ffmpeg,
        });
      } catch (err) {
        if (!(err instanceof FfmpegError)) throw err;
        throw kotoError(
          'KOTO_ERR_AUDIO_INPUT',
          { input: label, detail: `ffmpeg could not convert it for upload: ${err.reason}` },
          { cause: err },
        );
      }
    });
  const toFlac = (wav: Uint8Array | (() => Uint8Array)) => convert(wav, ['-c:a', 'flac', '-f', 'flac'], 'flac');

  // One signal for everything below: 16-bit mono at (at most) 16 kHz.
  const pcm =
    wavPcm && wavPcm.sampleRate <= UPLOAD_SAMPLE_RATE
      ? wavPcm
      : pcm16Mono(await convert(audio.data, ['-vn', '-ac', '1', '-ar', String(rate), '-sample_fmt', 's16', '-f', 'wav'], 'wav'));
  if (!pcm) throw refuse('ffmpeg did not decode it to 16-bit PCM');
  const { samples, sampleRate } = pcm;
  const pcmBytes = samples.length * 2;

  // How well FLAC does on this recording, from a few stretches of it, so a recording FLAC cannot
  // bring under the limit is not encoded whole for nothing.
  const { ratio, whole: measured } = await flacRatio(samples, sampleRate, toFlac);
  if (pcmBytes * ratio <= options.maxBytes * WHOLE_FLAC_SLACK) {
    const flac = measured ?? (await toFlac(() => encodeWav(samples, sampleRate)));
    if (flac.length <= options.maxBytes) {
      return {
        how: 'compressed',
        originalBytes,
        parts: [
          {
            index: 0,
            filename: `${base}.flac`,
            mimeType: 'audio/flac',
            bytes: flac.length,
            startSec: 0,
            durationSec: samples.length / sampleRate,
            data: () => flac,
          },
        ],
      };
    }
  }

  // Still too big: cut at pauses, compress each part; a part FLAC leaves over the limit is cut again.
  const wavMax = wavSamplesFor(options.maxBytes);
  const plan = (start: number, end: number, maxLen: number): Array<[number, number]> => {
    const points = splitPoints(samples.subarray(start, end), sampleRate, Math.max(1, maxLen));
    return points.slice(1).map((p, i) => [start + points[i]!, start + p]);
  };
  type Piece = { start: number; end: number; flac: Uint8Array | undefined };
  const encode = async ([start, end]: [number, number]): Promise<Piece[]> => {
    const flac = await toFlac(() => encodeWav(samples.subarray(start, end), sampleRate));
    if (flac.length <= options.maxBytes) return [{ start, end, flac }];
    // FLAC gained nothing on this stretch (noise); the plain WAV of it fits by construction.
    if (end - start <= wavMax) return [{ start, end, flac: undefined }];
    const again = plan(start, end, Math.floor(((end - start) * options.maxBytes * FLAC_MARGIN) / flac.length));
    return (await Promise.all(again.map(encode))).flat();
  };
  const pieces = (
    await Promise.all(plan(0, samples.length, Math.floor((options.maxBytes * FLAC_MARGIN) / (2 * ratio))).map(encode))
  ).flat();
  const parts = pieces.map(({ start, end, flac }, index): UploadPart =>
    flac
      ? part(index, `${base}.part${index + 1}.flac`, 'audio/flac', start, end, sampleRate, () => flac, flac.length)
      : wavPart(index, base, samples.subarray(start, end), start, sampleRate),
  );
  return { how: 'split', originalBytes, parts };
}

/**
 * FLAC size over PCM size, measured on up to three 20 s stretches (start, middle, end) of the
 * recording, or on all of it when it is shorter than that.
 */
async function flacRatio(
  samples: Int16Array,
  sampleRate: number,
  toFlac: (wav: Uint8Array | (() => Uint8Array)) => Promise<Uint8Array>,
): Promise<{ ratio: number; whole: Uint8Array | undefined }> {
  const stretch = RATIO_SAMPLE_SEC * sampleRate;
  const picks =
    samples.length <= 3 * stretch
      ? [samples]
      : [0, Math.floor(samples.length / 2 - stretch / 2), samples.length - stretch].map((at) => samples.subarray(at, at + stretch));
  const joined = picks.length === 1 ? samples : new Int16Array(picks.reduce((n, p) => n + p.length, 0));
  let at = 0;
  if (picks.length > 1) {
    for (const pick of picks) {
      joined.set(pick, at);
      at += pick.length;
    }
  }
  const flac = await toFlac(encodeWav(picks.length === 1 ? samples : joined, sampleRate));
  return { ratio: Math.max(0.05, flac.length / Math.max(1, joined.length * 2)), whole: picks.length === 1 ? flac : undefined };
}

/** Samples of 16-bit mono that fit `maxBytes` as one WAV file. */
function wavSamplesFor(maxBytes: number): number {
  return Math.floor((maxBytes - WAV_HEADER_BYTES) / 2);
}

function toUploadRate(pcm: { sampleRate: number; samples: Int16Array }): { sampleRate: number; samples: Int16Array } {
  if (pcm.sampleRate <= UPLOAD_SAMPLE_RATE) return pcm;
  return { sampleRate: UPLOAD_SAMPLE_RATE, samples: resample(pcm.samples, pcm.sampleRate, UPLOAD_SAMPLE_RATE) };
}

function part(
  index: number,
  filename: string,
  mimeType: string,
  start: number,
  end: number,
  sampleRate: number,
  data: () => Uint8Array,
  bytes: number,
): UploadPart {
  return { index, filename, mimeType, bytes, startSec: start / sampleRate, durationSec: (end - start) / sampleRate, data };
}

function wavPart(index: number, base: string, slice: Int16Array, start: number, sampleRate: number): UploadPart {
  return part(
    index,
    `${base}.part${index + 1}.wav`,
    'audio/wav',
    start,
    start + slice.length,
    sampleRate,
    () => encodeWav(slice, sampleRate),
    WAV_HEADER_BYTES + slice.length * 2,
  );
}

function wavParts(pcm: { sampleRate: number; samples: Int16Array }, points: readonly number[], base: string): UploadPart[] {
  return points.slice(1).map((end, i) => wavPart(i, base, pcm.samples.subarray(points[i]!, end), points[i]!, pcm.sampleRate));
}

/**
 * Cut points `[0, …, samples.length]` so that no part is longer than `maxLen` samples and the
 * parts are about equally long (no two-second tail part without context). Each cut is made in
 * the quietest stretch (a ~200 ms pause) within a window around its ideal place (at most 30 s,
 * never past the part's hard end), in the middle of its quietest 20 ms: between words, not
 * through one.
 */
export function splitPoints(samples: Int16Array, sampleRate: number, maxLen: number): number[] {
  const length = samples.length;
  const frame = Math.max(1, Math.round(sampleRate * FRAME_SEC));
  const reach = Math.min(Math.floor(maxLen * SEARCH_FRACTION), Math.round(sampleRate * MAX_SEARCH_SEC));
  // Parts a little shorter than the limit, so every cut has at least this much room to find a
  // pause before it (else the last parts would be forced to cut wherever the limit falls).
  const room = Math.min(reach, Math.round(sampleRate * MIN_ROOM_SEC));
  const count = length <= maxLen ? 1 : Math.ceil(length / Math.max(1, maxLen - room));
  const points = [0];
  for (let k = 1; k < count; k++) {
    const previous = points[k - 1]!;
    const ideal = Math.round((k * length) / count);
    // Never so early that the rest no longer fits the parts left, never so late that this part is too long.
    const from = Math.max(previous + 1, ideal - reach, length - (count - k) * maxLen);
    const to = Math.min(previous + maxLen, ideal + reach);
    points.push(to - from < frame ? to : quietestPoint(samples, from, to, frame));
  }
  points.push(length);
  return points;
}

function quietestPoint(samples: Int16Array, from: number, to: number, frame: number): number {
  const count = Math.floor((to - from) / frame);
  const energy = new Float64Array(count);
  for (let f = 0; f < count; f++) {
    let sum = 0;
    for (let i = from + f * frame, end = i + frame; i < end; i++) sum += samples[i]! * samples[i]!;
    energy[f] = sum;
  }
  const span = Math.min(PAUSE_FRAMES, count);
  let running = 0;
  for (let f = 0; f < span; f++) running += energy[f]!;
  let best = 0;
  let bestSum = running;
  for (let f = span; f < count; f++) {
    running += energy[f]! - energy[f - span]!;
    // `<=`: among equally quiet stretches the latest wins, so parts stay as long as allowed.
    if (running <= bestSum) {
      bestSum = running;
      best = f - span + 1;
    }
  }
  let quietest = best;
  for (let f = best; f < best + span; f++) if (energy[f]! <= energy[quietest]!) quietest = f;
  return Math.min(to, from + quietest * frame + Math.floor(frame / 2));
}
