/**
 * The paste output on Wayland, for real: sway (headless) asked through swaymsg which window has
 * the focus, foot receiving (through wl-copy and wtype), its program recording the exact bytes.
 * The sway session is the typing tests' (type-wayland-session.ts).
 */
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKernel, type Kernel, type SessionContext } from '../../src/index.ts';
import { detectFocusedWindow } from '../../plugins/focus/detect.ts';
import { tempHome } from '../support/index.ts';
import { startSway, type FootTerminal, type WaylandSession } from './type-wayland-session.ts';
import { eventually } from './x11.ts';

const exec = promisify(execFile);
const home = tempHome('koto-paste-wayland-');
const savedEnv = { ...process.env };
let session: WaylandSession;
let kernel: Kernel;
const logs: string[] = [];

beforeAll(async () => {
  session = await startSway();
  Object.assign(process.env, session.env);
  delete process.env.DISPLAY;
  delete process.env.HYPRLAND_INSTANCE_SIGNATURE;
  // What sway exports to the programs it starts; the session helper leaves it to us.
  const runtime = session.env.XDG_RUNTIME_DIR!;
  process.env.SWAYSOCK = path.join(
    runtime,
    readdirSync(runtime).find((name) => name.startsWith('sway-ipc.') && name.endsWith('.sock'))!,
  );
  kernel = await createKernel({
    search: false,
    builtins: ['outputs', 'focus'],
    env: { ...process.env, KOTO_HOME: home.dir },
    config: {},
    logLevel: 'debug',
    logSink: (entry) => logs.push(`${entry.level} ${entry.message}`),
  });
});

afterAll(async () => {
  await kernel?.close();
  await session?.stop();
  process.env = savedEnv;
  home.cleanup();
});

async function paste(text: string, options: Record<string, unknown> = {}): Promise<string[]> {
  const warnings: string[] = [];
  const signal = new AbortController().signal;
  const ctx = { id: 'paste-wayland', warnings, signal } as unknown as SessionContext;
  await kernel.hooks.output
    .get('paste')!
    .promise({ session: ctx, name: 'paste', text, raw: text, options, signal, warn: (m) => void warnings.push(m) });
  return warnings;
}

describe('sway', () => {
  let foot: FootTerminal;

  it('with no window open, nothing is focused: undefined, and the paste warns that it could not be aimed', async () => {
    expect(await detectFocusedWindow(process.env, AbortSignal.timeout(10_000))).toBeUndefined();
    expect(await paste('into nothing')).toEqual([
      'the paste could not be aimed: sway names no focused window, so Ctrl+V was pressed without knowing where; the text stays on the clipboard (in a terminal, paste it with Ctrl+Shift+V, or Shift+Insert in xterm and rxvt)',
    ]);
  });

  it('names the focused foot by its app id', async () => {
    foot = await session.openFoot();
    const found = await detectFocusedWindow(process.env, AbortSignal.timeout(10_000));
    expect(found).toMatchObject({ app: 'koto-foot-1', desktop: 'sway' });
    expect(found?.pid).toBeGreaterThan(0);
    expect(found?.id).toMatch(/^\d+$/);
    expect(typeof found?.title).toBe('string');
  });

  it.each([
    ['accents, CJK and an emoji', 'café — naïve 日本語 😀'],
    ['line breaks and a tab', 'first line\nsecond\tcolumn\nthird line'],
  ])('%s: pasted into foot with Ctrl+Shift+V (paste.terminals names its app id), byte for byte', async (_, text) => {
    const before = foot.contents();
    logs.length = 0;
    // foot's own app id ("foot") is on the built-in list; the session helper gives each foot its own.
    expect(await paste(text, { terminals: ['koto-foot-1'] })).toEqual([]);
    expect(logs.join('\n')).toContain('paste: the focused window is koto-foot-1 (sway); Ctrl+Shift+V, as koto-foot-1 is a terminal');
    const expected = before + text.replace(/\n/g, '\r');
    expect(
      await eventually(
        async () => foot.contents(),
        (now) => now === expected,
        30_000,
      ),
    ).toBe(expected);
    // PRIMARY holds it too (Shift+Insert and a middle click paste it).
    const primary = await exec('wl-paste', ['--primary', '--no-newline'], { env: { ...process.env }, encoding: 'utf8', timeout: 10_000 });
    expect(primary.stdout).toBe(text);
  });

  it('ten pastes in a row: every one arrives whole, its first character included', async () => {
    for (let run = 1; run <= 10; run += 1) {
      const text = `${run % 2 ? 'Ünïcode' : 'plain'} paste number ${run}, first character first.`;
      const before = foot.contents();
      expect(await paste(text, { terminals: ['koto-foot-1'] })).toEqual([]);
      expect(
        await eventually(
          async () => foot.contents(),
          (now) => now === before + text,
          30_000,
        ),
      ).toBe(before + text);
    }
  });
});
