import { definePlugin, KOTO_VERSION, type PluginApi } from 'koto-voice';
import { defaultProviders, providerSchema, type CorrectionOptions } from './options.ts';
import { correctBounded } from './run.ts';

const NAME = 'local-correction';

declare module 'koto-voice' {
  interface ProviderOptionsRegistry {
    'local-correction': CorrectionOptions;
  }
}

function apply(api: PluginApi<CorrectionOptions>): void {
  api.provide.correction({
    specificationVersion: 'v1',
    async correct(request) {
      if (!request.text.trim()) return { text: null };
      const options = request.provider.options;
      const text = await correctBounded({ text: request.text, dictionary: request.dictionary, options }, request.signal);
      return { text: text || null, model: 'local-rules' };
    },
  });
}

/**
 * Offline correction by rules: dictionary spelling and casing, filler removal, spoken
 * punctuation, sentence capitals and final punctuation. The default correction provider
 * (`local`) when no cloud key is configured; every rule is an option.
 */
export default definePlugin({
  name: NAME,
  version: KOTO_VERSION,
  capabilities: ['correction'],
  provider: providerSchema,
  defaultProviders,
  defaultPriority: 100,
  apply,
});
