/**
 * The end of an utterance, found while recording (hands-free mode: `koto start --vad`,
 * `hotkey.mode: vad`): speech must have started, then `silenceMs` of silence ends it. The same
 * energy rules as the upload trimming (trim-silence.ts), online: the noise floor is the quietest
 * level heard so far, speech stands 12 dB above it (and above a -50 dBFS floor), an onset needs 3
 * level is smoothed over 100 ms (a click is not speech, the dip between two syllables is not
 * silence), and a pause shorter than `silenceMs` never ends it.
 */

const ABOVE_FLOOR_DB = 12;
const MIN_SPEECH_DBFS = -50;
const SMOOTH_FRAMES = 5;

export type EndOfSpeechVerdict = 'speech-ended' | 'no-speech';

export interface EndOfSpeechOptions {
  /** Silence after speech that ends the recording. */
  readonly silenceMs: number;
  /** With no speech at all within this long, the recording is given up. */
  readonly noSpeechMs: number;
}

export class EndOfSpeech {
  readonly #options: EndOfSpeechOptions;
  readonly #recent: number[] = [];
  #floor = Infinity;
  #peak = -Infinity;
  #quietSince: number | undefined;
  #first: number | undefined;
  #done = false;

  constructor(options: EndOfSpeechOptions) {
    this.#options = options;
  }

  /**
   * Speech was heard once the loudest moment so far stands 12 dB above the quietest: judged
   * again with every frame, so a speaker who starts at once (the floor not yet known) counts as
   * soon as the first pause shows what quiet is here.
   */
  get heardSpeech(): boolean {
    return this.#peak >= this.#threshold();
  }

  #threshold(): number {
    return Math.max(this.#floor + ABOVE_FLOOR_DB, MIN_SPEECH_DBFS);
  }

  /**
   * Feeds one frame (its RMS level 0..1 and its time in ms since the recording began); answers
   * once, when the recording should end.
   */
  push(rms: number, timestamp: number): EndOfSpeechVerdict | undefined {
    if (this.#done) return undefined;
    this.#first ??= timestamp;
    const db = rms > 0 ? 20 * Math.log10(rms) : -120;
    this.#recent.push(db);
    if (this.#recent.length > SMOOTH_FRAMES) this.#recent.shift();
    // A mean over 100 ms: a click among quiet frames stays quiet, a word's dip stays loud.
    const smooth = this.#recent.reduce((a, b) => a + b, 0) / this.#recent.length;
    this.#floor = Math.min(this.#floor, smooth);
    if (this.#recent.length === SMOOTH_FRAMES) this.#peak = Math.max(this.#peak, smooth);
    if (!this.heardSpeech) {
      this.#quietSince = undefined;
      return timestamp - this.#first >= this.#options.noSpeechMs ? this.#end('no-speech') : undefined;
    }
    if (smooth >= this.#threshold()) {
      this.#quietSince = undefined;
      return undefined;
    }
    this.#quietSince ??= timestamp;
    return timestamp - this.#quietSince >= this.#options.silenceMs ? this.#end('speech-ended') : undefined;
  }

  #end(verdict: EndOfSpeechVerdict): EndOfSpeechVerdict {
    this.#done = true;
    return verdict;
  }
}
