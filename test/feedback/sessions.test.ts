import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createKernel, encodeWav, parseWav, type Kernel, type KotoError, type RunResult, type SessionContext } from '../../src/index.ts';
import { TONE_RATE } from '../../plugins/feedback/index.ts';
import { failure, tempHome, testKernel } from '../support/index.ts';
import { brokenOutput, echoAsr, failingAsr, liveSource, readCalls, standIns, startedCalls, type Call, type StandIn } from './support.ts';

const CANARY = 'feedback-canary-7f3a9c21e4';

let home: ReturnType<typeof tempHome>;
let kernel: Kernel | undefined;
beforeEach(() => {
  home = tempHome('koto-feedback-');
});
afterEach(async () => {
  await kernel?.close();
  kernel = undefined;
  home.cleanup();
});

const ok = { providers: { a: { use: 'feedback-test-asr' } }, audio: { source: 'test-src' }, correction: { enabled: false } };
const failing = {
  providers: { a: { use: 'feedback-test-failing', apiKey: CANARY } },
  audio: { source: 'test-src' },
  correction: { enabled: false },
};

async function start(config: Record<string, unknown>, programs: Readonly<Record<string, StandIn>>) {
  const { bin, callsDir } = standIns(home.dir, programs);
  const made = await testKernel(config, {
    plugins: [liveSource, echoAsr, failingAsr, brokenOutput],
    builtins: ['feedback'],
    env: { KOTO_HOME: home.dir, PATH: bin },
    // An in-code config's folder: where relative sound files are found.
    cwd: home.dir,
  });
  kernel = made.kernel;
  return { ...made, callsDir, tones: path.join(home.dir, 'data', 'sounds') };
}

/** Waits until `count` calls are complete; the limit is a hang guard, not a speed check. */
async function calls(callsDir: string, count: number): Promise<Call[]> {
  await expect.poll(() => readCalls(callsDir).length, { timeout: 30_000, interval: 20 }).toBeGreaterThanOrEqual(count);
  return readCalls(callsDir);
}

/** A live recording: waits for its start cue (when one is expected), then stops it. */
async function dictate(k: Kernel, callsDir: string, expectCue: boolean): Promise<RunResult> {
  const before = readCalls(callsDir).length;
  const recording = await k.record();
  if (expectCue) await calls(callsDir, before + 1);
  return recording.stop();
}

function wavMs(bytes: Buffer | undefined): number {
  const wav = parseWav(bytes ?? Buffer.alloc(0));
  if (!wav.ok || !wav.pcm) throw new Error('not a WAV file');
  expect(wav.pcm.sampleRate).toBe(TONE_RATE);
  return (wav.pcm.samples.length / wav.pcm.sampleRate) * 1000;
}

describe('feedback: sound cues on live recordings', () => {
  it('start and stop cues play in order, through paplay, with the built-in tone files', async () => {
    const h = await start({ ...ok, feedback: { sounds: true } }, { paplay: { copyLast: true }, aplay: { copyLast: true } });
    const record = await dictate(h.kernel, h.callsDir, true);
    expect(record.state).toBe('done');
    const [first, second, ...rest] = await calls(h.callsDir, 2);
    expect(rest).toEqual([]);
    expect([first!.name, ...first!.args]).toEqual(['paplay', path.join(h.tones, 'start.wav')]);
    expect([second!.name, ...second!.args]).toEqual(['paplay', path.join(h.tones, 'stop.wav')]);
    // What the player was handed was a whole WAV file of a short blip.
    for (const call of [first!, second!]) {
      const ms = wavMs(call.played);
      expect(ms).toBeGreaterThanOrEqual(60);
      expect(ms).toBeLessThanOrEqual(120);
    }
    expect(first!.played!.equals(second!.played!)).toBe(false);
    expect(readdirSync(h.tones).sort()).toEqual(['error.wav', 'start.wav', 'stop.wav']);
  });

  it('a cancelled recording plays the stop cue; custom files relative to the config folder', async () => {
    const custom = encodeWav(new Int16Array(4410).fill(100), 44_100);
    writeFileSync(path.join(home.dir, 'on.wav'), custom);
    const h = await start({ ...ok, feedback: { sounds: { start: 'on.wav', stop: 'builtin' } } }, { paplay: { copyLast: true } });
    const recording = await h.kernel.record();
    await calls(h.callsDir, 1);
    await recording.cancel();
    expect(recording.state).toBe('cancelled');
    const [first, second] = await calls(h.callsDir, 2);
    expect(first!.args).toEqual([path.join(home.dir, 'on.wav')]);
    expect(first!.played?.equals(Buffer.from(custom))).toBe(true);
    expect(second!.args).toEqual([path.join(h.tones, 'stop.wav')]);
  });

  it('a failed session plays the error cue and notifies, without the credential the error carried', async () => {
    const h = await start({ ...failing, feedback: { sounds: true, notify: true } }, { paplay: { copyLast: true }, 'notify-send': {} });
    const recording = await h.kernel.record();
    await calls(h.callsDir, 1);
    const err: KotoError & { record?: RunResult } = await failure(recording.stop());
    expect(err.record?.state).toBe('failed');
    expect(err.message).toContain('upstream refused the key');
    const all = await calls(h.callsDir, 4);
    expect(all).toHaveLength(4);
    const sounds = all.filter((c) => c.name === 'paplay').map((c) => path.basename(c.args[0]!));
    expect(sounds).toEqual(['start.wav', 'stop.wav', 'error.wav']);
    const errorCue = all.find((c) => c.args[0]?.endsWith('error.wav'))!;
    const ms = wavMs(errorCue.played);
    expect(ms).toBeGreaterThan(200);
    expect(ms).toBeLessThanOrEqual(320);
    const note = all.find((c) => c.name === 'notify-send')!;
    expect(note.args.slice(0, 8)).toEqual(['-a', 'Koto', '-u', 'critical', '-t', '10000', '--', 'Koto: Dictation failed']);
    const body = note.args[8]!;
    expect(note.args).toHaveLength(9);
    expect(body).toContain('upstream refused the key');
    expect(body).toContain(`The recording is kept: koto retry ${err.record!.id}`);
    expect(JSON.stringify(all)).not.toContain(CANARY);
    expect(JSON.stringify(h.logs)).not.toContain(CANARY);
  });

  it('an output that failed: one notification with the warning; a clean session: none', async () => {
    const config = { ...ok, output: [{ use: 'broken' }, { use: 'fine' }], feedback: { notify: true } };
    const h = await start(config, { 'notify-send': {}, paplay: {} });
    const record = await dictate(h.kernel, h.callsDir, false);
    expect(record.state).toBe('done');
    expect(record.warnings.join(' ')).toContain('the window went away');
    const [note, ...rest] = await calls(h.callsDir, 1);
    expect(rest).toEqual([]);
    expect(note!.args.slice(0, 8)).toEqual(['-a', 'Koto', '-u', 'normal', '-t', '6000', '--', 'Koto: Delivered with a warning']);
    expect(note!.args[8]).toContain('the window went away');
  });

  it('off (the default): no process, no file, even for a failed session', async () => {
    const programs = { paplay: {}, 'pw-play': {}, aplay: {}, afplay: {}, 'notify-send': {}, osascript: {} };
    const h = await start({ ...failing, output: [{ use: 'broken' }, { use: 'fine' }] }, programs);
    const err = await failure(h.kernel.record().then((r) => r.stop()));
    expect(err.code).toBeDefined();
    await h.kernel.close();
    kernel = undefined;
    expect(startedCalls(h.callsDir)).toBe(0);
    expect(existsSync(h.tones)).toBe(false);
    expect(h.logs.filter((l) => l.includes(' feedback ') && !l.startsWith('debug'))).toEqual([]);
  });

  it('no player on PATH: sessions still finish, and one log line says why there is no sound', async () => {
    const h = await start({ ...ok, feedback: { sounds: true } }, { 'notify-send': {} });
    for (let i = 0; i < 3; i++) expect((await dictate(h.kernel, h.callsDir, false)).state).toBe('done');
    const warnings = h.logs.filter((l) => l.startsWith('warn') && l.includes('no sound player'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('paplay, pw-play, aplay, afplay');
    expect(startedCalls(h.callsDir)).toBe(0);
  });

  it('a player that fails: sessions finish, the first failure is a warning, later ones debug', async () => {
    const h = await start({ ...ok, feedback: { sounds: true } }, { aplay: { exit: 1 } });
    const failed = () => h.logs.filter((l) => l.includes('exited with code 1')).length;
    expect((await dictate(h.kernel, h.callsDir, true)).state).toBe('done');
    await calls(h.callsDir, 2);
    // Both players have ended (their failures are logged when they exit): the next cues are free to start.
    await expect.poll(failed, { timeout: 30_000 }).toBe(2);
    expect((await dictate(h.kernel, h.callsDir, true)).state).toBe('done');
    const all = await calls(h.callsDir, 4);
    expect(all.map((c) => c.name)).toEqual(['aplay', 'aplay', 'aplay', 'aplay']);
    expect(all[0]!.args[0]).toBe('-q');
    await expect.poll(failed, { timeout: 30_000 }).toBe(4);
    const failures = h.logs.filter((l) => l.includes('exited with code 1'));
    expect(failures.filter((l) => l.startsWith('warn'))).toHaveLength(1);
  });

  it('a flood of recording events starts one player per cue kind, not one per event', async () => {
    const h = await start({ ...ok, feedback: { sounds: true } }, { paplay: {} });
    const session = { id: 'flood', config: h.kernel.config, mode: 'live' } as unknown as SessionContext;
    for (let i = 0; i < 200; i++) {
      h.kernel.hooks.recording.call({ session, state: 'started' });
      h.kernel.hooks.recording.call({ session, state: 'stopped' });
    }
    const all = await calls(h.callsDir, 2);
    expect(all.map((c) => path.basename(c.args[0]!)).sort()).toEqual(['start.wav', 'stop.wav']);
    // Every spawn of the burst happened before the first stand-in could finish: had more than one
    // per kind started, they would have taken numbers by the time a real session has run.
    expect((await dictate(h.kernel, h.callsDir, false)).state).toBe('done');
    expect(startedCalls(h.callsDir)).toBeLessThanOrEqual(4);
  });
});

describe('feedback: config changes apply to the next session', () => {
  it('feedback.sounds turned on and off again in the config file, with kernel.reload()', async () => {
    const { bin, callsDir } = standIns(home.dir, { paplay: {} });
    const configFile = path.join(home.dir, 'koto.yaml');
    const text = (sounds: boolean) =>
      [
        'providers:',
        '  a: { use: feedback-test-asr }',
        'audio: { source: test-src }',
        'correction: { enabled: false }',
        `feedback: { sounds: ${sounds} }`,
        '',
      ].join('\n');
    writeFileSync(configFile, text(false));
    kernel = await createKernel({
      configPath: configFile,
      env: { KOTO_HOME: home.dir, PATH: bin },
      builtins: ['feedback'],
      plugins: [liveSource, echoAsr],
      logLevel: 'silent',
    });
    expect((await dictate(kernel, callsDir, false)).state).toBe('done');
    expect(startedCalls(callsDir)).toBe(0);

    writeFileSync(configFile, text(true));
    await kernel.reload();
    expect((await dictate(kernel, callsDir, true)).state).toBe('done');
    expect((await calls(callsDir, 2)).map((c) => path.basename(c.args[0]!))).toEqual(['start.wav', 'stop.wav']);

    writeFileSync(configFile, text(false));
    await kernel.reload();
    expect((await dictate(kernel, callsDir, false)).state).toBe('done');

    writeFileSync(configFile, text(true));
    await kernel.reload();
    expect((await dictate(kernel, callsDir, true)).state).toBe('done');
    // Numbered in order of calls: the session with sounds off took none between them.
    const all = await calls(callsDir, 4);
    expect(all.map((c) => `${c.seq}:${path.basename(c.args[0]!)}`)).toEqual(['0:start.wav', '1:stop.wav', '2:start.wav', '3:stop.wav']);
  });
});

describe('feedback: notifications through osascript', () => {
  it('a hostile error text reaches osascript as one -e argument, escaped for AppleScript, run without a shell', async () => {
    const pwned = path.join(home.dir, 'pwned');
    const say = ` "quoted" \`id\` $(touch ${pwned}) \\ back'slash" & do shell script "id`;
    const config = { ...failing, providers: { a: { use: 'feedback-test-failing', apiKey: CANARY, say } }, feedback: { notify: true } };
    const h = await start(config, { osascript: {} });
    const err: KotoError & { record?: RunResult } = await failure(h.kernel.record().then((r) => r.stop()));
    const [call] = await calls(h.callsDir, 1);
    expect(call!.name).toBe('osascript');
    expect(call!.args).toHaveLength(2);
    expect(call!.args[0]).toBe('-e');
    const message = err.record!.error!.message;
    expect(message).toContain(say.trim());
    const escaped = (s: string) => s.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
    const body = `${message.replace(CANARY, '[redacted]')}. The recording is kept: koto retry ${err.record!.id}`;
    expect(call!.args[1]).toBe(
      `display notification "${escaped(body.replace(/\s+/g, ' '))}" with title "Koto" subtitle "Dictation failed"`,
    );
    expect(call!.args[1]).not.toContain('…');
    expect(call!.args[1]).not.toContain(CANARY);
    expect(existsSync(pwned)).toBe(false);
  });
});
