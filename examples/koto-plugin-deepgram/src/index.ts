/**
 * koto-plugin-deepgram: a Koto ASR provider for Deepgram-style pre-recorded transcription.
 *
 * Wire format: `POST {baseUrl}/v1/listen?model=…&smart_format=true&language=…` with the raw
 * audio as the body (`Content-Type` = the audio's MIME type) and `Authorization: Token <key>`;
 * the answer is JSON (`results.channels[0].alternatives[0].transcript`).
 *
 * Everything goes through the kernel's public plugin API: requests through `api.http` (never a
 * client of its own), errors from the catalogue, the key registered as a secret, options
 * validated by the kernel before `apply` runs.
 */
import { definePlugin, describeError, KotoError, type AsrProviderV1, type KotoConfig, type PluginApi, type ProviderRef } from 'koto-voice';
import { NAME, pluginOptionsSchema, providerSchema, VERSION, type PluginOptions, type ProviderOptions } from './options.ts';
import { authHeaders, call, listenUrl, projectsUrl, transcriptOf, type CallContext } from './wire.ts';

export type { PluginOptions, ProviderOptions } from './options.ts';

// Types `request.provider.options` for this plugin everywhere (`ProviderOptionsOf<'koto-plugin-deepgram'>`),
// and makes definePlugin check that `providerSchema` produces exactly this.
declare module 'koto-voice' {
  interface ProviderOptionsRegistry {
    'koto-plugin-deepgram': ProviderOptions;
  }
}

function apply(api: PluginApi<ProviderOptions>, options: Readonly<PluginOptions>): void {
  // The key is scrubbed from every log line and CLI message, now and after each reload.
  // `api.instances(config)`: this plugin's instances, their options typed by providerSchema.
  const registerSecrets = (config: KotoConfig) => {
    for (const ref of api.instances(config)) api.registerSecret(ref.options.apiKey);
  };
  registerSecrets(api.config());
  api.hooks.configChanged.tap(NAME, ({ config }) => registerSecrets(config));

  const context = (ref: ProviderRef<ProviderOptions>, config: KotoConfig, what: string): CallContext => ({
    provider: ref.name,
    secrets: [ref.options.apiKey],
    what,
    headersTimeoutMs: config.transport.headersTimeoutMs,
  });

  // While the user speaks: open (or refresh) the HTTP/2 connection, so the upload starts at once.
  api.hooks.sessionStart.tap(NAME, (session) => {
    const ref = api.ownInstance(session.providers.asr);
    if (!options.prewarm || !ref) return;
    const instance = ref.options;
    const url = projectsUrl(instance);
    // Fired, never awaited; a failed pre-warm is logged by the kernel and never fails the session.
    void api.http.prewarm(url.origin, url.pathname, authHeaders(instance));
  });

  // The provider, against the versioned contract (V1): the kernel checks `specificationVersion`
  // when it is registered and adapts it to its `asr` hook.
  const provider: AsrProviderV1<ProviderOptions> = {
    specificationVersion: 'v1',
    transcribe: async (request) => {
      const instance = request.provider.options;
      const model = request.model ?? instance.model;
      const url = listenUrl(instance, { model, language: request.language, dictionary: request.dictionary });
      // Large recordings may go over the kernel's HTTP/1.1 upload client (transport.uploadsOverHttp1).
      const client = request.audio.data.byteLength > options.uploadThresholdBytes ? api.http.uploads : api.http;
      const ctx = context(request.provider, request.session.config, 'the Deepgram transcription');
      const json = await call(
        client,
        url,
        {
          method: 'POST',
          headers: { ...authHeaders(instance), 'content-type': request.audio.mimeType || 'application/octet-stream' },
          body: request.audio.data,
          signal: request.signal,
        },
        ctx,
      );
      const transcript = transcriptOf(json, ctx);
      return { text: transcript.text, model, language: transcript.language ?? request.language, durationSec: transcript.durationSec };
    },
    // `koto doctor`: reachable, and the key accepted?
    probe: async ({ provider, signal }) => {
      const instance = provider.options;
      const url = projectsUrl(instance);
      try {
        await call(
          api.http,
          url,
          { method: 'GET', headers: authHeaders(instance), signal },
          context(provider, api.config(), 'the Deepgram check'),
        );
        return { ok: true, detail: `${url.origin} accepted the key (GET ${url.pathname})` };
      } catch (err) {
        return { ok: false, detail: KotoError.is(err) ? `${err.message}. Fix: ${err.fix}` : describeError(err) };
      }
    },
  };
  api.provide.asr(provider);
}

export default definePlugin({
  name: NAME,
  version: VERSION,
  // The koto-voice versions this plugin is written for: the kernel refuses it outside this range.
  koto: '^0.1.0',
  capabilities: ['asr'],
  provider: providerSchema,
  options: pluginOptionsSchema,
  // With no `providers` in the config, DEEPGRAM_API_KEY alone makes a `deepgram` instance.
  defaultProviders: (env) => (env.DEEPGRAM_API_KEY ? { deepgram: { apiKey: env.DEEPGRAM_API_KEY } } : {}),
  // After OpenAI's default (50): a configured OPENAI_API_KEY still wins.
  defaultPriority: 60,
  apply,
});
