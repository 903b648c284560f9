import { z } from 'koto-voice';

/** Where Debian and Ubuntu's `pocketsphinx-en-us` package puts the US English model. */
export const DEBIAN_MODEL_DIR = '/usr/share/pocketsphinx/model/en-us';
/** Model folders tried, in order, when `model` is not set (a source build installs under /usr/local). */
export const MODEL_DIR_CANDIDATES = [DEBIAN_MODEL_DIR, '/usr/local/share/pocketsphinx/model/en-us'] as const;

/** Sample rate the en-us acoustic model was trained on; all audio is resampled to it. */
export const ENGINE_RATE = 16000;

const path = z.string().min(1);

/**
 * One provider instance (`providers.<name>` with `use: pocketsphinx`). Every key is optional:
 * the defaults are Debian's package layout and the mode that measured best.
 */
export const providerSchema = z.strictObject({
  /** Model folder holding `en-us/` (acoustic model), `en-us.lm.bin` and `cmudict-en-us.dict`. */
  model: path.optional(),
  /** Acoustic model folder (default `<model>/en-us`). */
  hmm: path.optional(),
  /** Language model (default `<model>/en-us.lm.bin`). */
  lm: path.optional(),
  /** Pronunciation dictionary (default `<model>/cmudict-en-us.dict`). */
  dict: path.optional(),
  /**
   * `batch`: the whole recording is one utterance (best accuracy; partial hypotheses as interim
   * text). `continuous`: the engine's voice-activity detection cuts utterances at pauses, and
   * each finished utterance is reported as interim text.
   */
  mode: z.enum(['batch', 'continuous']).default('batch'),
  /**
   * `library`: libpocketsphinx in-process through koffi (custom words, partial results, model
   * loaded once per kernel). `cli`: the `pocketsphinx_batch` / `pocketsphinx_continuous`
   * programs, one per session. `auto`: the library when it loads, else the programs.
   */
  engine: z.enum(['auto', 'library', 'cli']).default('auto'),
  /** The pocketsphinx shared library (default: `libpocketsphinx.so.3` from the system's library path). */
  library: path.optional(),
  /** Folder of the pocketsphinx programs (default: found on PATH). */
  binDir: path.optional(),
  /** Add unknown Koto dictionary words to the engine's dictionary and language model (library engine). */
  customWords: z.boolean().default(true),
  /** Unigram weight of an added word relative to the uniform distribution; higher → recognised more eagerly. */
  customWordWeight: z.number().positive().max(1e6).default(100),
  /** Program that spells out pronunciations of unknown words (`flite -ps`); `false` to compose them from known words only. */
  flite: z.union([path, z.literal(false)]).default('flite'),
  /** Extra decoder arguments, e.g. `{ "-beam": "1e-60" }` (passed as they are to the engine). */
  args: z.record(z.string().regex(/^-\w+$/, 'decoder arguments look like -name'), z.string()).default({}),
});

export type ProviderOptions = z.output<typeof providerSchema>;

/** Default provider instance: always offered, at a priority any cloud key beats. */
export function defaultProviders(): Record<string, Record<string, unknown>> {
  return { offline: {} };
}
