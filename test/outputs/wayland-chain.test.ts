/**
 * The Wayland chain (wtype → ydotool, wl-copy for the clipboard) with stand-in scripts that
 * record how they were called: no Wayland compositor or uinput device runs in CI, so this checks
 * Koto's side (order, arguments, stdin, ydotool 0.1/1.x syntax), not the real tools.
 */
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createKernel, type Kernel, type SessionContext } from '../../src/index.ts';
import { tempHome } from '../support/index.ts';

const home = tempHome('koto-outputs-');
const savedEnv = { ...process.env };
let kernel: Kernel;
let calls: string;

const MODERN_HELP = `echo 'Usage: ydotool [OPTION] <cmd> <args>'; echo 'Use environment variable YDOTOOL_SOCKET to specify daemon socket.'; exit 0`;
const LEGACY_HELP = `echo 'Usage: ydotool <cmd> <args>' >&2; exit 1`;

/** A directory of stand-ins; each appends "name args | stdin" to $KOTO_FAKE_CALLS. */
function fakeTools(tools: Record<string, string>): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'koto-fake-tools-'));
  for (const [name, body] of Object.entries(tools)) {
    const file = path.join(dir, name);
    writeFileSync(file, `#!/bin/sh\n${body}\n`);
    chmodSync(file, 0o755);
  }
  return `${dir}:/usr/bin:/bin`;
}
const record = (name: string, stdin = false) =>
  stdin ? `printf '%s %s | %s\\n' '${name}' "$*" "$(cat)" >> "$KOTO_FAKE_CALLS"` : `printf '%s %s\\n' '${name}' "$*" >> "$KOTO_FAKE_CALLS"`;
const ydotool = (help: string) => `if [ "$1" = "--help" ]; then ${help}; fi\n${record('ydotool', true)}`;
const WL_COPY = record('wl-copy', true);
const WTYPE_OK = record('wtype');
const WTYPE_UNSUPPORTED = `${record('wtype')}\necho 'Compositor does not support the virtual keyboard protocol' >&2; exit 1`;

beforeAll(async () => {
  kernel = await createKernel({
    search: false,
    builtins: ['outputs'],
    env: { ...process.env, KOTO_HOME: home.dir },
    config: {},
    logLevel: 'silent',
  });
});
beforeEach(() => {
  calls = path.join(mkdtempSync(path.join(os.tmpdir(), 'koto-calls-')), 'calls');
  process.env.KOTO_FAKE_CALLS = calls;
  process.env.WAYLAND_DISPLAY = 'wayland-koto-test';
  delete process.env.DISPLAY;
});
afterEach(() => {
  process.env = { ...savedEnv };
});
afterAll(async () => {
  await kernel.close();
  home.cleanup();
});

async function output(name: string, text: string, options: Record<string, unknown> = {}): Promise<string[]> {
  const warnings: string[] = [];
  const signal = new AbortController().signal;
  const session = { id: 'test-session', warnings, signal } as unknown as SessionContext;
  await kernel.hooks.output.get(name)!.promise({ session, name, text, raw: text, options, signal, warn: (m) => void warnings.push(m) });
  return warnings;
}
const called = () =>
  existsSync(calls)
    ? readFileSync(calls, 'utf8')
        .trim()
        .split('\n')
        .map((line) => line.trimEnd())
    : [];

describe('paste on Wayland', () => {
  // No compositor to ask which window has the focus (no SWAYSOCK, no Hyprland): each paste is
  // unaimed and says so (sway for real: paste-wayland.test.ts). PRIMARY is set in parallel with
  // the clipboard, so its wl-copy is checked apart from the ordered calls.
  const unaimed = (key: string) =>
    `the paste could not be aimed: this Wayland compositor does not tell which window has the focus (sway and Hyprland do), so ${key} was pressed without knowing where; the text stays on the clipboard (in a terminal, paste it with Ctrl+Shift+V, or Shift+Insert in xterm and rxvt)`;
  const ordered = () => called().filter((line) => !line.startsWith('wl-copy --primary'));
  const primary = () => called().filter((line) => line.startsWith('wl-copy --primary'));

  it('wl-copy, then wtype -M ctrl v -m ctrl', async () => {
    process.env.PATH = fakeTools({ 'wl-copy': WL_COPY, wtype: WTYPE_OK, ydotool: ydotool(MODERN_HELP) });
    expect(await output('paste', 'über wayland')).toEqual([unaimed('Ctrl+V')]);
    expect(ordered()).toEqual(['wl-copy --type text/plain | über wayland', 'wtype -s 150 -k Shift_L -M ctrl v -m ctrl']);
    expect(primary()).toEqual(['wl-copy --primary --type text/plain | über wayland']);
  });

  it('a compositor without the virtual-keyboard protocol (GNOME): ydotool 1.x with raw key codes', async () => {
    process.env.PATH = fakeTools({ 'wl-copy': WL_COPY, wtype: WTYPE_UNSUPPORTED, ydotool: ydotool(MODERN_HELP) });
    expect(await output('paste', 'via ydotool')).toEqual([unaimed('Ctrl+V')]);
    expect(ordered()).toEqual([
      'wl-copy --type text/plain | via ydotool',
      'wtype -s 150 -k Shift_L -M ctrl v -m ctrl',
      'ydotool key 29:1 47:1 47:0 29:0 |',
    ]);
  });

  it('ydotool 0.1.x (Debian 12) gets key names, not the 1.x codes it would mistype', async () => {
    process.env.PATH = fakeTools({ 'wl-copy': WL_COPY, ydotool: ydotool(LEGACY_HELP) });
    expect(await output('paste', 'legacy', { shortcut: 'ctrl+shift+v' })).toEqual([unaimed('Ctrl+Shift+V')]);
    expect(ordered()).toEqual(['wl-copy --type text/plain | legacy', 'ydotool key ctrl+shift+v |']);
  });

  it('a shortcut override maps to each tool', async () => {
    process.env.PATH = fakeTools({ 'wl-copy': WL_COPY, wtype: WTYPE_UNSUPPORTED, ydotool: ydotool(MODERN_HELP) });
    await output('paste', 'terminal', { shortcut: 'shift+insert' });
    expect(ordered().slice(1)).toEqual(['wtype -s 150 -k Shift_L -M shift -k Insert -m shift', 'ydotool key 42:1 110:1 110:0 42:0 |']);
  });

  it('no keystroke tool: the text stays on the clipboard and a warning names what to install', async () => {
    // The stand-ins alone on PATH: a wtype or ydotool installed on the machine must not be found.
    process.env.PATH = fakeTools({ 'wl-copy': WL_COPY, cat: 'exec /bin/cat "$@"' }).split(':')[0];
    expect(await output('paste', 'only copied')).toEqual([
      'paste failed (neither wtype nor ydotool is installed; apt install wtype (or ydotool, with ydotoold running)); the text is on the clipboard',
    ]);
    expect(ordered()).toEqual(['wl-copy --type text/plain | only copied']);
  });

  it('both tools failing: each failure is named', async () => {
    process.env.PATH = fakeTools({
      'wl-copy': WL_COPY,
      wtype: WTYPE_UNSUPPORTED,
      ydotool: `${ydotool(MODERN_HELP)}\necho "failed to connect socket" ; exit 2`,
    });
    const [warning] = await output('paste', 'still copied');
    expect(warning).toBe(
      'paste failed (wtype exited with code 1: Compositor does not support the virtual keyboard protocol; ydotool exited with code 2: failed to connect socket; ydotool needs ydotoold running); the text is on the clipboard',
    );
  });
});

describe('type on Wayland', () => {
  // Real sway + foot: type-wayland.test.ts. wtype waits, types a key that writes nothing (its
  // first key used to be lost), then reads the text from stdin.
  it('wtype -s 150 -d <keyDelayMs> -k Shift_L - (text on stdin, not in argv)', async () => {
    process.env.PATH = fakeTools({ wtype: record('wtype', true) });
    expect(await output('type', '-starts with a dash')).toEqual([]);
    expect(await output('type', 'no pauses', { waylandStartDelayMs: 0, keyDelayMs: 0 })).toEqual([]);
    expect(called()).toEqual(['wtype -s 150 -d 5 -k Shift_L - | -starts with a dash', 'wtype -k Shift_L - | no pauses']);
  });

  it('ydotool reads the text from stdin (not from argv, where every local user could see it)', async () => {
    process.env.PATH = fakeTools({ wtype: WTYPE_UNSUPPORTED, ydotool: ydotool(MODERN_HELP) });
    expect(await output('type', 'private words')).toEqual([]);
    expect(called()).toEqual(['wtype -s 150 -d 5 -k Shift_L -', 'ydotool type --file /dev/stdin | private words']);
  });
});
