import os from 'node:os';
import path from 'node:path';
import {
  kotoError,
  KotoError,
  type AsrProviderV1,
  type AsrRequest,
  type AsrResult,
  type PluginApi,
  type ProbeRequest,
  type ProbeResult,
} from 'koto-voice';
import { toEngineAudio } from './audio.ts';
import { runBatch, runContinuous } from './cli.ts';
import type { LibraryDecoder } from './decoder.ts';
import type { DecoderPool } from './decoder-pool.ts';
import { chooseEngine, decoderArgs, resolveModel, type ModelPaths } from './engine.ts';
import { AbortedError } from './library.ts';
import { ENGINE_RATE, type ProviderOptions } from './options.ts';

/** Most words added to one decoder (each one grows the search a little). */
const MAX_CUSTOM_WORDS = 1000;

/** The library logs to stderr unless told otherwise. */
export function libraryArgs(model: ModelPaths, options: ProviderOptions): string[] {
  const args = decoderArgs(model, options);
  return '-logfn' in options.args ? args : [...args, '-logfn', os.devNull];
}

const modelName = (model: ModelPaths) => `pocketsphinx/${path.basename(model.dir)}`;

/** The offline ASR provider: the library decoder (models kept by the decoder pool) or the pocketsphinx programs. */
export function asrProvider(
  api: PluginApi<ProviderOptions>,
  { decoderFor }: Pick<DecoderPool, 'decoderFor'>,
  infoOnce: (key: string, message: string) => void,
): AsrProviderV1<ProviderOptions> {
  /** Dictionary words the decoder does not know, with pronunciations where one can be made (made in the worker). */
  const addCustomWords = async (decoder: LibraryDecoder, request: AsrRequest<ProviderOptions>, options: ProviderOptions): Promise<void> => {
    const { added, skipped, refused } = await decoder.addWords({
      dictionary: request.dictionary,
      weight: options.customWordWeight,
      flite: options.flite,
      max: MAX_CUSTOM_WORDS,
      signal: request.signal,
    });
    if (added.length)
      api.log.debug(`pocketsphinx: added ${added.length} dictionary word(s): ${added.map((p) => `${p.word} [${p.phones}]`).join(', ')}`);
    const left = [...skipped, ...refused];
    if (left.length) {
      infoOnce(
        `skipped:${left.join(',')}`,
        `pocketsphinx: no pronunciation for dictionary word(s) ${left.join(', ')}${options.flite ? '' : ' (flite is off)'}; the local corrector still fixes their spelling when the engine hears them`,
      );
    }
  };

  const transcribe = async (request: AsrRequest<ProviderOptions>): Promise<AsrResult> => {
    const options = request.provider.options;
    const engine = await chooseEngine(options);
    const model = resolveModel(options);
    const args = decoderArgs(model, options);
    if (request.language && !/^en(?:$|[-_])/i.test(request.language)) {
      infoOnce(`lang:${request.language}`, `pocketsphinx: the model is US English; asr.language "${request.language}" is ignored`);
    }
    const audio = await toEngineAudio(request.audio, ENGINE_RATE, request.signal);
    if (audio.samples.length === 0) return { text: '', model: modelName(model), language: 'en', durationSec: 0 };
    const onText = request.stream
      ? (text: string) => {
          try {
            request.onInterim(text);
          } catch (err) {
            api.log.debug(`interim listener failed: ${err instanceof Error ? err.message : String(err)}`);
          }
        }
      : undefined;
    try {
      let text: string;
      if (engine.kind === 'library') {
        const decoder = await decoderFor(options.library, libraryArgs(model, options));
        if (options.customWords && request.dictionary.length) await addCustomWords(decoder, request, options);
        text = await decoder.decode([audio.samples], { mode: options.mode, signal: request.signal, onText });
      } else {
        if (engine.why) infoOnce(`cli:${engine.why}`, `pocketsphinx: using ${path.basename(engine.program)} (${engine.why})`);
        if (options.customWords && request.dictionary.length) {
          infoOnce(
            'cli-words',
            'pocketsphinx: dictionary words reach the engine only through its library (engine: library); with the programs they are fixed by the corrector only',
          );
        }
        const run = { program: engine.program, args, samples: audio.samples, signal: request.signal, onText };
        text = options.mode === 'batch' ? await runBatch(run) : await runContinuous(run);
      }
      return { text, model: modelName(model), language: 'en', durationSec: audio.samples.length / ENGINE_RATE };
    } catch (err) {
      if (err instanceof AbortedError || (request.signal.aborted && !KotoError.is(err))) {
        throw kotoError('KOTO_ERR_ABORTED', { what: 'transcription' }, { cause: err });
      }
      throw err;
    }
  };

  const probe = async ({ provider }: ProbeRequest<ProviderOptions>): Promise<ProbeResult> => {
    const options = provider.options;
    try {
      const engine = await chooseEngine(options);
      const model = resolveModel(options);
      const how =
        engine.kind === 'library'
          ? `library ${engine.library}`
          : `${path.basename(engine.program)}${engine.why ? ` (library unavailable: ${engine.why})` : ''}`;
      return { ok: true, detail: `offline pocketsphinx, ${options.mode} mode through ${how}, model ${model.dir}` };
    } catch (err) {
      return { ok: false, detail: KotoError.is(err) ? `${err.message}. Fix: ${err.fix}` : String(err) };
    }
  };

  return { specificationVersion: 'v1', transcribe, probe };
}
