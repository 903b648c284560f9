import { kotoError, type PluginApi, type ProviderRef, type SessionContext } from 'koto-voice';
import { baseUrlBuilder, bearerHeaders, isLoopback, secretValues, type WireTarget } from './client.ts';
import type { ProviderOptions } from './options.ts';

export type OpenAiApi = PluginApi<ProviderOptions>;

/** Registers an instance's key, headers and query values as secrets; returns them. */
export function registerSecrets(api: OpenAiApi, options: ProviderOptions): string[] {
  const secrets = secretValues(options.apiKey, options.headers, options.query);
  for (const secret of secrets) api.registerSecret(secret);
  return secrets;
}

/** The wire target of one provider instance, as the session's config sees it. */
export function targetResolver(api: OpenAiApi): (ref: ProviderRef<ProviderOptions>, session: Pick<SessionContext, 'config'>) => WireTarget {
  return (ref, session) => {
    const options = ref.options;
    const base = new URL(options.baseUrl);
    if (base.protocol === 'http:' && !isLoopback(base)) {
      if (!options.allowInsecureHttp) throw kotoError('KOTO_ERR_INSECURE_ENDPOINT', { url: base.origin });
      api.http.allowInsecure(base.origin);
      api.log.warnOnce(
        `insecure:${base.origin}`,
        `provider "${ref.name}" uses plain http to ${base.origin} (allowInsecureHttp): audio, text and the API key travel unencrypted`,
      );
    }
    const secrets = registerSecrets(api, options);
    const transport = session.config.transport;
    // A provider may opt its uploads onto the kernel's HTTP/1.1 client (servers with small HTTP/2 windows).
    const uploadHttp =
      options.uploadsOverHttp1 === true ? api.http.http1 : options.uploadsOverHttp1 === false ? api.http : api.http.uploads;
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
}
