import { KotoError, scrubSecrets, type ErrorCode, type PluginErrorCode } from 'koto-voice';
import { DEPLOYMENT_NOT_FOUND, TOKEN } from './error-codes.ts';

/**
 * The Azure error cases: each a catalogue code or one of the plugin's own, with a message and a
 * fix that speak Azure (the generic templates talk about `baseUrl` and `apiKey`, which an Azure
 * instance does not have). `details.reason` names the case.
 */
export const AZURE_ERRORS = {
  'deployment-not-found': { code: 'AZURE_FOUNDRY_ERR_DEPLOYMENT_NOT_FOUND', ...DEPLOYMENT_NOT_FOUND },
  'no-deployment': {
    code: 'KOTO_ERR_CONFIG_INVALID',
    message: 'provider "{provider}" has no deployment for {what}',
    fix: 'set providers.{provider}.deployments.{capability} to a deployment name of {endpoint} (or {section}.model)',
  },
  'resource-not-found': {
    code: 'KOTO_ERR_ENDPOINT_NOT_FOUND',
    message: 'provider "{provider}": {url} answered 404 Resource not found ({shape} API{version})',
    fix:
      'the URL shape or api-version does not exist on {endpoint}: check `endpoint` (the resource URL, e.g. https://myres.openai.azure.com), ' +
      '`apiShape` (deployments | v1) and `apiVersion` (deployments need a dated one such as 2024-10-21; v1 needs none)',
  },
  'auth-rejected': {
    code: 'KOTO_ERR_AUTH',
    message: 'provider "{provider}" rejected the credentials (HTTP {status}{upstream}); auth used: {mode}',
    fix: '{advice}',
  },
  'token-failed': { code: 'AZURE_FOUNDRY_ERR_TOKEN', ...TOKEN },
  'rate-limited': {
    code: 'KOTO_ERR_RATE_LIMITED',
    message: 'provider "{provider}" is rate limiting deployment "{deployment}" (HTTP 429{attempts}){retry}',
    fix:
      "the deployment's tokens- or requests-per-minute quota is used up: wait and retry, or raise its rate limit " +
      '(Azure AI Foundry → Deployments → Edit; more quota: https://aka.ms/oai/quotaincrease)',
  },
} as const satisfies Record<string, { code: ErrorCode | PluginErrorCode; message: string; fix: string }>;

export type AzureErrorReason = keyof typeof AZURE_ERRORS;

const fill = (template: string, params: Record<string, unknown>) =>
  template.replace(/\{(\w+)\}/g, (_, key: string) => (params[key] === undefined ? '' : String(params[key])));

export interface AzureErrorOptions {
  readonly details?: Record<string, unknown> | undefined;
  readonly cause?: unknown;
  /** Values to scrub from the message and fix (keys, tokens). */
  readonly secrets?: readonly string[] | undefined;
}

/** A catalogue KotoError for one of the Azure cases, with an Azure message and fix. */
export function azureError(reason: AzureErrorReason, params: Record<string, unknown>, options: AzureErrorOptions = {}): KotoError {
  const spec = AZURE_ERRORS[reason];
  const safe: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(params))
    safe[key] = typeof value === 'string' ? scrubSecrets(value, options.secrets ?? []) : value;
  return new KotoError(spec.code, {
    params: safe,
    details: { ...options.details, reason },
    message: scrubSecrets(fill(spec.message, safe), options.secrets ?? []),
    fix: scrubSecrets(fill(spec.fix, safe), options.secrets ?? []),
    ...(options.cause === undefined ? {} : { cause: options.cause }),
  });
}
