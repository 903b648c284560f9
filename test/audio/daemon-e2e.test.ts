/**
 * The daemon end to end, as a user drives it: a real `koto daemon` process recording from the
 * virtual microphone (test/support/virtual-mic.sh) through mic-native, `koto start` /
 * `koto stop` from the CLI, the loopback OpenAI-compatible upstream, an output file, history,
 * `koto retry`, and a daemon killed mid-recording.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseWav } from '../../src/index.ts';
import { koto } from '../cli/support.ts';
import { playIntoMic, startVirtualMic } from '../support/virtual-mic.ts';
import { startOpenAIServer, tempHome, type OpenAIServer } from '../support/index.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = path.join(ROOT, 'bin', 'koto.js');

const home = tempHome('koto-daemon-e2e-');
let server: OpenAIServer;
let pulse: Record<string, string> = {};
let env: NodeJS.ProcessEnv;
let daemon: ChildProcess | undefined;
let speech: string;

const play = (file: string) => playIntoMic(file, pulse);

function rms(samples: Int16Array): number {
  let sum = 0;
  for (const s of samples) sum += (s / 32768) ** 2;
  return Math.sqrt(sum / Math.max(1, samples.length));
}

async function startDaemon(): Promise<ChildProcess> {
  const child = spawn(process.execPath, [BIN, 'daemon'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const deadline = Date.now() + 20_000;
  for (;;) {
    const status = await koto(['status'], { env });
    if (status.code === 0) return child;
    if (child.exitCode !== null) throw new Error(`koto daemon exited ${child.exitCode}: ${log}`);
    if (Date.now() > deadline) throw new Error(`koto daemon did not answer: ${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function stopDaemon(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  const child = daemon;
  daemon = undefined;
  if (!child || child.exitCode !== null) return child?.exitCode ?? null;
  return new Promise((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.kill(signal);
  });
}

beforeAll(async () => {
  pulse = startVirtualMic();
  server = await startOpenAIServer({ transcribe: () => 'hello from the microphone', complete: () => 'Hello from the microphone.' });
  writeFileSync(path.join(home.dir, 'ca.pem'), server.ca);
  speech = path.join(home.dir, 'speech.wav');
  execFileSync('flite', ['-voice', 'kal16', '-t', 'hello from the microphone, this is a test of the daemon', '-o', speech]);
  writeFileSync(
    path.join(home.dir, 'config.yaml'),
    [
      'providers:',
      '  main:',
      '    use: openai-compatible',
      `    baseUrl: ${server.baseUrl}`,
      '    apiKey: sk-e2e-daemon-canary-0042',
      'asr: { model: whisper-1 }',
      'correction: { model: gpt-test, stream: false }',
      'audio: { source: mic-native, device: default }',
      'output:',
      '  - use: file',
      `    path: ${path.join(home.dir, 'dictations.txt')}`,
      '',
    ].join('\n'),
  );
  // KOTO_HOME holds config.yaml (the per-user file), data, state and the socket.
  env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    KOTO_HOME: home.dir,
    NODE_EXTRA_CA_CERTS: path.join(home.dir, 'ca.pem'),
    ...pulse,
  };
  daemon = await startDaemon();
});

afterAll(async () => {
  await stopDaemon('SIGKILL');
  await server?.close();
  home.cleanup();
});

/** Where `part` occurs in `whole` as one unbroken run of samples, or -1. */
function sliceAt(whole: Int16Array, part: Int16Array): number {
  if (part.length === 0 || part.length > whole.length) return -1;
  for (let start = 0; start + part.length <= whole.length; start++) {
    if (whole[start] !== part[0]) continue;
    let same = true;
    for (let i = 1; i < part.length && same; i++) same = whole[start + i] === part[i];
    if (same) return start;
  }
  return -1;
}

describe('koto daemon with the virtual microphone', () => {
  it('start, speak, stop: the corrected text lands in the output file; history keeps the row and the recording', async () => {
    expect(await koto(['start'], { env })).toMatchObject({ code: 0, stdout: expect.stringContaining('recording') });
    await play(speech);
    const stop = await koto(['stop', '--wait', '--json'], { env, timeoutMs: 60_000 });
    expect(stop.code).toBe(0);
    const record = JSON.parse(stop.stdout) as { id: string; text: string; audioPath: string; state: string };
    expect(record).toMatchObject({ state: 'done', text: 'Hello from the microphone.' });
    expect(readFileSync(path.join(home.dir, 'dictations.txt'), 'utf8')).toBe('Hello from the microphone.\n');

    const history = await koto(['history', '--json', '-n', '1'], { env });
    const row = JSON.parse(history.stdout.trim()) as { id: string; state: string; raw: string; audioPath: string };
    expect(row).toMatchObject({ id: record.id, state: 'done', raw: 'hello from the microphone' });
    // The kept recording is what was played: speech-level energy, at least as long as the clip.
    const kept = parseWav(readFileSync(row.audioPath));
    const played = parseWav(readFileSync(speech));
    if (!kept.ok || !kept.pcm || !played.ok || !played.pcm) throw new Error('unreadable WAV');
    expect(kept.pcm.samples.length / kept.pcm.sampleRate).toBeGreaterThanOrEqual(played.pcm.samples.length / played.pcm.sampleRate - 0.1);
    expect(rms(kept.pcm.samples)).toBeGreaterThan(rms(played.pcm.samples) * 0.2);
    // And what was uploaded came from it: the whole recording, or (silence trimming, on for live
    // recordings) one unbroken run of its samples at least as long as the speech — never other audio.
    const upload = server.requests.filter((r) => r.path.endsWith('/audio/transcriptions')).at(-1);
    const sent = parseWav(upload!.form!.files.file!.data);
    if (!sent.ok || !sent.pcm) throw new Error('the upload is not a readable WAV');
    expect(sliceAt(kept.pcm.samples, sent.pcm.samples)).toBeGreaterThanOrEqual(0);
    expect(sent.pcm.samples.length / sent.pcm.sampleRate).toBeGreaterThanOrEqual(played.pcm.samples.length / played.pcm.sampleRate - 0.5);
  });

  it('an ASR failure keeps the recording; once the upstream recovers, koto retry delivers the text', async () => {
    server.inject({ path: '/audio/transcriptions', status: 500, times: Infinity });
    await koto(['start'], { env });
    await play(speech);
    const stop = await koto(['stop', '--wait'], { env, timeoutMs: 60_000 });
    expect(stop.code).toBe(1);
    expect(stop.stderr).toContain('KOTO_ERR_UPSTREAM');
    const row = JSON.parse((await koto(['history', '--json', '-n', '1'], { env })).stdout.trim()) as {
      id: string;
      state: string;
      audioPath: string;
    };
    expect(row.state).toBe('failed');
    expect(existsSync(row.audioPath)).toBe(true);

    server.clearFaults();
    const retry = await koto(['retry', row.id], { env, timeoutMs: 60_000 });
    expect(retry).toMatchObject({ code: 0, stdout: 'Hello from the microphone.\n' });
  });

  it('a daemon killed mid-recording: after a restart the interrupted recording is listed and retryable', async () => {
    const start = await koto(['start', '--json'], { env });
    const { id } = JSON.parse(start.stdout) as { id: string };
    await play(speech);
    await stopDaemon('SIGKILL');
    daemon = await startDaemon();
    const status = JSON.parse((await koto(['status', '--json'], { env })).stdout) as { interrupted: string[] };
    expect(status.interrupted).toContain(id);
    const row = JSON.parse((await koto(['history', '--json', '-n', '1'], { env })).stdout.trim()) as {
      id: string;
      state: string;
      audioPath: string;
    };
    expect(row).toMatchObject({ id, state: 'interrupted' });
    // mic-native wrote the WAV as it captured: playable although the process died.
    const kept = parseWav(readFileSync(row.audioPath));
    expect(kept.ok && kept.pcm && kept.pcm.samples.length > 16000).toBe(true);
    expect(await koto(['retry', id], { env, timeoutMs: 60_000 })).toMatchObject({ code: 0, stdout: 'Hello from the microphone.\n' });
  });

  it('SIGTERM shuts down cleanly (exit 0) and `koto status` then says no daemon (exit 4)', async () => {
    expect(await stopDaemon('SIGTERM')).toBe(0);
    const status = await koto(['status'], { env });
    expect(status.code).toBe(4);
    expect(status.stderr).toContain('KOTO_ERR_NO_DAEMON');
  });
});
