/**
 * The offline default does bounded work: time linear in the input's size, and the stage
 * deadlines (`asr.timeoutMs`, `correction.timeoutMs`) honoured while the event loop keeps turning.
 *
 * Margins, measured on the loaded 2-core development machine ("old": the code before this work):
 * - Segmenting the 10-minute recording below: 0.3–0.8 s now. The old segmenter copied the rest
 *   of the buffer for every 10 ms frame: 176 s on it, 492 s on the quiet one (over 200×). The
 *   60 s test timeout is the deadline: linear code meets it widely, the old code cannot. In the
 *   ASR and daemon tests the old plugin ran that segmenter on the event loop, so the loop (and
 *   the daemon's socket) would have stood still for minutes.
 * - Correcting 1 MB of dictation: 1–4 s now; the old corrector took 102 s for 400 kB and had
 *   not finished 1 MB after 20 minutes (it re-read its growing output for every token).
 * - The timeout tests give a 100 ms–3 s deadline to work of tens of seconds or more (decoding
 *   ten minutes costs minutes of CPU; correcting 8 MB, seconds) and assert the error code or the
 *   fallback, never the time.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { encodeWav, type Kernel } from 'koto-voice';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendCommand } from '../../src/daemon/client.ts';
import { Daemon } from '../../src/daemon/daemon.ts';
import { koto } from '../cli/support.ts';
import { correctText } from '../../plugins/local-correction/correct.ts';
import { providerSchema } from '../../plugins/local-correction/options.ts';
import { decodeWav } from '../../plugins/pocketsphinx/audio.ts';
import { hypText } from '../../plugins/pocketsphinx/cli.ts';
import { LibraryDecoder } from '../../plugins/pocketsphinx/decoder.ts';
import { MAX_UTTERANCE_SAMPLES, pieces, Segmenter } from '../../plugins/pocketsphinx/segmenter.ts';
import { BURST_S, count, DICTATED, longRecording, PERIOD_S, RATE, repeatTo } from './long-input.ts';
import {
  failure,
  hasFlite,
  hasPocketsphinx,
  offlineKernel,
  pcmOf,
  SAMPLE,
  SAMPLE_TEXT,
  SENTENCES,
  speak,
  tempDir,
  wer,
} from './support.ts';

const tmp = tempDir('koto-bounded-');
afterAll(() => tmp.cleanup());

/** Counts event-loop turns while `work` runs: a blocked loop gives (almost) none. */
async function ticksDuring<T>(work: Promise<T>, everyMs = 50): Promise<{ ticks: number; result: PromiseSettledResult<T> }> {
  let ticks = 0;
  const timer = setInterval(() => ticks++, everyMs);
  try {
    const [result] = await Promise.allSettled([work]);
    return { ticks, result: result! };
  } finally {
    clearInterval(timer);
  }
}

describe('segmenting ten minutes of audio', () => {
  const minutes = 10;
  const bursts = (minutes * 60) / PERIOD_S;
  let audio: Int16Array;
  beforeAll(() => {
    audio = longRecording(minutes);
  });

  it('cuts every utterance of a 10-minute recording pushed in one piece', { timeout: 60_000 }, () => {
    const segmenter = new Segmenter();
    const segments = [...segmenter.push(audio), ...segmenter.end()];
    expect(segments).toHaveLength(bursts);
    // Each burst with 250 ms of padding on both sides; the last one ends with the recording.
    for (const segment of segments.slice(0, -1)) expect(segment.length).toBe((BURST_S + 0.5) * RATE);
    expect(segments.at(-1)!.length).toBe((BURST_S + 0.25) * RATE);
  });

  it('gives the same utterances when the recording arrives in 10 ms frames', { timeout: 60_000 }, () => {
    const segmenter = new Segmenter();
    const segments: Int16Array[] = [];
    for (let at = 0; at < audio.length; at += 160) segments.push(...segmenter.push(audio.subarray(at, at + 160)));
    segments.push(...segmenter.end());
    expect(segments).toHaveLength(bursts);
    expect(segments.slice(0, -1).every((s) => s.length === (BURST_S + 0.5) * RATE)).toBe(true);
    expect(segments.at(-1)!.length).toBe((BURST_S + 0.25) * RATE);
  });

  it('hands batch decoding pieces of at most 30 s, however long the recording', { timeout: 60_000 }, () => {
    const cut = [...pieces(audio)];
    expect(cut.every((p) => p.length <= MAX_UTTERANCE_SAMPLES)).toBe(true);
    expect(cut.reduce((n, p) => n + p.length, 0)).toBe(bursts * (BURST_S + 0.5) * RATE - 0.25 * RATE);
    // Consecutive utterances are joined: 12 padded bursts of 2.5 s fill a 30 s piece.
    expect(cut).toHaveLength(bursts / 12);
  });

  it('bounds a recording in which no speech is found too (it used to be one 10-minute utterance)', { timeout: 60_000 }, () => {
    const audio = longRecording(minutes, { quiet: true });
    const cut = [...pieces(audio)];
    expect(cut).toHaveLength((minutes * 60 * RATE) / MAX_UTTERANCE_SAMPLES);
    expect(cut.every((p) => p.length === MAX_UTTERANCE_SAMPLES)).toBe(true);
    // Nothing is lost or reordered.
    expect(cut[3]![1234]).toBe(audio[3 * MAX_UTTERANCE_SAMPLES + 1234]);
  });
});

/** A WAV file written byte by byte: `format` 1 (integer) or 3 (float), optionally as WAVE_FORMAT_EXTENSIBLE. */
function wavBytes(
  format: 1 | 3,
  bits: number,
  channels: number,
  rate: number,
  frames: number,
  sample: (frame: number, channel: number) => number,
  extensible = false,
): Uint8Array {
  const width = bits / 8;
  const fmtSize = extensible ? 40 : 16;
  const dataSize = frames * channels * width;
  const out = new Uint8Array(12 + 8 + fmtSize + 8 + dataSize);
  const view = new DataView(out.buffer);
  const tag = (at: number, text: string) => [...text].forEach((c, i) => (out[at + i] = c.charCodeAt(0)));
  tag(0, 'RIFF');
  view.setUint32(4, out.length - 8, true);
  tag(8, 'WAVE');
  tag(12, 'fmt ');
  view.setUint32(16, fmtSize, true);
  view.setUint16(20, extensible ? 0xfffe : format, true);
  view.setUint16(22, channels, true);
  view.setUint32(24, rate, true);
  view.setUint32(28, rate * channels * width, true);
  view.setUint16(32, channels * width, true);
  view.setUint16(34, bits, true);
  if (extensible) {
    view.setUint16(36, 22, true);
    view.setUint16(38, bits, true);
    view.setUint16(44, format, true); // the sub-format GUID starts with the format code
  }
  const data = 20 + fmtSize;
  tag(data, 'data');
  view.setUint32(data + 4, dataSize, true);
  let at = data + 8;
  for (let f = 0; f < frames; f++) {
    for (let c = 0; c < channels; c++, at += width) {
      const v = sample(f, c);
      if (format === 3) view.setFloat32(at, v, true);
      else if (bits === 24) {
        out[at] = v & 0xff;
        out[at + 1] = (v >> 8) & 0xff;
        out[at + 2] = (v >> 16) & 0xff;
      } else view.setInt32(at, v, true);
    }
  }
  return out;
}

describe('WAV encodings the plugin decodes itself', () => {
  it('decodes ten minutes of 24-bit stereo in one pass (wavefile took about 50 s at 44.1 kHz)', { timeout: 60_000 }, () => {
    const frames = 10 * 60 * RATE;
    // Left and right differ by one 16-bit step; the mono mix sits between them.
    const bytes = wavBytes(1, 24, 2, RATE, frames, (f, c) => (((f % 2000) - 1000) * 16 + c) * 256);
    const decoded = decodeWav(bytes)!;
    expect(decoded.sampleRate).toBe(RATE);
    expect(decoded.samples.length).toBe(frames);
    for (const f of [0, 999, 1000, 1999, frames - 1])
      expect(Math.abs(decoded.samples[f]! - ((f % 2000) - 1000) * 16)).toBeLessThanOrEqual(1);
  });

  it('reads WAVE_FORMAT_EXTENSIBLE float, clipping what is out of range', () => {
    const values = [0, 0.5, -0.5, 1, -1, 2, -2];
    const decoded = decodeWav(wavBytes(3, 32, 1, 48000, values.length, (f) => values[f]!, true))!;
    expect(decoded.sampleRate).toBe(48000);
    expect([...decoded.samples]).toEqual([0, 16383, -16384, 32767, -32768, 32767, -32768]);
  });
});

describe('pocketsphinx_batch output', () => {
  it('reads each hypothesis line without its utterance id and score', () => {
    expect(hypText('hello world (u0001 -12345)')).toBe('hello world');
    expect(hypText(' (u0002 -4)')).toBe('');
    expect(hypText('(u0003)')).toBe('');
    expect(hypText('')).toBe('');
    expect(hypText('text with (parens) inside (u0004 -1 2)')).toBe('text with (parens) inside');
  });
});

describe.runIf(hasPocketsphinx)('offline ASR deadlines', () => {
  let longFile: string;
  let midFile: string;

  beforeAll(() => {
    longFile = path.join(tmp.dir, 'ten-minutes.wav');
    writeFileSync(longFile, encodeWav(longRecording(10), RATE));
    midFile = path.join(tmp.dir, 'two-minutes.wav');
    writeFileSync(midFile, encodeWav(longRecording(2), RATE));
  });

  it('asr.timeoutMs stops a 10-minute decode with the timeout error while the event loop keeps turning', { timeout: 60_000 }, async () => {
    const kernel = await offlineKernel(tmp.dir, { asr: { timeoutMs: 1500 } }, ['pocketsphinx']);
    try {
      const { ticks, result } = await ticksDuring(kernel.transcribe(longFile));
      expect(result.status).toBe('rejected');
      const err = (result as PromiseRejectedResult).reason as { code: string; message: string };
      expect(err.code).toBe('KOTO_ERR_TIMEOUT');
      expect(err.message).toMatch(/^transcription timed out after \d+ ms/);
      // A loop blocked by the decode would not have ticked at all before the deadline.
      expect(ticks).toBeGreaterThanOrEqual(5);
    } finally {
      await kernel.close();
    }
  });

  it.runIf(hasFlite)('a cancel stops a long decode at once, and the next dictation decodes normally', { timeout: 120_000 }, async () => {
    // Ten minutes of speech: sentences with a second of silence after each, over and over.
    const spoken = SENTENCES.map((sentence, i) => pcmOf(speak(sentence, 'kal16', path.join(tmp.dir, `sentence-${i}.wav`))).samples);
    const unit = spoken.flatMap((samples) => [samples, new Int16Array(RATE)]);
    const speech = new Int16Array(10 * 60 * RATE);
    for (let at = 0; at < speech.length;) {
      for (const part of unit) {
        if (at >= speech.length) break;
        speech.set(part.subarray(0, speech.length - at), at);
        at += part.length;
      }
    }
    const speechFile = path.join(tmp.dir, 'ten-minutes-speech.wav');
    writeFileSync(speechFile, encodeWav(speech, RATE));
    // Continuous mode reports every sentence: the cancel comes a few seconds into the decode.
    const kernel = await offlineKernel(tmp.dir, { providers: { offline: { use: 'pocketsphinx', mode: 'continuous' } } }, ['pocketsphinx']);
    try {
      // Cancelled when the first sentence is decoded (interim text): the other 150 never are.
      const controller = new AbortController();
      const err = await failure(kernel.transcribe(speechFile, { signal: controller.signal, onInterim: () => controller.abort() }));
      expect(err.code).toBe('KOTO_ERR_ABORTED');
      expect(wer(SAMPLE_TEXT, (await kernel.transcribe(SAMPLE)).text)).toBeLessThanOrEqual(0.2);
    } finally {
      await kernel.close();
    }
  });

  it('a decode queued behind a long one is released by its own cancel, not after the long one', { timeout: 60_000 }, async () => {
    const model = '/usr/share/pocketsphinx/model/en-us';
    const decoder = await LibraryDecoder.create(undefined, [
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
      const first = new AbortController();
      let firstSettled = false;
      const long = decoder.decode([longRecording(10)], { mode: 'batch', signal: first.signal }).finally(() => (firstSettled = true));
      long.catch(() => undefined);
      const second = new AbortController();
      // Jobs run one at a time: this one waits for the ten minutes above.
      const queued = decoder.decode([longRecording(0.1)], { mode: 'batch', signal: second.signal });
      // Only microtasks stand between the calls and the queue: after this turn both are in it.
      await new Promise((resolve) => setImmediate(resolve));
      second.abort();
      await expect(queued).rejects.toThrow('decoding was cancelled');
      expect(firstSettled).toBe(false);
      first.abort();
      await expect(long).rejects.toThrow('decoding was cancelled');
      // The decoder is still usable: a fresh worker takes over.
      expect(
        wer(SAMPLE_TEXT, await decoder.decode([pcmOf(SAMPLE).samples], { mode: 'batch', signal: new AbortController().signal })),
      ).toBeLessThanOrEqual(0.2);
    } finally {
      await decoder.close();
    }
  });

  it(
    'the daemon answers `status` while it decodes ten minutes offline; the deadline then ends the decode',
    { timeout: 60_000 },
    async () => {
      const home = path.join(tmp.dir, 'daemon-home');
      mkdirSync(home);
      const configPath = path.join(home, 'koto.yaml');
      writeFileSync(configPath, 'asr:\n  timeoutMs: 3000\n');
      const daemon = await Daemon.start({
        configPath,
        env: { KOTO_HOME: home },
        builtins: ['pocketsphinx', 'local-correction'],
        logLevel: 'silent',
        shutdownTimeoutMs: 5000,
      });
      try {
        let settled = false;
        const transcription = sendCommand(daemon.socketPath, 'transcribe', { path: longFile }, 60_000).finally(() => (settled = true));
        transcription.catch(() => undefined);
        const answers: unknown[] = [];
        while (!settled && answers.length < 5) {
          const status = await sendCommand(daemon.socketPath, 'status');
          if (!settled) answers.push(status);
          await sleep(100);
        }
        // A decode on the event loop would hold every answer until the decode ends: none in time.
        expect(answers.length).toBeGreaterThanOrEqual(3);
        expect(answers[0]).toMatchObject({ configGeneration: 1 });
        await expect(transcription).rejects.toMatchObject({ code: 'KOTO_ERR_TIMEOUT' });
      } finally {
        await daemon.close();
      }
    },
  );

  it(
    'the built CLI (dist, workers as .js) decodes, reports the deadline as KOTO_ERR_TIMEOUT, and corrects long text',
    { timeout: 120_000 },
    async () => {
      const home = path.join(tmp.dir, 'cli-home');
      mkdirSync(home);
      const config = path.join(home, 'koto.yaml');
      writeFileSync(config, 'asr:\n  timeoutMs: 2000\n');
      const env = { KOTO_HOME: home };
      const ok = await koto(['--no-daemon', 'transcribe', SAMPLE], { env, timeoutMs: 100_000 });
      expect(ok.code).toBe(0);
      expect(wer(SAMPLE_TEXT, ok.stdout.trim())).toBeLessThanOrEqual(0.2);
      const late = await koto(['--no-daemon', '--config', config, 'transcribe', longFile], { env, timeoutMs: 100_000 });
      expect(late.code).toBe(1);
      expect(late.stderr).toContain('KOTO_ERR_TIMEOUT');
      expect(late.stderr).toMatch(/transcription timed out after \d+ ms/);
      expect(late.stderr).not.toContain('    at ');
      // A text over the inline limit goes through the corrector's worker (.js) too.
      const text = repeatTo(DICTATED, 20_000);
      const corrected = await koto(['--no-daemon', 'correct', '--json', '-'], { env, input: text, timeoutMs: 100_000 });
      expect(corrected.code).toBe(0);
      const answer = JSON.parse(corrected.stdout) as { text: string; fallback: boolean };
      expect(answer.fallback).toBe(false);
      expect(count(answer.text, 'What time is it?')).toBe(Math.ceil(20_000 / DICTATED.length));
    },
  );

  it('the programs (engine: cli) are killed at the deadline and on cancel', { timeout: 120_000 }, async () => {
    // The plugin's temporary folders go here, so its processes can be told from anyone else's.
    const own = path.join(tmp.dir, 'tmp-cli');
    mkdirSync(own);
    const savedTmp = process.env.TMPDIR;
    process.env.TMPDIR = own;
    const ours = () =>
      readdirSync('/proc')
        .filter((pid) => /^\d+$/.test(pid))
        .filter((pid) => {
          try {
            return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(own);
          } catch {
            return false; // ended meanwhile
          }
        });
    try {
      const timed = await offlineKernel(
        tmp.dir,
        { providers: { offline: { use: 'pocketsphinx', engine: 'cli' } }, asr: { timeoutMs: 1500 } },
        ['pocketsphinx'],
      );
      try {
        expect((await failure(timed.transcribe(midFile))).code).toBe('KOTO_ERR_TIMEOUT');
        expect(ours()).toEqual([]);
      } finally {
        await timed.close();
      }
      const kernel = await offlineKernel(tmp.dir, { providers: { offline: { use: 'pocketsphinx', engine: 'cli' } } }, ['pocketsphinx']);
      try {
        const controller = new AbortController();
        const pending = kernel.transcribe(midFile, { signal: controller.signal });
        pending.catch(() => undefined);
        await expect.poll(ours, { timeout: 60_000, interval: 50 }).not.toEqual([]);
        const running = ours();
        controller.abort();
        expect((await failure(pending)).code).toBe('KOTO_ERR_ABORTED');
        expect(ours()).toEqual([]);
        for (const pid of running) expect(() => process.kill(Number(pid), 0)).toThrow();
      } finally {
        await kernel.close();
      }
    } finally {
      if (savedTmp === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = savedTmp;
    }
  });
});

describe('local corrector on a megabyte of text', () => {
  const options = providerSchema.parse({});
  const dictionary = ['Node.js', 'Visual Studio Code', 'Grafana'];
  const repetitions = Math.ceil(1_000_000 / DICTATED.length);
  const megabyte = repeatTo(DICTATED, 1_000_000);

  it('corrects 1 MB of dictation, every rule applied throughout', { timeout: 60_000 }, () => {
    const out = correctText(megabyte, dictionary, options);
    expect(count(out, 'Node.js')).toBe(repetitions);
    expect(count(out, 'Visual Studio Code')).toBe(repetitions);
    expect(count(out, 'Grafana.\nWhat time is it?')).toBe(repetitions);
    expect(count(out, 'um')).toBe(0);
    expect(count(out, 'you know')).toBe(0);
    expect(count(out, 'comma')).toBe(0);
    const sentence = 'So we deploy the Node.js service with Visual Studio Code, and then I check Grafana.\nWhat time is it?';
    expect(out.startsWith(`${sentence} ${sentence} ${sentence}`)).toBe(true);
    expect(count(out, sentence)).toBe(repetitions);
    expect(out.endsWith('What time is it?')).toBe(true);
  });

  it('stays linear on shapes that made its patterns rescan: long runs of breaks, marks and spaces', { timeout: 60_000 }, () => {
    const breaks = correctText(`first ${repeatTo('new line ', 1_000_000)}Last`, [], options);
    expect(breaks.startsWith('First\n\n')).toBe(true);
    expect(breaks.endsWith('\nLast.')).toBe(true);
    const marks = correctText(repeatTo('x.  ', 1_000_000), [], options);
    expect(count(marks, 'X.')).toBe(250_000);
    const raw = correctText(`a.${'\n'.repeat(1_000_000)}B`, [], { ...options, spokenPunctuation: false, fillers: false });
    expect(raw).toBe(`A.${'\n'.repeat(1_000_000)}B.`);
    const abbreviations = correctText(repeatTo('e.g. x ', 1_000_000), [], options);
    expect(count(abbreviations, 'e.g. x')).toBe(Math.ceil(1_000_000 / 7) - 1);
  });

  it('through the kernel: 1 MB is corrected off the event loop', { timeout: 60_000 }, async () => {
    const kernel = await offlineKernel(tmp.dir, { correction: { timeoutMs: 60_000 } }, ['local-correction']);
    try {
      const { ticks, result } = await ticksDuring(kernel.correct(megabyte));
      expect(result.status).toBe('fulfilled');
      const corrected = (result as PromiseFulfilledResult<Awaited<ReturnType<Kernel['correct']>>>).value;
      expect(corrected.fallback).toBe(false);
      expect(count(corrected.text, 'What time is it?')).toBe(repetitions);
      expect(ticks).toBeGreaterThanOrEqual(2);
    } finally {
      await kernel.close();
    }
  });

  it('correction.timeoutMs on a huge text delivers the raw text with a warning', { timeout: 60_000 }, async () => {
    const kernel = await offlineKernel(tmp.dir, { correction: { timeoutMs: 100 } }, ['local-correction']);
    try {
      const huge = repeatTo(DICTATED, 8_000_000);
      const corrected = await kernel.correct(huge);
      expect(corrected.fallback).toBe(true);
      // The raw text itself (compared as a boolean: a failure must not print 8 MB).
      expect(corrected.text === huge).toBe(true);
      expect(corrected.warnings).toContain('correction skipped, raw transcript delivered: the correction took longer than 100 ms');
      // The kernel is still fine for the next, ordinary text.
      expect((await kernel.correct('um hello comma world')).text).toBe('Hello, world.');
    } finally {
      await kernel.close();
    }
  });
});
