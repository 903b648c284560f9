/**
 * Profiles end to end under Xvfb + openbox (#20): real xterm windows (class XTerm, titles set
 * with -T), the focus moved with xdotool, dictations through the daemon (a tone audio source) at
 * a loopback OpenAI-compatible upstream:
 *
 * - an xterm → the `terminal` profile: no correction request, the text typed (XTEST);
 * - an xterm titled "Claude Code" → the `agent` profile (first match wins): the upstream sees the
 *   profile's model and prompt, the text is pasted and Enter follows it; the profile is the one of
 *   the window focused at the start, though the focus moved to another window while "speaking";
 * - the choice is visible: the record, `koto history` (+ --json), the status line,
 *   `koto profiles test`; `koto run --profile` forces one, an unknown name exits 2 listing them.
 *
 * System packages: xvfb openbox xterm xdotool xclip x11-utils.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { statusLine } from '../../src/cli/control-format.ts';
import type { Daemon } from '../../src/daemon/daemon.ts';
import { testDaemon } from '../support/daemon.ts';
import type { RunResult } from '../../src/index.ts';
import { koto } from '../cli/support.ts';
import { wav } from '../daemon/nothing-lost-support.ts';
import { startOpenAIServer, tempHome, type OpenAIServer } from '../support/index.ts';
import { activeWindow, openTerminal, startDesktop, type Desktop, type Receiver } from './paste-desktop.ts';
import { eventually, x } from './x11.ts';

const savedEnv = { ...process.env };
const home = tempHome('koto-profiles-x11-');
const configFile = path.join(home.dir, 'koto.yaml');
let desktop: Desktop;
let server: OpenAIServer;
let daemon: Daemon;
let terminal: Receiver;
let agent: Receiver;

const CONFIG = (baseUrl: string, ca: string) => `
providers:
  main: { use: openai-compatible, baseUrl: ${baseUrl}, apiKey: sk-profiles-x11-canary }
asr: { model: whisper-base }
correction: { model: gpt-base, stream: false }
audio: { source: tone }
output: [ paste ]
transport:
  ca: ${JSON.stringify(ca)}
profiles:
  - name: agent
    match: { title: "(Claude Code|Codex)" }
    asr: { model: whisper-agent, prompt: "Claude Code, git, npm" }
    correction: { model: gpt-agent }
    output: [ paste ]
    # generous: the paste lands once xterm has fetched PRIMARY, on a machine that may be loaded
    after: { enter: true, delayMs: 1000 }
  - name: terminal
    match: { app: [kitty, Alacritty, XTerm] }
    correction: { enabled: false }
    output: [ { use: type } ]
`;

let startMessage = '';
const paths = () => server.requests.filter((r) => !r.path.endsWith('/models')).map((r) => r.path);

/** Key-down (start), some captured audio, key-up (stop, waiting for the delivered record). */
async function dictate(whileSpeaking?: () => Promise<void>): Promise<RunResult> {
  // `koto start` says which profile the dictation got.
  startMessage = ((await daemon.command('start', { source: 'test' })) as { message: string }).message;
  // Some audio captured before the key is released (the tone source yields a frame every few ms).
  await eventually(
    async () => daemon.status().recording?.level ?? 0,
    (level) => level > 0,
    30_000,
  );
  // While recording, `koto status` shows the profile already chosen.
  const recording = daemon.status().recording!;
  expect(statusLine(daemon.status())).toContain(
    recording.profile ? `recording ${recording.id} (profile ${recording.profile})` : `recording ${recording.id}`,
  );
  await whileSpeaking?.();
  expect(daemon.status().recording?.profile).toBe(recording.profile);
  return (await daemon.command('stop', { wait: true })) as RunResult;
}

async function focus(receiver: Receiver): Promise<void> {
  await x('xdotool', ['windowactivate', '--sync', String(receiver.window)]);
  await eventually(activeWindow, (w) => w === receiver.window, 30_000);
}

const cliEnv = () => ({ DISPLAY: process.env.DISPLAY, KOTO_HOME: home.dir, LC_ALL: 'C.UTF-8' });

beforeAll(async () => {
  delete process.env.WAYLAND_DISPLAY;
  desktop = await startDesktop();
  server = await startOpenAIServer({ transcribe: () => 'list the files', complete: () => 'List the files.' });
  writeFileSync(configFile, CONFIG(server.baseUrl, server.ca), { mode: 0o600 });
  writeFileSync(path.join(home.dir, 'a.wav'), wav);
  daemon = await testDaemon({
    configPath: configFile,
    env: { ...process.env, KOTO_HOME: home.dir },
    builtins: ['openai-compatible', 'outputs', 'focus'],
  });
});

afterAll(async () => {
  await daemon?.close();
  await agent?.close();
  await terminal?.close();
  await server?.close();
  await desktop?.stop();
  process.env = savedEnv;
  home.cleanup();
});

describe('profiles chosen by the focused window (daemon, Xvfb)', () => {
  it('an xterm: the terminal profile types the raw transcript, with no correction request', async () => {
    terminal = await openTerminal('xterm');
    server.reset();
    const record = await dictate();
    expect(startMessage).toMatch(/^recording \(\S+, profile terminal\)$/);
    expect(record).toMatchObject({
      state: 'done',
      profile: 'terminal',
      text: 'list the files',
      correctionProvider: undefined,
      fallback: false,
    });
    expect(paths()).toEqual(['/v1/audio/transcriptions']);
    expect(server.requests.find((r) => r.path.endsWith('/audio/transcriptions'))!.form?.fields.model).toEqual(['whisper-base']);
    const got = await eventually(
      async () => terminal.bytes().toString(),
      (text) => text === 'list the files',
      30_000,
    );
    // Typed, and nothing after it: this profile has no `after`.
    expect(got).toBe('list the files');
  });

  it('"Claude Code" in the title: the agent profile (first match), its model and prompt upstream, pasted, then Enter', async () => {
    agent = await openTerminal('xterm', { title: 'Claude Code' });
    server.reset();
    // The focus moves to the other xterm while the user speaks: the profile stays the one of the
    // window focused at the start; the text goes where the focus is when it is delivered.
    const record = await dictate(() => focus(terminal));
    expect(record).toMatchObject({ state: 'done', profile: 'agent', text: 'List the files.', correctionModel: 'gpt-agent' });
    expect(startMessage).toMatch(/^recording \(\S+, profile agent\)$/);
    expect(paths()).toEqual(['/v1/audio/transcriptions', '/v1/chat/completions']);
    const asr = server.requests.find((r) => r.path.endsWith('/audio/transcriptions'))!;
    expect(asr.form?.fields.model).toEqual(['whisper-agent']);
    expect(asr.form?.fields.prompt?.[0]).toContain('Claude Code, git, npm');
    expect((server.requests.find((r) => r.path.endsWith('/chat/completions'))!.json as { model: string }).model).toBe('gpt-agent');
    // xterm pastes PRIMARY with Shift+Insert; Enter arrives after the text, as the terminal's CR.
    const expected = 'list the filesList the files.\r';
    expect(
      await eventually(
        async () => terminal.bytes().toString(),
        (text) => text === expected,
        30_000,
      ),
    ).toBe(expected);
    expect(agent.bytes().toString()).toBe('');
  });

  it('a retry of the agent dictation runs with the agent profile again', async () => {
    const last = daemon.status().lastSession!;
    server.reset();
    const before = terminal.bytes().length;
    const retried = (await daemon.command('retry', { id: last.id })) as RunResult;
    expect(retried).toMatchObject({ state: 'done', profile: 'agent', text: 'List the files.' });
    expect(server.requests.find((r) => r.path.endsWith('/audio/transcriptions'))!.form?.fields.model).toEqual(['whisper-agent']);
    // Delivered like the first time: where the focus is (the plain xterm), then Enter.
    const again = 'List the files.\r';
    expect(
      await eventually(
        async () => terminal.bytes().subarray(before).toString(),
        (text) => text === again,
        30_000,
      ),
    ).toBe(again);
  });

  it('the choice is visible: status, koto history (+ --json)', async () => {
    expect(daemon.status().lastSession?.profile).toBe('agent');
    expect(statusLine(daemon.status())).toContain('(profile agent)');
    const history = await koto(['history', '-n', '3'], { env: cliEnv() });
    expect(history.code).toBe(0);
    const lines = history.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/ done +\[agent\] List the files\.$/);
    expect(lines[1]).toMatch(/ done +\[agent\] List the files\.$/);
    expect(lines[2]).toMatch(/ done +\[terminal\] list the files$/);
    const json = await koto(['history', '-n', '3', '--json'], { env: cliEnv() });
    expect(
      json.stdout
        .trim()
        .split('\n')
        .map((line) => (JSON.parse(line) as { profile: string | null }).profile),
    ).toEqual(['agent', 'agent', 'terminal']);
  });

  it('koto profiles test: the focused window and the profile that would apply now', async () => {
    await focus(agent);
    const out = await koto(['profiles', 'test', '--config', configFile], { env: cliEnv() });
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/^window: XTerm \(xterm\) "Claude Code" \[x11, pid \d+, id 0x[0-9a-f]+\]\nprofile: agent\n$/);
    await focus(terminal);
    const json = await koto(['profiles', 'test', '--json', '--config', configFile], { env: cliEnv() });
    expect(JSON.parse(json.stdout)).toMatchObject({
      window: { app: 'XTerm', instance: 'xterm', title: 'koto xterm', desktop: 'x11' },
      profile: 'terminal',
      profiles: ['agent', 'terminal'],
    });
    const list = await koto(['profiles', '--config', configFile], { env: cliEnv() });
    expect(list.stdout).toBe('agent: title /(Claude Code|Codex)/\nterminal: app kitty, alacritty, xterm\n');
  });

  it('koto run --profile forces one (no correction request for terminal); an unknown name exits 2 and lists the names', async () => {
    await focus(agent);
    server.reset();
    const before = agent.bytes().length;
    const run = await koto(['run', '--config', configFile, '--profile', 'terminal', '--json', path.join(home.dir, 'a.wav')], {
      env: cliEnv(),
    });
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ profile: 'terminal', text: 'list the files', correctionProvider: null });
    expect(paths()).toEqual(['/v1/audio/transcriptions']);
    expect(
      await eventually(
        async () => agent.bytes().subarray(before).toString(),
        (t) => t === 'list the files',
        30_000,
      ),
    ).toBe('list the files');

    const unknown = await koto(['run', '--config', configFile, '--profile', 'email', path.join(home.dir, 'a.wav')], { env: cliEnv() });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toBe(
      'koto: no profile is named "email" (profiles: agent, terminal). Fix: use one of those names, or add the profile under `profiles` in the config (docs/configuration.md). (KOTO_ERR_PROFILE_UNKNOWN)\n',
    );
  });

  it('koto run --profile handed to the running daemon (no --config): the same profile, the same exit 2 for an unknown name', async () => {
    server.reset();
    const origin = new URL(server.baseUrl).origin;
    const sentByDaemon = () => daemon.kernel.http.stats().origins[origin]?.requests ?? 0;
    const before = sentByDaemon();
    const run = await koto(['run', '--profile', 'terminal', '--json', path.join(home.dir, 'a.wav')], { env: cliEnv() });
    expect(run.code, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout) as { id: string; profile: string };
    expect(result.profile).toBe('terminal');
    expect(daemon.history.get(result.id)?.profile).toBe('terminal');
    expect(paths()).toEqual(['/v1/audio/transcriptions']);
    // The daemon sent it, over its own connection.
    expect(sentByDaemon()).toBeGreaterThan(before);

    const unknown = await koto(['run', '--profile', 'email', path.join(home.dir, 'a.wav')], { env: cliEnv() });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no profile is named "email" (profiles: agent, terminal)');
  });

  it('after: a key that cannot be pressed (no xdotool on PATH) is a warning; the typed text stays, nothing else is sent', async () => {
    await focus(agent);
    const before = agent.bytes().length;
    const config = path.join(home.dir, 'no-keys.yaml');
    writeFileSync(
      config,
      CONFIG(server.baseUrl, server.ca).replace(
        'profiles:\n',
        'profiles:\n  - name: shell\n    match: { app: XTerm }\n    correction: { enabled: false }\n    output: [ { use: type } ]\n    after: { enter: true }\n',
      ),
      { mode: 0o600 },
    );
    // Typing goes through XTEST (no helper program); the Enter key needs xdotool, which is not on this PATH.
    const run = await koto(['run', '--config', config, '--profile', 'shell', path.join(home.dir, 'a.wav')], {
      env: { ...cliEnv(), PATH: path.join(home.dir, 'no-tools') },
    });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toBe('list the files\n');
    expect(run.stderr).toContain('the text was delivered, but Enter (`after`) could not be pressed: xdotool is not installed');
    expect(
      await eventually(
        async () => agent.bytes().subarray(before).toString(),
        (t) => t === 'list the files',
        30_000,
      ),
    ).toBe('list the files');
  });
});
