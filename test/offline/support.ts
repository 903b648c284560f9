import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createKernel, parseWav, type Kernel } from 'koto-voice';
import { errorRate, sumCounts } from '../../src/quality/wer.ts';

/** Word error rate of one hypothesis against its reference: Koto's own scorer (src/quality/wer.ts). */
export function wer(reference: string, hypothesis: string): number {
  return errorRate(reference, hypothesis, 'wer').rate;
}

/** Pooled WER of many pairs (total errors over total reference words). */
export function pooledWer(pairs: readonly { reference: string; hypothesis: string }[]): number {
  return sumCounts(
    'wer',
    pairs.map(({ reference, hypothesis }) => errorRate(reference, hypothesis, 'wer')),
  ).rate;
}

export const hasFlite = (() => {
  try {
    execFileSync('flite', ['-lv'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
})();

export const hasPocketsphinx =
  existsSync('/usr/share/pocketsphinx/model/en-us/en-us/mdef') &&
  (process.env.PATH ?? '').split(path.delimiter).some((d) => existsSync(path.join(d, 'pocketsphinx_continuous')));

export const hasSox = (() => {
  try {
    execFileSync('sox', ['--version'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
})();

export const hasFfmpeg = (() => {
  try {
    execFileSync('ffmpeg', ['-version'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
})();

/** Speaks `text` with a flite voice into `file` (WAV; kal is 8 kHz, the others 16 kHz). */
export function speak(text: string, voice: string, file: string): string {
  execFileSync('flite', ['-voice', voice, '-t', text, '-o', file], { stdio: 'pipe' });
  return file;
}

export interface Fixture {
  readonly voice: string;
  readonly reference: string;
  readonly file: string;
}

/** Every sentence in every voice, spoken into `dir`. */
export function fixtures(dir: string, voices: readonly string[], sentences: readonly string[] = SENTENCES): Fixture[] {
  return voices.flatMap((voice) =>
    sentences.map((reference, i) => ({ voice, reference, file: speak(reference, voice, path.join(dir, `${voice}-${i}.wav`)) })),
  );
}

/** 16-bit PCM of a WAV file. */
export function pcmOf(file: string): { sampleRate: number; samples: Int16Array } {
  const parsed = parseWav(readFileSync(file));
  if (!parsed.ok || !parsed.pcm) throw new Error(`${file} is not 16-bit PCM`);
  return parsed.pcm;
}

export { failure } from '../support/kernel.ts';

/** Transcribes each fixture in turn; pairs of reference and hypothesis. */
export async function transcribeAll(
  kernel: Kernel,
  items: readonly { reference: string; file: string }[],
): Promise<{ reference: string; hypothesis: string }[]> {
  const pairs: { reference: string; hypothesis: string }[] = [];
  for (const { reference, file } of items) pairs.push({ reference, hypothesis: (await kernel.transcribe(file)).text });
  return pairs;
}

export function tempDir(prefix = 'koto-offline-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A kernel with only the offline plugins, in a temporary KOTO_HOME. */
export async function offlineKernel(
  home: string,
  config: Record<string, unknown> = {},
  builtins: readonly string[] = ['pocketsphinx', 'local-correction'],
): Promise<Kernel> {
  return createKernel({ search: false, builtins, env: { KOTO_HOME: home }, config, logLevel: 'error' });
}

export const SAMPLE = fileURLToPath(new URL('../../samples/hello-koto.wav', import.meta.url));
export const SAMPLE_TEXT = 'hello world this is my first dictation and it works without the internet';

/** Sentences for the WER fixtures: everyday dictation, every word in the en-us model's vocabulary. */
export const SENTENCES = [
  'the weather is nice today and we are going to the park',
  'please send the report to my manager before the meeting',
  'i would like to order a large pizza with extra cheese',
  'she opened the window to let some fresh air into the room',
] as const;
