/**
 * What `kernel.run()` / `kernel.transcribe()` reject with is scrubbed like the record it carries:
 * a plugin's error message that echoes a credential (an upstream that quotes the request, a tap
 * that prints its options) never reaches the caller, who may print it or log it.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { definePlugin, KotoError, z } from '../../src/index.ts';
import { tempHome, testKernel } from '../support/index.ts';

const home = tempHome();
afterAll(() => home.cleanup());

const KEY = 'sk-thrown-secret-canary-8841';
const wav = { data: new Uint8Array(44), filename: 'a.wav' };

const echoing = definePlugin({
  name: 'echoing-asr',
  capabilities: ['asr'],
  provider: z.object({ apiKey: z.string() }),
  apply(api) {
    api.hooks.asr
      .for('echoing-asr')
      .tapPromise('echoing-asr', async (request) => ({ text: `heard with ${String(request.provider.options.apiKey).length} chars` }));
    // A transform that fails with the credential in its message, as a careless plugin would.
    api.hooks.transcript.tapPromise('echoing-asr', async () => {
      throw new Error(`transform failed for key ${KEY}`);
    });
  },
});

const config = {
  providers: { echo: { use: 'echoing-asr', apiKey: KEY } },
  asr: { provider: 'echo' },
  correction: { enabled: false },
  output: [],
};

describe('errors thrown to the caller', () => {
  it('run(): the rejection and its record are scrubbed; the code is kept', async () => {
    const { kernel } = await testKernel(config, { plugins: [echoing], env: { KOTO_HOME: home.dir } });
    try {
      const err = (await kernel.run(wav).catch((e: unknown) => e)) as KotoError & { record?: { error?: { message: string } } };
      expect(KotoError.is(err)).toBe(true);
      expect(err.code).toBe('KOTO_ERR_HOOK_FAILED');
      expect(err.message).toContain('transform failed for key');
      expect(`${err.message} ${err.fix} ${err.stack}`).not.toContain(KEY);
      expect(err.record?.error?.message).toContain('transform failed for key');
      expect(JSON.stringify(err.record)).not.toContain(KEY);
    } finally {
      await kernel.close();
    }
  });

  it('transcribe(): the rejection is scrubbed', async () => {
    const { kernel } = await testKernel(config, { plugins: [echoing], env: { KOTO_HOME: home.dir } });
    try {
      const err = (await kernel.transcribe(wav).catch((e: unknown) => e)) as KotoError;
      expect(err.message).toContain('transform failed for key');
      expect(`${err.message} ${err.fix} ${err.stack}`).not.toContain(KEY);
    } finally {
      await kernel.close();
    }
  });
});
