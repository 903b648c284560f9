/**
 * The `type` output on Wayland, default options, for real: sway (headless) with foot receiving,
 * through wtype. Each text is typed ten times, each time by a new wtype (a new virtual keyboard,
 * where the first character used to be lost), and must arrive byte for byte every time.
 * In a terminal, Return is CR (0x0d), as from the Enter key (see type-apps.test.ts).
 * KOTO_TYPE_OPTIONS='{"waylandStartDelayMs":0}' types with other options (to measure them).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKernel, type Kernel, type SessionContext } from '../../src/index.ts';
import { tempHome } from '../support/index.ts';
import { until } from './type-x11-receivers.ts';
import { startSway, type FootTerminal, type WaylandSession } from './type-wayland-session.ts';

const home = tempHome('koto-type-wayland-');
const savedEnv = { ...process.env };
let session: WaylandSession;
let kernel: Kernel;
const logs: string[] = [];
const measuredOptions = JSON.parse(process.env.KOTO_TYPE_OPTIONS ?? '{}') as Record<string, unknown>;

beforeAll(async () => {
  session = await startSway();
  Object.assign(process.env, session.env);
  delete process.env.DISPLAY;
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
  await session?.stop();
  process.env = savedEnv;
  home.cleanup();
});

async function type(text: string): Promise<string[]> {
  const warnings: string[] = [];
  const signal = new AbortController().signal;
  const ctx = { id: 'test-session', warnings, signal } as unknown as SessionContext;
  await kernel.hooks.output
    .get('type')!
    .promise({ session: ctx, name: 'type', text, raw: text, options: measuredOptions, signal, warn: (m) => void warnings.push(m) });
  return warnings;
}

const terminalBytes = (text: string) => text.replace(/\n/g, '\r');

/** Types `text` and waits until foot's program holds `before + text` (the deadline only guards a broken setup). */
async function typeInto(foot: FootTerminal, before: string, text: string): Promise<string> {
  expect(await type(text)).toEqual([]);
  const expected = before + terminalBytes(text);
  return until('foot receiving the text', () => (foot.contents() === expected ? expected : undefined)).catch(() => foot.contents());
}

const SHORT: Record<string, string> = {
  'a plain sentence': 'The quick brown fox jumps over the lazy dog.',
  'non-ASCII': 'café — naïve 日本語 😀',
  'quotes, backslashes and $(…)': `say "it's \\"fine\\"" $(rm -rf ~) \`id\` \\\\ %s`,
  'newlines and a tab': 'first\nsecond\n\tthird',
};

describe('type on Wayland: sway + foot through wtype', () => {
  it.each(Object.entries(SHORT))('%s: ten runs, every character (the first included) every time', async (_, text) => {
    const foot = await session.openFoot();
    try {
      let expected = '';
      for (let run = 1; run <= 10; run += 1) {
        const piece = `${run}:${text}|`;
        const got = await typeInto(foot, expected, piece);
        expect(got, `run ${run}`).toBe(expected + terminalBytes(piece));
        expected = got;
      }
    } finally {
      await foot.close();
    }
    expect(logs.join('\n')).toMatch(/typed \d+ characters with wtype/);
  });

  it('2,000 characters', async () => {
    const words = ['dictation', 'über', 'Koto', '—', 'types', '日本語', 'every', '😀', 'key', '"quoted"', '$(x)', '\\'];
    let text = '';
    for (let i = 0; [...text].length < 2000; i += 1) text += `${words[i % words.length]!}${i % 9 === 4 ? '\n' : i % 10 === 7 ? '\t' : ' '}`;
    text = [...text].slice(0, 2000).join('');
    const foot = await session.openFoot();
    try {
      expect(await typeInto(foot, '', text)).toBe(terminalBytes(text));
    } finally {
      await foot.close();
    }
  });
});
