/**
 * Plugin-declared error codes (#22 item 2, #19 item 4): a plugin brings its own codes with a
 * message, a fix and whether a retry may help; they are prefix-checked, honoured by the kernel's
 * retry, listed by `koto plugins --json`, and keep their identity across the daemon's socket.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Daemon } from '../../src/daemon/daemon.ts';
import { createKernel, definePlugin, encodeWav, errorPrefixOf, KotoError, kotoError } from '../../src/index.ts';
import { koto } from '../cli/support.ts';
import { toneSource } from '../daemon/nothing-lost-support.ts';
import { tempHome } from '../support/index.ts';

const home = tempHome('koto-plugin-errors-');
const wav = encodeWav(
  new Int16Array(8000).map((_, i) => Math.round(3000 * Math.sin(i / 4))),
  16000,
);
afterAll(() => home.cleanup());

/** An ASR provider whose upstream is over quota `failures` times, then answers. */
function acme(failures: number, retryable: boolean) {
  const calls = { count: 0 };
  const plugin = definePlugin({
    name: 'koto-plugin-acme',
    capabilities: ['asr'],
    errors: {
      ACME_ERR_QUOTA: { message: 'the Acme quota of {plan} is used up', fix: 'wait for the hourly reset or upgrade the plan', retryable },
    },
    apply(api) {
      api.hooks.asr.for('koto-plugin-acme').tapPromise('koto-plugin-acme', async () => {
        calls.count += 1;
        if (calls.count <= failures) throw kotoError('ACME_ERR_QUOTA', { plan: 'Starter' });
        return { text: 'acme heard you' };
      });
    },
  });
  return { plugin, calls };
}

async function kernelWith(plugin: ReturnType<typeof definePlugin>, retries = 2) {
  return createKernel({
    config: { providers: { acme: { use: 'koto-plugin-acme' } }, asr: { provider: 'acme', retries }, correction: { enabled: false } },
    search: false,
    builtins: false,
    plugins: [plugin],
    env: { KOTO_HOME: path.join(home.dir, 'kernel') },
    logLevel: 'silent',
    history: false,
  });
}

describe('a plugin declares its own codes', () => {
  it('the error carries the code, the filled message and fix, the plugin and hook; exit 1', async () => {
    const { plugin } = acme(99, false);
    const kernel = await kernelWith(plugin);
    try {
      const err = await kernel.transcribe({ data: wav, name: 'clip.wav' }).catch((e: unknown) => e);
      expect(KotoError.is(err)).toBe(true);
      expect(err).toMatchObject({
        code: 'ACME_ERR_QUOTA',
        message: 'the Acme quota of Starter is used up',
        fix: 'wait for the hourly reset or upgrade the plan',
        exitCode: 1,
        plugin: 'koto-plugin-acme',
      });
      expect((err as KotoError).toLine()).toContain('(ACME_ERR_QUOTA)');
      expect(kernel.plugins().find((p) => p.name === 'koto-plugin-acme')?.errors).toEqual(['ACME_ERR_QUOTA']);
    } finally {
      await kernel.close();
    }
  });

  it('retryable: true lets the kernel retry; false does not', async () => {
    for (const [retryable, expected] of [
      [true, 2],
      [false, 1],
    ] as const) {
      const { plugin, calls } = acme(1, retryable);
      const kernel = await kernelWith(plugin);
      try {
        const result = await kernel.transcribe({ data: wav, name: 'clip.wav' }).catch((e: unknown) => e);
        expect(calls.count).toBe(expected);
        if (retryable) expect(result).toMatchObject({ text: 'acme heard you' });
        else expect(result).toMatchObject({ code: 'ACME_ERR_QUOTA' });
      } finally {
        await kernel.close();
      }
    }
  });

  it.each([
    ['another prefix', { OTHER_ERR_X: { message: 'm', fix: 'f' } }, 'must look like ACME_ERR_SOMETHING'],
    ["the kernel's prefix", { KOTO_ERR_QUOTA: { message: 'm', fix: 'f' } }, "KOTO_ERR_ codes are the kernel's"],
    ['no fix', { ACME_ERR_X: { message: 'm', fix: '' } }, 'needs a message and a fix'],
    ['lower case', { ACME_ERR_quota: { message: 'm', fix: 'f' } }, 'must look like ACME_ERR_SOMETHING'],
  ])('refused at start: %s → KOTO_ERR_PLUGIN_INVALID naming the code', async (_, errors, says) => {
    const plugin = definePlugin({ name: 'koto-plugin-acme', errors, apply() {} });
    const err = await kernelWith(plugin).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'KOTO_ERR_PLUGIN_INVALID' });
    expect((err as Error).message).toContain(says);
  });

  it('an undeclared code is the author’s bug, said plainly (not a crash inside kotoError)', () => {
    const err = kotoError('NOBODY_ERR_DECLARED_THIS' as 'ACME_ERR_X');
    expect(err.code).toBe('KOTO_ERR_INTERNAL');
    expect(err.message).toContain('error code NOBODY_ERR_DECLARED_THIS is not declared: declare it in definePlugin({ errors');
  });

  it('prefixes come from the plugin name', () => {
    expect(errorPrefixOf('koto-plugin-acme')).toBe('ACME');
    expect(errorPrefixOf('@me/koto-plugin-deep-gram')).toBe('DEEP_GRAM');
    expect(errorPrefixOf('azure-foundry')).toBe('AZURE_FOUNDRY');
  });
});

describe('across processes', () => {
  const dist = fileURLToPath(new URL('../../dist/src/index.js', import.meta.url));
  const dir = path.join(home.dir, 'cli');
  mkdirSync(dir, { recursive: true });
  const pluginFile = path.join(dir, 'acme-output.mjs');
  // A plugin file as a user writes one, importing koto-voice (the build the CLI runs).
  writeFileSync(
    pluginFile,
    [
      `import { definePlugin, kotoError } from ${JSON.stringify(dist)};`,
      'export default definePlugin({',
      "  name: 'koto-plugin-acme',",
      '  outputs: { acme: undefined },',
      "  errors: { ACME_ERR_INBOX_FULL: { message: 'the Acme inbox {inbox} is full', fix: 'archive old notes in Acme' } },",
      '  apply(api) {',
      "    api.hooks.output.for('acme').tapPromise('koto-plugin-acme', async () => { throw kotoError('ACME_ERR_INBOX_FULL', { inbox: 'notes' }); });",
      '  },',
      '});',
      '',
    ].join('\n'),
  );
  const env = { KOTO_HOME: path.join(dir, 'home') };

  it('`koto plugins --json` lists the codes and where the plugin was loaded from', async () => {
    const config = path.join(dir, 'koto.yaml');
    writeFileSync(config, `plugins: [./acme-output.mjs]\noutput: [acme]\n`);
    const result = await koto(['-c', config, 'plugins', '--json'], { env, cwd: dir });
    expect(result.stderr).toBe('');
    const acmeInfo = (JSON.parse(result.stdout) as { name: string; errors: string[]; location: string }[]).find(
      (p) => p.name === 'koto-plugin-acme',
    );
    expect(acmeInfo).toMatchObject({ errors: ['ACME_ERR_INBOX_FULL'], location: pluginFile });
    const text = await koto(['-c', config, 'plugins'], { env, cwd: dir });
    expect(text.stdout).toContain(`from: ${pluginFile}`);
    expect(text.stdout).toContain('errors: ACME_ERR_INBOX_FULL');
  });

  it('the daemon’s answer keeps the code, message and fix (fast client and full CLI)', async () => {
    const { default: acmeOutput } = (await import(pluginFile)) as { default: ReturnType<typeof definePlugin> };
    const daemon = await Daemon.start({
      config: {
        audio: { source: 'tone' },
        asr: { provider: 'acme' },
        providers: { acme: { use: 'koto-plugin-acme-asr' } },
        correction: { enabled: false },
        output: ['acme'],
      },
      search: false,
      env,
      builtins: false,
      plugins: [
        toneSource,
        acmeOutput,
        definePlugin({
          name: 'koto-plugin-acme-asr',
          capabilities: ['asr'],
          apply(api) {
            api.hooks.asr.for('koto-plugin-acme-asr').tapPromise('koto-plugin-acme-asr', async () => ({ text: 'into the inbox' }));
          },
        }),
      ],
      logLevel: 'silent',
      watch: false,
      shutdownTimeoutMs: 5000,
    });
    try {
      for (const args of [
        ['stop', '--wait'],
        ['--quiet', 'stop', '--wait'],
      ]) {
        expect((await koto(['start'], { env })).code).toBe(0);
        const stop = await koto(args, { env });
        expect(stop.code).toBe(1);
        expect(stop.stdout).toBe('into the inbox\n');
        expect(stop.stderr).toContain('the Acme inbox notes is full');
        expect(stop.stderr).toContain('archive old notes in Acme');
        expect(stop.stderr).toContain('ACME_ERR_INBOX_FULL');
      }
    } finally {
      await daemon.close();
    }
  });
});
