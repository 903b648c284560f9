import { describeError, KotoError, kotoError, type KotoHttp } from 'koto-voice';
import type { ProviderOptions } from './options.ts';

/** What every call needs to build good errors: who it is for, what to hide, how long was waited. */
export interface CallContext {
  /** The provider instance name (`providers.<name>`): every error names it. */
  readonly provider: string;
  /** Values that must never appear in an error (the API key). */
  readonly secrets: readonly string[];
  /** What the call is, for timeout and abort messages ("the Deepgram transcription"). */
  readonly what: string;
  /** The transport's headers timeout, so a timeout error can say how long it waited. */
  readonly headersTimeoutMs: number;
}

/** Largest answer read into memory. A transcript JSON is far smaller. */
export const MAX_RESPONSE_BYTES = 8 * 1024 * 1024;
/** Deepgram accepts up to 100 key terms per request. */
const MAX_KEYTERMS = 100;

/** `base` + `path`, keeping a path prefix of the base (`https://proxy/deepgram` + `/v1/listen`). */
export function joinUrl(base: string, path: string): URL {
  const url = new URL(base);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}${path}`;
  url.search = '';
  url.hash = '';
  return url;
}

export interface ListenParams {
  readonly model: string;
  readonly language: string | undefined;
  readonly dictionary: readonly string[];
}

/**
 * `POST /v1/listen` with the query Deepgram reads: model, smart_format, language (or language
 * detection), and the dictionary as `keyterm` (Nova-3) or `keywords` (older models).
 */
export function listenUrl(options: ProviderOptions, params: ListenParams): URL {
  const url = joinUrl(options.baseUrl, '/v1/listen');
  const q = url.searchParams;
  q.set('model', params.model);
  if (options.smartFormat) q.set('smart_format', 'true');
  if (params.language) q.set('language', params.language);
  else q.set('detect_language', 'true');
  const terms = params.dictionary
    .map((t) => t.trim())
    .filter(Boolean)
    .slice(0, MAX_KEYTERMS);
  const keyterms = params.model.startsWith('nova-3');
  for (const term of terms) q.append(keyterms ? 'keyterm' : 'keywords', term);
  for (const [key, value] of Object.entries(options.query)) q.set(key, value);
  return url;
}

export function projectsUrl(options: ProviderOptions): URL {
  return joinUrl(options.baseUrl, '/v1/projects');
}

/** Read per request, so a reloaded key applies to the next request. */
export function authHeaders(options: ProviderOptions): Record<string, string> {
  return { authorization: `Token ${options.apiKey}` };
}

/** Replaces every secret in a string. */
export function scrub(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) if (secret.length >= 4) out = out.split(secret).join('[redacted]');
  return out;
}

/** Origin and path only: no query, no credentials. */
function shown(url: URL): string {
  return `${url.origin}${url.pathname}`;
}

export interface CallInit {
  readonly method: 'GET' | 'POST';
  readonly headers: Record<string, string>;
  readonly body?: Uint8Array | undefined;
  readonly signal: AbortSignal;
}

/**
 * One request through the kernel's shared client. Resolves with the parsed JSON of a 2xx
 * answer; throws a catalogue KotoError for everything else.
 */
export async function call(client: KotoHttp, url: URL, init: CallInit, ctx: CallContext): Promise<unknown> {
  if (init.signal.aborted) throw kotoError('KOTO_ERR_ABORTED', { what: ctx.what });
  let text: string;
  let status: number;
  let headers: Record<string, string | string[] | undefined>;
  try {
    const res = await client.request({
      origin: url.origin,
      path: `${url.pathname}${url.search}`,
      method: init.method,
      headers: { accept: 'application/json', ...init.headers },
      body: init.body ?? null,
      signal: init.signal,
    });
    status = res.statusCode;
    headers = res.headers;
    text = await readText(res.body, ctx);
  } catch (err) {
    throw transportError(err, url, init.signal, ctx);
  }
  if (status < 200 || status >= 300) throw httpError(status, headers, text, url, ctx);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw badResponse(
      ctx,
      text.trim() === '' ? 'an empty body where JSON was expected' : `invalid JSON (${Buffer.byteLength(text)} bytes)`,
    );
  }
}

async function readText(body: AsyncIterable<Buffer> & { destroy(): unknown }, ctx: CallContext): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > MAX_RESPONSE_BYTES) {
      body.destroy();
      throw badResponse(ctx, `the answer is larger than ${MAX_RESPONSE_BYTES} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export function badResponse(ctx: CallContext, detail: string): KotoError {
  return kotoError(
    'KOTO_ERR_BAD_RESPONSE',
    { provider: ctx.provider, detail: scrub(detail, ctx.secrets) },
    { details: { provider: ctx.provider, retryable: false } },
  );
}

/** Network failures, timeouts and cancellation, as catalogue errors. */
export function transportError(err: unknown, url: URL, signal: AbortSignal, ctx: CallContext): KotoError {
  // The kernel's own refusals (plain http, cross-origin redirect, closed) are already right.
  if (KotoError.is(err)) return err;
  // Cancelled by the session, or past the kernel's deadline: the kernel reports which.
  if (signal.aborted) return kotoError('KOTO_ERR_ABORTED', { what: ctx.what }, { cause: err });
  const code = (err as { code?: unknown }).code;
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return kotoError('KOTO_ERR_TIMEOUT', { what: ctx.what, ms: ctx.headersTimeoutMs }, { cause: err, details: { retryable: true } });
  }
  return kotoError(
    'KOTO_ERR_NETWORK',
    { origin: url.origin, detail: scrub(describeError(err), ctx.secrets) },
    { cause: err, details: { provider: ctx.provider, retryable: true } },
  );
}

/** The fields of a Deepgram error body (`err_code`/`err_msg`, or the newer `category`/`message`). */
export function errorBody(text: string): { code?: string; message?: string; requestId?: string } {
  try {
    const value = JSON.parse(text) as Record<string, unknown>;
    const pick = (...keys: string[]) => {
      for (const key of keys) if (typeof value[key] === 'string' && value[key] !== '') return value[key];
      return undefined;
    };
    const code = pick('err_code', 'category');
    const message = pick('err_msg', 'message', 'reason');
    const requestId = pick('request_id');
    return { ...(code ? { code } : {}), ...(message ? { message } : {}), ...(requestId ? { requestId } : {}) };
  } catch {
    const line = text.trim().split('\n')[0]?.slice(0, 200);
    return line ? { message: line } : {};
  }
}

/** An HTTP error status as the catalogue error a user can act on. */
export function httpError(
  status: number,
  headers: Record<string, string | string[] | undefined>,
  text: string,
  url: URL,
  ctx: CallContext,
): KotoError {
  const body = errorBody(text);
  const detail = scrub(body.message ?? `HTTP ${status}`, ctx.secrets);
  const retryAfter = retryAfterSeconds(headers['retry-after']);
  // The kernel retries errors marked `retryable` (within the stage's deadline), waiting
  // `retryAfter` seconds when the service said so. Only 429 and 5xx are worth another try.
  const details = {
    provider: ctx.provider,
    status,
    retryable: status === 429 || status >= 500,
    ...(retryAfter === undefined ? {} : { retryAfter }),
    requestId: body.requestId,
    upstreamCode: body.code,
  };
  if (status === 401 || status === 403) return kotoError('KOTO_ERR_AUTH', { provider: ctx.provider, status }, { details });
  if (status === 404) return kotoError('KOTO_ERR_ENDPOINT_NOT_FOUND', { provider: ctx.provider, url: shown(url) }, { details });
  if (status === 429) {
    return kotoError(
      'KOTO_ERR_RATE_LIMITED',
      { provider: ctx.provider, retry: retryAfter === undefined ? '' : ` (retry after ${retryAfter} s)` },
      { details },
    );
  }
  if (status >= 500) return kotoError('KOTO_ERR_UPSTREAM', { provider: ctx.provider, status, detail: `: ${detail}` }, { details });
  return kotoError('KOTO_ERR_BAD_REQUEST', { provider: ctx.provider, status, detail }, { details });
}

/** `Retry-After` as seconds: a number of seconds, or an HTTP date. */
export function retryAfterSeconds(value: string | string[] | undefined): number | undefined {
  const raw = Array.isArray(value) ? value[0] : value;
  if (!raw) return undefined;
  if (/^\d+$/.test(raw.trim())) return Number(raw.trim());
  const at = Date.parse(raw);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

export interface Transcript {
  readonly text: string;
  readonly language?: string | undefined;
  readonly durationSec?: number | undefined;
}

/** `results.channels[0].alternatives[0].transcript`, plus the detected language and duration. */
export function transcriptOf(json: unknown, ctx: CallContext): Transcript {
  const record = (v: unknown) => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined);
  const root = record(json);
  const channels = record(root?.results)?.channels;
  const channel = Array.isArray(channels) ? record(channels[0]) : undefined;
  const alternatives = channel?.alternatives;
  const best = Array.isArray(alternatives) ? record(alternatives[0]) : undefined;
  if (typeof best?.transcript !== 'string') {
    throw badResponse(ctx, 'an answer without results.channels[0].alternatives[0].transcript');
  }
  const duration = record(root?.metadata)?.duration;
  const language = channel?.detected_language;
  return {
    text: best.transcript.trim(),
    ...(typeof language === 'string' ? { language } : {}),
    ...(typeof duration === 'number' ? { durationSec: duration } : {}),
  };
}
