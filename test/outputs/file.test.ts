import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createKernel, definePlugin, encodeWav, KotoError, z, type Kernel } from '../../src/index.ts';
import { tempHome } from '../support/index.ts';

const home = tempHome('koto-outputs-');
afterAll(() => home.cleanup());

let heard = '';
const fakeAsr = definePlugin({
  name: 'fake-asr',
  capabilities: ['asr'],
  provider: z.object({}),
  apply: (api) => api.hooks.asr.for('fake-asr').tapPromise('fake-asr', async () => ({ text: heard })),
});
const wav = { data: encodeWav(new Int16Array(1600), 16_000), name: 'speech.wav' };

function kernelWith(output: unknown[]): Promise<Kernel> {
  return createKernel({
    search: false,
    builtins: ['outputs'],
    plugins: [fakeAsr],
    cwd: home.dir,
    env: { ...process.env, KOTO_HOME: home.dir },
    config: { providers: { fake: { use: 'fake-asr' } }, asr: { provider: 'fake' }, output },
    logLevel: 'silent',
  });
}

describe('file output', () => {
  it('appends one line per dictation to a file only its owner can read (paths relative to the config)', async () => {
    const kernel = await kernelWith([{ use: 'file', path: 'notes/dictations.txt' }]);
    try {
      for (const text of ['first dictation', 'second dictation']) {
        heard = text;
        expect((await kernel.run(wav, { correct: false })).state).toBe('done');
      }
    } finally {
      await kernel.close();
    }
    const file = path.join(home.dir, 'notes', 'dictations.txt');
    expect(readFileSync(file, 'utf8')).toBe('first dictation\nsecond dictation\n');
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('jsonl: one JSON object per dictation with id, time, raw and text', async () => {
    const file = path.join(home.dir, 'dictations.jsonl');
    const kernel = await kernelWith([{ use: 'file', path: file, format: 'jsonl' }]);
    let id = '';
    try {
      heard = 'line with "quotes"\nand a newline';
      id = (await kernel.run(wav, { correct: false })).id;
    } finally {
      await kernel.close();
    }
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    const entry = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(entry).toMatchObject({ id, raw: 'line with "quotes"\nand a newline', text: 'line with "quotes"\nand a newline' });
    expect(Number.isNaN(Date.parse(String(entry.time)))).toBe(false);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });
});

describe('desktop output options are checked with the config', () => {
  it.each([
    [{ use: 'paste', shortcut: 'ctrl+' }, 'shortcut'],
    [{ use: 'paste', delayMs: -1 }, 'delayMs'],
    [{ use: 'paste', restoreClipboard: 'yes' }, 'restoreClipboard'],
    [{ use: 'type', keyDelayMs: 5000 }, 'keyDelayMs'],
    [{ use: 'clipboard', restoreAfterMs: 0 }, 'restoreAfterMs'],
    [{ use: 'paste', unknown: 1 }, 'unknown'],
  ])('%j is refused, naming %s', async (entry, key) => {
    let error: unknown;
    try {
      await (await kernelWith([entry])).close();
    } catch (err) {
      error = err;
    }
    expect(KotoError.is(error)).toBe(true);
    expect((error as KotoError).code).toBe('KOTO_ERR_CONFIG_INVALID');
    expect((error as KotoError).message).toContain(key);
  });

  it('accepts every documented option', async () => {
    const kernel = await kernelWith([
      { use: 'paste', delayMs: 80, shortcut: 'ctrl+shift+v', restoreClipboard: true, restoreDelayMs: 1500, timeoutMs: 3000 },
      { use: 'type', keyDelayMs: 20, timeoutMs: 60_000 },
      { use: 'clipboard', restoreAfterMs: 30_000 },
    ]);
    expect(kernel.config.resolved.outputs.map((o) => o.name)).toEqual(['paste', 'type', 'clipboard']);
    await kernel.close();
  });
});
