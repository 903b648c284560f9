/**
 * mic-native against real audio: a user-mode PulseAudio with a virtual microphone
 * (test/support/virtual-mic.sh), speech from flite and tones from sox played into it with
 * paplay while the plugin records. Every microphone test lives in this file so they run one at
 * a time. Tests that change a server (null source, server death) use a private PulseAudio
 * started by the same script under another folder; the shared virtual mic is never stopped.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createKernel,
  definePlugin,
  KotoError,
  parseWav,
  z,
  type AudioFrame,
  type AudioSourceHandle,
  type Kernel,
  type SessionContext,
} from 'koto-voice';
import {
  FrameQueue,
  Framer,
  Microphone,
  SilenceDetector,
  WavWriter,
  backendNamed,
  listInputDevices,
  openDevice,
  type Backend,
  micError,
  parseArecordList,
  parseFfmpegList,
  pulseDevices,
  pulseServer,
  pvrecorderDevices,
  recordToFile,
  rms,
  selectDevice,
} from '../../plugins/mic-native/index.ts';
import { pruneRecordings } from '../../src/index.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const VIRTUAL_MIC = path.join(ROOT, 'test', 'support', 'virtual-mic.sh');
const RATE = 16_000;

const tmp = mkdtempSync(path.join(os.tmpdir(), 'koto-mic-'));
/** Private PulseAudio instances (MIC_BASE folders) this file started and has not killed. */
const privateServers = new Set<string>();
const kernels: Kernel[] = [];
let sharedServer: Record<string, string> = {};

// ---------------------------------------------------------------- helpers

/** Runs virtual-mic.sh; `base` selects a private instance (MIC_BASE). Returns its `env` exports. */
function virtualMic(command: 'start' | 'stop' | 'env', base?: string): string {
  const env: NodeJS.ProcessEnv = { ...process.env, ...(base ? { MIC_BASE: base } : {}) };
  // The script sets its own PULSE_SERVER; don't let a test's value leak in.
  delete env.PULSE_SERVER;
  return execFileSync('bash', [VIRTUAL_MIC, command], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function exportsOf(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of text.matchAll(/^export (\w+)=(.*)$/gm)) out[m[1]!] = m[2]!.replace(/^['"]|['"]$/g, '');
  return out;
}

function startServer(base?: string): Record<string, string> {
  virtualMic('start', base);
  if (base) privateServers.add(base);
  return exportsOf(virtualMic('env', base));
}

/** Runs `fn` with the given PULSE_* variables in process.env (the addon and children read them). */
async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

function pactl(server: Record<string, string>, ...args: string[]): string {
  return execFileSync('pactl', args, { env: { ...process.env, ...server }, encoding: 'utf8' }).trim();
}

function play(file: string, server: Record<string, string> = sharedServer): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('paplay', ['-d', 'virt_speaker', file], { env: { ...process.env, ...server }, stdio: 'ignore' });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`paplay exited ${code}`))));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `check` holds: a condition, not a guessed delay (fails after `timeoutMs`, a hang guard). */
async function until(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** Recording streams the audio server has open (each open microphone is one). */
function sourceOutputs(server: Record<string, string>): number {
  const text = pactl(server, 'list', 'short', 'source-outputs');
  return text === '' ? 0 : text.split('\n').length;
}

function readWav(file: string): Int16Array {
  const parsed = parseWav(readFileSync(file));
  if (!parsed.ok || !parsed.pcm) throw new Error(`not a 16-bit WAV: ${file}`);
  expect(parsed.sampleRate).toBe(RATE);
  expect(parsed.channels).toBe(1);
  return parsed.pcm.samples;
}

function concat(frames: readonly AudioFrame[]): Int16Array {
  const out = new Int16Array(frames.reduce((n, f) => n + f.samples.length, 0));
  let at = 0;
  for (const f of frames) {
    out.set(f.samples, at);
    at += f.samples.length;
  }
  return out;
}

/** Collects frames until the iterable ends; resolves with them and the error it ended with, if any. */
function collect(frames: AsyncIterable<AudioFrame>): { frames: AudioFrame[]; done: Promise<{ error?: unknown; at: number }> } {
  const out: AudioFrame[] = [];
  const done = (async () => {
    try {
      for await (const frame of frames) out.push(frame);
      return { at: performance.now() };
    } catch (error) {
      return { error, at: performance.now() };
    }
  })();
  return { frames: out, done };
}

/** Per-block mean absolute level (blocks of `block` samples). */
function envelope(x: Int16Array, block: number): Float64Array {
  const out = new Float64Array(Math.floor(x.length / block));
  for (let b = 0; b < out.length; b++) {
    let s = 0;
    for (let i = b * block; i < (b + 1) * block; i++) s += Math.abs(x[i]!);
    out[b] = s / block;
  }
  return out;
}

function ncc(a: ArrayLike<number>, aFrom: number, b: ArrayLike<number>, n: number): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < n; i++) {
    const x = a[aFrom + i] ?? 0;
    const y = b[i]!;
    ab += x * y;
    aa += x * x;
    bb += y * y;
  }
  return aa && bb ? ab / Math.sqrt(aa * bb) : 0;
}

/** Where `ref` sits in `captured` (lag in samples) and how well it matches there (normalised, -1..1). */
function align(captured: Int16Array, ref: Int16Array): { lag: number; corr: number } {
  const block = 160; // 10 ms
  const ce = envelope(captured, block);
  const re = envelope(ref, block);
  let best = { lag: 0, score: -Infinity };
  for (let lag = 0; lag + re.length <= ce.length; lag++) {
    const score = ncc(ce, lag, re, re.length);
    if (score > best.score) best = { lag, score };
  }
  let fine = { lag: best.lag * block, corr: -Infinity };
  for (let lag = Math.max(0, best.lag * block - 2 * block); lag <= best.lag * block + 2 * block; lag++) {
    if (lag + ref.length > captured.length) break;
    const corr = ncc(captured, lag, ref, ref.length);
    if (corr > fine.corr) fine = { lag, corr };
  }
  return fine;
}

/**
 * How well `ref` matches `captured` placed at `lag`, piece by piece: 100 ms segments, each free to
 * slide ±10 ms (a glitch in the virtual sound path shifts what follows it). Silent segments are
 * skipped. Returns the median segment correlation and the share of segments above 0.9.
 */
function segmentMatch(captured: Int16Array, ref: Int16Array, lag: number): { median: number; good: number } {
  const seg = RATE / 10;
  const slide = RATE / 100;
  const scores: number[] = [];
  for (let at = 0; at + seg <= ref.length; at += seg) {
    const piece = ref.subarray(at, at + seg);
    if (envelope(piece, seg)[0]! < 200) continue;
    let best = -1;
    for (let d = -slide; d <= slide; d++) {
      const from = lag + at + d;
      if (from < 0 || from + seg > captured.length) continue;
      best = Math.max(best, ncc(captured, from, piece, seg));
    }
    scores.push(best);
  }
  scores.sort((a, b) => a - b);
  return { median: scores[Math.floor(scores.length / 2)] ?? 0, good: scores.filter((x) => x > 0.9).length / (scores.length || 1) };
}

/** Asserts that `ref` was captured whole and faithfully in `captured`; returns where. */
function expectCaptured(captured: Int16Array, ref: Int16Array): { lag: number; corr: number; median: number } {
  const { lag, corr } = align(captured, ref);
  expect(lag + ref.length).toBeLessThanOrEqual(captured.length);
  const { median, good } = segmentMatch(captured, ref, lag);
  expect(median).toBeGreaterThan(0.95);
  expect(good).toBeGreaterThan(0.8);
  return { lag, corr, median };
}

/** First and last sample above `threshold` (absolute). */
function soundSpan(x: Int16Array, threshold = 300): { start: number; end: number } {
  let start = -1;
  let end = -1;
  for (let i = 0; i < x.length; i++) {
    if (Math.abs(x[i]!) > threshold) {
      if (start < 0) start = i;
      end = i;
    }
  }
  return { start, end };
}

function fakeSession(kernel: Kernel, id: string, signal = new AbortController().signal): SessionContext {
  return { id, config: kernel.config, signal, startedAt: Date.now(), mode: 'live', state: 'recording', timings: {}, providers: {} };
}

async function kernelWith(
  options: Record<string, unknown> = {},
  config: Record<string, unknown> = {},
  home = path.join(tmp, 'home'),
): Promise<Kernel> {
  const kernel = await createKernel({
    search: false,
    builtins: ['mic-native'],
    env: { ...process.env, KOTO_HOME: home },
    config: { audio: { source: 'mic-native', device: 'default' }, pluginOptions: { 'mic-native': options }, ...config },
  });
  kernels.push(kernel);
  return kernel;
}

function source(
  kernel: Kernel,
  device = 'default',
  id = `s${Math.random().toString(36).slice(2, 8)}`,
  signal?: AbortSignal,
): Promise<AudioSourceHandle> {
  const hook = kernel.hooks.audioSource.get('mic-native');
  expect(hook).toBeDefined();
  const session = fakeSession(kernel, id, signal);
  return hook!.promise({ session, device, signal: session.signal }) as Promise<AudioSourceHandle>;
}

async function failure(promise: Promise<unknown>): Promise<KotoError> {
  try {
    await promise;
  } catch (err) {
    expect(KotoError.is(err)).toBe(true);
    return err as KotoError;
  }
  throw new Error('expected a failure');
}

const reasonOf = (err: unknown) => (err as KotoError).details.reason;

// ---------------------------------------------------------------- fixtures

let speech: string; // flite, 16 kHz mono
let chirp: string; // 1.2 s 300→3000 Hz sweep
let tone: string; // 0.3 s 1 kHz
let longTone: string; // 4 s 440 Hz

beforeAll(() => {
  sharedServer = startServer();
  Object.assign(process.env, sharedServer);
  const raw = path.join(tmp, 'speech-8k.wav');
  execFileSync('flite', ['-t', 'Koto turns your voice into clean text, right where you need it.', '-o', raw]);
  speech = path.join(tmp, 'speech.wav');
  execFileSync('sox', [raw, '-r', String(RATE), '-c', '1', '-b', '16', speech]);
  chirp = path.join(tmp, 'chirp.wav');
  execFileSync('sox', ['-n', '-r', String(RATE), '-c', '1', '-b', '16', chirp, 'synth', '1.2', 'sine', '300-3000', 'vol', '0.5']);
  tone = path.join(tmp, 'tone.wav');
  execFileSync('sox', ['-n', '-r', String(RATE), '-c', '1', '-b', '16', tone, 'synth', '0.3', 'sine', '1000', 'vol', '0.5']);
  longTone = path.join(tmp, 'long-tone.wav');
  execFileSync('sox', ['-n', '-r', String(RATE), '-c', '1', '-b', '16', longTone, 'synth', '4', 'sine', '440', 'vol', '0.5']);
});

afterAll(async () => {
  for (const kernel of kernels) await kernel.close();
  try {
    for (const base of privateServers) virtualMic('stop', base);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

/** Plays `file` while `handle` records (after `leadMs`), stops `tailMs` after playback. */
async function recordWhilePlaying(handle: AudioSourceHandle, file: string, leadMs = 250, tailMs = 400) {
  const got = collect(handle.frames);
  const sizes: number[] = [];
  await sleep(leadMs);
  const playing = play(file);
  const sampler = setInterval(() => handle.path && sizes.push(statSync(handle.path).size), 200);
  let midway: Int16Array | undefined;
  await sleep(1300);
  if (handle.path) midway = readWav(handle.path); // a playable WAV while recording
  await playing;
  await sleep(tailMs);
  clearInterval(sampler);
  await handle.stop();
  const end = await got.done;
  return { frames: got.frames, error: end.error, sizes, midway };
}

// ---------------------------------------------------------------- real audio

describe('mic-native on a virtual microphone', () => {
  it('lists input devices by their backend names, without monitors or null devices', async () => {
    const kernel = await kernelWith();
    const devices = (await kernel.hooks.audioDevices.get('mic-native')!.promise({ config: kernel.config }))!;
    const names = devices.map((d) => d.name);
    expect(names).toContain('Virtual_Microphone');
    expect(names.some((n) => /^monitor of/i.test(n) || /null/i.test(n))).toBe(false);
    expect(devices.every((d) => d.backend === 'pvrecorder')).toBe(true);
    expect(devices.find((d) => d.name === 'Virtual_Microphone')?.isDefault).toBe(true);

    const viaParec = await listInputDevices('parec');
    expect(viaParec.map((d) => d.name)).toEqual(['Virtual_Microphone']);
    expect(viaParec[0]).toMatchObject({ description: 'virt_mic', isDefault: true, backend: 'parec' });
  });

  it('records what is played into the microphone (pvrecorder in a worker), to a WAV written as it goes', async () => {
    const kernel = await kernelWith();
    const t0 = performance.now();
    const handle = await source(kernel);
    const openMs = performance.now() - t0;
    expect(handle).toMatchObject({ sampleRate: RATE, device: 'Virtual_Microphone', backend: 'pvrecorder' });
    expect(handle.path).toMatch(new RegExp(`^${path.join(tmp, 'home', 'data', 'recordings')}/.+\\.wav$`));
    const { frames, error, sizes, midway } = await recordWhilePlaying(handle, speech);
    expect(error).toBeUndefined();

    // Frames: 512 samples (the last may be shorter), stamped by position, with their level.
    expect(frames.length).toBeGreaterThan(50);
    frames.forEach((f, i) => {
      if (i < frames.length - 1) expect(f.samples.length).toBe(512);
      expect(f.timestamp).toBeCloseTo((i * 512 * 1000) / RATE, 6);
      expect(f.rms).toBeGreaterThanOrEqual(0);
      expect(f.rms).toBeLessThanOrEqual(1);
      expect(f.rms).toBeCloseTo(rms(f.samples), 9);
    });
    expect(Math.max(...frames.map((f) => f.rms))).toBeGreaterThan(0.02);

    // The speech is in there, sample for sample (up to resampling), and whole.
    const captured = concat(frames);
    const ref = readWav(speech);
    const { lag, corr, median } = expectCaptured(captured, ref);
    expect(lag).toBeGreaterThan(0.1 * RATE); // after the lead-in, not before
    const span = soundSpan(captured);
    const refSpan = soundSpan(ref);
    expect(Math.abs(span.end - span.start - (refSpan.end - refSpan.start))).toBeLessThan(0.05 * RATE);

    // The file on disk grew while recording, was a valid WAV midway, and now holds every frame.
    expect(sizes.length).toBeGreaterThan(3);
    expect(sizes.at(-1)!).toBeGreaterThan(sizes[0]!);
    expect(midway!.length).toBeGreaterThan(RATE / 2);
    const onDisk = readWav(handle.path!);
    expect(onDisk.length).toBe(captured.length);
    expect(Buffer.from(onDisk.buffer).equals(Buffer.from(captured.buffer))).toBe(true);
    expect(statSync(handle.path!).mode & 0o777).toBe(0o600);
    expect(statSync(path.dirname(handle.path!)).mode & 0o777).toBe(0o700);
    console.info(
      `pvrecorder: hook resolved after ${openMs.toFixed(0)} ms (first audio ${(handle as unknown as { firstAudioMs: number }).firstAudioMs} ms), ` +
        `correlation ${corr.toFixed(3)} (median per 100 ms ${median.toFixed(3)}), lag ${(lag / 16).toFixed(0)} ms`,
    );
  });

  it('serves a whole live session: kernel.record() hands the recorded audio to ASR', async () => {
    let received: Int16Array | undefined;
    const asr = definePlugin({
      name: 'capture-asr',
      capabilities: ['asr'],
      provider: z.object({}),
      apply(api) {
        api.hooks.asr.for('capture-asr').tapPromise('capture-asr', async (req) => {
          received = req.audio.pcm?.samples;
          return { text: 'heard' };
        });
      },
    });
    const kernel = await createKernel({
      search: false,
      builtins: ['mic-native'],
      plugins: [asr],
      env: { ...process.env, KOTO_HOME: path.join(tmp, 'e2e') },
      config: {
        audio: { source: 'mic-native', device: 'Virtual_Microphone' },
        providers: { c: { use: 'capture-asr' } },
        asr: { provider: 'c' },
        correction: { enabled: false },
      },
    });
    kernels.push(kernel);
    const levels: number[] = [];
    const recording = await kernel.record({ onLevel: (level) => levels.push(level) });
    await sleep(200);
    await play(chirp);
    await sleep(300);
    const result = await recording.stop();
    expect(result.text).toBe('heard');
    expect(result.audioPath).toBe(recording.audioPath);
    const onDisk = readWav(result.audioPath!);
    expect(received?.length).toBe(onDisk.length);
    expectCaptured(onDisk, readWav(chirp));
    expect(Math.max(...levels)).toBeGreaterThan(0.05);
  });

  it('picks a device by name (case-insensitive substring) and names the choices for an unknown one', async () => {
    const kernel = await kernelWith();
    const handle = await source(kernel, 'virtual_micro');
    expect(handle.device).toBe('Virtual_Microphone');
    await handle.stop();

    const err = await failure(source(kernel, 'No Such Mic'));
    expect(reasonOf(err)).toBe('device-not-found');
    expect(err.message).toContain('"No Such Mic"');
    expect(err.message).toContain('"Virtual_Microphone"');
    expect(err.message).not.toMatch(/Monitor of/);
    expect(err.fix).toMatch(/audio\.device/);
    expect(err.plugin).toBe('mic-native');
  });

  it('records through the parec fallback, chosen by option', async () => {
    const kernel = await kernelWith({ backend: 'parec' });
    const handle = await source(kernel, 'Virtual_Microphone');
    expect(handle).toMatchObject({ device: 'Virtual_Microphone', backend: 'parec' });
    const { frames, error } = await recordWhilePlaying(handle, chirp, 200, 300);
    expect(error).toBeUndefined();
    const captured = concat(frames);
    const { corr, median } = expectCaptured(captured, readWav(chirp));
    expect(readWav(handle.path!).length).toBe(captured.length);
    console.info(
      `parec: first audio ${(handle as unknown as { firstAudioMs: number }).firstAudioMs} ms, chirp correlation ${corr.toFixed(3)} (median per 100 ms ${median.toFixed(3)})`,
    );
  });

  it('fails at once with a clear error when no audio server listens', async () => {
    const kernel = await kernelWith();
    const parecKernel = await kernelWith({ backend: 'parec' });
    const nowhere = `unix:${path.join(tmp, 'no-server', 'native')}`;
    await withEnv({ PULSE_SERVER: nowhere }, async () => {
      for (const k of [kernel, parecKernel]) {
        const t0 = performance.now();
        const err = await failure(source(k));
        const ms = performance.now() - t0;
        expect(reasonOf(err)).toBe('server-unreachable');
        expect(err.message).toContain(nowhere);
        expect(err.fix).toMatch(/PULSE_SERVER|pulseaudio/i);
        expect(ms).toBeLessThan(10_000); // an error, not a hang (a bound no loaded machine reaches)
      }
      const devicesErr = await failure(kernel.hooks.audioDevices.get('mic-native')!.promise({ config: kernel.config }));
      expect(reasonOf(devicesErr)).toBe('server-unreachable');
    });
  });

  it('reports a microphone that delivers only zeros, keeping what it recorded', async () => {
    // Nothing plays into the virtual microphone: it delivers digital silence, as a muted device does.
    const file = path.join(tmp, 'silent', 'silence.wav');
    const recording = await Microphone.record({ file, silenceMs: 800 });
    const got = collect(recording.frames);
    const end = await got.done;
    expect(reasonOf(end.error)).toBe('silence');
    expect((end.error as Error).message).toMatch(/delivers silence/);
    await recording.stop();
    const onDisk = readWav(file);
    expect(onDisk.length).toBe(concat(got.frames).length);
    expect(onDisk.length).toBeGreaterThanOrEqual(0.8 * RATE);
  });

  it('keeps a pre-roll when the device was opened at sessionStart', async () => {
    const kernel = await kernelWith({ preRollMs: 1000 });
    const session = fakeSession(kernel, 'preroll');
    const before = sourceOutputs(sharedServer);
    await kernel.hooks.sessionStart.promise(session);
    // The device opens in the background: wait until the audio server has its recording stream.
    await until(() => sourceOutputs(sharedServer) > before, 'the pre-opened microphone');
    await play(tone); // before the recording starts
    await sleep(100);
    const handle = await kernel.hooks.audioSource.get('mic-native')!.promise({ session, device: 'default', signal: session.signal });
    const got = collect(handle!.frames);
    await sleep(300);
    await handle!.stop();
    await got.done;
    const loud = got.frames.filter((f) => f.rms > 0.05);
    expect(loud.length).toBeGreaterThan(3); // the tone, from before start
    expect(loud.every((f) => f.timestamp < 1000)).toBe(true);
    expect(got.frames[0]!.timestamp).toBe(0);
  });

  it('applies retention to the recordings folder before recording', async () => {
    const home = path.join(tmp, 'retention-home');
    const dir = path.join(home, 'data', 'recordings');
    mkdirSync(dir, { recursive: true });
    const day = 86_400_000;
    const files = ['a-old.wav', 'b.wav', 'c.wav', 'd.wav', 'keep.txt'];
    files.forEach((name, i) => {
      const file = path.join(dir, name);
      writeFileSync(file, 'x');
      const age = name === 'a-old.wav' ? 40 * day : (10 - i) * 60_000;
      utimesSync(file, new Date(Date.now() - age), new Date(Date.now() - age));
    });
    const kernel = await kernelWith({}, { daemon: { retention: { recordings: 3, days: 30 } } }, home);
    const handle = await source(kernel);
    await handle.stop();
    const left = readdirSync(dir).sort();
    expect(left).not.toContain('a-old.wav');
    expect(left).not.toContain('b.wav'); // the oldest of the rest: 3 recordings in all
    expect(left).toContain('keep.txt');
    expect(left.filter((n) => n.endsWith('.wav'))).toHaveLength(3);
  });

  it('falls back to the next backend when one cannot open the device (but not for a wrong name)', async () => {
    const missing: Backend = {
      name: 'sox',
      available: async () => false,
      list: async () => undefined,
      open: () => Promise.reject(new Error('unreachable')),
    };
    const broken: Backend = {
      name: 'pvrecorder',
      available: async () => true,
      list: async () => [],
      open: () =>
        Promise.reject(
          micError('open-failed', { device: 'default', backend: 'pvrecorder', detail: 'simulated: the addon cannot open it' }),
        ),
    };
    const chunks: Int16Array[] = [];
    const request = {
      device: 'default',
      frameLength: 512,
      openTimeoutMs: 3000,
      onData: (s: Int16Array) => chunks.push(s),
      onError: () => undefined,
    };
    const { capture, skipped } = await openDevice('auto', request, undefined, [missing, broken, backendNamed('parec')]);
    expect(capture.backend).toBe('parec');
    expect(skipped).toEqual([
      'sox: not installed',
      expect.stringContaining('pvrecorder: cannot open the microphone "default" with pvrecorder: simulated'),
    ]);
    await capture.stop();
    expect(chunks.length).toBeGreaterThan(0);

    const wrongName = await failure(openDevice('auto', { ...request, device: 'No Such Mic' }, undefined, [backendNamed('parec'), broken]));
    expect(reasonOf(wrongName)).toBe('device-not-found');
  });

  it('stops when the session is aborted, and recordToFile writes a complete file', async () => {
    const kernel = await kernelWith();
    const controller = new AbortController();
    const handle = await source(kernel, 'default', 'abort', controller.signal);
    const got = collect(handle.frames);
    await sleep(200);
    controller.abort();
    const end = await got.done;
    expect(end.error).toBeUndefined();
    await handle.stop();

    const file = path.join(tmp, 'helper', 'take.wav');
    const playing = sleep(100).then(() => play(tone));
    const result = await recordToFile(file, { durationMs: 600, silenceMs: 0 });
    await playing;
    expect(result).toMatchObject({ path: file, samples: 0.6 * RATE, backend: 'pvrecorder', device: 'Virtual_Microphone' });
    expect(readWav(file).length).toBe(0.6 * RATE);
  });
});

describe('mic-native on a private audio server (null source, server death)', () => {
  // One fresh server per test that kills it: a killed daemon may linger as a zombie for a while,
  // and the script would take it for a running one.
  // (The first reuses the null-source test's server.)
  const bases = { null: path.join(tmp, 'pa-a'), pvrecorder: path.join(tmp, 'pa-a'), parec: path.join(tmp, 'pa-b') };

  it('never lists or opens a null device', async () => {
    const server = startServer(bases.null);
    pactl(server, 'load-module', 'module-null-source', 'source_name=null_in');
    await withEnv(server, async () => {
      for (const backend of ['pvrecorder', 'parec'] as const) {
        const names = (await listInputDevices(backend)).map((d) => d.name);
        expect(names).toContain('Virtual_Microphone');
        expect(names).not.toContain('Null Input');
        const byName = await failure(Microphone.record({ backend, device: 'Null Input' }));
        expect(reasonOf(byName)).toBe('null-device');
      }
      pactl(server, 'set-default-source', 'null_in');
      try {
        for (const backend of ['pvrecorder', 'parec'] as const) {
          const asDefault = await failure(Microphone.record({ backend, device: 'default' }));
          expect(reasonOf(asDefault)).toBe('null-device');
          expect(asDefault.message).toContain('Null Input');
        }
      } finally {
        pactl(server, 'set-default-source', 'virt_mic');
      }
    });
  });

  for (const backend of ['pvrecorder', 'parec'] as const) {
    it(`${backend}: the audio server dying mid-recording is a clear error, and the audio so far is kept`, async () => {
      const base = bases[backend];
      const server = startServer(base);
      await withEnv(server, async () => {
        const file = path.join(tmp, 'death', `${backend}.wav`);
        const recording = await Microphone.record({ backend, file, device: 'Virtual_Microphone' });
        const got = collect(recording.frames);
        const playing = play(longTone, server).catch(() => undefined);
        // Kill the server once 0.6 s of audio has arrived (not after a guessed delay).
        await until(() => concat(got.frames).length >= 0.6 * RATE, 'audio before the server dies');
        // The server dies (SIGKILL: no goodbye to its clients).
        const pid = Number(readFileSync(path.join(base, 'pa', 'xdg', 'pulse', 'pid'), 'utf8').trim());
        const killedAt = performance.now();
        process.kill(pid, 'SIGKILL');
        privateServers.delete(base);
        const end = await got.done;
        const ms = end.at - killedAt;
        await playing;
        expect(reasonOf(end.error)).toBe('device-lost');
        expect((end.error as Error).message).toMatch(/stopped delivering audio/);
        expect((end.error as Error).message).toMatch(/audio server .* is gone|exited|failed/);
        expect(ms).toBeLessThan(15_000); // a bounded error, never a hang (the message says the server is gone)
        await recording.stop(); // resolves: the file is complete
        const captured = concat(got.frames);
        expect(captured.length).toBeGreaterThan(0.5 * RATE);
        expect(readWav(file).length).toBe(captured.length);
        console.info(`${backend}: server death reported ${ms.toFixed(0)} ms after the kill`);
      });
    });
  }
});

// ---------------------------------------------------------------- units (no audio)

describe('mic-native units', () => {
  const dev = (name: string, id: string | number, kind: 'input' | 'monitor' | 'null' | 'plugin' = 'input', description?: string) => ({
    name,
    id,
    kind,
    description,
    isDefault: false,
  });
  const list = [
    dev('Monitor of Built-in Audio', 0, 'monitor'),
    dev('Built-in Audio Analog Stereo', 1),
    dev('USB Headset Mono', 2),
    dev('USB Webcam', 3),
    dev('Null Input', 4, 'null'),
  ];

  it('selects devices: default, exact, case-insensitive, substring, ambiguous, unknown, null', () => {
    expect(selectDevice(list, 'default')).toEqual({ kind: 'default' });
    expect(selectDevice(list, '')).toEqual({ kind: 'default' });
    expect(selectDevice(list, 'USB Webcam')).toMatchObject({ device: { id: 3 } });
    expect(selectDevice(list, 'usb webcam')).toMatchObject({ device: { id: 3 } });
    expect(selectDevice(list, 'headset')).toMatchObject({ device: { id: 2 } });
    expect(selectDevice(list, 'Monitor of Built-in Audio')).toMatchObject({ device: { id: 0 } }); // only when named in full
    expect(reasonOf(catchErr(() => selectDevice(list, 'usb')))).toBe('device-ambiguous');
    expect(reasonOf(catchErr(() => selectDevice(list, 'null input')))).toBe('null-device');
    expect(reasonOf(catchErr(() => selectDevice(list, 'null')))).toBe('null-device');
    const unknown = catchErr(() => selectDevice(list, 'Studio'));
    expect(reasonOf(unknown)).toBe('device-not-found');
    expect(unknown.message).toContain('"Built-in Audio Analog Stereo", "USB Headset Mono", "USB Webcam"');
    expect(unknown.message).not.toContain('Monitor');
    expect(reasonOf(catchErr(() => selectDevice(list, '2')))).toBe('device-not-found'); // indices are not names
  });

  it('sorts PvRecorder, PulseAudio, ALSA and ffmpeg device lists', () => {
    expect(
      pvrecorderDevices(
        [
          'Monitor of Virtual_Speaker',
          'Virtual_Microphone',
          'Discard all samples (playback) or generate zero samples (capture)',
          'Rate Converter Plugin Using Speex Resampler',
          'Null Input',
        ],
        'Virtual_Microphone',
      ).map((d) => [d.name, d.kind, d.isDefault]),
    ).toEqual([
      ['Monitor of Virtual_Speaker', 'monitor', false],
      ['Virtual_Microphone', 'input', true],
      ['Discard all samples (playback) or generate zero samples (capture)', 'null', false],
      ['Rate Converter Plugin Using Speex Resampler', 'plugin', false],
      ['Null Input', 'null', false],
    ]);
    const pulse = pulseDevices(
      [
        {
          name: 'virt_speaker.monitor',
          description: 'Monitor of Virtual_Speaker',
          driver: 'module-null-sink.c',
          properties: { 'device.class': 'monitor' },
        },
        { name: 'virt_mic', description: 'Virtual_Microphone', driver: 'module-remap-source.c' },
        { name: 'null_in', description: 'Null Input', driver: 'module-null-source.c' },
      ],
      'virt_mic',
    );
    expect(pulse.map((d) => [d.name, d.id, d.kind, d.isDefault])).toEqual([
      ['Monitor of Virtual_Speaker', 'virt_speaker.monitor', 'monitor', false],
      ['Virtual_Microphone', 'virt_mic', 'input', true],
      ['Null Input', 'null_in', 'null', false],
    ]);
    const alsa = parseArecordList(
      [
        'null',
        '    Discard all samples (playback) or generate zero samples (capture)',
        'samplerate',
        '    Rate Converter Plugin Using Samplerate Library',
        'pulse',
        '    PulseAudio Sound Server',
        'default',
        '    Default ALSA Output (currently PulseAudio Sound Server)',
        'sysdefault:CARD=PCH',
        '    HDA Intel PCH, ALC257 Analog',
        '    Default Audio Device',
        'plughw:CARD=PCH,DEV=0',
        '    HDA Intel PCH, ALC257 Analog',
        '    Hardware device with all software conversions',
      ].join('\n'),
    );
    expect(alsa.filter((d) => d.kind === 'input').map((d) => d.name)).toEqual([
      'pulse',
      'default',
      'sysdefault:CARD=PCH',
      'plughw:CARD=PCH,DEV=0',
    ]);
    expect(alsa.find((d) => d.name === 'null')?.kind).toBe('null');
    const mac = parseFfmpegList(
      '[AVFoundation indev @ 0x1] AVFoundation video devices:\n[AVFoundation indev @ 0x1] [0] FaceTime HD Camera\n[AVFoundation indev @ 0x1] AVFoundation audio devices:\n[AVFoundation indev @ 0x1] [0] MacBook Pro Microphone\n[AVFoundation indev @ 0x1] [1] USB Audio\n',
      'darwin',
    );
    expect(mac.map((d) => [d.name, d.id])).toEqual([
      ['MacBook Pro Microphone', '0'],
      ['USB Audio', '1'],
    ]);
    const win = parseFfmpegList(
      '[dshow @ 0x1] "Integrated Camera" (video)\n[dshow @ 0x1] "Microphone (Realtek(R) Audio)" (audio)\n',
      'win32',
    );
    expect(win.map((d) => d.name)).toEqual(['Microphone (Realtek(R) Audio)']);
  });

  it('reads PULSE_SERVER as libpulse does', () => {
    expect(pulseServer({ PULSE_SERVER: 'unix:/run/x/native' })?.targets).toEqual([{ path: '/run/x/native' }]);
    expect(pulseServer({ PULSE_SERVER: '{abc}unix:/a tcp:host:4000 otherhost' })?.targets).toEqual([
      { path: '/a' },
      { host: 'host', port: 4000 },
      { host: 'otherhost', port: 4713 },
    ]);
    expect(pulseServer({ XDG_RUNTIME_DIR: path.join(tmp, 'no-such-runtime') })).toBeUndefined();
  });

  it('frames chunks of any size, with a short last frame', () => {
    const framer = new Framer(4);
    const out: number[][] = [];
    framer.push(Int16Array.from([1, 2, 3]), (f) => out.push([...f]));
    framer.push(Int16Array.from([4, 5, 6, 7, 8, 9]), (f) => out.push([...f]));
    framer.flush((f) => out.push([...f]));
    expect(out).toEqual([[1, 2, 3, 4], [5, 6, 7, 8], [9]]);
    expect(rms(Int16Array.from([0, 0]))).toBe(0);
    expect(rms(Int16Array.from([-32768, -32768]))).toBe(1);
    expect(rms(Int16Array.from([16384, -16384]))).toBeCloseTo(0.5, 9);
  });

  it('detects digital silence only when every sample is zero from the start', () => {
    const zeros = new Int16Array(512);
    const detector = new SilenceDetector(100, RATE); // 1600 samples
    expect(detector.push(zeros)).toBe(false);
    expect(detector.push(zeros)).toBe(false);
    expect(detector.push(zeros)).toBe(false);
    expect(detector.push(zeros)).toBe(true);
    const noisy = new SilenceDetector(100, RATE);
    const one = new Int16Array(512);
    one[300] = 1;
    expect(noisy.push(one)).toBe(false);
    for (let i = 0; i < 10; i++) expect(noisy.push(zeros)).toBe(false);
    const off = new SilenceDetector(0, RATE);
    for (let i = 0; i < 100; i++) expect(off.push(zeros)).toBe(false);
  });

  it('queues frames for one consumer and ends with the error after the frames', async () => {
    const q = new FrameQueue();
    const f = (t: number) => ({ samples: new Int16Array(1), timestamp: t, rms: 0 });
    q.push(f(0));
    q.push(f(1));
    const boom = micError('silence', { device: 'x', ms: 1 });
    setTimeout(() => {
      q.push(f(2));
      q.fail(boom);
    }, 10);
    const seen: number[] = [];
    await expect(
      (async () => {
        for await (const frame of q) seen.push(frame.timestamp);
      })(),
    ).rejects.toBe(boom);
    expect(seen).toEqual([0, 1, 2]);
  });

  it('leaves a playable WAV after each header interval, even if never closed', async () => {
    const file = path.join(tmp, 'units', 'crash.wav');
    mkdirSync(path.dirname(file), { recursive: true });
    const writer = await WavWriter.create(file, RATE, RATE); // header every second
    const second = new Int16Array(RATE).fill(1000);
    await writer.write(second);
    await writer.write(second.subarray(0, RATE / 2));
    expect(readWav(file).length).toBe(RATE); // the "crash": the last half second is past the header
    expect(statSync(file).size).toBe(44 + 3 * RATE);
    await writer.close();
    expect(readWav(file).length).toBe(1.5 * RATE);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('prunes recordings by count and age, wav files only', async () => {
    const dir = path.join(tmp, 'units', 'prune');
    mkdirSync(dir, { recursive: true });
    const now = Date.now();
    for (let i = 0; i < 6; i++) {
      const file = path.join(dir, `r${i}.wav`);
      writeFileSync(file, '');
      const t = new Date(now - (i === 5 ? 10 : i) * 86_400_000 - 1000);
      utimesSync(file, t, t);
    }
    writeFileSync(path.join(dir, 'notes.txt'), '');
    const deleted = await pruneRecordings(dir, { recordings: 4, days: 7 }, 1, now);
    expect(deleted.map((f) => path.basename(f)).sort()).toEqual(['r3.wav', 'r4.wav', 'r5.wav']);
    expect(readdirSync(dir).sort()).toEqual(['notes.txt', 'r0.wav', 'r1.wav', 'r2.wav']);
    expect(await pruneRecordings(dir, { recordings: 0, days: 0 })).toEqual([]); // 0: no limit
    expect(await pruneRecordings(path.join(dir, 'missing'), { recordings: 1, days: 1 })).toEqual([]);
  });

  it('words errors for a microphone, with the code the catalogue should get', () => {
    const err = micError('device-not-found', { device: 'Foo', available: '"A", "B"' });
    expect(err.message).toContain('no input device matches "Foo" (available: "A", "B")');
    expect(err.fix).toMatch(/audio\.device/);
    expect(err).toMatchObject({ code: 'KOTO_ERR_AUDIO_DEVICE_NOT_FOUND', details: { reason: 'device-not-found' } });
    expect(err.plugin).toBe('mic-native');
  });
});

function catchErr(fn: () => unknown): KotoError {
  try {
    fn();
  } catch (err) {
    return err as KotoError;
  }
  throw new Error('expected a throw');
}
