import { definePlugin, KOTO_VERSION, type PluginApi } from 'koto-voice';
import { correctionOptionsSchema, installRealtime, prewarmSession } from 'koto-voice/openai-wire';
import { azureCalls } from './calls.ts';
import { installCredentials } from './credentials.ts';
import { AZURE_FOUNDRY_ERRORS } from './error-codes.ts';
import { defaultProviders, providerSchema, type ProviderOptions } from './options.ts';
import { asrProvider, correctionProvider } from './providers.ts';
import { realtimePlan } from './realtime-plan.ts';

export { AUTH_MARKER } from './credentials.ts';

const NAME = 'azure-foundry';

declare module 'koto-voice' {
  interface ProviderOptionsRegistry {
    'azure-foundry': ProviderOptions;
  }
}

function apply(api: PluginApi<ProviderOptions>): void {
  const { authFor } = installCredentials(api);
  const calls = azureCalls(api, authFor);
  const { targetFor } = calls;

  // Pre-warm: open the connection (and fetch the Entra token) while the user speaks.
  api.hooks.sessionStart.tap(NAME, (session) =>
    prewarmSession(session, NAME, api.http, (ref) => {
      const own = api.ownInstance(ref);
      if (!own) throw new Error(`provider "${ref.name}" is not an ${NAME} instance`);
      return targetFor(own, session.config).target;
    }),
  );

  // Live recordings of instances with `realtime` on stream to the v1 Realtime socket while the
  // user speaks (realtime.ts); its handshake is authenticated by the request hook above.
  const realtime = installRealtime(api, {
    name: NAME,
    plan: realtimePlan(api, calls),
  });

  api.provide.asr(asrProvider(api, calls, realtime));
  api.provide.correction(correctionProvider(api, calls));
}

/**
 * Azure OpenAI and Azure AI Foundry (`*.openai.azure.com`, `*.services.ai.azure.com`,
 * `*.cognitiveservices.azure.com`, or any https endpoint in front of them): transcription and
 * correction over the deployments or v1 API, with an API key or Microsoft Entra ID tokens.
 * The OpenAI wire format is the openai-compatible plugin's public `koto-voice/openai-wire`;
 * this plugin only builds URLs and credentials.
 */
export default definePlugin({
  name: NAME,
  version: KOTO_VERSION,
  capabilities: ['asr', 'correction'],
  provider: providerSchema,
  errors: AZURE_FOUNDRY_ERRORS,
  // The same OpenAI wire keys of the `correction` section as openai-compatible (one shared schema).
  correctionOptions: correctionOptionsSchema,
  defaultProviders,
  defaultPriority: 60,
  apply,
});
