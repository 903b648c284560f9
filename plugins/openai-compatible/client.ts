import type { Dispatcher } from 'undici';
import {
  describeError,
  isLoopbackHost,
  isSecretName,
  KOTO_VERSION,
  KotoError,
  kotoError,
  scrubSecrets,
  type ProviderUsage,
} from 'koto-voice';

/** The REST operations this plugin performs. */
export type WireOperation = 'transcriptions' | 'chat' | 'responses' | 'models';

/** Paths of the operations below an OpenAI-style base URL (`…/v1`). */
export const OPERATION_PATHS: Readonly<Record<WireOperation, string>> = Object.freeze({
  transcriptions: '/audio/transcriptions',
  chat: '/chat/completions',
  responses: '/responses',
  models: '/models',
});

/** Sent with every request, pre-warms included. */
export const USER_AGENT = `koto-voice/${KOTO_VERSION}`;

/** Largest response body buffered in memory (JSON answers, error bodies, whole SSE streams). */
export const MAX_RESPONSE_BYTES = 10 * 1024 * 1024;
const MAX_ERROR_BODY_BYTES = 64 * 1024;

/**
 * Where and how to reach one OpenAI-wire endpoint. The OpenAI plugin builds it from a provider
 * instance; another plugin (Azure) swaps the URL builder and the headers function and reuses
 * every wire function unchanged.
 */
export interface WireTarget {
  /** Provider instance name: every error names it. */
  readonly provider: string;
  /** The kernel's shared client (`api.http`). */
  readonly http: Dispatcher;
  /** Client for the audio upload (`api.http.uploads` for HTTP/1.1 uploads); defaults to `http`. */
  readonly uploadHttp?: Dispatcher | undefined;
  /** Absolute URL of an operation (query included), for a model (Azure puts deployments in the path). */
  url(operation: WireOperation, model: string | undefined): URL;
  /** Auth and extra headers for an operation; may be async (token refresh). */
  headers(operation: WireOperation): Record<string, string> | Promise<Record<string, string>>;
  /** Values scrubbed from anything that ends up in an error (keys, tokens). */
  readonly secrets?: readonly string[] | undefined;
  /** The transport's timeouts, so timeout errors can say how long was waited. */
  readonly timeouts?: { readonly headersMs: number; readonly bodyMs: number } | undefined;
  /** Cap on buffered response bytes (default {@link MAX_RESPONSE_BYTES}). */
  readonly maxResponseBytes?: number | undefined;
}

/** `base` + `path`, with the base's own query kept and `query` added. */
export function joinUrl(base: string, path: string, query: Readonly<Record<string, string>> = {}): URL {
  const url = new URL(base);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}${path}`;
  url.hash = '';
  for (const [key, value] of Object.entries(query)) url.searchParams.set(key, value);
  return url;
}

/** The OpenAI URL scheme: `{baseUrl}{operation path}?{query}`; the model travels in the body. */
export function baseUrlBuilder(baseUrl: string, query: Readonly<Record<string, string>> = {}): WireTarget['url'] {
  return (operation) => joinUrl(baseUrl, OPERATION_PATHS[operation], query);
}

/** `Authorization: Bearer <key>` (when there is a key) plus the instance's extra headers. */
export function bearerHeaders(apiKey: string | undefined, extra: Readonly<Record<string, string>> = {}): Record<string, string> {
  return { ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}), ...lowerCaseKeys(extra) };
}

/** The credential values of an instance: the key, secret-looking headers and query parameters. */
export function secretValues(
  apiKey: string | undefined,
  headers: Readonly<Record<string, string>> = {},
  query: Readonly<Record<string, string>> = {},
): string[] {
  const out = new Set<string>();
  if (apiKey) out.add(apiKey);
  for (const [name, value] of [...Object.entries(headers), ...Object.entries(query)]) {
    if (isSecretName(name) && value.length >= 4) {
      out.add(value);
      const bearer = /^(?:bearer|basic)\s+(.+)$/i.exec(value)?.[1];
      if (bearer && bearer.length >= 4) out.add(bearer);
    }
  }
  return [...out];
}

/** Origin + path, no query (which may carry a key) and no credentials: safe to show. */
export function displayUrl(url: URL): string {
  return `${url.origin}${url.pathname}`;
}

export function isLoopback(url: URL): boolean {
  return isLoopbackHost(url.hostname);
}

/** Replaces every secret (and its URL-encoded form), and anything shaped like a credential, in a string. */
export function scrub(text: string, secrets: readonly string[] | undefined): string {
  return scrubSecrets(text, secrets ?? []);
}

export interface SendOptions {
  readonly operation: WireOperation;
  readonly model: string | undefined;
  readonly method: 'GET' | 'POST';
  readonly body?: Buffer | string | undefined;
  readonly contentType?: string | undefined;
  readonly accept?: string | undefined;
  readonly signal: AbortSignal;
  /** Send through the upload client. */
  readonly upload?: boolean | undefined;
  /** What the request is for, in timeout/abort messages (`transcription`, `correction`). */
  readonly what: string;
}

export interface SentResponse {
  readonly url: URL;
  readonly status: number;
  readonly contentType: string;
  readonly body: Dispatcher.ResponseData['body'];
}

/**
 * Sends one request through the shared client. Resolves for a 2xx answer (the body unread);
 * throws the catalogue error for anything else: HTTP errors, network failures, timeouts.
 */
export async function send(target: WireTarget, options: SendOptions): Promise<SentResponse> {
  const url = target.url(options.operation, options.model);
  if (options.signal.aborted) throw abortError(options.signal, options.what);
  const extra = lowerCaseKeys(await target.headers(options.operation));
  const headers: Record<string, string> = {
    'user-agent': USER_AGENT,
    accept: options.accept ?? 'application/json',
    ...extra,
  };
  if (options.contentType) headers['content-type'] = options.contentType;
  const dispatcher = options.upload ? (target.uploadHttp ?? target.http) : target.http;
  let res: Dispatcher.ResponseData;
  try {
    res = await dispatcher.request({
      origin: url.origin,
      path: `${url.pathname}${url.search}`,
      method: options.method,
      headers,
      body: options.body ?? null,
      signal: options.signal,
    });
  } catch (err) {
    throw transportError(target, url, err, options.signal, options.what);
  }
  const contentType = headerValue(res.headers['content-type']).toLowerCase();
  if (res.statusCode < 200 || res.statusCode >= 300) {
    throw await httpError(target, url, res.statusCode, res.headers, res.body, options.signal, options.what);
  }
  return { url, status: res.statusCode, contentType, body: res.body };
}

function lowerCaseKeys(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(headers)) out[key.toLowerCase()] = value;
  return out;
}

function headerValue(value: string | string[] | undefined): string {
  return Array.isArray(value) ? (value[0] ?? '') : (value ?? '');
}

/** Reads a whole body, refusing more than `limit` bytes. */
export async function readBody(
  target: WireTarget,
  response: Pick<SentResponse, 'url' | 'body'>,
  signal: AbortSignal,
  what: string,
  limit = target.maxResponseBytes ?? MAX_RESPONSE_BYTES,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of response.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limit) {
        response.body.destroy();
        throw badResponse(target, `the response is larger than ${formatBytes(limit)}`);
      }
      chunks.push(chunk);
    }
  } catch (err) {
    throw transportError(target, response.url, err, signal, what, 'response');
  }
  return Buffer.concat(chunks);
}

function formatBytes(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${Math.round(bytes / (1024 * 1024))} MB` : `${Math.round(bytes / 1024)} KB`;
}

/** Parses a JSON body; invalid or truncated JSON is a `KOTO_ERR_BAD_RESPONSE`. */
export function parseJson(target: WireTarget, text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    const detail =
      text.trim() === '' ? 'an empty body where JSON was expected' : `invalid or truncated JSON (${Buffer.byteLength(text)} bytes)`;
    throw badResponse(target, detail);
  }
}

export function badResponse(target: WireTarget, detail: string, retryable = false): KotoError {
  return kotoError(
    'KOTO_ERR_BAD_RESPONSE',
    { provider: target.provider, detail: scrub(detail, target.secrets) },
    { details: { provider: target.provider, retryable }, fix: OPENAI_WIRE_FIX },
  );
}

/** The OpenAI-wire wording of the kernel's provider-neutral fixes. */
const OPENAI_WIRE_FIX = 'check that `baseUrl` points at an OpenAI-compatible API';
const NOT_FOUND_FIX = 'check `baseUrl` (it usually ends in /v1) and the model name';

/**
 * The `usage` object of an answer, whichever API sent it: transcriptions (`type: tokens` with
 * `input_tokens`/`output_tokens`, or `type: duration` with `seconds`), chat completions
 * (`prompt_tokens`/`completion_tokens`), responses (`input_tokens`/`output_tokens`).
 */
export function usageOf(value: unknown): ProviderUsage | undefined {
  if (!isRecord(value)) return undefined;
  const count = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined);
  const inputTokens = count(value.input_tokens) ?? count(value.prompt_tokens);
  const outputTokens = count(value.output_tokens) ?? count(value.completion_tokens);
  const audioSeconds = value.type === 'duration' ? count(value.seconds) : undefined;
  if (inputTokens === undefined && outputTokens === undefined && audioSeconds === undefined) return undefined;
  return {
    ...(inputTokens !== undefined ? { inputTokens } : {}),
    ...(outputTokens !== undefined ? { outputTokens } : {}),
    ...(audioSeconds !== undefined ? { audioSeconds } : {}),
  };
}

/** Usage of several calls (the parts of a split upload) as one; a field unknown in one part is unknown. */
export function sumUsage(parts: readonly (ProviderUsage | undefined)[]): ProviderUsage | undefined {
  if (parts.length === 0 || parts.some((u) => u === undefined)) return undefined;
  const sum = (key: keyof ProviderUsage) =>
    parts.every((u) => u?.[key] !== undefined) ? parts.reduce((n, u) => n + (u?.[key] ?? 0), 0) : undefined;
  const out = { inputTokens: sum('inputTokens'), outputTokens: sum('outputTokens'), audioSeconds: sum('audioSeconds') };
  return Object.fromEntries(Object.entries(out).filter(([, v]) => v !== undefined)) as ProviderUsage;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The upstream's error message from an OpenAI `ErrorResponse` (or a lookalike), scrubbed. */
export function upstreamMessage(target: WireTarget, body: unknown): { message: string | undefined; code: string | undefined } {
  let message: unknown;
  let code: unknown;
  if (isRecord(body)) {
    const error = body.error;
    if (isRecord(error)) {
      message = error.message;
      code = error.code ?? error.type;
    } else if (typeof error === 'string') {
      message = error;
    } else {
      message = body.message ?? body.detail;
    }
  } else if (typeof body === 'string') {
    message = body;
  }
  const text = typeof message === 'string' ? oneLine(message) : undefined;
  return {
    message: text ? scrub(text, target.secrets) : undefined,
    code: typeof code === 'string' ? scrub(code, target.secrets) : undefined,
  };
}

function oneLine(text: string, max = 500): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** Seconds to wait from a Retry-After header (delta-seconds or an HTTP date). */
export function retryAfterSeconds(value: string | undefined): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Number(trimmed);
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

const RETRYABLE_STATUS = new Set([408, 409, 425, 429]);

/** Maps a non-2xx answer to the catalogue. Consumes (a bounded part of) the body. */
export async function httpError(
  target: WireTarget,
  url: URL,
  status: number,
  headers: Record<string, string | string[] | undefined>,
  body: Dispatcher.ResponseData['body'],
  signal: AbortSignal,
  what: string,
): Promise<KotoError> {
  let raw = '';
  try {
    raw = (await readBody(target, { url, body }, signal, what, MAX_ERROR_BODY_BYTES)).toString('utf8');
  } catch {
    body.destroy();
  }
  let parsed: unknown = raw;
  try {
    parsed = JSON.parse(raw) as unknown;
  } catch {
    // Not JSON: a proxy's HTML page or plain text; use it as the message.
  }
  const { message, code } = upstreamMessage(target, parsed);
  const provider = target.provider;
  const retryable = status >= 500 || RETRYABLE_STATUS.has(status);
  const details: Record<string, unknown> = { provider, status, retryable };
  if (code) details.upstreamCode = code;
  if (status === 401 || status === 403) {
    return kotoError('KOTO_ERR_AUTH', { provider, status }, { details });
  }
  if (status === 404) {
    return kotoError(
      'KOTO_ERR_ENDPOINT_NOT_FOUND',
      { provider, url: scrub(displayUrl(url), target.secrets) },
      { details, fix: NOT_FOUND_FIX },
    );
  }
  if (status === 429) {
    const retryAfter = retryAfterSeconds(headerValue(headers['retry-after']));
    if (retryAfter !== undefined) details.retryAfter = retryAfter;
    return kotoError(
      'KOTO_ERR_RATE_LIMITED',
      { provider, retry: retryAfter === undefined ? (message ? `: ${message}` : '') : `; retry after ${retryAfter} s` },
      { details },
    );
  }
  if (status >= 500) {
    return kotoError('KOTO_ERR_UPSTREAM', { provider, status, detail: message ? `: ${message}` : '' }, { details });
  }
  if (status >= 300 && status < 400) {
    return kotoError(
      'KOTO_ERR_BAD_RESPONSE',
      { provider, detail: `an unexpected redirect (HTTP ${status}) from ${displayUrl(url)}` },
      { details, fix: OPENAI_WIRE_FIX },
    );
  }
  if (status === 408) {
    return kotoError('KOTO_ERR_UPSTREAM', { provider, status, detail: message ? `: ${message}` : '' }, { details });
  }
  return kotoError('KOTO_ERR_BAD_REQUEST', { provider, status, detail: message ?? `HTTP ${status} without a message` }, { details });
}

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

function errorCode(err: unknown): string | undefined {
  if (err instanceof AggregateError && err.errors.length > 0) return errorCode(err.errors[0]);
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function abortError(signal: AbortSignal, what: string): KotoError {
  return kotoError('KOTO_ERR_ABORTED', { what }, { cause: signal.reason, details: { retryable: false } });
}

/**
 * Maps a failure of the exchange itself: catalogue errors (the kernel's redirect / insecure
 * refusals) pass through; a fired signal becomes KOTO_ERR_ABORTED (the kernel turns its own
 * deadline into KOTO_ERR_TIMEOUT); undici timeouts become KOTO_ERR_TIMEOUT; the rest
 * (refused, unresolvable, TLS, reset) is KOTO_ERR_NETWORK naming the origin.
 */
export function transportError(
  target: WireTarget,
  url: URL,
  err: unknown,
  signal: AbortSignal,
  what: string,
  phase: 'request' | 'response' = 'request',
): KotoError {
  if (KotoError.is(err)) return err;
  if (signal.aborted) return abortError(signal, what);
  const code = errorCode(err);
  const provider = target.provider;
  if (code && TIMEOUT_CODES.has(code)) {
    const headersPhase = code === 'UND_ERR_HEADERS_TIMEOUT';
    const ms = headersPhase ? target.timeouts?.headersMs : target.timeouts?.bodyMs;
    return kotoError(
      'KOTO_ERR_TIMEOUT',
      {
        what: `waiting for the ${headersPhase ? 'response headers' : 'response body'} of ${what} from provider "${provider}"`,
        ms: ms ?? '?',
      },
      { cause: err, details: { provider, retryable: true, code } },
    );
  }
  // Retrying cannot fix a name that does not resolve or a certificate that is not trusted.
  const permanent = code === 'ENOTFOUND' || (code !== undefined && /CERT|SELF_SIGNED|VERIFY|ISSUER|HOSTNAME/i.test(code));
  return kotoError(
    'KOTO_ERR_NETWORK',
    {
      origin: url.origin,
      detail: `${phase === 'response' ? 'the connection broke mid-response: ' : ''}${scrub(describeError(err), target.secrets)}`,
    },
    { cause: err, details: { provider, retryable: !permanent, ...(code ? { code } : {}) } },
  );
}

/** Errors reported inside a 200 stream (`{"type":"error"}` or `{"error":{…}}`). */
export function streamError(target: WireTarget, value: Record<string, unknown>): KotoError {
  const { message, code } = upstreamMessage(target, isRecord(value.error) ? value : { error: value });
  return kotoError(
    'KOTO_ERR_UPSTREAM',
    { provider: target.provider, status: 200, detail: `: the stream reported an error: ${message ?? code ?? 'no detail'}` },
    { details: { provider: target.provider, status: 200, retryable: true, ...(code ? { upstreamCode: code } : {}) } },
  );
}
