/**
 * The clipboard restore after a paste (on by default) under a one-shot `koto run`: the real CLI
 * (bin/koto.js), a loopback OpenAI-compatible server, Xvfb with openbox and a GTK text view that
 * pastes the CLIPBOARD with Ctrl+V. The process exits right after the outputs, so the restore
 * must have run before it does (the outputs plugin waits for it at `close`).
 */
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../../src/daemon/daemon.ts';
import { testDaemon } from '../support/daemon.ts';
import { encodeWav } from '../../src/index.ts';
import { koto } from '../cli/support.ts';
import { startOpenAIServer, tempHome, type OpenAIServer } from '../support/index.ts';
import { emptyClipboard, openGtkText, received, startDesktop, type Desktop, type Receiver } from './paste-desktop.ts';
import { copyAsUser, eventually, readClipboard } from './x11.ts';

const KEY = 'sk-paste-restore-canary-5150';
const home = tempHome('koto-paste-restore-');
const wav = path.join(home.dir, 'clip.wav');
let server: OpenAIServer;
let desktop: Desktop;
let receiver: Receiver;
/** What the server "hears" next. */
let heard = '';

function config(name: string, paste: Record<string, unknown>, extra: string[] = []): string {
  const file = path.join(home.dir, `${name}.yaml`);
  writeFileSync(
    file,
    [
      'providers:',
      `  main: { use: openai-compatible, baseUrl: ${server.baseUrl}, apiKey: ${KEY} }`,
      'asr: { model: whisper-1 }',
      ...extra,
      `output: [ ${JSON.stringify({ use: 'paste', ...paste })} ]`,
      `transport: { ca: ${JSON.stringify(server.ca)} }`,
      '',
    ].join('\n'),
  );
  chmodSync(file, 0o600);
  return file;
}

/** `koto run` as a user would start it from a terminal of this desktop. */
function run(configFile: string) {
  return koto(['--no-daemon', '-c', configFile, 'run', '--no-correct', wav], {
    env: { KOTO_HOME: path.join(home.dir, 'home'), DISPLAY: process.env.DISPLAY, LANG: 'C' },
  });
}

beforeAll(async () => {
  server = await startOpenAIServer({ apiKey: KEY, transcribe: () => heard });
  writeFileSync(
    wav,
    encodeWav(
      new Int16Array(16000).map((_, i) => Math.round(6000 * Math.sin(i / 7))),
      16000,
    ),
  );
  desktop = await startDesktop();
  receiver = await openGtkText();
});

afterAll(async () => {
  await receiver?.close();
  await desktop?.stop();
  await server?.close();
  home.cleanup();
});

describe('koto run, paste with restoreClipboard (the default)', () => {
  it('the previous clipboard is back once the run has exited, and the application got the dictation', async () => {
    await copyAsUser('what the user had copied');
    heard = 'dictated, pasted, then the clipboard restored';
    const offset = receiver.bytes().length;
    // The delay only has to outlast the GTK view reading the clipboard (5 s on a loaded machine);
    // what is tested is that the restore runs at all before the process is gone.
    const result = await run(config('restore', { restoreDelayMs: 5000 }));
    expect(result.stderr).toBe('');
    expect(result).toMatchObject({ code: 0, stdout: `${heard}\n` });
    expect((await received(receiver, offset, Buffer.from(heard))).toString()).toBe(heard);
    // Read at once after the exit: no restore can still be on its way.
    expect(await readClipboard()).toBe('what the user had copied');
  });

  it('something copied between the paste and the restore is left alone', async () => {
    await copyAsUser('what the user had copied');
    heard = 'dictated, then the user copied something else';
    const offset = receiver.bytes().length;
    const running = run(config('copied-meanwhile', { restoreDelayMs: 15_000 }));
    // The paste has landed: the clipboard holds the dictation, and the restore is 15 s away.
    await received(receiver, offset, Buffer.from(heard), 60_000);
    expect(await readClipboard()).toBe(heard);
    await copyAsUser('copied in between');
    const result = await running;
    expect(result).toMatchObject({ code: 0, stdout: `${heard}\n`, stderr: '' });
    expect(await readClipboard()).toBe('copied in between');
  });

  it('with no previous clipboard text, the dictation stays on the clipboard after the run', async () => {
    await emptyClipboard();
    heard = 'the only thing ever copied';
    const offset = receiver.bytes().length;
    const result = await run(config('nothing-before', {}));
    expect(result).toMatchObject({ code: 0, stdout: `${heard}\n`, stderr: '' });
    await received(receiver, offset, Buffer.from(heard));
    expect(await eventually(readClipboard, (t) => t === heard)).toBe(heard);
  });
});

describe('the daemon, paste with restoreClipboard (the default)', () => {
  let daemon: Daemon;
  const env = { KOTO_HOME: path.join(home.dir, 'daemon-home') };

  beforeAll(async () => {
    // restoreClipboard left at its default (on); the delay outlasts a slow GTK read, as above.
    const file = config('daemon', { restoreDelayMs: 5000 }, ['correction: { enabled: false }', 'audio: { source: tone }']);
    daemon = await testDaemon({ configPath: file, env: { ...process.env, ...env }, builtins: ['openai-compatible', 'outputs', 'focus'] });
  });

  afterAll(async () => {
    await daemon?.close();
  });

  it('the application gets the dictation, then the previous clipboard is back', async () => {
    await copyAsUser('copied before the hotkey');
    heard = 'dictated through the daemon, then the clipboard restored';
    const offset = receiver.bytes().length;
    expect((await koto(['start'], { env })).code).toBe(0);
    const stop = await koto(['stop', '--wait'], { env });
    expect(stop).toMatchObject({ code: 0, stdout: `${heard}\n` });
    expect((await received(receiver, offset, Buffer.from(heard))).toString()).toBe(heard);
    // The daemon lives on: the restore runs on its timer, shortly after the paste.
    expect(await eventually(readClipboard, (t) => t === 'copied before the hotkey', 30_000)).toBe('copied before the hotkey');
  });
});
