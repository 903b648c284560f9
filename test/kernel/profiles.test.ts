/**
 * Profiles (#20) without a display: config validation (merge, errors naming the profile and
 * field), matching (first match wins, case-insensitive app, title regex), what a session sends
 * upstream with a profile, `--profile` by name, hot reload (a bad edit keeps the last good
 * profiles), and the history column (including a history file written before it existed).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HistoryStore } from '../../src/history/store.ts';
import { matchProfile } from '../../src/kernel/profiles.ts';
import { createKernel, encodeWav, KotoError, type FocusedWindow, type Kernel } from '../../src/index.ts';
import { startOpenAIServer, tempHome, type OpenAIServer } from '../support/index.ts';

let server: OpenAIServer;
const home = tempHome('koto-profiles-');
const wav = encodeWav(
  new Int16Array(8000).map((_, i) => Math.round(4000 * Math.sin(i / 5))),
  16000,
);
/** What the provider was asked, without the pre-warm requests (`GET /models`) sent at session start. */
const asked = () => server.requests.filter((r) => !r.path.endsWith('/models')).map((r) => r.path);
const win = (app: string, title = '', instance?: string): FocusedWindow => ({ app, instance, title, desktop: 'x11' });

beforeAll(async () => {
  server = await startOpenAIServer({ transcribe: () => 'list the files', complete: () => 'List the files.' });
  writeFileSync(path.join(home.dir, 'email.txt'), 'Write it as a polite email.');
});
afterAll(async () => {
  await server.close();
  home.cleanup();
});

function yaml(profiles: string, extra = ''): string {
  return [
    'providers:',
    '  main:',
    '    use: openai-compatible',
    `    baseUrl: ${server.baseUrl}`,
    '    apiKey: sk-profiles-canary',
    'asr: { model: whisper-base }',
    'correction: { model: gpt-base, stream: false }',
    'transport:',
    `  ca: ${JSON.stringify(server.ca)}`,
    extra,
    'profiles:',
    profiles,
    '',
  ].join('\n');
}

const PROFILES = `
  - name: terminal
    match: { app: [kitty, Alacritty, XTerm], title: "" }
    correction: { enabled: false }
    output: [ { use: file, path: ./terminal.txt } ]
  - name: agent
    match: { title: "(Claude Code|Codex)" }
    asr: { model: whisper-agent, prompt: "git, npm, TypeScript" }
    dictionary: [Koto, vitest]
    after: { enter: true }
  - name: mail
    match: { app: thunderbird }
    correction: { userPrompt: ./email.txt, model: gpt-mail }`;

async function kernelFor(text: string, file = 'koto.yaml', watch = false): Promise<Kernel> {
  writeFileSync(path.join(home.dir, file), text);
  return createKernel({
    configPath: path.join(home.dir, file),
    env: { KOTO_HOME: home.dir },
    builtins: ['openai-compatible', 'outputs'],
    logLevel: 'silent',
    ...(watch ? { watch: { debounceMs: 50 } } : {}),
  });
}

async function failure(promise: Promise<unknown>): Promise<KotoError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(KotoError.is(err), String(err)).toBe(true);
  return err as KotoError;
}

describe('matching', () => {
  let kernel: Kernel;
  beforeAll(async () => (kernel = await kernelFor(yaml(PROFILES))));
  afterAll(async () => kernel.close());

  it('first match wins; app by class or instance in any case; title by regex; unknown window: none', () => {
    const profiles = kernel.config.resolved.profiles;
    expect(profiles.map((p) => p.name)).toEqual(['terminal', 'agent', 'mail']);
    expect(matchProfile(profiles, win('kitty'))?.name).toBe('terminal');
    expect(matchProfile(profiles, win('alacritty'))?.name).toBe('terminal');
    expect(matchProfile(profiles, win('Xterm-256', '', 'xterm-256'))?.name).toBeUndefined();
    expect(matchProfile(profiles, win('Xterm-256', '', 'XTERM'))?.name).toBe('terminal');
    // A terminal running Claude Code is still the terminal: the first match wins.
    expect(matchProfile(profiles, win('kitty', 'Claude Code'))?.name).toBe('terminal');
    expect(matchProfile(profiles, win('Code', 'main.ts — Claude Code'))?.name).toBe('agent');
    expect(matchProfile(profiles, win('Code', 'claude code'))?.name).toBeUndefined();
    expect(matchProfile(profiles, win('Thunderbird', 'Inbox'))?.name).toBe('mail');
    expect(matchProfile(profiles, win('firefox', 'Codec list'))?.name).toBeUndefined();
    expect(matchProfile(profiles, undefined)).toBeUndefined();
    // Only the start of a title is searched (a page chooses its tab's title, any length).
    expect(matchProfile(profiles, win('Code', `Claude Code ${'x'.repeat(5000)}`))?.name).toBe('agent');
    expect(matchProfile(profiles, win('Code', `${'x'.repeat(5000)} Claude Code`))?.name).toBeUndefined();
  });

  it("each profile is a complete config: the base with the profile's sections merged in", () => {
    const [terminal, agent, mail] = kernel.config.resolved.profiles;
    expect(terminal!.config.correction).toMatchObject({ enabled: false, model: 'gpt-base' });
    expect(terminal!.config.resolved.outputs).toMatchObject([{ name: 'file', plugin: 'outputs', options: { path: './terminal.txt' } }]);
    expect(agent!.config.asr).toMatchObject({ model: 'whisper-agent', prompt: 'git, npm, TypeScript' });
    expect(agent!.config.resolved.dictionary).toEqual(['Koto', 'vitest']);
    expect(agent!.config.after).toMatchObject({ enter: true, tab: false });
    expect(mail!.config.resolved.userPrompt).toBe('Write it as a polite email.');
    expect(mail!.config.correction.model).toBe('gpt-mail');
    // The base is untouched.
    expect(kernel.config.after).toMatchObject({ enter: false, tab: false });
    expect(kernel.config.asr.model).toBe('whisper-base');
    // The prompt file of a profile is watched like the base's.
    expect(kernel.config.resolved.files).toContain(path.join(home.dir, 'email.txt'));
  });

  it("a session with the window of a profile sends the profile's model, prompt and dictionary; no correction for the terminal", async () => {
    server.reset();
    const agent = await kernel.run({ data: wav, name: 'a.wav' }, { window: win('Code', 'Claude Code'), excludeOutputs: ['file'] });
    expect(agent.profile).toBe('agent');
    const asr = server.requests.find((r) => r.path.endsWith('/audio/transcriptions'))!;
    expect(asr.form?.fields.model).toEqual(['whisper-agent']);
    expect(asr.form?.fields.prompt?.[0]).toContain('git, npm, TypeScript');
    expect(server.requests.filter((r) => r.path.endsWith('/chat/completions'))).toHaveLength(1);

    server.reset();
    const terminal = await kernel.run({ data: wav, name: 't.wav' }, { window: win('kitty', 'zsh') });
    expect(terminal).toMatchObject({ profile: 'terminal', text: 'list the files', fallback: false, correctionProvider: undefined });
    expect(asked()).toEqual(['/v1/audio/transcriptions']);

    server.reset();
    const mail = await kernel.run(
      { data: wav, name: 'm.wav' },
      { window: win('thunderbird', 'Write: (no subject)'), excludeOutputs: ['file'] },
    );
    expect(mail.profile).toBe('mail');
    const chat = server.requests.find((r) => r.path.endsWith('/chat/completions'))!;
    expect((chat.json as { model: string }).model).toBe('gpt-mail');
    expect(JSON.stringify(chat.json)).toContain('Write it as a polite email.');

    server.reset();
    const none = await kernel.run({ data: wav, name: 'n.wav' }, { window: win('firefox', 'news') });
    expect(none.profile).toBeUndefined();
    expect(server.requests.find((r) => r.path.endsWith('/audio/transcriptions'))!.form?.fields.model).toEqual(['whisper-base']);
  });

  it('--profile by name wins over the window; an unknown name lists the profiles (exit 2)', async () => {
    server.reset();
    const forced = await kernel.run({ data: wav, name: 'f.wav' }, { profile: 'terminal', window: win('thunderbird') });
    expect(forced.profile).toBe('terminal');
    expect(asked()).toEqual(['/v1/audio/transcriptions']);
    const err = await failure(kernel.run({ data: wav, name: 'u.wav' }, { profile: 'email' }));
    expect(err.code).toBe('KOTO_ERR_PROFILE_UNKNOWN');
    expect(err.message).toBe('no profile is named "email" (profiles: terminal, agent, mail)');
    expect(err.exitCode).toBe(2);
  });

  it('the history records the profile', () => {
    const rows = kernel.history.list(10);
    expect(rows.map((r) => r.profile)).toEqual(['terminal', null, 'mail', 'terminal', 'agent']);
  });
});

describe('config errors name the profile and the field', () => {
  it.each([
    [
      'a title that is not a regex',
      `  - name: broken\n    match: { title: "(Claude" }`,
      /profiles\[0\] \("broken"\)\.match\.title: not a regular expression \(Invalid regular expression: .*\)/,
    ],
    [
      'two profiles with one name',
      `  - name: a\n    match: { app: x }\n  - name: a\n    match: { app: y }`,
      /profiles\[1\] \("a"\)\.name: another profile has this name/,
    ],
    [
      'a wrong type in a merged section',
      `  - name: quiet\n    match: { app: x }\n    correction: { enabled: "no" }`,
      /profiles\[0\] \("quiet"\): correction\.enabled: Invalid input: expected boolean/,
    ],
    [
      'an unknown key in a merged section',
      `  - name: quiet\n    match: { app: x }\n    asr: { modle: x }`,
      /profiles\[0\] \("quiet"\): asr\.modle: unknown key/,
    ],
    [
      'an unknown output',
      `  - name: quiet\n    match: { app: x }\n    output: [ typo ]`,
      /profiles\[0\] \("quiet"\): output "typo" is not served by any plugin/,
    ],
    [
      'both after keys',
      `  - name: both\n    match: { app: x }\n    after: { enter: true, tab: true }`,
      /profiles\[0\] \("both"\): after: choose one key: enter or tab/,
    ],
    ['an unknown match key', `  - name: web\n    match: { url: "mail\\\\.google" }`, /profiles\.0\.match\.url: unknown key/],
    ['a bad name', `  - name: "my profile"\n    match: { app: x }`, /profiles\.0\.name: profile names use letters, digits/],
  ])('%s', async (_, profiles, expected) => {
    const err = await failure(kernelFor(yaml(profiles), 'bad.yaml'));
    expect(err.message).toMatch(expected);
    expect(err.exitCode).toBe(3);
  });

  it("a profile's prompt file that cannot be read: the code of a missing file, the profile named", async () => {
    const err = await failure(
      kernelFor(yaml(`  - name: mail\n    match: { app: x }\n    correction: { userPrompt: ./missing.txt }`), 'missing.yaml'),
    );
    expect(err.code).toBe('KOTO_ERR_CONFIG_FILE_UNREADABLE');
    expect(err.message).toContain('profiles[0] ("mail"): ');
    expect(err.message).toContain('missing.txt');
  });
});

describe('hot reload', () => {
  it('profiles are request-level: an edit applies to the next session; a bad regex keeps the last good profiles', async () => {
    const kernel = await kernelFor(yaml(PROFILES), 'hot.yaml', true);
    try {
      const file = path.join(home.dir, 'hot.yaml');
      writeFileSync(file, yaml(`  - name: editor\n    match: { app: [Emacs] }`));
      const good = await kernel.reload();
      expect(good.ok).toBe(true);
      expect(good.transportChanged).toBe(false);
      expect(kernel.config.resolved.profiles.map((p) => p.name)).toEqual(['editor']);

      writeFileSync(file, yaml(`  - name: editor\n    match: { title: "[unclosed" }`));
      const bad = await kernel.reload();
      expect(bad.ok).toBe(false);
      expect(kernel.lastConfigError?.message).toMatch(/profiles\[0\] \("editor"\)\.match\.title: not a regular expression/);
      expect(kernel.config.resolved.profiles.map((p) => p.match.app)).toEqual([['emacs']]);
      expect(matchProfile(kernel.config.resolved.profiles, win('emacs'))?.name).toBe('editor');
    } finally {
      await kernel.close();
    }
  });
});

describe('history written before profiles existed', () => {
  it('gains the column; old rows read null, new rows keep their profile', () => {
    const file = path.join(home.dir, 'old', 'history.sqlite');
    // The first release's table: no owner_pid, no profile.
    new HistoryStore(file).close();
    const db = new DatabaseSync(file);
    db.exec('ALTER TABLE sessions DROP COLUMN profile; ALTER TABLE sessions DROP COLUMN owner_pid;');
    db.prepare("INSERT INTO sessions (id, started_at, state, input) VALUES ('old-1', '2026-01-01T00:00:00.000Z', 'done', 'a.wav')").run();
    db.close();
    const store = new HistoryStore(file);
    try {
      expect(store.get('old-1')?.profile).toBeNull();
      store.begin({ id: 'new-1', input: 'mic', profile: 'agent' });
      expect(store.get('new-1')?.profile).toBe('agent');
    } finally {
      store.close();
    }
  });
});
