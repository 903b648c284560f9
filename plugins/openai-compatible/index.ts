import { definePlugin, KOTO_VERSION } from 'koto-voice';
import { defaultProviders, providerSchema, type ProviderOptions } from './options.ts';
import { correctionOptionsSchema } from './correction.ts';
import { asrProvider, correctionProvider } from './providers.ts';
import { installRealtime, openaiRealtimePlan } from './realtime-plugin.ts';
import { registerSecrets, targetResolver, type OpenAiApi } from './target.ts';
import { prewarmSession } from './wire.ts';

const NAME = 'openai-compatible';

declare module 'koto-voice' {
  interface ProviderOptionsRegistry {
    'openai-compatible': ProviderOptions;
  }
}

function apply(api: OpenAiApi): void {
  for (const ref of api.instances()) registerSecrets(api, ref.options);
  api.hooks.configChanged.tap(NAME, ({ config }) => {
    for (const ref of api.instances(config)) registerSecrets(api, ref.options);
  });

  const targetFor = targetResolver(api);

  // Pre-warm: open the connection to every origin this session will use while the user speaks.
  api.hooks.sessionStart.tap(NAME, (session) =>
    prewarmSession(session, NAME, api.http, (ref) => {
      const own = api.ownInstance(ref);
      if (!own) throw new Error(`provider "${ref.name}" is not an ${NAME} instance`);
      return targetFor(own, session);
    }),
  );

  // Live recordings of instances with `realtime` on stream while the user speaks (realtime-plugin.ts).
  const realtime = installRealtime(api, { name: NAME, plan: openaiRealtimePlan(api.http, targetFor) });

  api.provide.asr(asrProvider(api, targetFor, realtime));
  api.provide.correction(correctionProvider(api, targetFor));
}

/**
 * OpenAI and every server that speaks its REST API (vLLM, llama.cpp, LocalAI, Groq, …):
 * transcription over `/audio/transcriptions` and correction over `/chat/completions` or
 * `/responses`, streaming where the model allows, all through the kernel's shared HTTP/2 client.
 */
export default definePlugin({
  name: NAME,
  version: KOTO_VERSION,
  capabilities: ['asr', 'correction'],
  provider: providerSchema,
  // The OpenAI wire keys of the `correction` section (protocol, topP, maxTokensParam, reasoningEffort).
  correctionOptions: correctionOptionsSchema,
  defaultProviders,
  apply,
});
