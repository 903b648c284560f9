import { z } from 'koto-voice';
import {
  envUrlError,
  isInsecureRemote,
  MIN_MAX_UPLOAD_BYTES,
  realtimeSettingsSchema,
  urlProblem,
  type UrlRules,
} from 'koto-voice/openai-wire';

/** The GA data-plane version used when none is configured (deployments shape). */
export const DEFAULT_API_VERSION = '2024-10-21';
/** Where `resource: <name>` points unless `domain` says otherwise. */
export const DEFAULT_DOMAIN = 'openai.azure.com';
/** The audience of Azure OpenAI / Foundry data-plane tokens. */
export const DEFAULT_SCOPE = 'https://cognitiveservices.azure.com/.default';
/** Tokens are replaced this long before they expire (capped at half their lifetime). */
export const DEFAULT_REFRESH_MARGIN_MS = 5 * 60_000;
/** Azure OpenAI's limit on a transcription upload ("The file size limit for the Whisper model is 25 MB"). */
export const DEFAULT_MAX_UPLOAD_BYTES = 25 * 1024 * 1024;
/** Longest wait Koto accepts from a 429's retry-after before it gives up at once. */
export const DEFAULT_MAX_RETRY_WAIT_MS = 10_000;

/** `@azure/identity` credential classes the `credential` option can name. */
export const IDENTITY_CREDENTIALS = {
  default: 'DefaultAzureCredential',
  'azure-cli': 'AzureCliCredential',
  'azure-developer-cli': 'AzureDeveloperCliCredential',
  'azure-powershell': 'AzurePowerShellCredential',
  'managed-identity': 'ManagedIdentityCredential',
  'workload-identity': 'WorkloadIdentityCredential',
  environment: 'EnvironmentCredential',
} as const;
export type IdentityCredential = keyof typeof IDENTITY_CREDENTIALS;

const ENDPOINT_RULES: UrlRules = { schemes: ['https', 'http'], example: 'https://myres.openai.azure.com', credentialsGoTo: '`auth`' };
const REALTIME_ENDPOINT_RULES: UrlRules = {
  schemes: ['https', 'wss', 'http', 'ws'],
  example: 'wss://myres.openai.azure.com',
  credentialsGoTo: '`auth`',
};

/** A URL option checked by {@link urlProblem}: a clear issue for anything that is not a usable URL. */
function urlOption(rules: UrlRules) {
  return z
    .string()
    .trim()
    .superRefine((value, ctx) => {
      const problem = urlProblem(value, rules);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    });
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
// Azure custom subdomain names: 2–64 letters, digits and hyphens, no hyphen at either end.
const RESOURCE_NAME = /^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$/i;
const DOMAIN = /^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}$/i;

export const apiKeyAuthSchema = z.strictObject({
  type: z.literal('api-key'),
  /** Sent as the `api-key` header. */
  apiKey: z.string().min(1, 'must not be empty (is the environment variable set?)'),
});

export const entraAuthSchema = z
  .strictObject({
    type: z.literal('entra'),
    /** A fixed bearer token (e.g. `${AZURE_OPENAI_AD_TOKEN}`); it cannot be refreshed. */
    token: z.string().min(1).optional(),
    /** Name of an environment variable holding the token, read at every request. */
    env: z.string().regex(ENV_NAME, 'must be an environment variable name such as AZURE_OPENAI_AD_TOKEN').optional(),
    /**
     * A command printing a token: JSON (`accessToken`/`token`/`access_token` with
     * `expires_on`/`expiresOn`/`expires_in`, as `az account get-access-token -o json` and
     * `azd auth token -o json` print) or the bare token. A string runs in the shell; a list
     * runs without one.
     */
    command: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
    /** An `@azure/identity` credential (the package must be installed); the default source. */
    credential: z.enum(Object.keys(IDENTITY_CREDENTIALS) as [IdentityCredential, ...IdentityCredential[]]).optional(),
    /** Client id of a user-assigned managed identity / app registration (`@azure/identity`). */
    clientId: z.string().min(1).optional(),
    /** Tenant (`@azure/identity`). */
    tenantId: z.string().min(1).optional(),
    /** Token scope requested from `@azure/identity`. */
    scope: z.string().min(1).default(DEFAULT_SCOPE),
    refreshMarginMs: z.number().int().min(0).default(DEFAULT_REFRESH_MARGIN_MS),
    commandTimeoutMs: z.number().int().positive().default(30_000),
  })
  .superRefine((value, ctx) => {
    const sources = (['token', 'env', 'command', 'credential'] as const).filter((key) => value[key] !== undefined);
    if (sources.length > 1) {
      ctx.addIssue({
        code: 'custom',
        path: [sources[1]!],
        message: `give one token source, not ${sources.join(' and ')} (token | env | command | credential)`,
      });
    }
    if ((value.clientId !== undefined || value.tenantId !== undefined) && sources.length > 0 && sources[0] !== 'credential') {
      ctx.addIssue({ code: 'custom', path: ['clientId'], message: 'clientId / tenantId apply only to an @azure/identity credential' });
    }
  });

export const authSchema = z.discriminatedUnion('type', [apiKeyAuthSchema, entraAuthSchema], {
  error: 'must be { type: api-key, apiKey: ... } or { type: entra, command | env | token | credential: ... }',
});

export type ApiKeyAuth = z.output<typeof apiKeyAuthSchema>;
export type EntraAuth = z.output<typeof entraAuthSchema>;
export type AuthOptions = z.output<typeof authSchema>;

/**
 * Streaming transcription over Azure's v1 Realtime WebSocket while the user speaks (live
 * recordings only; files always use the upload): the openai-compatible settings, with the
 * deployment instead of a model and the resource (not a full socket URL) when it differs.
 */
export const realtimeSchema = realtimeSettingsSchema
  .omit({ model: true, url: true })
  .extend({
    /** Transcription deployment of the realtime session; default `deployments.asr`, else `asr.model`. */
    deployment: z.string().min(1).optional(),
    /**
     * Where the socket lives when it is not the instance's resource (a gateway): an https:// or
     * wss:// origin, optionally with a path prefix; `/openai/v1/realtime?intent=transcription` is added.
     */
    endpoint: urlOption(REALTIME_ENDPOINT_RULES).optional(),
    /** `api-version` on the socket URL; none by default (the v1 API takes none; `preview` opts in). */
    apiVersion: z
      .string()
      .regex(/^[A-Za-z0-9.-]+$/, 'must look like preview')
      .optional(),
  })
  .superRefine((value, ctx) => {
    if (value.endpoint === undefined || urlProblem(value.endpoint, REALTIME_ENDPOINT_RULES) !== undefined) return;
    if (isInsecureRemote(value.endpoint)) {
      ctx.addIssue({
        code: 'custom',
        path: ['endpoint'],
        message: 'must be https:// or wss:// (plain http/ws only for a loopback host): keys and audio travel in it',
      });
    }
  });

export const realtimeOptionSchema = z.union([z.boolean(), realtimeSchema]).default(false);
export type RealtimeSettings = z.output<typeof realtimeSchema>;

/** The settings of an instance's `realtime` option, or undefined when streaming is off. */
export function realtimeSettings(option: z.output<typeof realtimeOptionSchema> | undefined): RealtimeSettings | undefined {
  if (option === undefined || option === false) return undefined;
  const settings = option === true ? realtimeSchema.parse({}) : option;
  return settings.enabled ? settings : undefined;
}

export type ApiShape = 'deployments' | 'v1';

/**
 * One provider instance (`providers.<name>` with `use: azure-foundry`): an Azure OpenAI or
 * Azure AI Foundry resource, addressed by resource name or endpoint URL.
 */
export const providerSchema = z
  .strictObject({
    /** Resource name: `https://{resource}.{domain}`. */
    resource: z.string().regex(RESOURCE_NAME, 'must be an Azure resource name (letters, digits, hyphens), not a URL').optional(),
    /** Host suffix for `resource`: openai.azure.com, services.ai.azure.com, cognitiveservices.azure.com, … */
    domain: z.string().regex(DOMAIN, 'must be a host name suffix such as openai.azure.com').default(DEFAULT_DOMAIN),
    /**
     * The endpoint URL (`AZURE_OPENAI_ENDPOINT`): the resource origin, a Foundry project URL, a
     * gateway prefix, or a full "Target URI" copied from the portal (its path and api-version
     * are understood).
     */
    endpoint: urlOption(ENDPOINT_RULES).optional(),
    /** Data-plane version (`api-version`); default 2024-10-21 for deployments, none for v1. */
    apiVersion: z
      .string()
      .regex(/^[A-Za-z0-9.-]+$/, 'must look like 2024-10-21, 2025-04-01-preview or preview')
      .optional(),
    /** URL scheme; default from the endpoint path and apiVersion, else `deployments`. */
    apiShape: z.enum(['deployments', 'v1']).optional(),
    auth: authSchema,
    /** Deployment names per capability (the model of the v1 shape). */
    deployments: z.strictObject({ asr: z.string().min(1).optional(), correction: z.string().min(1).optional() }).default({}),
    /** Ask for SSE transcription: `auto` = gpt-4o(-mini)-transcribe deployments on v1 or a preview version. */
    streamAsr: z.union([z.literal('auto'), z.boolean()]).default('auto'),
    /** Send dictionary terms as `keywords` (`auto`: deployment names of models known to accept it). */
    keywords: z.union([z.literal('auto'), z.boolean()]).default('auto'),
    /** Longest retry-after (ms) a 429 may ask for and still get its one retry. */
    maxRetryWaitMs: z.number().int().min(0).max(60_000).default(DEFAULT_MAX_RETRY_WAIT_MS),
    /**
     * Largest transcription request (bytes, multipart framing included); default 25 MB, Azure's
     * limit. A longer recording is sent as FLAC (ffmpeg), else in parts cut at pauses.
     */
    maxUploadBytes: z.number().int().min(MIN_MAX_UPLOAD_BYTES).default(DEFAULT_MAX_UPLOAD_BYTES),
    /** Upload audio over the kernel's HTTP/1.1 client; default: the transport's `uploadsOverHttp1`. */
    uploadsOverHttp1: z.boolean().optional(),
    /** Stream live recordings to the v1 Realtime WebSocket (`true`: every default); see realtimeSchema. */
    realtime: realtimeOptionSchema,
  })
  .superRefine((value, ctx) => {
    if (value.resource === undefined && value.endpoint === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['endpoint'],
        message: 'set `endpoint` (e.g. https://myres.openai.azure.com, or ${AZURE_OPENAI_ENDPOINT}) or `resource` (the resource name)',
      });
    }
    if (value.resource !== undefined && value.endpoint !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['resource'], message: 'give `resource` or `endpoint`, not both' });
    }
    if (value.endpoint !== undefined && urlProblem(value.endpoint, ENDPOINT_RULES) === undefined && isInsecureRemote(value.endpoint)) {
      ctx.addIssue({
        code: 'custom',
        path: ['endpoint'],
        message: 'must be https (plain http only for a loopback host): keys and audio travel in it',
      });
    }
  });

export type ProviderOptions = z.output<typeof providerSchema>;

/**
 * The instance the official SDKs would build from the environment: `AZURE_OPENAI_ENDPOINT`
 * with `AZURE_OPENAI_API_KEY` (or, as the Python SDK does, `AZURE_OPENAI_AD_TOKEN`), and
 * `OPENAI_API_VERSION`.
 */
export function defaultProviders(env: NodeJS.ProcessEnv): Record<string, Record<string, unknown>> {
  const endpoint = env.AZURE_OPENAI_ENDPOINT?.trim();
  const apiKey = env.AZURE_OPENAI_API_KEY?.trim();
  const adToken = env.AZURE_OPENAI_AD_TOKEN?.trim();
  if (!endpoint || (!apiKey && !adToken)) return {};
  // No config file holds this value, so the error must name the variable, not providers.azure.endpoint.
  const fix =
    'correct AZURE_OPENAI_ENDPOINT: the "Endpoint" of the resource (Azure portal → the resource → Keys and Endpoint), e.g. export AZURE_OPENAI_ENDPOINT=https://myres.openai.azure.com';
  const problem = urlProblem(endpoint, ENDPOINT_RULES);
  if (problem) throw envUrlError('AZURE_OPENAI_ENDPOINT', problem, fix);
  if (isInsecureRemote(endpoint))
    throw envUrlError(
      'AZURE_OPENAI_ENDPOINT',
      'is plain http to a host that is not this machine: audio and the key would travel unencrypted',
      fix,
    );
  const apiVersion = env.OPENAI_API_VERSION?.trim();
  return {
    azure: {
      endpoint,
      ...(apiVersion ? { apiVersion } : {}),
      auth: apiKey ? { type: 'api-key', apiKey } : { type: 'entra', token: adToken },
    },
  };
}
