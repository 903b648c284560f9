/**
 * Long, deterministic inputs for the bounded-work tests: recordings of many minutes and
 * megabytes of dictated text, generated in memory (no fixtures, no flite).
 */

export const RATE = 16000;

/** Quiet room noise and speech-loud bursts, period 5 s: 3 s of quiet, then 2 s of "speech". */
export const BURST_S = 2;
export const PERIOD_S = 5;

/** A pseudo-random sequence in [0, 1): the same samples on every run. */
function noise(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

/**
 * `minutes` of 16 kHz audio: every 5 s, 3 s of room noise (about 25 dB re one step) then a 2 s
 * noisy 220 Hz burst at speech level (about 70 dB), which the segmenter cuts into one
 * utterance per burst. `quiet: true` gives room noise only (no speech is found in it).
 */
export function longRecording(minutes: number, { quiet = false } = {}): Int16Array {
  const out = new Int16Array(Math.round(minutes * 60 * RATE));
  const random = noise(42);
  for (let i = 0; i < out.length; i++) {
    const t = (i / RATE) % PERIOD_S;
    const room = (random() - 0.5) * 60;
    out[i] =
      !quiet && t >= PERIOD_S - BURST_S
        ? Math.round(6000 * Math.sin((2 * Math.PI * 220 * i) / RATE) * (0.6 + 0.4 * random()) + room)
        : Math.round(room);
  }
  return out;
}

/** What a long dictation looks like before correction: fillers, spoken marks, dictionary terms. */
export const DICTATED =
  'um so we deploy the node js service with visual studio code comma you know comma and then i check grafana period new line what time is it question mark ';

/** `text` repeated to at least `size` characters (whole repetitions). */
export function repeatTo(text: string, size: number): string {
  return text.repeat(Math.ceil(size / text.length));
}

/** Occurrences of `needle` in `haystack`. */
export function count(haystack: string, needle: string): number {
  let n = 0;
  for (let at = haystack.indexOf(needle); at >= 0; at = haystack.indexOf(needle, at + needle.length)) n++;
  return n;
}
