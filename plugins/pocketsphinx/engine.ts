import { existsSync } from 'node:fs';
import path from 'node:path';
import { dependencyMissing, kotoError, type KotoError } from 'koto-voice';
import { BATCH, CONTINUOUS, findProgram } from './cli.ts';
import { loadBinding, LibraryUnavailable } from './library.ts';
import { MODEL_DIR_CANDIDATES, type ProviderOptions } from './options.ts';

export const NAME = 'pocketsphinx';

export interface ModelPaths {
  readonly dir: string;
  readonly hmm: string;
  readonly lm: string;
  readonly dict: string;
}

export type Engine =
  | { readonly kind: 'library'; readonly library: string }
  | { readonly kind: 'cli'; readonly program: string; readonly why: string | undefined };

/** The command that installs the engine here, or why there is none. */
export function installAdvice(platform: NodeJS.Platform = process.platform): { command: string | undefined; text: string } {
  if (platform === 'linux') {
    const apt = existsSync('/usr/bin/apt-get') || existsSync('/bin/apt-get');
    const root = process.getuid?.() === 0;
    const command = `${root ? '' : 'sudo '}apt-get install pocketsphinx pocketsphinx-en-us`;
    return apt
      ? { command, text: `install it with \`${command}\`` }
      : {
          command: undefined,
          text: 'install pocketsphinx 0.8 (5prealpha) and its US English model with your package manager (on Debian and Ubuntu: `sudo apt-get install pocketsphinx pocketsphinx-en-us`)',
        };
  }
  return {
    command: undefined,
    text: `the offline default is Linux-only for now (it needs pocketsphinx 0.8 as Debian and Ubuntu ship it; Homebrew's pocketsphinx 5 is not supported yet); on ${platform === 'darwin' ? 'macOS' : platform} set OPENAI_API_KEY to use the OpenAI default, or configure another provider`,
  };
}

/** The one error for "the engine or its model is not there", naming what was looked for and the install command. */
export function engineMissing(what: string): KotoError {
  const advice = installAdvice();
  return kotoError(
    'POCKETSPHINX_ERR_ENGINE_MISSING',
    { engine: 'pocketsphinx', detail: what, install: advice.text },
    { plugin: NAME, details: { install: advice.command } },
  );
}

/** Model files from the options, with Debian's layout as the default. Throws engineMissing when absent. */
export function resolveModel(options: ProviderOptions): ModelPaths {
  const dir = options.model ?? MODEL_DIR_CANDIDATES.find((d) => existsSync(path.join(d, 'en-us', 'mdef'))) ?? MODEL_DIR_CANDIDATES[0];
  const model = {
    dir,
    hmm: options.hmm ?? path.join(dir, 'en-us'),
    lm: options.lm ?? path.join(dir, 'en-us.lm.bin'),
    dict: options.dict ?? path.join(dir, 'cmudict-en-us.dict'),
  };
  const missing = [
    existsSync(path.join(model.hmm, 'mdef')) ? undefined : `no acoustic model at ${model.hmm}`,
    existsSync(model.lm) ? undefined : `no language model at ${model.lm}`,
    existsSync(model.dict) ? undefined : `no dictionary at ${model.dict}`,
  ].filter(Boolean);
  if (missing.length === 3 && !options.hmm && !options.lm && !options.dict) {
    throw engineMissing(`the pocketsphinx en-us model is missing: ${dir} not found`);
  }
  if (missing.length) throw engineMissing(`the pocketsphinx model is incomplete: ${missing.join(', ')}`);
  return model;
}

/** Decoder arguments shared by every engine. */
export function decoderArgs(model: ModelPaths, options: ProviderOptions): string[] {
  const args = ['-hmm', model.hmm, '-lm', model.lm, '-dict', model.dict];
  for (const [key, value] of Object.entries(options.args)) args.push(key, value);
  return args;
}

/**
 * Picks the engine: the library when it loads (unless `engine: cli`), else the program the
 * mode needs. Throws engineMissing naming everything that was tried.
 */
export async function chooseEngine(options: ProviderOptions): Promise<Engine> {
  const reasons: string[] = [];
  let libraryReason: string | undefined;
  if (options.engine !== 'cli') {
    try {
      const binding = await loadBinding(options.library);
      return { kind: 'library', library: binding.path };
    } catch (err) {
      libraryReason = err instanceof LibraryUnavailable ? err.reason : String(err);
      if (options.engine === 'library') {
        if (err instanceof LibraryUnavailable && err.missingPackage) {
          throw dependencyMissing({
            plugin: NAME,
            package: err.missingPackage,
            feature: 'the in-process pocketsphinx engine (`engine: library`)',
            alternative: 'set `engine: auto` or `cli` to use the pocketsphinx programs',
          });
        }
        throw engineMissing(libraryReason);
      }
      reasons.push(libraryReason);
    }
  }
  const name = options.mode === 'batch' ? BATCH : CONTINUOUS;
  const program = findProgram(name, options.binDir);
  if (program) return { kind: 'cli', program, why: libraryReason };
  reasons.push(`${name} is not ${options.binDir ? `in ${options.binDir}` : 'on PATH'}`);
  throw engineMissing(reasons.join('; '));
}
