/**
 * WER and time per file of every engine × mode on flite voices: a measurement, not a check.
 * Run it with `KOTO_WER_REPORT=1 npx vitest run test/offline/wer-report.test.ts`.
 */
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { hasFlite, hasPocketsphinx, offlineKernel, pcmOf, pooledWer, speak, tempDir } from './support.ts';

const REPORT_SENTENCES = [
  'the weather is nice today and we are going to the park',
  'please send the report to my manager before the meeting',
  'i would like to order a large pizza with extra cheese',
  'the train to the city leaves at seven in the morning',
  'she opened the window to let some fresh air into the room',
  'we need to buy milk bread and eggs from the store',
];
const VOICES = ['kal16', 'slt', 'rms', 'awb', 'kal'];
const CONFIGS = [
  { engine: 'library', mode: 'batch' },
  { engine: 'library', mode: 'continuous' },
  { engine: 'cli', mode: 'batch' },
  { engine: 'cli', mode: 'continuous' },
] as const;

const enabled = process.env.KOTO_WER_REPORT === '1' && hasFlite && hasPocketsphinx;

describe.runIf(enabled)('WER report', () => {
  it('measures every engine and mode', { timeout: 600_000 }, async () => {
    const tmp = tempDir();
    onTestFinished(() => tmp.cleanup());
    const files = VOICES.flatMap((voice) =>
      REPORT_SENTENCES.map((reference, i) => ({
        voice,
        reference,
        file: speak(reference, voice, path.join(tmp.dir, `${voice}-${i}.wav`)),
      })),
    );
    const lines: string[] = [];
    const seconds = files.reduce((n, f) => {
      const pcm = pcmOf(f.file);
      return n + pcm.samples.length / pcm.sampleRate;
    }, 0);
    lines.push(`${files.length} files, ${(seconds / files.length).toFixed(2)} s of speech each`);
    for (const config of CONFIGS) {
      const kernel = await offlineKernel(
        tmp.dir,
        { providers: { offline: { use: 'pocketsphinx', ...config } }, correction: { enabled: false } },
        ['pocketsphinx'],
      );
      await kernel.transcribe(files[0]!.file); // model load out of the timing
      const byVoice = new Map<string, { reference: string; hypothesis: string }[]>();
      let ms = 0;
      const cpu = process.cpuUsage();
      for (const { voice, reference, file } of files) {
        const started = performance.now();
        const result = await kernel.transcribe(file);
        ms += performance.now() - started;
        byVoice.set(voice, [...(byVoice.get(voice) ?? []), { reference, hypothesis: result.text }]);
      }
      const used = process.cpuUsage(cpu);
      await kernel.close();
      // In-process CPU (the library decodes on koffi's threads); the programs' CPU is not counted.
      const cpuMs = config.engine === 'library' ? `, ${Math.round((used.user + used.system) / 1000 / files.length)} ms CPU` : '';
      const all = [...byVoice.values()].flat();
      const perVoice = [...byVoice].map(([voice, pairs]) => `${voice} ${(100 * pooledWer(pairs)).toFixed(1)}%`).join(', ');
      lines.push(
        `${config.engine}/${config.mode}: WER ${(100 * pooledWer(all)).toFixed(1)}% (${perVoice}); ${Math.round(ms / files.length)} ms per file${cpuMs}`,
      );
    }
    console.log(lines.join('\n'));
    expect(lines).toHaveLength(CONFIGS.length + 1);
  });
});
