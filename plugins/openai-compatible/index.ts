import { definePlugin, describeError, KOTO_VERSION, kotoError, type PluginApi, type ProviderRef, type SessionContext } from 'koto-voice';
import { transcriptionParams } from './asr.ts';
import { baseUrlBuilder, bearerHeaders, displayUrl, isLoopback, secretValues, send, type WireTarget } from './client.ts';
import { complete, completionParams } from './correction.ts';
import { defaultProviders, isStreamingAsrModel, providerSchema, sendsKeywords, type ProviderOptions } from './options.ts';
import { installRealtime, openaiRealtimePlan } from './realtime-plugin.ts';
import { describePlan, transcribeWithinLimit } from './upload.ts';
import { prewarmSession } from './wire.ts';

const NAME = 'openai-compatible';

function apply(api: PluginApi): void {
  const warnOnce = (key: string, message: string) => api.log.warnOnce(key, message);

  /** A failing interim listener (a UI) must not cost the dictation: report it once, go on. */
  const guarded = (label: string, listener: (text: string) => void) => (text: string) => {
    try {
      listener(text);
    } catch (err) {
      warnOnce(`listener:${label}`, `a ${label} listener threw (ignored; the dictation goes on): ${describeError(err)}`);
    }
  };

  const registerSecrets = (options: ProviderOptions): string[] => {
    const secrets = secretValues(options.apiKey, options.headers, options.query);
    for (const secret of secrets) api.registerSecret(secret);
    return secrets;
  };

  for (const ref of Object.values(api.config().resolved.providers)) {
    if (ref.use === NAME) registerSecrets(ref.options as ProviderOptions);
  }
  api.hooks.configChanged.tap(NAME, ({ config }) => {
    for (const ref of Object.values(config.resolved.providers)) {
      if (ref.use === NAME) registerSecrets(ref.options as ProviderOptions);
    }
  });

  /** The wire target of one provider instance, as the session's config sees it. */
  const targetFor = (ref: ProviderRef, session: SessionContext): WireTarget => {
    const options = ref.options as ProviderOptions;
    const base = new URL(options.baseUrl);
    if (base.protocol === 'http:' && !isLoopback(base)) {
      if (!options.allowInsecureHttp) throw kotoError('KOTO_ERR_INSECURE_ENDPOINT', { url: base.origin });
      api.http.allowInsecure(base.origin);
      warnOnce(
        `insecure:${base.origin}`,
        `provider "${ref.name}" uses plain http to ${base.origin} (allowInsecureHttp): audio, text and the API key travel unencrypted`,
      );
    }
    const secrets = registerSecrets(options);
    const transport = session.config.transport;
    // A provider may opt its uploads onto the kernel's HTTP/1.1 client (servers with small HTTP/2 windows).
    const uploadHttp = options.uploadsOverHttp1 === true ? api.http.http1 : options.uploadsOverHttp1 === false ? api.http : api.http.uploads;
    const url = baseUrlBuilder(options.baseUrl, options.query);
    return {
      provider: ref.name,
      http: api.http,
      uploadHttp,
      url,
      headers: () => bearerHeaders(options.apiKey, options.headers),
      secrets,
      timeouts: { headersMs: transport.headersTimeoutMs, bodyMs: transport.bodyTimeoutMs },
    };
  };

  // Pre-warm: open the connection to every origin this session will use while the user speaks.
  api.hooks.sessionStart.tap(NAME, (session) => prewarmSession(session, NAME, api.http, (ref) => targetFor(ref, session)));

  // Live recordings of instances with `realtime` on stream while the user speaks (realtime-plugin.ts).
  const realtime = installRealtime(api, { name: NAME, plan: openaiRealtimePlan(api.http, targetFor) });

  api.hooks.asr.for(NAME).tapPromise(NAME, async (request) => {
    // The streamed transcript when this recording was streamed; undefined (logged) → upload it.
    const streamed = await realtime.finish(request, guarded('transcription interim', request.onInterim));
    if (streamed) return streamed;
    const options = request.provider.options as ProviderOptions;
    const target = targetFor(request.provider, request.session);
    const model = request.model ?? options.asrModel;
    const params = transcriptionParams(request, {
      model,
      streaming: isStreamingAsrModel(options, model),
      keywords: sendsKeywords(options, model),
    });
    const ref = request.provider;
    const result = await transcribeWithinLimit(target, params, request.audio, { signal: request.signal, onInterim: guarded('transcription interim', request.onInterim) }, {
      maxBytes: options.maxUploadBytes,
      option: `providers.${ref.name}.maxUploadBytes`,
      onPlan: (plan) => {
        if (plan.how !== 'whole') api.log.info(`provider "${ref.name}": ${describePlan(plan, options.maxUploadBytes)}`);
      },
    });
    const warnings = result.how === 'split' ? [`the recording was over provider "${ref.name}"'s upload limit: transcribed in ${result.parts} parts cut at pauses`] : undefined;
    return { text: result.text, model: result.model, language: result.language, durationSec: result.durationSec, warnings, usage: result.usage };
  });

  api.hooks.correction.for(NAME).tapPromise(NAME, async (request) => {
    const options = request.provider.options as ProviderOptions;
    const target = targetFor(request.provider, request.session);
    const model = request.model ?? options.correctionModel;
    const result = await complete(target, completionParams(request, model), {
      signal: request.signal,
      onDelta: guarded('correction delta', request.onDelta),
    });
    if (result.text === null) api.log.info(`provider "${request.provider.name}" gave no usable correction (${result.reason ?? 'empty'})`);
    return { text: result.text, model: result.model, reason: result.reason, usage: result.usage };
  });

  // `koto doctor`: an authenticated GET /models proves the URL, the TLS chain and the key in one request.
  api.hooks.probe.for(NAME).tapPromise(NAME, async ({ provider, signal }) => {
    const target = targetFor(provider, { config: api.config() } as SessionContext);
    const res = await send(target, { operation: 'models', model: undefined, method: 'GET', signal, what: 'the check' });
    await res.body.dump();
    return { ok: true, detail: `${displayUrl(res.url)} answered ${res.status}: reachable, credentials accepted` };
  });
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
  defaultProviders,
  apply,
});
