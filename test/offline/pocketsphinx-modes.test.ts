import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { encodeWav, type KotoError } from 'koto-voice';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LibraryDecoder } from '../../plugins/pocketsphinx/decoder.ts';
import { loadBinding } from '../../plugins/pocketsphinx/library.ts';
import { concat } from '../../plugins/pocketsphinx/segmenter.ts';
import {
  failure,
  fixtures,
  hasFlite,
  hasPocketsphinx,
  offlineKernel,
  pcmOf,
  pooledWer,
  SAMPLE,
  speak,
  tempDir,
  transcribeAll,
  wer,
  type Fixture,
} from './support.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

const provider = (options: Record<string, unknown>) => ({ providers: { offline: { use: 'pocketsphinx', ...options } } });

describe.runIf(hasPocketsphinx && hasFlite)('pocketsphinx engines and modes', () => {
  let voices: Fixture[];
  /** Two sentences with a one-second pause between them. */
  let twoUtterances: { file: string; reference: string };

  beforeAll(() => {
    voices = fixtures(tmp.dir, ['kal16', 'awb']);
    const pause = new Int16Array(16000);
    const file = path.join(tmp.dir, 'two-utterances.wav');
    writeFileSync(file, encodeWav(concat([pcmOf(voices[0]!.file).samples, pause, pcmOf(voices[1]!.file).samples, pause]), 16000));
    twoUtterances = { file, reference: `${voices[0]!.reference} ${voices[1]!.reference}` };
  });

  for (const engine of ['library', 'cli'] as const) {
    it(`reports each utterance as interim text in continuous mode (${engine})`, { timeout: 300_000 }, async () => {
      const kernel = await offlineKernel(tmp.dir, provider({ mode: 'continuous', engine }), ['pocketsphinx']);
      try {
        const interim: string[] = [];
        const result = await kernel.transcribe(twoUtterances.file, { onInterim: (text) => interim.push(text) });
        expect(wer(twoUtterances.reference, result.text)).toBeLessThanOrEqual(0.15);
        expect(interim.length).toBeGreaterThanOrEqual(2);
        expect(result.text.startsWith(interim[0]!)).toBe(true);
        expect(interim.at(-1)).toBe(result.text);
      } finally {
        await kernel.close();
      }
    });
  }

  it('cuts a long recording at pauses in batch mode, reporting each piece', { timeout: 300_000 }, async () => {
    const binding = await loadBinding(undefined);
    const model = '/usr/share/pocketsphinx/model/en-us';
    const decoder = await LibraryDecoder.create(binding, [
      '-hmm',
      `${model}/en-us`,
      '-lm',
      `${model}/en-us.lm.bin`,
      '-dict',
      `${model}/cmudict-en-us.dict`,
      '-logfn',
      '/dev/null',
    ]);
    try {
      const interim: string[] = [];
      const samples = pcmOf(twoUtterances.file).samples;
      const text = await decoder.decode([samples], {
        mode: 'batch',
        signal: new AbortController().signal,
        onText: (t) => interim.push(t),
        maxUtteranceSamples: Math.ceil(samples.length * 0.6),
      });
      expect(interim).toHaveLength(2);
      expect(interim[1]).toBe(text);
      expect(wer(twoUtterances.reference, text)).toBeLessThanOrEqual(0.15);
      // The same recording whole: one piece, one report.
      const whole: string[] = [];
      expect(
        wer(
          twoUtterances.reference,
          await decoder.decode([samples], { mode: 'batch', signal: new AbortController().signal, onText: (t) => whole.push(t) }),
        ),
      ).toBeLessThanOrEqual(0.15);
      expect(whole).toHaveLength(1);
    } finally {
      await decoder.close();
    }
  });

  it('decodes whole recordings with pocketsphinx_batch (engine: cli)', { timeout: 300_000 }, async () => {
    const kernel = await offlineKernel(tmp.dir, provider({ engine: 'cli', mode: 'batch' }), ['pocketsphinx']);
    try {
      expect(pooledWer(await transcribeAll(kernel, voices.slice(0, 3)))).toBeLessThanOrEqual(0.15);
    } finally {
      await kernel.close();
    }
  });

  it('puts Koto dictionary words into the engine (library engine)', { timeout: 300_000 }, async () => {
    const sentence = 'we monitor the servers with grafana';
    const file = speak(sentence, 'kal16', path.join(tmp.dir, 'grafana.wav'));
    const plain = await offlineKernel(tmp.dir, {}, ['pocketsphinx']);
    try {
      expect((await plain.transcribe(file)).text).not.toContain('grafana');
    } finally {
      await plain.close();
    }
    const dictionary = path.join(tmp.dir, 'dictionary.txt');
    writeFileSync(dictionary, 'Grafana\nTailscale\nVisual Studio Code\n');
    const kernel = await offlineKernel(tmp.dir, { dictionary });
    try {
      const result = await kernel.run(file);
      expect(result.raw).toContain('grafana');
      expect(result.text).toContain('Grafana');
      expect(wer(sentence, result.raw!)).toBeLessThanOrEqual(0.2);
      // Ordinary speech is no worse for the added words.
      expect(wer(voices[0]!.reference, (await kernel.transcribe(voices[0]!.file)).text)).toBeLessThanOrEqual(0.15);
    } finally {
      await kernel.close();
    }
  });

  for (const engine of ['library', 'cli'] as const) {
    it(`honours cancellation, and stays usable afterwards (${engine})`, { timeout: 300_000 }, async () => {
      const kernel = await offlineKernel(tmp.dir, provider({ engine, mode: 'continuous' }), ['pocketsphinx']);
      try {
        const controller = new AbortController();
        // Cancelled as soon as the first utterance is out, the second one still to come.
        const err = await failure(
          kernel.transcribe(twoUtterances.file, { signal: controller.signal, onInterim: () => controller.abort() }),
        );
        expect(err.code).toBe('KOTO_ERR_ABORTED');
        expect(wer(voices[2]!.reference, (await kernel.transcribe(voices[2]!.file)).text)).toBeLessThanOrEqual(0.15);
      } finally {
        await kernel.close();
      }
    });
  }
});

describe('missing engine', () => {
  const expectInstallHint = (err: KotoError) => {
    expect(err.code).toBe('POCKETSPHINX_ERR_ENGINE_MISSING');
    expect(err.exitCode).toBe(1);
    expect(err.plugin).toBe('pocketsphinx');
    expect(err.message).toContain('offline speech engine pocketsphinx is not installed');
    if (process.platform === 'linux') expect(err.fix).toContain('apt-get install pocketsphinx pocketsphinx-en-us');
  };

  it('names the install command when the programs are not there', async () => {
    const kernel = await offlineKernel(tmp.dir, provider({ engine: 'cli', binDir: '/nonexistent/bin' }));
    try {
      const err = await failure(kernel.run(SAMPLE));
      expectInstallHint(err);
      expect(err.message).toContain('pocketsphinx_batch is not in /nonexistent/bin');
    } finally {
      await kernel.close();
    }
  });

  it('names the install command when the library is not there', async () => {
    const kernel = await offlineKernel(tmp.dir, provider({ engine: 'library', library: '/nonexistent/libpocketsphinx.so.3' }), [
      'pocketsphinx',
    ]);
    try {
      const err = await failure(kernel.transcribe(SAMPLE));
      expectInstallHint(err);
      expect(err.message).toContain('/nonexistent/libpocketsphinx.so.3');
    } finally {
      await kernel.close();
    }
  });

  it('names the install command when the model is not there', async () => {
    const kernel = await offlineKernel(tmp.dir, provider({ model: '/nonexistent/model/en-us' }), ['pocketsphinx']);
    try {
      const err = await failure(kernel.transcribe(SAMPLE));
      expectInstallHint(err);
      expect(err.message).toContain('/nonexistent/model/en-us');
    } finally {
      await kernel.close();
    }
  });

  it('answers `koto doctor` probes: what is active, or what to install', async () => {
    const missing = await offlineKernel(tmp.dir, provider({ engine: 'cli', binDir: '/nonexistent/bin' }), ['pocketsphinx']);
    try {
      const result = await missing.probe('offline');
      expect(result.ok).toBe(false);
      expect(result.detail).toContain('offline speech engine pocketsphinx is not installed');
    } finally {
      await missing.close();
    }
    if (!hasPocketsphinx) return;
    const present = await offlineKernel(tmp.dir, {}, ['pocketsphinx']);
    try {
      const result = await present.probe('offline');
      expect(result).toMatchObject({ ok: true });
      expect(result.detail).toMatch(/^offline pocketsphinx, batch mode through (library|pocketsphinx_batch)/);
    } finally {
      await present.close();
    }
  });

  it('still lets the kernel start: the error comes when transcribing', async () => {
    const kernel = await offlineKernel(tmp.dir, {
      providers: { offline: { use: 'pocketsphinx', engine: 'cli', binDir: '/nonexistent' }, local: { use: 'local-correction' } },
    });
    expect(kernel.state).toBe('ready');
    expect((await kernel.correct('um hello')).text).toBe('Hello.');
    await kernel.close();
  });
});
