/**
 * Where an instance's requests go: the endpoint (from `resource` or `endpoint`), the URL shape
 * and the api-version. Pure functions, no I/O.
 *
 * Shapes (the paths below the resource origin, or below a gateway prefix):
 *
 * - `deployments`: `/openai/deployments/{deployment}/audio/transcriptions?api-version=…`,
 *   `/openai/deployments/{deployment}/chat/completions?api-version=…`; the Responses API is
 *   `/openai/responses?api-version=…` and the model list `/openai/models?api-version=…`.
 * - `v1`: `/openai/v1/audio/transcriptions`, `/openai/v1/chat/completions`, … with the
 *   deployment name as `model`; `api-version` only when one is configured (`preview`).
 *
 * Both shapes are served by `*.openai.azure.com`, Azure AI Foundry's `*.services.ai.azure.com`
 * and `*.cognitiveservices.azure.com` alike; any other https origin (a gateway, a sovereign
 * cloud, a loopback test server) works when given as `endpoint`.
 */

import { isStreamingAsrModel, type WireOperation } from 'koto-voice/openai-wire';
import { DEFAULT_API_VERSION, type ApiShape, type ProviderOptions } from './options.ts';

/** Versions that mean "the v1 API" rather than a dated deployments version. */
const V1_VERSIONS = new Set(['v1', 'preview', 'latest']);

/** What an `endpoint` URL says, beyond its origin. */
export interface ParsedEndpoint {
  /** `https://host[:port]`. */
  readonly origin: string;
  /** Path before `/openai` (a gateway's prefix), without a trailing slash; usually empty. */
  readonly prefix: string;
  /** The shape the path implies (`/openai/v1…`, `/openai/deployments/…`). */
  readonly shape: ApiShape | undefined;
  /** `api-version` found in the URL's query. */
  readonly apiVersion: string | undefined;
  /** A deployment named in the path of a pasted Target URI, and which capability it serves. */
  readonly deployment: { readonly name: string; readonly capability: 'asr' | 'correction' | undefined } | undefined;
}

/**
 * Understands what users paste as an endpoint: a resource origin, `…/openai`, `…/openai/v1`,
 * a full Target URI (`…/openai/deployments/gpt-4o-mini/chat/completions?api-version=…`), a
 * Foundry project endpoint (`…/api/projects/{project}`) or a gateway URL with a path prefix.
 */
export function parseEndpoint(endpoint: string): ParsedEndpoint {
  const url = new URL(endpoint);
  const path = url.pathname.replace(/\/+$/, '');
  const apiVersion = url.searchParams.get('api-version') ?? undefined;
  const openai = /^(.*?)\/openai(?:\/(.*))?$/.exec(path);
  if (openai) {
    const rest = openai[2] ?? '';
    const prefix = openai[1] ?? '';
    if (rest === 'v1' || rest.startsWith('v1/')) return { origin: url.origin, prefix, shape: 'v1', apiVersion, deployment: undefined };
    const dep = /^deployments\/([^/]+)(\/.*)?$/.exec(rest);
    if (dep) {
      const operation = dep[2] ?? '';
      const capability = operation.startsWith('/audio/') ? 'asr' : operation.startsWith('/chat/') ? 'correction' : undefined;
      return {
        origin: url.origin,
        prefix,
        shape: 'deployments',
        apiVersion,
        deployment: { name: decodeURIComponent(dep[1] ?? ''), capability },
      };
    }
    return {
      origin: url.origin,
      prefix,
      shape: rest.startsWith('deployments') ? 'deployments' : undefined,
      apiVersion,
      deployment: undefined,
    };
  }
  // A Foundry project endpoint: the OpenAI routes live at the resource's root.
  const project = /^(.*?)\/api\/projects(?:\/.*)?$/.exec(path);
  if (project) return { origin: url.origin, prefix: project[1] ?? '', shape: undefined, apiVersion, deployment: undefined };
  // Foundry's model-inference endpoint (`…/models`) shares the resource with the OpenAI routes.
  const models = /^(.*?)\/models$/.exec(path);
  if (models) return { origin: url.origin, prefix: models[1] ?? '', shape: undefined, apiVersion, deployment: undefined };
  return { origin: url.origin, prefix: path, shape: undefined, apiVersion, deployment: undefined };
}

/** Everything the URL builder needs, resolved once per instance. */
export interface ResolvedEndpoint {
  readonly origin: string;
  readonly prefix: string;
  readonly shape: ApiShape;
  /** Sent as `api-version` (always for deployments; for v1 only when configured). */
  readonly apiVersion: string | undefined;
  /** Deployment per capability (config, else the one named in a pasted Target URI). */
  readonly deployments: { readonly asr: string | undefined; readonly correction: string | undefined };
  /** `https://host/prefix`: shown in messages. */
  readonly display: string;
}

const cache = new WeakMap<object, ResolvedEndpoint>();

/** The endpoint of an instance (memoised per frozen options object). */
export function resolveEndpoint(
  options: Pick<ProviderOptions, 'resource' | 'domain' | 'endpoint' | 'apiVersion' | 'apiShape' | 'deployments'>,
): ResolvedEndpoint {
  const cached = cache.get(options);
  if (cached) return cached;
  const parsed = options.endpoint ? parseEndpoint(options.endpoint) : parseEndpoint(`https://${options.resource ?? ''}.${options.domain}`);
  const configuredVersion = options.apiVersion ?? parsed.apiVersion;
  const shape: ApiShape =
    options.apiShape ?? parsed.shape ?? (configuredVersion !== undefined && V1_VERSIONS.has(configuredVersion) ? 'v1' : 'deployments');
  let apiVersion: string | undefined;
  if (shape === 'deployments') {
    apiVersion = configuredVersion === undefined || V1_VERSIONS.has(configuredVersion) ? DEFAULT_API_VERSION : configuredVersion;
  } else {
    // The v1 API takes no dated version: only `preview` / `latest` (opt-in preview features).
    apiVersion =
      configuredVersion === undefined || configuredVersion === 'v1' || !V1_VERSIONS.has(configuredVersion) ? undefined : configuredVersion;
  }
  const fromUrl = parsed.deployment;
  const resolved: ResolvedEndpoint = {
    origin: parsed.origin,
    prefix: parsed.prefix,
    shape,
    apiVersion,
    deployments: {
      asr: options.deployments.asr ?? (fromUrl?.capability === 'asr' ? fromUrl.name : undefined),
      correction: options.deployments.correction ?? (fromUrl?.capability === 'correction' ? fromUrl.name : undefined),
    },
    display: `${parsed.origin}${parsed.prefix}`,
  };
  cache.set(options, Object.freeze(resolved));
  return resolved;
}

/** Whether a dated v1-incompatible version was configured for the v1 shape (it is dropped; worth a warning). */
export function droppedApiVersion(
  options: Pick<ProviderOptions, 'endpoint' | 'apiVersion'>,
  endpoint: ResolvedEndpoint,
): string | undefined {
  const configured = options.apiVersion ?? (options.endpoint ? parseEndpoint(options.endpoint).apiVersion : undefined);
  if (endpoint.shape !== 'v1' || configured === undefined || V1_VERSIONS.has(configured)) return undefined;
  return configured;
}

const OPERATION: Readonly<Record<WireOperation, string>> = Object.freeze({
  transcriptions: '/audio/transcriptions',
  chat: '/chat/completions',
  responses: '/responses',
  models: '/models',
});

/**
 * The absolute URL of an operation. Deployments shape: the deployment is in the path for
 * transcription and chat; the Responses API and the model list sit beside the deployments
 * (the deployment travels as `model` in the body, as on v1).
 */
export function operationUrl(endpoint: ResolvedEndpoint, operation: WireOperation, deployment: string | undefined): URL {
  let path: string;
  if (endpoint.shape === 'v1') {
    path = `${endpoint.prefix}/openai/v1${OPERATION[operation]}`;
  } else if (operation === 'transcriptions' || operation === 'chat') {
    if (!deployment) throw new Error(`no deployment for ${operation}`);
    path = `${endpoint.prefix}/openai/deployments/${encodeURIComponent(deployment)}${OPERATION[operation]}`;
  } else {
    path = `${endpoint.prefix}/openai${OPERATION[operation]}`;
  }
  const url = new URL(path, endpoint.origin);
  if (endpoint.apiVersion !== undefined) url.searchParams.set('api-version', endpoint.apiVersion);
  return url;
}

/**
 * Whether to ask a transcription deployment for SSE. Deployment names are the user's choice, so
 * `auto` trusts a name that is a streaming model's, and only where Azure streams transcriptions:
 * the v1 API and preview versions.
 */
export function streamsTranscription(setting: 'auto' | boolean, endpoint: ResolvedEndpoint, deployment: string): boolean {
  if (setting !== 'auto') return setting;
  // The OpenAI plugin's list of streaming models (gpt-4o(-mini)-transcribe; never whisper).
  if (!isStreamingAsrModel({ streamingAsrModels: undefined }, deployment.toLowerCase())) return false;
  return endpoint.shape === 'v1' || /preview$/i.test(endpoint.apiVersion ?? '');
}
