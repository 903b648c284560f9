/**
 * libpocketsphinx (0.8 / 5prealpha, as Debian and Ubuntu ship it) in-process through koffi.
 * The event loop only loads the library (to tell whether it is usable); models are loaded and
 * audio decoded in a worker thread (decoder.ts, decode-worker.ts) with blocking calls.
 *
 * Imported by the worker, which Node runs from source by stripping types: no imports of
 * `koto-voice`, and no TypeScript syntax that needs transforming (parameter properties, enums).
 */

/** What koffi hands back for a C pointer: an opaque value only passed back to C. */
type Pointer = unknown;
type NativeFunction<Args extends unknown[], R> = (...args: Args) => R;

export interface Binding {
  readonly path: string;
  psArgs: NativeFunction<[], Pointer>;
  cmdLnParse: NativeFunction<[Pointer, Pointer, number, string[], number], Pointer>;
  cmdLnFree: NativeFunction<[Pointer], number>;
  init: NativeFunction<[Pointer], Pointer>;
  free: NativeFunction<[Pointer], number>;
  startUtt: NativeFunction<[Pointer], number>;
  processRaw: NativeFunction<[Pointer, Int16Array, number, number, number], number>;
  endUtt: NativeFunction<[Pointer], number>;
  getHyp: NativeFunction<[Pointer, number[]], string | null>;
  startStream: NativeFunction<[Pointer], number>;
  addWord: NativeFunction<[Pointer, string, string, number], number>;
  lookupWord: NativeFunction<[Pointer, string], string | null>;
  getSearch: NativeFunction<[Pointer], string | null>;
  getLm: NativeFunction<[Pointer, string], Pointer>;
  ngramAddWord: NativeFunction<[Pointer, string, number], number>;
}

/** Thrown when the library cannot be used; `reason` says why in one line. */
export class LibraryUnavailable extends Error {
  readonly reason: string;
  /** The npm package whose absence is the reason (koffi, an optional dependency), if that is it. */
  readonly missingPackage: string | undefined;
  constructor(reason: string, missingPackage?: string) {
    super(reason);
    this.reason = reason;
    this.missingPackage = missingPackage;
    this.name = 'LibraryUnavailable';
  }
}

const DEFAULT_LIBRARIES: Readonly<Partial<Record<NodeJS.Platform, readonly string[]>>> = {
  linux: ['libpocketsphinx.so.3', 'libpocketsphinx.so'],
};

const bindings = new Map<string, Promise<Binding>>();

/** Loads koffi and the library once per path; rejects with LibraryUnavailable. */
export function loadBinding(library: string | undefined): Promise<Binding> {
  const key = library ?? '';
  let pending = bindings.get(key);
  if (!pending) {
    pending = bind(library);
    bindings.set(key, pending);
  }
  return pending;
}

async function bind(library: string | undefined): Promise<Binding> {
  let koffi: typeof import('koffi').default;
  try {
    koffi = (await import('koffi')).default;
  } catch (err) {
    // koto-voice's isMissingModule, written out: this file runs in a worker without koto-voice.
    const code = (err as { code?: unknown } | null)?.code;
    if (code === 'ERR_MODULE_NOT_FOUND' && String((err as Error).message).includes("'koffi'")) {
      throw new LibraryUnavailable('the koffi package is not installed (an optional dependency of koto-voice)', 'koffi');
    }
    throw new LibraryUnavailable(`the koffi package cannot be loaded (${err instanceof Error ? err.message.split('\n')[0] : String(err)})`);
  }
  const candidates = library ? [library] : (DEFAULT_LIBRARIES[process.platform] ?? []);
  if (candidates.length === 0) throw new LibraryUnavailable(`no libpocketsphinx is known for ${process.platform}`);
  let lib: ReturnType<typeof koffi.load> | undefined;
  let used = '';
  const failures: string[] = [];
  for (const candidate of candidates) {
    try {
      lib = koffi.load(candidate);
      used = candidate;
      break;
    } catch (err) {
      failures.push(`${candidate}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  if (!lib) throw new LibraryUnavailable(`libpocketsphinx cannot be loaded (${failures.join('; ')})`);
  const has = (name: string) => {
    try {
      lib.func(`void ${name}()`);
      return true;
    } catch {
      return false;
    }
  };
  // pocketsphinx 5 (Homebrew, newer distributions) replaced cmd_ln with ps_config: another API.
  if (has('ps_config_init') && !has('cmd_ln_parse_r')) {
    throw new LibraryUnavailable(`${used} is pocketsphinx 5, whose API Koto does not support yet (it needs pocketsphinx 0.8 / 5prealpha)`);
  }
  try {
    // sphinxbase symbols (cmd_ln_*, ngram_*, ckd_free) resolve through libpocketsphinx's dependencies.
    const ckdFree = lib.func('void ckd_free(void *ptr)');
    const heapStr = koffi.disposable('str', ckdFree);
    const fn = <Args extends unknown[], R>(definition: string) => lib.func(definition) as unknown as NativeFunction<Args, R>;
    return {
      path: used,
      psArgs: fn('void *ps_args()'),
      cmdLnParse: fn('void *cmd_ln_parse_r(void *inout, void *defn, int argc, const char **argv, int strict)'),
      cmdLnFree: fn('int cmd_ln_free_r(void *cmdln)'),
      init: fn('void *ps_init(void *config)'),
      free: fn('int ps_free(void *ps)'),
      startUtt: fn('int ps_start_utt(void *ps)'),
      processRaw: fn('int ps_process_raw(void *ps, const int16_t *data, size_t n_samples, int no_search, int full_utt)'),
      endUtt: fn('int ps_end_utt(void *ps)'),
      getHyp: fn('const char *ps_get_hyp(void *ps, _Out_ int32_t *out_best_score)'),
      startStream: fn('int ps_start_stream(void *ps)'),
      addWord: fn('int ps_add_word(void *ps, const char *word, const char *phones, int update)'),
      lookupWord: lib.func('ps_lookup_word', heapStr, ['void *', 'const char *']) as unknown as NativeFunction<
        [Pointer, string],
        string | null
      >,
      getSearch: fn('const char *ps_get_search(void *ps)'),
      getLm: fn('void *ps_get_lm(void *ps, const char *name)'),
      ngramAddWord: fn('int ngram_model_add_word(void *model, const char *word, float weight)'),
    };
  } catch (err) {
    throw new LibraryUnavailable(`${used} lacks a function Koto needs (${err instanceof Error ? err.message : String(err)})`);
  }
}

/** Thrown when decoding stops because it was cancelled or its deadline passed. */
export class AbortedError extends Error {
  constructor() {
    super('decoding was cancelled');
    this.name = 'AbortError';
  }
}

/**
 * One loaded model (about 110 MB), driven with blocking calls: it lives in the decode worker
 * (decode-worker.ts), whose thread may block, never on the event loop.
 */
export class NativeDecoder {
  readonly #b: Binding;
  readonly #ps: Pointer;
  readonly #config: Pointer;
  #freed = false;
  /** Words this decoder was given (or refused), so each session only adds new ones. */
  readonly #tried = new Map<string, boolean>();

  private constructor(binding: Binding, ps: Pointer, config: Pointer) {
    this.#b = binding;
    this.#ps = ps;
    this.#config = config;
  }

  /** `argv` are decoder arguments (`-hmm`, `-lm`, `-dict`, …). Blocks while the model loads. */
  static create(binding: Binding, argv: readonly string[]): NativeDecoder {
    const b = binding;
    const config = b.cmdLnParse(null, b.psArgs(), argv.length, [...argv], 1);
    if (!config) throw new Error(`pocketsphinx refused its arguments (${argv.filter((a) => a.startsWith('-')).join(' ')})`);
    const ps = b.init(config);
    if (!ps) {
      b.cmdLnFree(config);
      throw new Error(
        'pocketsphinx could not load its model (check the hmm, lm and dict paths; add "-logfn": "/tmp/ps.log" to `args` to see its log)',
      );
    }
    return new NativeDecoder(b, ps, config);
  }

  /** The pronunciation the decoder knows for a word (`HH AH L OW`), or undefined. */
  lookup(word: string): string | undefined {
    if (this.#freed) return undefined;
    return this.#b.lookupWord(this.#ps, word) ?? undefined;
  }

  /** Whether this word was already offered to the decoder (added or refused). */
  offered(word: string): boolean {
    return this.#tried.has(word);
  }

  /**
   * Adds words to the dictionary and, with `weight`, to the language model's unigrams (a word
   * only in the dictionary is never recognised). The language model entry must come first:
   * ps_add_word would otherwise add it with weight 1. Returns the words the engine refused.
   */
  addWords(words: readonly { word: string; phones: string }[], weight: number): string[] {
    const refused: string[] = [];
    const fresh = words.filter((w) => !this.#tried.has(w.word));
    if (fresh.length === 0 || this.#freed) return refused;
    const search = this.#b.getSearch(this.#ps) ?? '_default';
    const lm = this.#b.getLm(this.#ps, search);
    for (const [i, { word, phones }] of fresh.entries()) {
      if (lm) this.#b.ngramAddWord(lm, word, weight);
      // update=1 on the last word only: it rebuilds the search once for the whole batch.
      const id = this.#b.addWord(this.#ps, word, phones, i === fresh.length - 1 ? 1 : 0);
      this.#tried.set(word, id >= 0);
      if (id < 0) refused.push(word);
    }
    return refused;
  }

  /**
   * One utterance decoded whole (`full_utt`): the cepstral mean is taken over the utterance
   * itself, which is more accurate than the live estimate chunked decoding uses, and makes the
   * result independent of what this decoder heard before (the noise estimate is reset too).
   * Blocks for about 0.2 s per second of audio; nothing can interrupt it, so callers keep
   * utterances short (30 s at most) and check for cancellation between them.
   */
  utterance(samples: Int16Array): string {
    if (this.#freed) throw new Error('the pocketsphinx decoder was closed');
    const b = this.#b;
    const ps = this.#ps;
    b.startStream(ps);
    if (b.startUtt(ps) < 0) throw new Error('pocketsphinx could not start an utterance');
    try {
      if (b.processRaw(ps, samples, samples.length, 0, 1) < 0) throw new Error('pocketsphinx failed to process audio');
    } finally {
      b.endUtt(ps);
    }
    return (b.getHyp(ps, [0]) ?? '').trim();
  }

  /** Frees the model (the decoder is unusable afterwards). */
  free(): void {
    if (this.#freed) return;
    this.#freed = true;
    this.#b.free(this.#ps);
    this.#b.cmdLnFree(this.#config);
  }
}
