import { definePlugin, KOTO_VERSION, type PluginApi } from 'koto-voice';
import { decoderPool } from './decoder-pool.ts';
import { chooseEngine, NAME, resolveModel } from './engine.ts';
import { POCKETSPHINX_ERRORS } from './error-codes.ts';
import { defaultProviders, providerSchema, type ProviderOptions } from './options.ts';
import { asrProvider, libraryArgs } from './provider.ts';

declare module 'koto-voice' {
  interface ProviderOptionsRegistry {
    pocketsphinx: ProviderOptions;
  }
}

function apply(api: PluginApi<ProviderOptions>): void {
  const { decoderFor, close } = decoderPool(api.log);
  const once = new Set<string>();
  const infoOnce = (key: string, message: string) => {
    if (once.has(key)) return;
    once.add(key);
    api.log.info(message);
  };

  api.hooks.sessionStart.tap(NAME, (session) => {
    // Pre-warm: start loading the model while the session sets up; never awaited here.
    const ref = api.ownInstance(session.providers.asr);
    if (!ref) return;
    const options = ref.options;
    if (options.engine === 'cli') return;
    try {
      const model = resolveModel(options);
      void chooseEngine(options)
        .then((engine) =>
          engine.kind === 'library' ? decoderFor(options.library, libraryArgs(model, options)).then((d) => d.warm()) : undefined,
        )
        .catch(() => undefined);
    } catch {
      // The asr call reports it.
    }
  });

  api.provide.asr(asrProvider(api, { decoderFor }, infoOnce));

  api.hooks.close.tapPromise(NAME, close);
}

/**
 * Offline speech recognition with CMU pocketsphinx 0.8 and its US English model: the default
 * ASR provider (`offline`) when no cloud key is configured. No network, no account.
 */
export default definePlugin({
  name: NAME,
  version: KOTO_VERSION,
  capabilities: ['asr'],
  provider: providerSchema,
  errors: POCKETSPHINX_ERRORS,
  defaultProviders,
  defaultPriority: 100,
  apply,
});
