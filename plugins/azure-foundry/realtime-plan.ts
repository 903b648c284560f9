import type { PluginApi, ProviderRef, SessionContext } from 'koto-voice';
import { realtimeSendsKeywords, transcriptionSessionUpdate, type RealtimePlan, type RealtimeTarget } from 'koto-voice/openai-wire';
import type { AzureCalls } from './calls.ts';
import { AUTH_MARKER } from './credentials.ts';
import { realtimeSettings, type ProviderOptions } from './options.ts';
import { realtimeSocketUrl } from './realtime.ts';

/** The realtime plan of an instance in a live session: its socket URL, session update and credentials. */
export function realtimePlan(api: PluginApi<ProviderOptions>, { targetFor, deploymentFor }: AzureCalls) {
  return (ref: ProviderRef<ProviderOptions>, session: SessionContext): RealtimePlan | undefined => {
    const options = ref.options;
    const settings = realtimeSettings(options.realtime);
    if (!settings) return undefined;
    const config = session.config;
    const { endpoint, auth } = targetFor(ref, config);
    const deployment = settings.deployment ?? deploymentFor(ref, 'asr', config.asr.model);
    const update = transcriptionSessionUpdate({
      model: deployment,
      language: config.asr.language,
      prompt: config.asr.prompt,
      dictionary: config.resolved.dictionary,
      keywords: realtimeSendsKeywords(options.keywords, deployment),
      turnDetection: settings.turnDetection,
      noiseReduction: settings.noiseReduction,
    });
    const target: RealtimeTarget = {
      provider: ref.name,
      http: api.http,
      url: realtimeSocketUrl(endpoint, settings),
      // The token is fetched here, within the session's signal; the request hook then finds it cached.
      headers: async () => {
        await auth.prepare(session.signal);
        return { [AUTH_MARKER]: auth.id };
      },
      get secrets() {
        return auth.secrets;
      },
    };
    return { target, update, settings };
  };
}
