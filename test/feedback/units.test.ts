import { chmodSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseWav, type SessionRecord } from '../../src/index.ts';
import {
  appleScriptString,
  cueSource,
  escapeMarkup,
  findOnPath,
  notifySendArgs,
  oneLine,
  osascriptArgs,
  ProcessSlot,
  sessionNotice,
  TONE_RATE,
  toneSamples,
  toneWav,
  writeTones,
} from '../../plugins/feedback/index.ts';
import { tempHome } from '../support/index.ts';
import { readCalls, standIns } from './support.ts';

const home = tempHome('koto-feedback-units-');
afterAll(() => home.cleanup());

/**
 * Reads one AppleScript string literal from the start of `source` the way AppleScript does:
 * `\\` and `\"` are escapes, the first other `"` ends it. Returns the value and what follows.
 */
function readAppleString(source: string): { value: string; rest: string } {
  if (source[0] !== '"') throw new Error('not a string literal');
  let value = '';
  for (let i = 1; i < source.length; i++) {
    const c = source[i]!;
    if (c === '\\') {
      const next = source[++i];
      if (next === '\\' || next === '"') value += next;
      else throw new Error(`unexpected escape \\${next}`);
    } else if (c === '"') {
      return { value, rest: source.slice(i + 1) };
    } else if (c === '\n' || c === '\r') {
      throw new Error('a line break ends the statement');
    } else {
      value += c;
    }
  }
  throw new Error('unterminated string literal');
}

const HOSTILE = 'he said "stop" \\ `rm -rf ~` $(touch /tmp/x) \'q\' & <b>bold</b>\n" & do shell script "id';

describe('AppleScript and markup escaping', () => {
  it('a hostile text is one string literal holding exactly that text (line breaks as spaces)', () => {
    const literal = appleScriptString(HOSTILE);
    const { value, rest } = readAppleString(literal);
    expect(rest).toBe('');
    expect(value).toBe(HOSTILE.replace('\n', ' '));
    // Without escaping, the quote after "said" would have ended the literal there.
    expect(() => readAppleString(`"${HOSTILE}"`)).not.toThrow();
    expect(readAppleString(`"${HOSTILE}"`).rest).not.toBe('');
  });

  it('osascript gets one -e argument: display notification <literal> with title "Koto" subtitle <literal>', () => {
    const [flag, script, ...more] = osascriptArgs({ title: 'Dictation "failed"', body: HOSTILE, urgency: 'critical' });
    expect(flag).toBe('-e');
    expect(more).toEqual([]);
    const head = 'display notification ';
    expect(script!.startsWith(head)).toBe(true);
    const body = readAppleString(script!.slice(head.length));
    expect(body.value).toBe(HOSTILE.replace('\n', ' '));
    expect(body.rest.startsWith(' with title "Koto" subtitle ')).toBe(true);
    const subtitle = readAppleString(body.rest.slice(' with title "Koto" subtitle '.length));
    expect(subtitle).toEqual({ value: 'Dictation "failed"', rest: '' });
  });

  it('notify-send: app name, urgency, expiry, `--`, then summary and the markup-escaped body', () => {
    expect(escapeMarkup('a < b && c > d')).toBe('a &lt; b &amp;&amp; c &gt; d');
    expect(notifySendArgs({ title: 'Raw text delivered', body: '-not an option <i>', urgency: 'normal' })).toEqual([
      '-a',
      'Koto',
      '-u',
      'normal',
      '-t',
      '6000',
      '--',
      'Koto: Raw text delivered',
      '-not an option &lt;i&gt;',
    ]);
  });

  it('oneLine: control characters, line breaks and bidi overrides become single spaces; long text is cut', () => {
    expect(oneLine('a\r\n\tb\u0007c\u202Ed\u2066e  ')).toBe('a b c d e');
    const long = oneLine('x'.repeat(1000));
    expect(long.length).toBe(240);
    expect(long.endsWith('…')).toBe(true);
  });
});

describe('what a finished session notifies', () => {
  const base: SessionRecord = {
    id: '20250101-120000-abcdef',
    state: 'done',
    input: 'microphone',
    raw: 'hi',
    text: 'Hi.',
    fallback: false,
    asrProvider: 'a',
    asrModel: undefined,
    correctionProvider: undefined,
    correctionModel: undefined,
    audioPath: '/rec/a.wav',
    timings: {},
    error: undefined,
    warnings: [],
  };
  const scrub = (text: string) => text.replaceAll('hunter2-secret', '[redacted]');

  it('nothing for a clean session or a cancelled one', () => {
    expect(sessionNotice(base, scrub)).toBeUndefined();
    expect(
      sessionNotice({ ...base, state: 'cancelled', error: { code: 'KOTO_ERR_ABORTED', message: 'cancelled' } }, scrub),
    ).toBeUndefined();
  });

  it('a failure: the scrubbed one-line message, and the retry command when the recording is kept', () => {
    const failed = { ...base, state: 'failed' as const, error: { code: 'KOTO_ERR_AUTH', message: 'bad key hunter2-secret\nsecond line' } };
    expect(sessionNotice(failed, scrub)).toEqual({
      title: 'Dictation failed',
      body: 'bad key [redacted] second line. The recording is kept: koto retry 20250101-120000-abcdef',
      urgency: 'critical',
    });
    expect(sessionNotice({ ...failed, audioPath: undefined }, scrub)?.body).toBe('bad key [redacted] second line.');
  });

  it('a fallback or warnings: one notice with the first warning and how many more', () => {
    expect(sessionNotice({ ...base, fallback: true, warnings: ['correction timed out, raw text delivered'] }, scrub)).toEqual({
      title: 'Raw text delivered',
      body: 'correction timed out, raw text delivered.',
      urgency: 'normal',
    });
    expect(sessionNotice({ ...base, warnings: ['output "paste" failed: no display.', 'second'] }, scrub)).toEqual({
      title: 'Delivered with a warning',
      body: 'output "paste" failed: no display. (and 1 more: koto history)',
      urgency: 'normal',
    });
    expect(sessionNotice({ ...base, fallback: true }, scrub)?.body).toBe('Correction did not answer; the raw transcript was delivered.');
  });
});

describe('cue sources', () => {
  it('true → built-in; false → none; the object form plays only what it lists, paths relative to the config', () => {
    expect(cueSource(true, 'error', '/cfg')).toEqual({ builtin: true });
    expect(cueSource(false, 'start', '/cfg')).toBeUndefined();
    const sounds = { start: 'sounds/on.wav', error: 'builtin', stop: '/abs/off.wav' };
    expect(cueSource(sounds, 'start', '/cfg')).toEqual({ file: '/cfg/sounds/on.wav' });
    expect(cueSource(sounds, 'stop', '/cfg')).toEqual({ file: '/abs/off.wav' });
    expect(cueSource(sounds, 'error', '/cfg')).toEqual({ builtin: true });
    expect(cueSource({ error: 'builtin' }, 'start', '/cfg')).toBeUndefined();
  });
});

describe('built-in tones', () => {
  it('short blips with faded ends, start higher than stop, error a double tone', () => {
    const crossings = (s: Int16Array) => s.reduce((n, v, i) => (i > 0 && s[i - 1]! < 0 !== v < 0 ? n + 1 : n), 0);
    for (const kind of ['start', 'stop', 'error'] as const) {
      const samples = toneSamples(kind);
      const ms = (samples.length / TONE_RATE) * 1000;
      expect(ms).toBeGreaterThanOrEqual(60);
      expect(ms).toBeLessThanOrEqual(kind === 'error' ? 320 : 120);
      // No click: the first and last samples are (near) silent, and the peak is well below full scale.
      expect(Math.abs(samples[0]!)).toBeLessThan(50);
      expect(Math.abs(samples.at(-1)!)).toBeLessThan(400);
      const peak = samples.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      expect(peak).toBeGreaterThan(5000);
      expect(peak).toBeLessThan(16000);
    }
    const rate = (kind: 'start' | 'stop') => crossings(toneSamples(kind)) / (toneSamples(kind).length / TONE_RATE) / 2;
    expect(rate('start')).toBeGreaterThan(rate('stop') * 1.3);
    // The error cue has a silent gap between its two tones.
    const error = toneSamples('error');
    const middle = error.subarray(Math.round(0.12 * TONE_RATE), Math.round(0.16 * TONE_RATE));
    expect(middle.every((v) => v === 0)).toBe(true);
  });

  it('are written once as valid WAV, 0600 in a 0700 folder, and rewritten when a file was changed', async () => {
    const dir = path.join(home.dir, 'tones');
    const files = await writeTones(dir);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    for (const kind of ['start', 'stop', 'error'] as const) {
      expect(statSync(files[kind]).mode & 0o777).toBe(0o600);
      const wav = parseWav(readFileSync(files[kind]));
      expect(wav.ok && wav.pcm?.sampleRate).toBe(TONE_RATE);
      expect(wav.ok && wav.pcm?.samples.length).toBe(toneSamples(kind).length);
    }
    const before = statSync(files.stop).mtimeMs;
    writeFileSync(files.start, 'not a wav');
    await writeTones(dir);
    expect(Buffer.from(toneWav('start')).equals(readFileSync(files.start))).toBe(true);
    expect(statSync(files.stop).mtimeMs).toBe(before);
  });

  it('refuse a folder others can enter, or a symlink in its place', async () => {
    const loose = path.join(home.dir, 'loose');
    mkdirSync(loose);
    chmodSync(loose, 0o755);
    await expect(writeTones(loose)).rejects.toThrow(/chmod 700/);
    const link = path.join(home.dir, 'link');
    symlinkSync(path.join(home.dir, 'tones'), link);
    await expect(writeTones(link)).rejects.toThrow(/not a folder/);
  });
});

describe('helper programs', () => {
  it('findOnPath: preference order over PATH order, executables only, relative entries ignored', async () => {
    const root = path.join(home.dir, 'path');
    const a = path.join(root, 'a');
    const b = path.join(root, 'b');
    mkdirSync(a, { recursive: true });
    mkdirSync(b, { recursive: true });
    writeFileSync(path.join(a, 'aplay'), '#!/bin/sh\n', { mode: 0o755 });
    writeFileSync(path.join(b, 'paplay'), '#!/bin/sh\n', { mode: 0o755 });
    writeFileSync(path.join(a, 'pw-play'), 'not executable', { mode: 0o644 });
    mkdirSync(path.join(a, 'afplay'));
    const PATH = ['relative/dir', '', a, b].join(path.delimiter);
    expect(await findOnPath(['paplay', 'aplay'], PATH)).toBe(path.join(b, 'paplay'));
    expect(await findOnPath(['pw-play', 'afplay', 'aplay'], PATH)).toBe(path.join(a, 'aplay'));
    expect(await findOnPath(['paplay'], undefined)).toBeUndefined();
    const cwd = process.cwd();
    process.chdir(root);
    try {
      // `relative/dir` would resolve against the working folder: never searched.
      mkdirSync(path.join(root, 'relative', 'dir'), { recursive: true });
      writeFileSync(path.join(root, 'relative', 'dir', 'osascript'), '#!/bin/sh\n', { mode: 0o755 });
      expect(await findOnPath(['osascript'], PATH)).toBeUndefined();
    } finally {
      process.chdir(cwd);
    }
  });

  it('ProcessSlot: one process at a time; a failure is reported once per launch, never thrown', async () => {
    const { bin, callsDir } = standIns(path.join(home.dir, 'slot'), { ok: {}, bad: { exit: 3 } });
    const failures: string[] = [];
    let idle: () => void = () => {};
    const slot = new ProcessSlot({ maxMs: 60_000, onFailure: (m) => void failures.push(m), onIdle: () => idle() });
    const idled = () => new Promise<void>((resolve) => (idle = resolve));
    const env = { PATH: bin };

    let done = idled();
    expect(slot.start({ file: path.join(bin, 'ok'), args: ['one'], env })).toBe(true);
    for (let i = 0; i < 100; i++) expect(slot.start({ file: path.join(bin, 'ok'), args: ['flood'], env })).toBe(false);
    await done;
    done = idled();
    expect(slot.start({ file: path.join(bin, 'bad'), args: ['two'], env })).toBe(true);
    await done;
    done = idled();
    expect(slot.start({ file: path.join(bin, 'gone'), args: [], env })).toBe(true);
    await done;
    // Every started process has ended (each was awaited): these are all the calls there will be.
    expect(readCalls(callsDir).map((c) => [c.name, ...c.args])).toEqual([
      ['ok', 'one'],
      ['bad', 'two'],
    ]);
    expect(failures).toEqual(['bad exited with code 3', `gone is no longer installed (${path.join(bin, 'gone')})`]);
  });
});
