import { describeError, STAGE, type KotoConfig, type OutgoingRequest, type PluginApi, type ProviderRef } from 'koto-voice';
import { Authenticator, identityLoader, TokenCache, tokenSource } from './auth.ts';
import type { ResolvedEndpoint } from './endpoint.ts';
import { realtimeSettings, type ProviderOptions } from './options.ts';
import { realtimeOrigin } from './realtime.ts';

/**
 * Marks a request of an Azure instance for the `request` hook: its value is the id of the
 * instance's credentials (never a secret). The tap replaces it with the `api-key` or
 * `Authorization` header and never lets it reach the network.
 */
export const AUTH_MARKER = 'x-koto-azure-auth';

/**
 * The instances' credentials: their secrets registered (now and on reload), token caches kept
 * across sessions, and the `request` tap that puts them on marked requests.
 */
export function installCredentials(api: PluginApi<ProviderOptions>): {
  authFor: (ref: ProviderRef<ProviderOptions>, endpoint: ResolvedEndpoint) => Authenticator;
} {
  const NAME = api.name;
  const warnOnce = (key: string, message: string) => api.log.warnOnce(key, message);

  // Credentials by id (what the marker header carries) and by what they are made of, so a
  // token cache survives sessions and reloads that leave an instance's auth unchanged.
  const byId = new Map<string, Authenticator>();
  const byConfig = new Map<string, Authenticator>();
  let nextId = 0;
  // Not from the working directory: an untrusted project could plant its own @azure/identity there.
  const loadIdentity = identityLoader(() => [api.config().resolved.dir].filter((d): d is string => typeof d === 'string'));

  const authFor = (ref: ProviderRef<ProviderOptions>, endpoint: ResolvedEndpoint): Authenticator => {
    const options = ref.options;
    // A `realtime.endpoint` elsewhere (a gateway) is the one other origin the credentials may go to.
    const realtime = realtimeSettings(options.realtime);
    const extraOrigin = realtime?.endpoint ? realtimeOrigin(endpoint, realtime).origin : undefined;
    const extraOrigins = extraOrigin && extraOrigin !== endpoint.origin ? [extraOrigin] : [];
    const key = JSON.stringify([ref.name, endpoint.origin, extraOrigins, options.auth]);
    const known = byConfig.get(key);
    if (known) return known;
    const id = `${ref.name}#${++nextId}`;
    let cache: TokenCache | undefined;
    const holder: { auth?: Authenticator } = {};
    if (options.auth.type === 'entra') {
      const source = tokenSource(options.auth, { provider: ref.name, loadIdentity, env: process.env });
      cache = new TokenCache(source, {
        refreshMarginMs: options.auth.refreshMarginMs,
        onToken: (token) => {
          api.registerSecret(token);
          holder.auth?.addToken(token);
          api.log.debug(`provider "${ref.name}": new Entra ID token from ${source.description}`);
        },
        onStaleUse: (err) =>
          warnOnce(
            `stale:${id}`,
            `provider "${ref.name}": refreshing the Entra ID token failed (${describeError(err)}); using the current one until it expires`,
          ),
      });
    }
    const auth = new Authenticator(id, ref.name, endpoint.origin, options.auth, cache, extraOrigins);
    holder.auth = auth;
    for (const secret of auth.secrets) api.registerSecret(secret);
    byConfig.set(key, auth);
    byId.set(id, auth);
    return auth;
  };

  // A token command still running at shutdown must not outlive the kernel.
  api.hooks.close.tapPromise(NAME, async () => {
    for (const auth of byId.values()) auth.cache?.source.close?.();
  });

  const registerSecrets = (config: KotoConfig) => {
    for (const ref of api.instances(config)) {
      const auth = ref.options.auth;
      if (auth.type === 'api-key') api.registerSecret(auth.apiKey);
      else if (auth.token) api.registerSecret(auth.token);
    }
  };
  registerSecrets(api.config());
  api.hooks.configChanged.tap(NAME, ({ config }) => registerSecrets(config));

  // Credentials go on through the kernel's per-request hook, for marked requests only, and only
  // to the origin the instance is configured for: a marker never carries a key elsewhere.
  api.hooks.request.tapPromise({ name: NAME, stage: STAGE.DEFAULT }, async (request: OutgoingRequest) => {
    const id = request.headers[AUTH_MARKER];
    if (id === undefined) return request;
    const { [AUTH_MARKER]: _marker, ...headers } = request.headers;
    const auth = byId.get(id);
    if (!auth || !auth.allows(request.origin)) {
      api.log.debug(`request to ${request.origin} carried Azure credentials id "${id}" of another origin; sent without credentials`);
      return { ...request, headers };
    }
    return { ...request, headers: { ...headers, ...(await auth.headers()) } };
  });

  return { authFor };
}
