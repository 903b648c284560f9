import { type KotoConfig, type PluginApi, type ProviderRef } from 'koto-voice';
import type { WireOperation, WireTarget } from 'koto-voice/openai-wire';
import type { Authenticator } from './auth.ts';
import { AUTH_MARKER } from './credentials.ts';
import { droppedApiVersion, operationUrl, resolveEndpoint, type ResolvedEndpoint } from './endpoint.ts';
import { azureError } from './errors.ts';
import { explain, formatWait, WHAT, type Capability } from './explain.ts';
import type { ProviderOptions } from './options.ts';
import { isRateLimit, noteResponses, responseNotes, type ResponseNotes } from './rate-limit.ts';

type AzureRef = ProviderRef<ProviderOptions>;

/** How one Azure instance is called: its wire target, a call with Azure's error wording, its deployments. */
export interface AzureCalls {
  targetFor(
    ref: AzureRef,
    config: KotoConfig,
    notes?: ResponseNotes,
  ): { target: WireTarget; endpoint: ResolvedEndpoint; auth: Authenticator };
  call<T>(
    ref: AzureRef,
    config: KotoConfig,
    ctx: { operation: WireOperation; deployment: string; capability: Capability; signal: AbortSignal },
    run: (target: WireTarget) => Promise<T>,
  ): Promise<T>;
  deploymentFor(ref: AzureRef, capability: Capability, requested: string | undefined): string;
}

export function azureCalls(
  api: PluginApi<ProviderOptions>,
  authFor: (ref: AzureRef, endpoint: ResolvedEndpoint) => Authenticator,
): AzureCalls {
  const warnOnce = (key: string, message: string) => api.log.warnOnce(key, message);

  /** One instance's wire target, as a config snapshot sees it; `notes` observes the answers. */
  const targetFor = (
    ref: AzureRef,
    config: KotoConfig,
    notes?: ResponseNotes,
  ): { target: WireTarget; endpoint: ResolvedEndpoint; auth: Authenticator } => {
    const options = ref.options;
    const endpoint = resolveEndpoint(options);
    const dropped = droppedApiVersion(options, endpoint);
    if (dropped) {
      warnOnce(
        `v1-version:${ref.name}:${dropped}`,
        `provider "${ref.name}": the v1 API takes no dated api-version; "${dropped}" is not sent (use apiShape: deployments to send it)`,
      );
    }
    const auth = authFor(ref, endpoint);
    const observe = (client: PluginApi['http']) => (notes ? client.compose(noteResponses(notes)) : client);
    const uploads = options.uploadsOverHttp1 === true ? api.http.http1 : options.uploadsOverHttp1 === false ? api.http : api.http.uploads;
    const transport = config.transport;
    const target: WireTarget = {
      provider: ref.name,
      http: observe(api.http),
      uploadHttp: observe(uploads),
      url: (operation, deployment) => operationUrl(endpoint, operation, deployment),
      headers: () => ({ [AUTH_MARKER]: auth.id }),
      get secrets() {
        return auth.secrets;
      },
      timeouts: { headersMs: transport.headersTimeoutMs, bodyMs: transport.bodyTimeoutMs },
    };
    return { target, endpoint, auth };
  };

  /**
   * One call with the Azure error wording. A 429 says how long Azure asks to wait (precisely,
   * from `retry-after-ms`) in `details.retryAfter`; the kernel's retry waits it out within the
   * stage's deadline, like every provider's. A wait past `maxRetryWaitMs` is not retryable.
   */
  const call = async <T>(
    ref: AzureRef,
    config: KotoConfig,
    ctx: { operation: WireOperation; deployment: string; capability: Capability; signal: AbortSignal },
    run: (target: WireTarget) => Promise<T>,
  ): Promise<T> => {
    const options = ref.options;
    const notes = responseNotes();
    let endpoint: ResolvedEndpoint | undefined;
    let auth: Authenticator | undefined;
    try {
      const built = targetFor(ref, config, notes);
      endpoint = built.endpoint;
      auth = built.auth;
      // The token is fetched here, within the request's signal; the hook then finds it cached.
      await built.auth.prepare(ctx.signal);
      return await run(built.target);
    } catch (err) {
      if (isRateLimit(err)) {
        const waitMs = notes.retryAfterMs ?? (typeof err.details.retryAfter === 'number' ? err.details.retryAfter * 1000 : undefined);
        throw azureError(
          'rate-limited',
          {
            provider: ref.name,
            deployment: ctx.deployment,
            attempts: '',
            retry: waitMs === undefined ? '' : `; Azure asks to wait ${formatWait(waitMs)}`,
          },
          {
            cause: err,
            secrets: auth?.secrets,
            details: {
              provider: ref.name,
              status: 429,
              deployment: ctx.deployment,
              retryable: waitMs === undefined || waitMs <= options.maxRetryWaitMs,
              ...(waitMs === undefined ? {} : { retryAfter: waitMs / 1000 }),
            },
          },
        );
      }
      if (!endpoint || !auth) throw err;
      throw explain(err, ref, { endpoint, auth, operation: ctx.operation, deployment: ctx.deployment, capability: ctx.capability });
    }
  };

  const deploymentFor = (ref: AzureRef, capability: Capability, requested: string | undefined): string => {
    const options = ref.options;
    const endpoint = resolveEndpoint(options);
    const deployment = endpoint.deployments[capability] ?? requested;
    if (!deployment) {
      throw azureError('no-deployment', {
        provider: ref.name,
        what: WHAT[capability],
        capability,
        section: capability,
        endpoint: endpoint.display,
      });
    }
    return deployment;
  };

  return { targetFor, call, deploymentFor };
}
