import type { WireOperation } from 'koto-voice/openai-wire';
import { KotoError, type ProviderRef } from 'koto-voice';
import type { Authenticator } from './auth.ts';
import { operationUrl, type ResolvedEndpoint } from './endpoint.ts';
import { azureError } from './errors.ts';
import type { ProviderOptions } from './options.ts';

export type Capability = 'asr' | 'correction';

export const WHAT: Record<Capability, string> = { asr: 'transcription', correction: 'correction' };

/** Upstream codes of Azure's content filter refusing a prompt (HTTP 400). */
const CONTENT_FILTER_CODES = new Set(['content_filter', 'contentfilter', 'responsibleaipolicyviolation']);

function resourceName(options: ProviderOptions, endpoint: ResolvedEndpoint): string {
  if (options.resource) return options.resource;
  const host = new URL(endpoint.origin).hostname;
  return /\.(azure\.com|azure\.us|azure\.cn)$/i.test(host) ? host.split('.')[0]! : '<resource-name>';
}

/** Errors with Azure's words: which deployment, which endpoint, which auth mode, what to do. */
export function explain(
  err: unknown,
  ref: ProviderRef<ProviderOptions>,
  ctx: {
    endpoint: ResolvedEndpoint;
    auth: Authenticator;
    operation: WireOperation;
    deployment: string | undefined;
    capability: Capability | undefined;
  },
): unknown {
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
        // Origin and path only: the query may carry a key.
        url: `${url.origin}${url.pathname}`,
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
}

export function isContentFilter(err: unknown): boolean {
  if (!KotoError.is(err) || err.details.status !== 400) return false;
  const code = typeof err.details.upstreamCode === 'string' ? err.details.upstreamCode.toLowerCase() : '';
  return CONTENT_FILTER_CODES.has(code) || /ResponsibleAIPolicyViolation|content management policy|content_filter/i.test(err.message);
}

export function formatWait(ms: number): string {
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
