/**
 * Leading and trailing silence of a live recording, found with an energy detector, so the upload
 * carries only the speech (fewer bytes, less audio billed, a faster answer). The full recording
 * stays on disk; only what is sent is trimmed.
 *
 * Energy, not a neural VAD: the noise floor is measured on the recording itself (its quietest
 * tenth), speech is what stands clearly above it, and a generous margin is kept on both sides,
 * so soft onsets and trailing consonants are never cut. When nothing stands out (a whisper in a
 * quiet room, constant noise) the recording is sent whole: trimming must never lose a word.
 */

export const FRAME_MS = 20;
/** Kept before the first and after the last speech frame. */
export const MARGIN_MS = 300;
/** Speech must stand this far above the noise floor. */
const ABOVE_FLOOR_DB = 12;
/** Below this nothing is speech, however quiet the room (a digital-silence floor). */
const MIN_SPEECH_DBFS = -50;
/** A start or end needs this many loud frames among the next (previous) five: a click is not speech. */
const CONFIRM_FRAMES = 3;
/** Trimming less than this is not worth a second copy of the audio. */
const MIN_SAVING_MS = 400;

export interface TrimResult {
  /** First and one-past-last sample kept. */
  readonly start: number;
  readonly end: number;
  /** Samples removed in all. */
  readonly removed: number;
}

function frameDb(samples: Int16Array, from: number, to: number): number {
  let sum = 0;
  for (let i = from; i < to; i++) sum += samples[i]! * samples[i]!;
  const rms = Math.sqrt(sum / Math.max(1, to - from)) / 32768;
  return rms > 0 ? 20 * Math.log10(rms) : -120;
}

/**
 * Where the speech of `samples` starts and ends, with margins; undefined when the recording
 * should be sent as it is (no clear speech, or too little to gain).
 */
export function findSpeech(samples: Int16Array, sampleRate: number): TrimResult | undefined {
  const frame = Math.max(1, Math.round((sampleRate * FRAME_MS) / 1000));
  const count = Math.floor(samples.length / frame);
  if (count < 10) return undefined;
  const db = new Float64Array(count);
  for (let f = 0; f < count; f++) db[f] = frameDb(samples, f * frame, (f + 1) * frame);
  const sorted = [...db].sort((a, b) => a - b);
  const floor = sorted[Math.floor(count * 0.1)]!;
  const threshold = Math.max(floor + ABOVE_FLOOR_DB, MIN_SPEECH_DBFS);
  const loud = (f: number) => f >= 0 && f < count && db[f]! >= threshold;
  const confirmed = (f: number, step: 1 | -1) => {
    let n = 0;
    for (let k = 0; k < 5; k++) if (loud(f + k * step)) n++;
    return loud(f) && n >= CONFIRM_FRAMES;
  };
  let first = -1;
  for (let f = 0; f < count; f++) {
    if (confirmed(f, 1)) {
      first = f;
      break;
    }
  }
  if (first < 0) return undefined;
  let last = first;
  for (let f = count - 1; f >= first; f--) {
    if (confirmed(f, -1)) {
      last = f;
      break;
    }
  }
  const margin = Math.round((sampleRate * MARGIN_MS) / 1000);
  const start = Math.max(0, first * frame - margin);
  const end = Math.min(samples.length, (last + 1) * frame + margin);
  const removed = samples.length - (end - start);
  if (removed < (sampleRate * MIN_SAVING_MS) / 1000) return undefined;
  return { start, end, removed };
}
