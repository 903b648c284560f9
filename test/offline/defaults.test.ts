import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createKernel } from 'koto-voice';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from './support.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

const hasOpenAiPlugin = existsSync(fileURLToPath(new URL('../../plugins/openai-compatible/index.ts', import.meta.url)));

describe('default providers', () => {
  it('with no config and no key: offline pocketsphinx and the local corrector', async () => {
    const kernel = await createKernel({ search: false, env: {}, config: {}, logLevel: 'error' });
    try {
      const { resolved } = kernel.config;
      expect(resolved.asrProvider).toBe('offline');
      expect(resolved.correctionProvider).toBe('local');
      expect(resolved.providers.offline).toMatchObject({ use: 'pocketsphinx' });
      expect(resolved.providers.local).toMatchObject({ use: 'local-correction' });
    } finally {
      await kernel.close();
    }
  });

  it('with only the offline plugins loaded, the same', async () => {
    const kernel = await createKernel({
      search: false,
      builtins: ['pocketsphinx', 'local-correction'],
      env: { KOTO_HOME: tmp.dir },
      config: {},
      logLevel: 'error',
    });
    try {
      expect(kernel.config.resolved.asrProvider).toBe('offline');
      expect(kernel.config.resolved.correctionProvider).toBe('local');
    } finally {
      await kernel.close();
    }
  });

  it.runIf(hasOpenAiPlugin)('with OPENAI_API_KEY: the OpenAI default wins both, the offline ones stay available', async () => {
    const kernel = await createKernel({
      search: false,
      builtins: ['pocketsphinx', 'local-correction', 'openai-compatible'],
      env: { KOTO_HOME: tmp.dir, OPENAI_API_KEY: 'x' },
      config: {},
      logLevel: 'error',
    });
    try {
      const { resolved } = kernel.config;
      expect(resolved.asrProvider).toBe('openai');
      expect(resolved.correctionProvider).toBe('openai');
      expect(Object.keys(resolved.providers)).toEqual(expect.arrayContaining(['openai', 'offline', 'local']));
    } finally {
      await kernel.close();
    }
  });

  it('a config that names providers gets no defaults added', async () => {
    const kernel = await createKernel({
      search: false,
      builtins: ['pocketsphinx', 'local-correction'],
      env: { KOTO_HOME: tmp.dir },
      config: { providers: { mine: { use: 'pocketsphinx', mode: 'continuous' } } },
      logLevel: 'error',
    });
    try {
      expect(Object.keys(kernel.config.resolved.providers)).toEqual(['mine']);
      expect(kernel.config.resolved.asrProvider).toBe('mine');
      expect(kernel.config.resolved.correctionProvider).toBeUndefined();
    } finally {
      await kernel.close();
    }
  });

  it('refuses a bad pocketsphinx option with the key named', async () => {
    await expect(
      createKernel({
        search: false,
        builtins: ['pocketsphinx'],
        env: { KOTO_HOME: tmp.dir },
        config: { providers: { offline: { use: 'pocketsphinx', mode: 'fast' } } },
      }),
    ).rejects.toMatchObject({ code: 'KOTO_ERR_CONFIG_INVALID', message: expect.stringContaining('providers.offline.mode') });
  });
});
