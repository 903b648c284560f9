/**
 * Hands-free mode (#21): `koto start --vad` (and `hotkey.mode: vad`) records until the speaker
 * stops — `audio.silenceMs` of silence after speech ends the recording by itself, and a recording
 * with no speech within `audio.noSpeechMs` is cancelled. The detector on its own (levels in,
 * verdict out), then a real daemon on its socket, driven by the real CLI, with an audio source
 * that speaks and then falls silent, at a loopback OpenAI-compatible server.
 */
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EndOfSpeech } from '../../src/audio/end-of-speech.ts';
import { Daemon } from '../../src/daemon/daemon.ts';
import { definePlugin, type AudioFrame } from '../../src/index.ts';
import { koto } from '../cli/support.ts';
import { startOpenAIServer, tempHome, type OpenAIServer } from '../support/index.ts';

const FRAME_MS = 20;
const dbToRms = (db: number) => 10 ** (db / 20);

/** Feeds a level sequence (dB per 20 ms frame) and says at which frame time the detector answered. */
function run(levels: readonly number[], options = { silenceMs: 800, noSpeechMs: 5000 }) {
  const detector = new EndOfSpeech(options);
  for (const [i, db] of levels.entries()) {
    const verdict = detector.push(dbToRms(db), i * FRAME_MS);
    if (verdict) return { verdict, at: i * FRAME_MS };
  }
  return undefined;
}
const frames = (ms: number, db: number) => Array.from({ length: ms / FRAME_MS }, () => db);

describe('the end-of-speech detector', () => {
  it('speaking from the first frame (no quiet to learn the floor from yet) counts once the pause comes', () => {
    const result = run([...frames(1500, -22), ...frames(1500, -65)]);
    expect(result?.verdict).toBe('speech-ended');
    expect(result!.at).toBeGreaterThanOrEqual(1500 + 800);
  });

  it('speech, then silence: ends once the silence has lasted silenceMs', () => {
    const result = run([...frames(400, -60), ...frames(1000, -20), ...frames(2000, -60)]);
    expect(result?.verdict).toBe('speech-ended');
    // The smoothed level falls below the threshold within a few frames of the last word.
    expect(result!.at).toBeGreaterThanOrEqual(1400 + 800);
    expect(result!.at).toBeLessThanOrEqual(1400 + 800 + 5 * FRAME_MS);
  });

  it('pauses between words shorter than silenceMs do not end it', () => {
    const words = [...frames(300, -20), ...frames(500, -60)];
    const result = run([...frames(200, -60), ...words, ...words, ...words, ...frames(300, -20)]);
    expect(result).toBeUndefined();
  });

  it('a click is not speech: no speech within noSpeechMs gives up', () => {
    const result = run([...frames(1000, -70), -10, ...frames(6000, -70)]);
    expect(result).toEqual({ verdict: 'no-speech', at: 5000 });
  });

  it('a noisy room: speech is what stands 12 dB above the floor, the floor is not', () => {
    const noise = -38;
    expect(run(frames(6000, noise))?.verdict).toBe('no-speech');
    const result = run([...frames(500, noise), ...frames(800, -18), ...frames(1500, noise)]);
    expect(result?.verdict).toBe('speech-ended');
  });
});

/** An audio source that speaks for `speechMs` (a loud tone), then is quiet (room noise) until stopped. */
const talker = (speechMs: number) =>
  definePlugin({
    name: `talker-${speechMs}`,
    audioSources: [`talker-${speechMs}`],
    apply(api) {
      api.hooks.audioSource.for(`talker-${speechMs}`).tapPromise(`talker-${speechMs}`, async () => {
        let stopped = false;
        let t = 0;
        async function* produce(): AsyncGenerator<AudioFrame> {
          while (!stopped) {
            const loud = t * FRAME_MS < speechMs;
            const amplitude = loud ? 8000 : 20;
            const samples = new Int16Array(320).map((_, i) =>
              Math.round(amplitude * Math.sin((2 * Math.PI * 440 * (t * 320 + i)) / 16000)),
            );
            yield { samples, timestamp: t * FRAME_MS, rms: amplitude / 32768 / Math.SQRT2 };
            t += 1;
            // Paced, but faster than real time: the detector reads frame timestamps, not the clock.
            await new Promise((r) => setTimeout(r, 2));
          }
        }
        return { frames: produce(), sampleRate: 16000, device: 'talker', stop: async () => void (stopped = true) };
      });
    },
  });

describe('the daemon, hands-free', () => {
  const KEY = 'sk-hands-free-canary-4242';
  const home = tempHome('koto-hands-free-');
  let server: OpenAIServer;
  let daemon: Daemon;
  const env = { KOTO_HOME: path.join(home.dir, 'home') };

  beforeAll(async () => {
    server = await startOpenAIServer({ apiKey: KEY, transcribe: () => 'spoken hands free' });
    const file = path.join(home.dir, 'koto.yaml');
    writeFileSync(
      file,
      [
        'providers:',
        `  main: { use: openai-compatible, baseUrl: ${server.baseUrl}, apiKey: ${KEY} }`,
        'asr: { model: whisper-1 }',
        'correction: { enabled: false }',
        'audio: { source: talker-1000, silenceMs: 600, noSpeechMs: 1500, trimSilence: false }',
        `output: [ { use: file, path: ${JSON.stringify(path.join(home.dir, 'out.txt'))} } ]`,
        `transport: { ca: ${JSON.stringify(server.ca)} }`,
        'daemon: { ui: { enabled: false } }',
        '',
      ].join('\n'),
    );
    chmodSync(file, 0o600);
    daemon = await Daemon.start({
      configPath: file,
      env: { ...process.env, ...env },
      builtins: ['openai-compatible', 'outputs'],
      plugins: [talker(1000), talker(0)],
      logLevel: 'silent',
      watch: false,
      shutdownTimeoutMs: 5000,
    });
  });

  afterAll(async () => {
    await daemon?.close();
    await server?.close();
    home.cleanup();
  });

  async function waitForSession(state: string): Promise<Record<string, unknown>> {
    const end = Date.now() + 60_000;
    for (;;) {
      const rows = (await koto(['history', '--json', '-n', '5'], { env })).stdout
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      const row = rows.find((r) => r.state === state);
      if (row) return row;
      if (Date.now() > end) throw new Error(`no ${state} session: ${JSON.stringify(rows)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  it('`koto start --vad`: the recording ends by itself after the silence, and the text is delivered', async () => {
    const start = await koto(['start', '--vad'], { env });
    expect(start.stderr).toBe('');
    expect(start.stdout).toMatch(/^recording \(\S+; ends after 600 ms of silence\)\n$/);
    // No `koto stop`: the silence after the speech ends it.
    const row = await waitForSession('done');
    expect(row).toMatchObject({ text: 'spoken hands free' });
    expect((await koto(['status', '--json'], { env })).stdout).toContain('"state":"idle"');
    expect(server.requests.filter((r) => r.path.endsWith('/audio/transcriptions'))).toHaveLength(1);
  });

  it('no speech at all: cancelled after noSpeechMs, nothing sent', async () => {
    const file = daemon.kernel.config.resolved.file!;
    writeFileSync(file, (await import('node:fs')).readFileSync(file, 'utf8').replace('source: talker-1000', 'source: talker-0'));
    expect((await koto(['reload'], { env })).code).toBe(0);
    const transcriptions = () => server.requests.filter((r) => r.path.endsWith('/audio/transcriptions')).length;
    const before = transcriptions();
    expect((await koto(['start', '--vad'], { env })).code).toBe(0);
    const row = await waitForSession('cancelled');
    expect(row.text ?? null).toBeNull();
    expect(transcriptions()).toBe(before);
  });

  it('without --vad nothing stops by itself', async () => {
    const file = daemon.kernel.config.resolved.file!;
    writeFileSync(file, (await import('node:fs')).readFileSync(file, 'utf8').replace('source: talker-0', 'source: talker-1000'));
    expect((await koto(['reload'], { env })).code).toBe(0);
    expect((await koto(['start'], { env })).code).toBe(0);
    // Well past speech + silenceMs, in frames: the source runs ~10x real time.
    await new Promise((r) => setTimeout(r, 1500));
    expect((await koto(['status', '--json'], { env })).stdout).toContain('"state":"recording"');
    expect((await koto(['cancel'], { env })).code).toBe(0);
  });

  it('--vad belongs to start and toggle: `koto stop --vad` is a usage error, and nothing is sent', async () => {
    for (const cmd of ['stop', 'cancel']) {
      const result = await koto([cmd, '--vad'], { env });
      expect(result.code).toBe(2);
      expect(result.stderr).toContain("unknown option '--vad'");
    }
    expect((await koto(['status', '--json'], { env })).stdout).toContain('"state":"idle"');
  });
});
