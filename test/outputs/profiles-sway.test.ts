/**
 * Profiles under sway (headless, the typing tests' session): the daemon asks swaymsg which
 * window has the focus at the start of a dictation, the profile matching foot's app id applies
 * (no correction request, typed through wtype, Enter after), and a window no profile names
 * gets the base config. System packages: sway foot wtype wl-clipboard.
 */
import { readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../../src/daemon/daemon.ts';
import { testDaemon } from '../support/daemon.ts';
import type { RunResult } from '../../src/index.ts';
import { startOpenAIServer, tempHome, type OpenAIServer } from '../support/index.ts';
import { startSway, type FootTerminal, type WaylandSession } from './type-wayland-session.ts';
import { eventually } from './x11.ts';

const home = tempHome('koto-profiles-sway-');
const savedEnv = { ...process.env };
let session: WaylandSession;
let server: OpenAIServer;
let daemon: Daemon;
let foot: FootTerminal | undefined;

beforeAll(async () => {
  session = await startSway();
  Object.assign(process.env, session.env);
  delete process.env.DISPLAY;
  delete process.env.HYPRLAND_INSTANCE_SIGNATURE;
  const runtime = session.env.XDG_RUNTIME_DIR!;
  process.env.SWAYSOCK = path.join(
    runtime,
    readdirSync(runtime).find((name) => name.startsWith('sway-ipc.') && name.endsWith('.sock'))!,
  );
  server = await startOpenAIServer({ transcribe: () => 'git status', complete: () => 'Git status.' });
  const config = path.join(home.dir, 'koto.yaml');
  writeFileSync(
    config,
    `
providers:
  main: { use: openai-compatible, baseUrl: ${server.baseUrl}, apiKey: sk-profiles-sway-canary }
correction: { stream: false }
audio: { source: tone }
output: [ { use: file, path: ./base.txt } ]
transport:
  ca: ${JSON.stringify(server.ca)}
profiles:
  - name: foot-shell
    match: { app: [KOTO-FOOT-1] }
    correction: { enabled: false }
    output: [ { use: type } ]
    after: { enter: true }
`,
    { mode: 0o600 },
  );
  daemon = await testDaemon({
    configPath: config,
    env: { ...process.env, KOTO_HOME: home.dir },
    builtins: ['openai-compatible', 'outputs', 'focus'],
  });
});

afterAll(async () => {
  await daemon?.close();
  await foot?.close();
  await server?.close();
  await session?.stop();
  process.env = savedEnv;
  home.cleanup();
});

async function dictate(): Promise<RunResult> {
  await daemon.command('start', { source: 'test' });
  await eventually(
    async () => daemon.status().recording?.level ?? 0,
    (level) => level > 0,
    30_000,
  );
  return (await daemon.command('stop', { wait: true })) as RunResult;
}

const asked = () => server.requests.filter((r) => !r.path.endsWith('/models')).map((r) => r.path);

describe('profiles under sway', () => {
  it('nothing focused: the base config (corrected, to the file)', async () => {
    server.reset();
    const record = await dictate();
    expect(record).toMatchObject({ state: 'done', profile: undefined, text: 'Git status.' });
    expect(asked()).toEqual(['/v1/audio/transcriptions', '/v1/chat/completions']);
  });

  it('foot focused: its app id (any case) picks the profile: raw text typed through wtype, then Enter', async () => {
    foot = await session.openFoot();
    server.reset();
    const record = await dictate();
    expect(record).toMatchObject({ state: 'done', profile: 'foot-shell', text: 'git status', correctionProvider: undefined });
    expect(asked()).toEqual(['/v1/audio/transcriptions']);
    // foot in raw mode: Enter is a carriage return, after the typed text.
    const expected = 'git status\r';
    expect(
      await eventually(
        async () => foot!.contents(),
        (text) => text === expected,
        30_000,
      ),
    ).toBe(expected);
  });
});
