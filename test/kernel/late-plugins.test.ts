/**
 * Plugins a reload applies (lazy built-ins, a provider's `use`) join a kernel that already ran
 * its lifecycle: they get `ready` and, under a daemon, `daemon` once, and no one else's taps run
 * again; their new options do not count as "restart needed"; a plugin whose apply() failed is
 * never applied again in this process, while one applied by a rejected reload stays loaded.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Daemon } from '../../src/daemon/daemon.ts';
import { createKernel, definePlugin, type Kernel } from '../../src/index.ts';
import { tempHome } from '../support/index.ts';
import { testDaemon, toneSource } from '../support/daemon.ts';

type Counts = Record<string, number | string[]>;
const counts = ((globalThis as { __kotoLate?: Counts }).__kotoLate ??= {});
const count = (key: string) => (counts[key] as number | undefined) ?? 0;

const homes: ReturnType<typeof tempHome>[] = [];
let kernel: Kernel | undefined;
let daemon: Daemon | undefined;

afterEach(async () => {
  await daemon?.close();
  await kernel?.close();
  daemon = kernel = undefined;
  for (const home of homes.splice(0)) home.cleanup();
  for (const key of Object.keys(counts)) delete counts[key];
});

function home(): string {
  const h = tempHome('koto-late-');
  homes.push(h);
  return h.dir;
}

const MAIN = { use: 'openai-compatible', baseUrl: 'http://127.0.0.1:9/v1', apiKey: 'sk-late-test' };
const BASE = { providers: { main: MAIN }, asr: { provider: 'main' }, correction: { provider: 'main' }, output: ['stdout'] };

/** A plugin file (as a third party ships one) that counts its apply and lifecycle taps in `counts`. */
function pluginFile(dir: string, name: string, body = ''): string {
  const file = path.join(dir, `${name}.mjs`);
  writeFileSync(
    file,
    `const counts = (globalThis.__kotoLate ??= {});
const bump = (key) => (counts[key] = (counts[key] ?? 0) + 1);
export default {
  name: ${JSON.stringify(name)},
  capabilities: ['asr'],
  apply(api) {
    bump(${JSON.stringify(`${name}:apply`)});
    api.hooks.ready.tapPromise(${JSON.stringify(name)}, async ({ config }) => {
      bump(${JSON.stringify(`${name}:ready`)});
      counts[${JSON.stringify(`${name}:readyProviders`)}] = Object.keys(config.resolved.providers);
    });
    api.hooks.daemon.tapPromise(${JSON.stringify(name)}, async (host) => {
      bump(${JSON.stringify(`${name}:daemon`)});
      host.report(${JSON.stringify(name)}, { summary: 'listening' });
    });
    ${body}
  },
};
`,
  );
  return `./${name}.mjs`;
}

/** Passed in code, applied at start: its lifecycle taps must not run again when a reload adds a plugin. */
const veteran = definePlugin({
  name: 'veteran',
  apply(api) {
    api.hooks.ready.tapPromise('veteran', async () => void (counts['veteran:ready'] = count('veteran:ready') + 1));
    api.hooks.daemon.tapPromise('veteran', async () => void (counts['veteran:daemon'] = count('veteran:daemon') + 1));
  },
});

describe('a plugin applied by a reload', () => {
  it('under a daemon gets ready and daemon exactly once, with the new config; the others are not called again', async () => {
    const dir = home();
    const file = path.join(dir, 'koto.config.json');
    writeFileSync(file, JSON.stringify({ ...BASE, audio: { source: 'tone' } }), { mode: 0o600 });
    daemon = await testDaemon({ configPath: file, env: { KOTO_HOME: dir }, socketPath: path.join(dir, 'k.sock'), plugins: [veteran] });
    expect([count('veteran:ready'), count('veteran:daemon')]).toEqual([1, 1]);

    const trigger = pluginFile(dir, 'late-trigger');
    writeFileSync(file, JSON.stringify({ ...BASE, audio: { source: 'tone' }, providers: { main: MAIN, t: { use: trigger } } }));
    expect(await daemon.command('reload', {})).toMatchObject({ ok: true });
    expect([count('late-trigger:apply'), count('late-trigger:ready'), count('late-trigger:daemon')]).toEqual([1, 1, 1]);
    // `ready` says the config the plugin joined, which names its provider.
    expect(counts['late-trigger:readyProviders']).toEqual(['main', 't']);
    expect(daemon.status().plugins['late-trigger']).toEqual({ summary: 'listening' });
    expect([count('veteran:ready'), count('veteran:daemon')]).toEqual([1, 1]);

    // Later reloads start no one again.
    writeFileSync(
      file,
      JSON.stringify({
        ...BASE,
        audio: { source: 'tone' },
        providers: { main: MAIN, t: { use: trigger } },
        correction: { provider: 'main', model: 'other' },
      }),
    );
    expect(await daemon.command('reload', {})).toMatchObject({ ok: true });
    expect([count('late-trigger:apply'), count('late-trigger:ready'), count('late-trigger:daemon')]).toEqual([1, 1, 1]);
    expect([count('veteran:ready'), count('veteran:daemon')]).toEqual([1, 1]);
  });

  it('whose daemon tap fails is logged, the reload stands and the daemon keeps serving', async () => {
    const dir = home();
    const file = path.join(dir, 'koto.config.json');
    writeFileSync(file, JSON.stringify({ ...BASE, audio: { source: 'tone' } }), { mode: 0o600 });
    const logs: string[] = [];
    daemon = await testDaemon({
      configPath: file,
      env: { KOTO_HOME: dir },
      socketPath: path.join(dir, 'k.sock'),
      logLevel: 'error',
      logSink: (entry) => logs.push(entry.message),
    });
    const broken = pluginFile(
      dir,
      'broken-trigger',
      `api.hooks.daemon.tap('broken-trigger', () => { throw new Error('no keyboard here'); });`,
    );
    const fine = pluginFile(dir, 'fine-trigger');
    writeFileSync(
      file,
      JSON.stringify({ ...BASE, audio: { source: 'tone' }, providers: { main: MAIN, b: { use: broken }, f: { use: fine } } }),
    );
    expect(await daemon.command('reload', {})).toMatchObject({ ok: true });
    expect(logs.join('\n')).toMatch(/broken-trigger.*no keyboard here/);
    // One failing tap does not keep the next plugin from starting.
    expect(count('fine-trigger:daemon')).toBe(1);
    expect(daemon.status()).toMatchObject({ state: 'idle', configGeneration: 2 });
  });

  it('without a daemon gets ready only, once, and only after a reload that puts its config in use', async () => {
    const dir = home();
    const file = path.join(dir, 'koto.config.json');
    writeFileSync(file, JSON.stringify(BASE), { mode: 0o600 });
    kernel = await createKernel({ configPath: file, env: { KOTO_HOME: dir }, logLevel: 'silent', plugins: [veteran] });
    writeFileSync(file, JSON.stringify({ ...BASE, providers: { main: MAIN, t: { use: pluginFile(dir, 'late-trigger') } } }));
    expect((await kernel.reload()).ok).toBe(true);
    expect([count('late-trigger:ready'), count('late-trigger:daemon'), count('veteran:ready'), count('veteran:daemon')]).toEqual([
      1, 0, 1, 0,
    ]);
  });
});

describe('restart needed after a reload that loads a built-in', () => {
  it('not for the options a built-in this reload applied got; yes once they change after', async () => {
    const dir = home();
    const file = path.join(dir, 'koto.config.json');
    writeFileSync(file, JSON.stringify(BASE), { mode: 0o600 });
    kernel = await createKernel({ configPath: file, env: { KOTO_HOME: dir }, logLevel: 'silent' });
    expect(kernel.plugins().map((p) => p.name)).not.toContain('local-correction');
    const withOptions = (value: number) => ({
      ...BASE,
      providers: { main: MAIN, tidy: { use: 'local-correction' } },
      pluginOptions: { 'local-correction': { level: value } },
    });
    writeFileSync(file, JSON.stringify(withOptions(1)));
    expect((await kernel.reload()).ok).toBe(true);
    expect(kernel.plugins().map((p) => p.name)).toContain('local-correction');
    expect(kernel.restartNeeded).toEqual([]);
    // Options it was not applied with do need a restart.
    writeFileSync(file, JSON.stringify(withOptions(2)));
    expect((await kernel.reload()).ok).toBe(true);
    expect(kernel.restartNeeded).toEqual(['pluginOptions']);
    writeFileSync(file, JSON.stringify(withOptions(1)));
    expect((await kernel.reload()).ok).toBe(true);
    expect(kernel.restartNeeded).toEqual([]);
  });

  it('still for new options of a plugin applied at start', async () => {
    const dir = home();
    const file = path.join(dir, 'koto.config.json');
    writeFileSync(file, JSON.stringify(BASE), { mode: 0o600 });
    kernel = await createKernel({ configPath: file, env: { KOTO_HOME: dir }, logLevel: 'silent' });
    writeFileSync(file, JSON.stringify({ ...BASE, pluginOptions: { 'openai-compatible': { note: 'x' } } }));
    expect((await kernel.reload()).ok).toBe(true);
    expect(kernel.restartNeeded).toEqual(['pluginOptions']);
  });
});

describe('a reload whose plugin cannot be applied', () => {
  it('for its options is refused, and applies it once they are fixed', async () => {
    const dir = home();
    const file = path.join(dir, 'koto.config.json');
    const base = { ...BASE, audio: { source: 'tone' } };
    writeFileSync(file, JSON.stringify(base), { mode: 0o600 });
    kernel = await createKernel({ configPath: file, env: { KOTO_HOME: dir }, logLevel: 'silent', plugins: [toneSource] });
    expect(kernel.plugins().map((p) => p.name)).not.toContain('mic-native');
    writeFileSync(file, JSON.stringify({ ...base, pluginOptions: { 'mic-native': { frameLength: 1 } } }));
    const refused = await kernel.reload();
    expect(refused.ok).toBe(false);
    expect(refused.error?.code).toBe('KOTO_ERR_PLUGIN_OPTIONS');
    writeFileSync(
      file,
      JSON.stringify({ ...base, audio: { source: 'mic-native' }, pluginOptions: { 'mic-native': { frameLength: 1024 } } }),
    );
    const outcome = await kernel.reload();
    expect(outcome.error?.message).toBeUndefined();
    expect(kernel.plugins().filter((p) => p.name === 'mic-native')).toHaveLength(1);
    expect(kernel.restartNeeded).toEqual([]);
  });

  it('for its second new plugin is rejected; the first stays loaded (applied once), the failed one is never applied again', async () => {
    const dir = home();
    const file = path.join(dir, 'koto.config.json');
    writeFileSync(file, JSON.stringify(BASE), { mode: 0o600 });
    kernel = await createKernel({ configPath: file, env: { KOTO_HOME: dir }, logLevel: 'silent' });
    const good = pluginFile(dir, 'good-one');
    // Taps a hook, then fails: applying it again would leave that tap twice.
    const bad = pluginFile(dir, 'bad-one', `throw new Error('bad-one cannot start');`);
    const both = { ...BASE, providers: { main: MAIN, g: { use: good }, b: { use: bad } } };
    writeFileSync(file, JSON.stringify(both));
    const outcome = await kernel.reload();
    expect(outcome.ok).toBe(false);
    expect(outcome.error?.code).toBe('KOTO_ERR_PLUGIN_APPLY');
    expect(outcome.error?.message).toContain('bad-one cannot start');
    expect(Object.keys(kernel.config.resolved.providers)).toEqual(['main']);
    expect(kernel.plugins().map((p) => p.name)).toContain('good-one');
    expect(kernel.plugins().map((p) => p.name)).not.toContain('bad-one');
    expect(kernel.restartNeeded).toEqual(['plugins']);

    // The same edit again (or a touch): refused with the same reason, nothing applied a second time.
    writeFileSync(file, JSON.stringify({ ...both, correction: { provider: 'main', model: 'other' } }));
    const again = await kernel.reload();
    expect(again.ok).toBe(false);
    expect(again.error?.code).toBe('KOTO_ERR_PLUGIN_APPLY');
    expect(kernel.lastConfigError?.code).toBe('KOTO_ERR_PLUGIN_APPLY');
    expect([count('good-one:apply'), count('bad-one:apply')]).toEqual([1, 1]);
    expect(kernel.plugins().find((p) => p.name === 'good-one')?.taps).toEqual(['daemon', 'ready']);

    // Without the broken one the config is taken, and the plugin applied earlier starts now, once.
    expect(count('good-one:ready')).toBe(0);
    writeFileSync(file, JSON.stringify({ ...BASE, providers: { main: MAIN, g: { use: good } } }));
    expect((await kernel.reload()).ok).toBe(true);
    expect([count('good-one:apply'), count('good-one:ready')]).toEqual([1, 1]);
    expect(Object.keys(kernel.config.resolved.providers)).toEqual(['main', 'g']);
    // The process still holds the failed plugin's taps: only a restart is clean.
    expect(kernel.restartNeeded).toEqual(['plugins']);
  });
});
