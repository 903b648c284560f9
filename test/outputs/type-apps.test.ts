/**
 * The `type` output, default options, into real applications under Xvfb + openbox: xterm,
 * rxvt-unicode and a GTK text view. Every text must arrive byte for byte.
 *
 * In a terminal, Return is CR (0x0d) — what the Enter key sends; the terminal's line discipline
 * turns it into LF for programs in cooked mode (ICRNL), but `stty raw` shows the real bytes.
 *
 * Measuring reliability: KOTO_TYPE_REPEAT=N runs every application case N times (1 by default);
 * KOTO_TYPE_OPTIONS='{"x11":"xdotool","keyDelayMs":12}' gives those cases other options (e.g.
 * the xdotool typing Koto had before, to compare).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKernel, type Kernel, type SessionContext } from '../../src/index.ts';
import { tempHome } from '../support/index.ts';
import { x } from './x11.ts';
import {
  openGtkText,
  openTerminal,
  startX11Desktop,
  until,
  type Receiver,
  type TerminalReceiver,
  type X11Desktop,
} from './type-x11-receivers.ts';

const home = tempHome('koto-type-');
const savedEnv = { ...process.env };
const dir = mkdtempSync(path.join(os.tmpdir(), 'koto-type-bytes-'));
const repeat = Math.max(1, Number(process.env.KOTO_TYPE_REPEAT ?? 1) || 1);
const measuredOptions = JSON.parse(process.env.KOTO_TYPE_OPTIONS ?? '{}') as Record<string, unknown>;
let desktop: X11Desktop;
let kernel: Kernel;
const logs: string[] = [];

/**
 * 2,000 characters: words, punctuation, newlines, tabs, and more distinct characters off the US
 * map than Xvfb has spare keycodes (19), so they are typed in several batches.
 */
function longText(): string {
  const words = [
    'dictation',
    'Koto',
    'types',
    'every',
    'key',
    'exactly',
    '(really)',
    '"quoted"',
    'a/b',
    'x=1;',
    '50%',
    '#tag',
    '{ok}',
    '[i]',
    'a|b',
    '~',
    '`code`',
    "it's",
  ];
  const extra = [...'éèêëàâäôöüûçñßÉÀÇ—–“”‘’…€£¥©®°±×÷αβγδλπΩжзи日本語中文字😀🎉✓'];
  const chars: string[] = [];
  for (let i = 0; chars.length < 2000; i += 1) {
    chars.push(...words[i % words.length]!);
    chars.push(...(i % 3 === 1 ? ` ${extra[i % extra.length]!} ` : i % 11 === 5 ? '\n' : i % 13 === 6 ? '\t' : ' '));
  }
  return chars.slice(0, 2000).join('');
}

const TEXTS: Record<string, string> = {
  'a plain sentence': 'The quick brown fox jumps over the lazy dog, 42 times.',
  'non-ASCII': 'café — naïve 日本語 😀',
  'quotes, backslashes and $(…)': `He said "it's \\"fine\\"" — echo $(rm -rf ~) \`id\` 'single' \\n \\\\ %s {} & | ; < >`,
  'newlines and a tab': 'first line\nsecond line\n\tindented third\n\nafter an empty line',
  '2,000 characters': longText(),
};

beforeAll(async () => {
  desktop = await startX11Desktop();
  process.env.DISPLAY = desktop.display;
  delete process.env.WAYLAND_DISPLAY;
  kernel = await createKernel({
    search: false,
    builtins: ['outputs'],
    env: { ...process.env, KOTO_HOME: home.dir },
    config: {},
    logLevel: 'debug',
    logSink: (entry) => logs.push(`${entry.level} ${entry.message}`),
  });
});

afterAll(async () => {
  await kernel?.close();
  await desktop?.stop();
  process.env = savedEnv;
  home.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

async function type(text: string, options: Record<string, unknown> = {}, signal = new AbortController().signal): Promise<string[]> {
  const warnings: string[] = [];
  const session = { id: 'test-session', warnings, signal } as unknown as SessionContext;
  await kernel.hooks.output
    .get('type')!
    .promise({ session, name: 'type', text, raw: text, options, signal, warn: (m) => void warnings.push(m) });
  return warnings;
}

const RECEIVERS: Record<string, { open: () => Promise<Receiver>; bytes: (text: string) => string }> = {
  xterm: { open: () => openTerminal('xterm', dir), bytes: (text) => text.replace(/\n/g, '\r') },
  'rxvt-unicode': { open: () => openTerminal('urxvt', dir), bytes: (text) => text.replace(/\n/g, '\r') },
  'GTK text view': { open: () => openGtkText(dir), bytes: (text) => text },
};

const runs = Array.from({ length: repeat }, (_, i) => i + 1);

describe.each(Object.entries(RECEIVERS))('type into %s (default options)', (_, receiver) => {
  describe.each(runs)('run %i', () => {
    it.each(Object.entries(TEXTS))('%s', async (_, text) => {
      const app = await receiver.open();
      try {
        expect(await type(text, measuredOptions)).toEqual([]);
        expect(await app.received(receiver.bytes(text))).toBe(receiver.bytes(text));
      } finally {
        await app.close();
      }
    });
  });
});

/** The keyboard map as xmodmap prints it, for comparing before and after. */
const keymap = () => x('xmodmap', ['-pke']);

describe('XTEST typing leaves the keyboard as it found it', () => {
  it('every spare keycode is empty again afterwards, and the log says xtest typed it', async () => {
    const before = await keymap();
    const app = await openTerminal('xterm', dir);
    try {
      logs.length = 0;
      expect(await type(TEXTS['2,000 characters']!)).toEqual([]);
      expect(await app.received(RECEIVERS.xterm!.bytes(TEXTS['2,000 characters']!))).toBe(
        RECEIVERS.xterm!.bytes(TEXTS['2,000 characters']!),
      );
    } finally {
      await app.close();
    }
    expect(await keymap()).toBe(before);
    expect(logs.join('\n')).toMatch(/typed \d+ characters with xtest/);
    const [, batches] = /xtest: \d+ keys in (\d+) batch\(es\)/.exec(logs.join('\n')) ?? [];
    expect(Number(batches)).toBeGreaterThan(1);
  });

  it('an application that answers _NET_WM_PING (GTK, rxvt-unicode) tells when it has read the keys; xterm gets the fixed pause', async () => {
    for (const [open, answers] of [
      [() => openGtkText(dir), true],
      [() => openTerminal('urxvt', dir), true],
      [() => openTerminal('xterm', dir), false],
    ] as const) {
      const app = await open();
      try {
        logs.length = 0;
        expect(await type('naïve ✓')).toEqual([]);
        expect(await app.received('naïve ✓')).toBe('naïve ✓');
      } finally {
        await app.close();
      }
      expect(
        logs.some((line) => line.includes('the focused application answered a ping')),
        `${app.name}: ${logs.join(' / ')}`,
      ).toBe(answers);
    }
  });

  it('Caps Lock on and Ctrl held (the hotkey) change nothing typed; Caps Lock is on again afterwards', async () => {
    const app = await openTerminal('xterm', dir);
    try {
      await x('xdotool', ['key', 'Caps_Lock']);
      await x('xdotool', ['keydown', 'Control_L']);
      const text = 'Mixed Case, not Ctrl: abc ABC é';
      expect(await type(text)).toEqual([]);
      expect(await app.received(text)).toBe(text);
      expect(execFileSync('xset', ['q'], { encoding: 'utf8' })).toMatch(/Caps Lock:\s+on/);
    } finally {
      await x('xdotool', ['keyup', 'Control_L']);
      if (/Caps Lock:\s+on/.test(execFileSync('xset', ['q'], { encoding: 'utf8' }))) await x('xdotool', ['key', 'Caps_Lock']);
      await app.close();
    }
  });
});

describe('many distinct characters off the layout', () => {
  it('150 different CJK characters (in batches: Xvfb has 19 spare keycodes, 2 characters each) arrive in xterm within the default deadline', async () => {
    const text = Array.from({ length: 150 }, (_, i) => String.fromCodePoint(0x4e00 + i * 7)).join('');
    const app = await openTerminal('xterm', dir);
    try {
      logs.length = 0;
      expect(await type(text)).toEqual([]);
      expect(await app.received(text)).toBe(text);
    } finally {
      await app.close();
    }
    const [, batches] = /xtest: 150 keys in (\d+) batch\(es\), 150 character\(s\) on spare keycodes/.exec(logs.join('\n')) ?? [];
    expect(Number(batches)).toBeGreaterThan(1);
  });
});

describe('XTEST typing stops when told to', () => {
  const LONG = 'a '.repeat(200); // 400 keys at 100 ms: 40 s

  /** Types a marker after the stopped typing: once it arrived, every earlier key has too. What came before it: */
  async function typedBefore(app: TerminalReceiver): Promise<string> {
    expect(await type('|END')).toEqual([]);
    const all = await until('the marker typed after the stop', () => (app.contents().endsWith('|END') ? app.contents() : undefined));
    return all.slice(0, -'|END'.length);
  }

  it('past timeoutMs: typing stops, the text goes to the clipboard with a warning', async () => {
    const app = await openTerminal('xterm', dir);
    try {
      const warnings = await type(LONG, { keyDelayMs: 100, timeoutMs: 400 });
      expect(warnings).toEqual(['typing failed (typing did not finish within 400 ms); the text is on the clipboard']);
      expect(await x('xclip', ['-out', '-selection', 'clipboard'])).toBe(LONG);
      const typed = await typedBefore(app);
      expect(LONG.startsWith(typed) && typed.length < LONG.length).toBe(true);
    } finally {
      await app.close();
    }
  });

  it('cancelling the session stops typing with KOTO_ERR_ABORTED', async () => {
    const app = await openTerminal('xterm', dir);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    try {
      await expect(type(LONG, { keyDelayMs: 100 }, controller.signal)).rejects.toMatchObject({ code: 'KOTO_ERR_ABORTED' });
      const typed = await typedBefore(app);
      expect(LONG.startsWith(typed) && typed.length < LONG.length).toBe(true);
    } finally {
      await app.close();
    }
  });
});

describe('when XTEST cannot connect', () => {
  it('falls back to xdotool, and names both failures when that fails too', async () => {
    process.env.DISPLAY = ':4095'; // no server there
    try {
      await expect(type('nowhere')).rejects.toMatchObject({ code: 'KOTO_ERR_OUTPUT' });
      const failure = await type('nowhere').catch((err: Error) => err.message);
      expect(failure).toMatch(/XTEST typing failed: cannot open display :4095 .*; xdotool exited with code 1: Error: Can't open display/);
    } finally {
      process.env.DISPLAY = desktop.display;
    }
  });
});
