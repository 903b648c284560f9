import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createKernel, definePlugin, STAGE } from '../../src/index.ts';
import { failure, tempHome, testKernel } from '../support/index.ts';

const home = tempHome();
afterAll(() => home.cleanup());

describe('plugin loading', () => {
  it('names every lookup it tried for an unknown plugin', async () => {
    const err = await failure(testKernel({ plugins: ['no-such-plugin-xyz'] }));
    expect(err.code).toBe('KOTO_ERR_PLUGIN_NOT_FOUND');
    expect(err.message).toContain('no-such-plugin-xyz');
    expect(err.message).toContain('built-in plugins/no-such-plugin-xyz');
    expect(err.message).toContain('koto-plugin-no-such-plugin-xyz');
    expect(err.exitCode).toBe(3);
  });

  it('refuses two plugins with one name', async () => {
    const a = definePlugin({ name: 'twin', apply() {} });
    const b = definePlugin({ name: 'twin', apply() {} });
    const err = await failure(testKernel({}, { plugins: [a, b] }));
    expect(err.code).toBe('KOTO_ERR_PLUGIN_DUPLICATE');
    expect(err.message).toContain('"twin"');
  });

  it('names a missing dependency and applies dependencies first', async () => {
    const order: string[] = [];
    const child = definePlugin({ name: 'child', dependencies: ['parent'], apply: () => void order.push('child') });
    const err = await failure(testKernel({}, { plugins: [child] }));
    expect(err.code).toBe('KOTO_ERR_PLUGIN_DEPENDENCY');
    expect(err.message).toBe('plugin "child" needs plugin "parent", which is not loaded');

    const parent = definePlugin({ name: 'parent', apply: () => void order.push('parent') });
    const { kernel } = await testKernel({}, { plugins: [child, parent] });
    expect(order).toEqual(['parent', 'child']);
    await kernel.close();
  });

  it('validates options before apply, naming plugin, key path and what was expected; then freezes them', async () => {
    let received: unknown;
    const plugin = definePlugin({
      name: 'opts',
      options: z.strictObject({ level: z.number().int().default(1), nested: z.object({ on: z.boolean() }).optional() }),
      apply(_api, options) {
        received = options;
      },
    });
    const err = await failure(testKernel({ pluginOptions: { opts: { nested: { on: 'yes' } } } }, { plugins: [plugin] }));
    expect(err.code).toBe('KOTO_ERR_PLUGIN_OPTIONS');
    expect(err.message).toContain('plugin "opts"');
    expect(err.message).toContain('nested.on');
    expect(err.message).toMatch(/expected boolean/);
    expect(received).toBeUndefined();

    const { kernel } = await testKernel({ pluginOptions: { opts: { level: 3 } } }, { plugins: [plugin] });
    expect(received).toEqual({ level: 3 });
    expect(Object.isFrozen(received)).toBe(true);
    await kernel.close();
  });

  it('reports a plugin whose apply throws, and one that never finishes', async () => {
    const thrower = definePlugin({
      name: 'thrower',
      apply() {
        throw new Error('boom at start');
      },
    });
    const err = await failure(testKernel({}, { plugins: [thrower] }));
    expect(err.code).toBe('KOTO_ERR_PLUGIN_APPLY');
    expect(err.message).toBe('plugin "thrower" failed to start: boom at start');
    expect(err.plugin).toBe('thrower');

    const hang = definePlugin({ name: 'hang', apply: () => new Promise<void>(() => {}) });
    const timeout = await failure(testKernel({}, { plugins: [hang], pluginTimeoutMs: 100 }));
    expect(timeout.code).toBe('KOTO_ERR_PLUGIN_TIMEOUT');
    expect(timeout.message).toContain('"hang"');
  });

  it('refuses a plugin that needs another koto-voice version, in one line naming it', async () => {
    const old = definePlugin({ name: 'old', koto: '^99.0.0', apply() {} });
    const err = await failure(testKernel({}, { plugins: [old] }));
    expect(err.code).toBe('KOTO_ERR_PLUGIN_INCOMPATIBLE');
    expect(err.message).toMatch(/plugin "old" needs koto-voice \^99\.0\.0, this is \d+\.\d+\.\d+/);
  });

  it('loads plugins by path (relative to the config) and reports a wrong export', async () => {
    const dir = path.join(home.dir, 'local-plugins');
    mkdirSync(dir, { recursive: true });
    const api = new URL('../../src/index.ts', import.meta.url).href;
    writeFileSync(
      path.join(dir, 'good.mjs'),
      `import { definePlugin } from ${JSON.stringify(api)};\nexport default definePlugin({ name: 'good', outputs: {}, apply() {} });\n`,
    );
    writeFileSync(path.join(dir, 'bad.mjs'), 'export const nothing = 1;\n');
    const { kernel } = await testKernel({ plugins: ['./local-plugins/good.mjs'] }, { cwd: home.dir });
    expect(kernel.plugins().map((p) => [p.name, p.source])).toEqual([['good', 'path']]);
    await kernel.close();
    const err = await failure(testKernel({ plugins: ['./local-plugins/bad.mjs'] }, { cwd: home.dir }));
    expect(err.code).toBe('KOTO_ERR_PLUGIN_INVALID');
    expect(err.message).toContain('./local-plugins/bad.mjs');
  });

  it('resolves built-ins by short name', async () => {
    const kernel = await createKernel({ config: {}, search: false, builtins: ['outputs'], env: { KOTO_HOME: home.dir } });
    expect(kernel.plugins()[0]).toMatchObject({
      name: 'outputs',
      source: 'builtin',
      outputs: ['stdout', 'file', 'clipboard', 'paste', 'type'],
    });
    await kernel.close();
  });
});

describe('hooks', () => {
  it('gives plugins tap-only views: no call/promise, and the tap name is always the plugin name', async () => {
    let hooks: unknown;
    const spy = definePlugin({
      name: 'spy',
      apply(api) {
        hooks = api.hooks;
        api.hooks.sessionEnd.tapPromise({ name: 'pretending-to-be-someone-else' }, async () => {});
      },
    });
    const { kernel } = await testKernel({}, { plugins: [spy] });
    const view = hooks as Record<string, Record<string, unknown>>;
    expect(view.close?.promise).toBeUndefined();
    expect(view.configChanged?.call).toBeUndefined();
    expect(Object.isFrozen(view)).toBe(true);
    expect(kernel.hooks.sessionEnd.taps.map((t) => t.name)).toEqual(['spy']);
    await kernel.close();
  });

  it('tags errors thrown in a tap with the plugin and the hook', async () => {
    const bad = definePlugin({
      name: 'bad-output',
      outputs: { broken: z.object({}) },
      apply(api) {
        api.hooks.transcript.tapPromise('x', async () => {
          throw new Error('transform exploded');
        });
      },
    });
    const { kernel } = await testKernel({}, { plugins: [bad] });
    const err = await failure(kernel.hooks.transcript.promise({ session: {} as never, text: 'hi' }));
    expect(err.code).toBe('KOTO_ERR_HOOK_FAILED');
    expect(err.plugin).toBe('bad-output');
    expect(err.hook).toBe('transcript');
    expect(err.message).toBe('plugin "bad-output" failed in hook transcript: transform exploded');
    await kernel.close();
  });

  it('threads text through transcript taps in stage order, and closes plugins in reverse order', async () => {
    const closed: string[] = [];
    const make = (name: string, suffix: string, stage: number) =>
      definePlugin({
        name,
        apply(api) {
          api.hooks.transcript.tapPromise({ name, stage }, async (v) => ({ ...v, text: v.text + suffix }));
          api.hooks.close.tapPromise(name, async () => void closed.push(name));
        },
      });
    const { kernel } = await testKernel({}, { plugins: [make('first', '1', STAGE.POST), make('second', '2', STAGE.PRE)] });
    const out = await kernel.hooks.transcript.promise({ session: {} as never, text: '' });
    expect(out.text).toBe('21');
    await kernel.close();
    await kernel.close();
    expect(closed).toEqual(['second', 'first']);
    expect(kernel.state).toBe('closed');
    await expect(kernel.correct('x')).rejects.toMatchObject({ code: 'KOTO_ERR_CLOSED' });
  });
});
