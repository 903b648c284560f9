import {
  definePlugin,
  describeError,
  KOTO_VERSION,
  KotoError,
  STAGE,
  type KotoConfig,
  type OutgoingRequest,
  type ProbeRequest,
  type ProbeResult,
  type PluginApi,
  type ProviderRef,
} from 'koto-voice';
import {
  complete,
  completionParams,
  describePlan,
  displayUrl,
  installRealtime,
  prewarmSession,
  realtimeSendsKeywords,
  send,
  sendsKeywords,
  transcribeWithinLimit,
  transcriptionParams,
  transcriptionSessionUpdate,
  type RealtimeTarget,
  type WireOperation,
  type WireTarget,
} from 'koto-voice/openai-wire';
import { Authenticator, identityLoader, TokenCache, tokenSource } from './auth.ts';
import { droppedApiVersion, operationUrl, resolveEndpoint, streamsTranscription, type ResolvedEndpoint } from './endpoint.ts';
import { azureError } from './errors.ts';
import { defaultProviders, providerSchema, realtimeSettings, type ProviderOptions } from './options.ts';
import { isRateLimit, noteResponses, responseNotes, type ResponseNotes } from './rate-limit.ts';
import { realtimeOrigin, realtimeSocketUrl } from './realtime.ts';

const NAME = 'azure-foundry';

/**
 * Marks a request of an Azure instance for the `request` hook: its value is the id of the
 * instance's credentials (never a secret). The tap replaces it with the `api-key` or
 * `Authorization` header and never lets it reach the network.
 */
export const AUTH_MARKER = 'x-koto-azure-auth';

type Capability = 'asr' | 'correction';

const WHAT: Record<Capability, string> = { asr: 'transcription', correction: 'correction' };

/** Upstream codes of Azure's content filter refusing a prompt (HTTP 400). */
const CONTENT_FILTER_CODES = new Set(['content_filter', 'contentfilter', 'responsibleaipolicyviolation']);

function resourceName(options: ProviderOptions, endpoint: ResolvedEndpoint): string {
  if (options.resource) return options.resource;
  const host = new URL(endpoint.origin).hostname;
  return /\.(azure\.com|azure\.us|azure\.cn)$/i.test(host) ? host.split('.')[0]! : '<resource-name>';
}

type AzureApi = PluginApi<ProviderOptions>;
type AzureRef = ProviderRef<ProviderOptions>;

declare module 'koto-voice' {
  interface ProviderOptionsRegistry {
    'azure-foundry': ProviderOptions;
  }
}

function apply(api: AzureApi): void {
  const warnOnce = (key: string, message: string) => api.log.warnOnce(key, message);

  // Credentials by id (what the marker header carries) and by what they are made of, so a
  // token cache survives sessions and reloads that leave an instance's auth unchanged.
  const byId = new Map<string, Authenticator>();
  const byConfig = new Map<string, Authenticator>();
  let nextId = 0;
  // Not from the working directory: an untrusted project could plant its own @azure/identity there.
  const loadIdentity = identityLoader(() => [api.config().resolved.dir].filter((d): d is string => typeof d === 'string'));

  const authFor = (ref: AzureRef, endpoint: ResolvedEndpoint): Authenticator => {
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
          warnOnce(`stale:${id}`, `provider "${ref.name}": refreshing the Entra ID token failed (${describeError(err)}); using the current one until it expires`),
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

  /** One instance's wire target, as a config snapshot sees it; `notes` observes the answers. */
  const targetFor = (ref: AzureRef, config: KotoConfig, notes?: ResponseNotes): { target: WireTarget; endpoint: ResolvedEndpoint; auth: Authenticator } => {
    const options = ref.options;
    const endpoint = resolveEndpoint(options);
    const dropped = droppedApiVersion(options, endpoint);
    if (dropped) {
      warnOnce(`v1-version:${ref.name}:${dropped}`, `provider "${ref.name}": the v1 API takes no dated api-version; "${dropped}" is not sent (use apiShape: deployments to send it)`);
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

  /** Errors with Azure's words: which deployment, which endpoint, which auth mode, what to do. */
  const explain = (
    err: unknown,
    ref: AzureRef,
    ctx: { endpoint: ResolvedEndpoint; auth: Authenticator; operation: WireOperation; deployment: string | undefined; capability: Capability | undefined },
  ): unknown => {
    if (!KotoError.is(err)) return err;
    const options = ref.options;
    const { endpoint, auth } = ctx;
    const status = err.details.status;
    const upstream = typeof err.details.upstreamCode === 'string' ? err.details.upstreamCode : undefined;
    const base = { provider: ref.name, status, retryable: false, ...(upstream ? { upstreamCode: upstream } : {}) };
    const notFound = upstream === 'DeploymentNotFound' || upstream === 'model_not_found';
    if ((status === 404 || status === 400) && notFound && ctx.deployment) {
      return azureError(
        'deployment-not-found',
        {
          provider: ref.name,
          deployment: ctx.deployment,
          endpoint: endpoint.display,
          capability: ctx.capability ?? 'correction',
          what: ctx.capability ? WHAT[ctx.capability] : 'the check',
          resource: resourceName(options, endpoint),
        },
        { secrets: auth.secrets, cause: err, details: { ...base, deployment: ctx.deployment } },
      );
    }
    if (status === 404 && err.code === 'KOTO_ERR_ENDPOINT_NOT_FOUND') {
      const url = operationUrl(endpoint, ctx.operation, ctx.deployment);
      return azureError(
        'resource-not-found',
        {
          provider: ref.name,
          url: displayUrl(url),
          endpoint: endpoint.display,
          shape: endpoint.shape,
          version: endpoint.apiVersion ? `, api-version ${endpoint.apiVersion}` : '',
        },
        { secrets: auth.secrets, cause: err, details: base },
      );
    }
    if (err.code === 'KOTO_ERR_AUTH' && (status === 401 || status === 403)) {
      auth.invalidate();
      return azureError(
        'auth-rejected',
        {
          provider: ref.name,
          status,
          mode: auth.mode,
          upstream: upstream && !/^\d+$/.test(upstream) ? ` ${upstream}` : '',
          advice: authAdvice(ref.name, options, endpoint, auth, status as number, upstream),
        },
        { secrets: auth.secrets, cause: err, details: { ...base, authMode: auth.auth.type } },
      );
    }
    return err;
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
          { provider: ref.name, deployment: ctx.deployment, attempts: '', retry: waitMs === undefined ? '' : `; Azure asks to wait ${formatWait(waitMs)}` },
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
    plan: (ref, session) => {
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
    },
  });

  api.provide.asr({ specificationVersion: 'v1', transcribe: async (request) => {
    const ref = request.provider;
    const onInterim = (text: string) => {
      try {
        request.onInterim(text);
      } catch (err) {
        warnOnce('listener:asr', `a transcription interim listener threw (ignored; the dictation goes on): ${describeError(err)}`);
      }
    };
    // The streamed transcript when this recording was streamed; undefined (logged) → upload it.
    const streamed = await realtime.finish(request, onInterim);
    if (streamed) return streamed;
    const options = ref.options;
    const deployment = deploymentFor(ref, 'asr', request.model);
    const endpoint = resolveEndpoint(options);
    const params = transcriptionParams(request, {
      model: deployment,
      streaming: streamsTranscription(options.streamAsr, endpoint, deployment),
      keywords: sendsKeywords({ keywords: options.keywords }, deployment),
    });
    const result = await call(ref, request.session.config, { operation: 'transcriptions', deployment, capability: 'asr', signal: request.signal }, (target) =>
      transcribeWithinLimit(target, params, request.audio, { signal: request.signal, onInterim }, {
        maxBytes: options.maxUploadBytes,
        option: `providers.${ref.name}.maxUploadBytes`,
        onPlan: (plan) => {
          if (plan.how !== 'whole') api.log.info(`provider "${ref.name}": ${describePlan(plan, options.maxUploadBytes)}`);
        },
      }),
    );
    const warnings = result.how === 'split' ? [`the recording was over provider "${ref.name}"'s upload limit: transcribed in ${result.parts} parts cut at pauses`] : undefined;
    return { text: result.text, model: deployment, language: result.language, durationSec: result.durationSec, warnings, usage: result.usage };
  }, probe });

  api.provide.correction({ specificationVersion: 'v1', correct: async (request) => {
    const ref = request.provider;
    const deployment = deploymentFor(ref, 'correction', request.model);
    const params = completionParams(request, deployment);
    const operation: WireOperation = params.protocol === 'chat' ? 'chat' : 'responses';
    const onDelta = (text: string) => {
      try {
        request.onDelta(text);
      } catch (err) {
        warnOnce('listener:correction', `a correction delta listener threw (ignored; the dictation goes on): ${describeError(err)}`);
      }
    };
    const filtered = () => {
      api.log.warn(
        `provider "${ref.name}": Azure's content filter blocked the correction by deployment "${deployment}" (ResponsibleAIPolicyViolation); the raw transcript is delivered uncorrected`,
      );
      return { text: null, model: deployment, reason: 'content filter' };
    };
    let result;
    try {
      result = await call(ref, request.session.config, { operation, deployment, capability: 'correction', signal: request.signal }, (target) =>
        complete(target, params, { signal: request.signal, onDelta }),
      );
    } catch (err) {
      if (isContentFilter(err)) return filtered();
      throw err;
    }
    if (result.text === null) {
      if (result.reason === 'content_filter') return filtered();
      api.log.info(`provider "${ref.name}" gave no usable correction (${result.reason ?? 'empty'})`);
    }
    return { text: result.text, model: deployment, reason: result.reason, usage: result.usage };
  } });

  // `koto doctor`: an authenticated GET of the model list (`/openai/models?api-version=…`, or
  // `/openai/v1/models`) proves the URL shape, the api-version, the TLS chain and the
  // credentials in one request. Deployments are checked by name on first use, with a clear error.
  async function probe({ provider, signal }: ProbeRequest<ProviderOptions>): Promise<ProbeResult> {
    const { target, endpoint, auth } = targetFor(provider, api.config());
    const summary = `${endpoint.shape} API${endpoint.apiVersion ? ` ${endpoint.apiVersion}` : ''}, auth: ${auth.mode}`;
    let status: number;
    try {
      const res = await send(target, { operation: 'models', model: undefined, method: 'GET', signal, what: 'the check' });
      await res.body.dump();
      status = res.status;
    } catch (err) {
      throw explain(err, provider, { endpoint, auth, operation: 'models', deployment: undefined, capability: undefined });
    }
    const deployments = Object.entries(endpoint.deployments)
      .filter(([, name]) => name !== undefined)
      .map(([capability, name]) => `${capability}=${name}`)
      .join(', ');
    return {
      ok: true,
      detail: `${endpoint.display} answered ${status} (${summary}): reachable, credentials accepted${deployments ? `; deployments ${deployments} are checked on first use` : ''}`,
    };
  }
}

function isContentFilter(err: unknown): boolean {
  if (!KotoError.is(err) || err.details.status !== 400) return false;
  const code = typeof err.details.upstreamCode === 'string' ? err.details.upstreamCode.toLowerCase() : '';
  return CONTENT_FILTER_CODES.has(code) || /ResponsibleAIPolicyViolation|content management policy|content_filter/i.test(err.message);
}

function formatWait(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Math.round(ms / 100) / 10} s`;
}

/** What to check when Azure refuses the credentials, by auth mode and status. */
function authAdvice(
  provider: string,
  options: ProviderOptions,
  endpoint: ResolvedEndpoint,
  auth: Authenticator,
  status: number,
  upstream: string | undefined,
): string {
  const resource = resourceName(options, endpoint);
  if (auth.auth.type === 'api-key') {
    if (status === 403) {
      return (
        `the resource ${endpoint.display} refuses key access from here: check its Networking settings (firewall, private endpoints) ` +
        'and that key authentication is not disabled (disableLocalAuth); otherwise use auth: { type: entra }'
      );
    }
    return (
      `providers.${provider}.auth.apiKey (often \${AZURE_OPENAI_API_KEY}) must be KEY 1 or KEY 2 of this very resource (${endpoint.display}): ` +
      `Azure portal → the resource → Keys and Endpoint, or \`az cognitiveservices account keys list -g <resource-group> -n ${resource}\`; ` +
      'a key of another resource, or an endpoint of another region, is refused'
    );
  }
  if (status === 403 || upstream === 'PermissionDenied') {
    return (
      'the token is valid but its principal may not use this resource: assign it the "Cognitive Services OpenAI User" role ' +
      `(\`az role assignment create --role "Cognitive Services OpenAI User" --assignee <principal> --scope <resource id of ${resource}>\`); role changes take a few minutes`
    );
  }
  const audience = auth.auth.type === 'entra' ? auth.auth.scope.replace(/\/\.default$/, '') : 'https://cognitiveservices.azure.com';
  return (
    `the token must be a current Microsoft Entra ID token for ${audience} (check the token source: ${auth.mode}; ` +
    '`az account get-access-token --resource https://cognitiveservices.azure.com` in the right tenant), and the resource must have a custom subdomain endpoint'
  );
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
  defaultProviders,
  defaultPriority: 60,
  apply,
});
