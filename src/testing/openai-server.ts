/**
 * A real HTTPS + HTTP/2 loopback server that imitates an OpenAI-compatible API,
 * for tests and benchmarks.
 *
 * - Listens on `127.0.0.1` (random port) with a run-time certificate (see
 *   `./tls.ts`); clients trust {@link OpenAIServer.ca}.
 * - Speaks HTTP/2 with HTTP/1.1 fallback (`node:http2` `createSecureServer({ allowHTTP1: true })`),
 *   or HTTP/1.1 only ({@link OpenAIServerOptions.http1Only}).
 * - Implements `GET /models`, `GET /models/{id}`, `POST /audio/transcriptions`
 *   (real multipart parsing, `response_format`, `stream=true`),
 *   `POST /chat/completions` (JSON and SSE) and `POST /responses` (JSON and SSE),
 *   with the request and response shapes of the OpenAI OpenAPI spec.
 * - Records every request ({@link OpenAIServer.requests}) and counts TCP connections,
 *   TLS handshakes, HTTP/2 sessions and protocols ({@link OpenAIServer.stats}).
 * - Injects one-shot faults ({@link OpenAIServer.inject}): error statuses, delays,
 *   stalled bodies, GOAWAY, stream/socket resets, truncated or malformed bodies.
 *
 * It has no test-framework dependency.
 *
 * @example
 * ```ts
 * const server = await startOpenAIServer({ apiKey: 'sk-test' });
 * const agent = new Agent({ allowH2: true, connect: { ca: server.ca, preferH2: true } });
 * const res = await request(`${server.baseUrl}/models`, {
 *   dispatcher: agent,
 *   headers: { authorization: 'Bearer sk-test' },
 * });
 * await agent.close();
 * await server.close();
 * ```
 *
 * @module
 */

import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import * as http2 from 'node:http2';
import * as https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { getTestCertificate, type TestCertificate } from './tls.ts';

// The TLS helpers are part of the same public surface (`koto-voice/testing`).
export { createTestCertificate, DEFAULT_TEST_HOSTS, getTestCertificate, type TestCertificate, type TestCertificateOptions } from './tls.ts';

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

/** The protocol a request arrived on. */
export type RecordedProtocol = 'h2' | 'http/1.1';

/** A file part of a multipart/form-data request. */
export interface RecordedFile {
  /** The part's filename (empty string when the client sent none). */
  filename: string;
  /** The part's content type (`application/octet-stream` when the client sent none). */
  contentType: string;
  /** The exact bytes received. */
  data: Buffer;
}

/** A parsed multipart/form-data body. */
export interface RecordedForm {
  /** Text fields; repeated fields (e.g. `include[]`) keep every value, in order. */
  fields: Record<string, string[]>;
  /** File fields by name (the last one wins if a name repeats). */
  files: Record<string, RecordedFile>;
}

/** One request as the server saw it. */
export interface RecordedRequest {
  /** 1-based sequence number since the server started (not reset by {@link OpenAIServer.reset}). */
  seq: number;
  method: string;
  /** The path without the query, e.g. `/v1/chat/completions`. */
  path: string;
  /** Query parameters (the last value wins when a name repeats). */
  query: Record<string, string>;
  /** Request headers, lower-case names, HTTP/2 pseudo-headers left out, repeated values joined with `, `. */
  headers: Record<string, string>;
  protocol: RecordedProtocol;
  /** The raw request body. */
  body: Buffer;
  /** The parsed body when it is valid JSON. */
  json?: unknown;
  /** The parsed body when it is multipart/form-data. */
  form?: RecordedForm;
  /** Why a multipart body could not be parsed, when it could not. */
  formError?: string;
  /** The fault applied to this request, if any. */
  fault?: Fault;
  /** `Date.now()` when the whole body had been received. */
  receivedAt: number;
  /** Set once the client went away before the response was complete (e.g. it aborted the request). */
  aborted?: boolean;
}

/**
 * A one-shot fault, queued with {@link OpenAIServer.inject} and applied to the
 * next request(s) whose path ends with {@link Fault.path}.
 *
 * Order of effects for a matching request: `goaway` → wait (`thinkMs` + `delayMs`)
 * → `reset: 'before-response'` → headers (`status`/`body`/`headers`) →
 * `stallBodyMs` → body (`truncateJson`, `sseMalformed`, `reset: 'during-response'`).
 */
export interface Fault {
  /** Path suffix to match, e.g. `/chat/completions`; matches every request when omitted. */
  path?: string;
  /** How many matching requests the fault applies to (default 1; `Infinity` for all). */
  times?: number;
  /**
   * Answer with this status instead of the normal response. Without `body` the
   * body is the OpenAI error JSON usual for that status.
   */
  status?: number;
  /**
   * Answer with this body instead of the normal response (status 200 unless
   * `status` is set). A string is sent as-is (`text/plain` unless `headers` say
   * otherwise); anything else is sent as JSON.
   */
  body?: unknown;
  /** Extra response headers (also applied to normal responses), e.g. `{ 'retry-after': '1' }`. */
  headers?: Record<string, string>;
  /** Wait this long before sending the response headers. */
  delayMs?: number;
  /** Send the headers, then wait this long before sending the body. */
  stallBodyMs?: number;
  /**
   * Gracefully shut the connection down after accepting the request, then still
   * answer it, like a restarting server. HTTP/2: GOAWAY (NO_ERROR, last stream =
   * this one) and the session closes once its open streams finish. HTTP/1.1:
   * `connection: close` on the response and the socket is closed after it.
   */
  goaway?: boolean;
  /**
   * Abort the exchange. HTTP/2: RST_STREAM (INTERNAL_ERROR) on the stream;
   * HTTP/1.1: destroy the socket. `before-response` aborts before any header;
   * `during-response` sends the headers (with the full `content-length` for
   * non-streaming bodies) and about half the body first.
   */
  reset?: 'before-response' | 'during-response';
  /**
   * End the body cleanly after only half of its bytes (no `content-length`), so
   * JSON is invalid and an SSE stream stops mid-event without its terminal event.
   */
  truncateJson?: boolean;
  /** Insert an SSE event whose `data:` is not valid JSON after the first event (SSE responses only). */
  sseMalformed?: boolean;
}

/** Counters kept by the server. The object is live and is zeroed in place by {@link OpenAIServer.reset}. */
export interface OpenAIServerStats {
  /** TCP connections accepted. */
  connections: number;
  /** Completed TLS handshakes (the server's `secureConnection` events), resumed ones included. */
  tlsHandshakes: number;
  /** HTTP/2 sessions created. */
  h2Sessions: number;
  /** Requests received, by protocol (`h2`, `http/1.1`). */
  protocols: Record<string, number>;
  /** Graceful shutdowns sent: GOAWAY on HTTP/2 (faults, {@link OpenAIServer.goawayAll}, idle timeout). */
  goaways: number;
  /** Connections closed by the server because they were idle for `idleTimeoutMs`. */
  idleCloses: number;
}

/** Options of {@link startOpenAIServer}. */
export interface OpenAIServerOptions {
  /** Serve HTTP/1.1 only (ALPN offers only `http/1.1`), so clients must fall back. */
  http1Only?: boolean;
  /**
   * Require `Authorization: Bearer <apiKey>`; otherwise answer 401 with the
   * OpenAI `invalid_api_key` error.
   */
  apiKey?: string;
  /** Delay before answering each request, in ms (default 0). */
  thinkMs?: number;
  /** Text of a transcription (default `'hello world'`). */
  transcribe?: (req: RecordedRequest) => string | Promise<string>;
  /** Text of a chat completion or a response (default `'Hello, world.'`). */
  complete?: (req: RecordedRequest) => string | Promise<string>;
  /**
   * Write SSE bodies in pieces of this many bytes, so that events and even
   * multi-byte UTF-8 characters are split at odd boundaries. By default each
   * event is one write.
   */
  sseChunkBytes?: number;
  /** Pause between SSE writes, in ms (default 0: just yield to the event loop). */
  sseDelayMs?: number;
  /**
   * Close connections that have had no open request for this long, in ms, like
   * real servers do (HTTP/2: GOAWAY then close; HTTP/1.1: close the socket).
   * Off by default.
   */
  idleTimeoutMs?: number;
  /** Whether received HTTP/2 PINGs count as activity for `idleTimeoutMs` (default true). */
  idlePingsKeepAlive?: boolean;
  /** Path prefix of the API (default `/v1`; `''` for none). */
  prefix?: string;
  /** Model ids listed by `GET /models` (default: a few transcription and chat models). */
  models?: readonly string[];
  /** HTTP/2 SETTINGS the server sends (e.g. `{ initialWindowSize: 1 << 20 }`). */
  h2Settings?: http2.Settings;
  /** TLS material to use instead of the process-wide test certificate. */
  certificate?: TestCertificate;
}

/** A running server. See {@link startOpenAIServer}. */
export interface OpenAIServer {
  /** `https://127.0.0.1:PORT` */
  readonly url: string;
  /** Same as {@link OpenAIServer.url}. */
  readonly origin: string;
  /** {@link OpenAIServer.url} + prefix, e.g. `https://127.0.0.1:PORT/v1`. */
  readonly baseUrl: string;
  readonly port: number;
  /** PEM certificate the client must trust (the test CA). */
  readonly ca: string;
  /** Whether this server speaks HTTP/1.1 only. */
  readonly http1Only: boolean;
  /** Live counters. */
  readonly stats: OpenAIServerStats;
  /** Every request received, in order (live array). */
  readonly requests: RecordedRequest[];
  /** Connections currently open. */
  readonly openConnections: number;
  /** Queue a fault (see {@link Fault}). */
  inject(fault: Fault): void;
  /** Drop all queued faults. */
  clearFaults(): void;
  /**
   * End every wait in progress now (`thinkMs`, `delayMs`, `stallBodyMs`): those responses go on at
   * once. A test holds a response with a long delay and releases it when it is ready, instead of
   * guessing how long the rest of the test takes on a loaded machine.
   */
  release(): void;
  /**
   * Gracefully shut down every open connection: GOAWAY on each HTTP/2 session
   * (open streams still finish), idle HTTP/1.1 sockets are closed and busy ones
   * closed after their current response. Resolves when they have all closed.
   */
  goawayAll(): Promise<void>;
  /** Destroy every open connection at once (no GOAWAY). */
  closeConnections(): void;
  /** Resolve once at least `count` requests have been recorded. */
  waitForRequests(count: number, timeoutMs?: number): Promise<RecordedRequest[]>;
  /** Clear {@link OpenAIServer.requests} and zero {@link OpenAIServer.stats}. Faults stay queued. */
  reset(): void;
  /** Stop listening and destroy every connection. Safe to call twice. */
  close(): Promise<void>;
}

/** Default text returned for transcriptions. */
export const DEFAULT_TRANSCRIPT = 'hello world';
/** Default text returned by chat completions and responses. */
export const DEFAULT_COMPLETION = 'Hello, world.';
/** Default model ids of `GET /models`. */
export const DEFAULT_MODELS: readonly string[] = Object.freeze([
  'gpt-4o-transcribe',
  'gpt-4o-mini-transcribe',
  'whisper-1',
  'gpt-4o-mini',
  'gpt-4.1-mini',
]);

/**
 * Start a server on `127.0.0.1` with a random port.
 * Always `close()` it (e.g. in `afterEach`): open client connections are destroyed.
 */
export async function startOpenAIServer(options: OpenAIServerOptions = {}): Promise<OpenAIServer> {
  const certificate = options.certificate ?? (await getTestCertificate());
  const server = new FakeOpenAIServer(options, certificate);
  await server.listen();
  return server;
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/** The OpenAI error body (`ErrorResponse` in the spec). */
export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** Build an OpenAI error body. */
export function openAIError(
  message: string,
  type = 'invalid_request_error',
  param: string | null = null,
  code: string | null = null,
): OpenAIErrorBody {
  return { error: { message, type, param, code } };
}

/** The error body the real API sends for a given status, used for faults without `body`. */
export function defaultErrorFor(status: number): OpenAIErrorBody {
  switch (status) {
    case 400:
      return openAIError('Bad request.', 'invalid_request_error');
    case 401:
      return openAIError('Incorrect API key provided.', 'invalid_request_error', null, 'invalid_api_key');
    case 403:
      return openAIError('Country, region, or territory not supported', 'request_forbidden', null, 'unsupported_country_region_territory');
    case 404:
      return openAIError('Not found.', 'invalid_request_error');
    case 408:
      return openAIError('Request timed out.', 'timeout');
    case 409:
      return openAIError('Conflict.', 'invalid_request_error');
    case 429:
      return openAIError('Rate limit reached for requests. Please try again in 1s.', 'requests', null, 'rate_limit_exceeded');
    case 500:
      return openAIError('The server had an error while processing your request. Sorry about that!', 'server_error');
    case 502:
      return openAIError('Bad gateway.', 'server_error');
    case 503:
      return openAIError('The engine is currently overloaded, please try again later', 'server_error');
    case 504:
      return openAIError('Gateway timeout.', 'server_error');
    default:
      return openAIError(`HTTP ${status}`, status >= 500 ? 'server_error' : 'invalid_request_error');
  }
}

/** Mask an API key the way the real API does in error messages (never the whole key). */
export function maskApiKey(key: string): string {
  if (key.length <= 8) return '*'.repeat(key.length);
  const head = key.slice(0, key.startsWith('sk-') ? 3 : 2);
  return head + '*'.repeat(Math.min(key.length - head.length - 4, 40)) + key.slice(-4);
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);
const TRANSCRIPTION_FORMATS = new Set(['json', 'text', 'srt', 'verbose_json', 'vtt', 'diarized_json']);

function noop(): void {}

function randomId(prefix: string, bytes = 12): string {
  return prefix + randomBytes(bytes).toString('hex');
}

function unixNow(): number {
  return Math.floor(Date.now() / 1000);
}

/** A rough token count: about four UTF-8 bytes per token, at least one for non-empty text. */
function estimateTokens(text: string): number {
  const bytes = Buffer.byteLength(text);
  return bytes === 0 ? 0 : Math.max(1, Math.ceil(bytes / 4));
}

/** Split text into word-sized deltas that keep their leading whitespace (`"Hello," " world."`). */
export function splitIntoDeltas(text: string): string[] {
  if (text === '') return [];
  const parts = text.match(/\s*\S+/g);
  if (!parts) return [text];
  const joined = parts.join('');
  if (joined.length < text.length) parts[parts.length - 1] += text.slice(joined.length);
  return parts;
}

function first(fields: Record<string, string[]>, name: string): string | undefined {
  return fields[name]?.[0];
}

function all(fields: Record<string, string[]>, name: string): string[] {
  return [...(fields[name] ?? []), ...(fields[`${name}[]`] ?? [])];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Duration in seconds of a PCM WAV file, or undefined when `data` is not one. */
function wavDurationSeconds(data: Buffer): number | undefined {
  if (data.length < 12 || data.toString('ascii', 0, 4) !== 'RIFF' || data.toString('ascii', 8, 12) !== 'WAVE') {
    return undefined;
  }
  let byteRate = 0;
  let offset = 12;
  while (offset + 8 <= data.length) {
    const id = data.toString('ascii', offset, offset + 4);
    const size = data.readUInt32LE(offset + 4);
    if (id === 'fmt ' && offset + 16 <= data.length) byteRate = data.readUInt32LE(offset + 16);
    if (id === 'data') {
      if (byteRate === 0) return undefined;
      const available = Math.min(size, data.length - offset - 8);
      return available / byteRate;
    }
    offset += 8 + size + (size % 2);
  }
  return undefined;
}

function timestamp(seconds: number, separator: ',' | '.'): string {
  const ms = Math.round(seconds * 1000);
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = Math.floor((ms % 60_000) / 1000);
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${pad(h)}:${pad(m)}:${pad(s)}${separator}${pad(ms % 1000, 3)}`;
}

function normalizePrefix(prefix: string): string {
  const trimmed = prefix.replace(/\/+$/, '');
  if (trimmed === '') return '';
  return trimmed.startsWith('/') ? trimmed : `/${trimmed}`;
}

function flattenHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith(':') || value === undefined) continue;
    out[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : String(value);
  }
  return out;
}

function sseData(value: unknown): string {
  return `data: ${JSON.stringify(value)}\n\n`;
}

function sseEvent(type: string, value: unknown): string {
  return `event: ${type}\ndata: ${JSON.stringify(value)}\n\n`;
}

// ---------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------

type Reply =
  | { kind: 'body'; status: number; headers: Record<string, string>; body: Buffer }
  | { kind: 'sse'; status: number; headers: Record<string, string>; events: string[] };

function jsonReply(status: number, value: unknown, headers: Record<string, string> = {}): Reply {
  return {
    kind: 'body',
    status,
    headers: { 'content-type': 'application/json', ...headers },
    body: Buffer.from(JSON.stringify(value, null, 2)),
  };
}

function textReply(status: number, text: string, contentType = 'text/plain; charset=utf-8'): Reply {
  return { kind: 'body', status, headers: { 'content-type': contentType }, body: Buffer.from(text) };
}

function sseReply(events: string[]): Reply {
  return {
    kind: 'sse',
    status: 200,
    headers: { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' },
    events,
  };
}

function errorReply(
  status: number,
  message: string,
  param: string | null = null,
  code: string | null = null,
  type = 'invalid_request_error',
): Reply {
  return jsonReply(status, openAIError(message, type, param, code));
}

function missingParam(name: string): Reply {
  return errorReply(400, `Missing required parameter: '${name}'.`, name, 'missing_required_parameter');
}

function faultReply(fault: Fault): Reply {
  const status = fault.status ?? 200;
  const headers = Object.fromEntries(Object.entries(fault.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
  if (fault.body === undefined) return jsonReply(status, status >= 400 ? defaultErrorFor(status) : {});
  if (typeof fault.body === 'string') {
    return {
      kind: 'body',
      status,
      headers: { 'content-type': headers['content-type'] ?? 'text/plain; charset=utf-8' },
      body: Buffer.from(fault.body),
    };
  }
  if (Buffer.isBuffer(fault.body)) {
    return { kind: 'body', status, headers: { 'content-type': headers['content-type'] ?? 'application/octet-stream' }, body: fault.body };
  }
  return jsonReply(status, fault.body);
}

const INVALID_JSON_MESSAGE =
  "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)";

function jsonBodyOf(req: RecordedRequest): { ok: true; value: Record<string, unknown> } | { ok: false; reply: Reply } {
  let value = req.json;
  if (value === undefined) {
    try {
      value = JSON.parse(req.body.toString('utf8')) as unknown;
    } catch {
      return { ok: false, reply: errorReply(400, INVALID_JSON_MESSAGE) };
    }
  }
  if (!isRecord(value)) return { ok: false, reply: errorReply(400, INVALID_JSON_MESSAGE) };
  return { ok: true, value };
}

// ---------------------------------------------------------------------------
// Connections and exchanges
// ---------------------------------------------------------------------------

interface Conn {
  socket: TLSSocket;
  session: http2.ServerHttp2Session | undefined;
  /** Open requests (HTTP/1.1) or streams (HTTP/2). */
  active: number;
  idleTimer: NodeJS.Timeout | undefined;
  /** HTTP/1.1: close the socket after the current response. */
  closing: boolean;
}

/** One request/response pair, independent of the protocol. */
interface Exchange {
  readonly protocol: RecordedProtocol;
  readonly method: string;
  readonly target: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: AsyncIterable<unknown>;
  readonly conn: Conn | undefined;
  /** True once the response is finished or the stream/connection went away. */
  gone(): boolean;
  /** Runs `fn` once the client went away before the server ended or reset the response. */
  onClientAbort(fn: () => void): void;
  /** Send the status line/HEADERS frame now. */
  sendHead(status: number, headers: Record<string, string>): void;
  headSent(): boolean;
  /** Write a chunk; resolves when flushed or when the exchange is gone. */
  write(chunk: Buffer): Promise<void>;
  /** End the response; resolves when finished or gone. */
  end(chunk?: Buffer): Promise<void>;
  /** Abort: RST_STREAM on HTTP/2, destroy the socket on HTTP/1.1. */
  reset(): void;
}

function makeExchange(
  protocol: RecordedProtocol,
  req: { method?: string | undefined; url?: string | undefined; headers: IncomingHttpHeaders } & AsyncIterable<unknown>,
  res: NodeJS.EventEmitter,
  conn: Conn | undefined,
  ops: {
    writeHead(status: number, headers: Record<string, string>): void;
    headersSent(): boolean;
    write(chunk: Buffer, cb: () => void): void;
    end(chunk: Buffer | undefined, cb: () => void): void;
    reset(): void;
  },
): Exchange {
  let gone = false;
  let finishing = false;
  const waiters = new Set<() => void>();
  const aborts: (() => void)[] = [];
  res.once('close', () => {
    gone = true;
    for (const w of [...waiters]) w();
    if (!finishing) for (const fn of aborts) fn();
  });
  const settle = (start: (cb: () => void) => void): Promise<void> =>
    new Promise<void>((resolve) => {
      if (gone) {
        resolve();
        return;
      }
      const done = (): void => {
        waiters.delete(done);
        resolve();
      };
      waiters.add(done);
      try {
        start(done);
      } catch {
        done();
      }
    });
  return {
    protocol,
    method: req.method ?? 'GET',
    target: req.url ?? '/',
    headers: req.headers,
    body: req,
    conn,
    gone: () => gone,
    onClientAbort: (fn) => void aborts.push(fn),
    sendHead: (status, headers) => {
      if (!gone) ops.writeHead(status, headers);
    },
    headSent: () => ops.headersSent(),
    write: (chunk) => settle((cb) => ops.write(chunk, cb)),
    end: (chunk) => {
      finishing = true;
      return settle((cb) => ops.end(chunk, cb));
    },
    reset: () => {
      finishing = true;
      if (!gone) ops.reset();
    },
  };
}

// ---------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------

type AnyServer = http2.Http2SecureServer | https.Server;

class FakeOpenAIServer implements OpenAIServer {
  readonly http1Only: boolean;
  readonly ca: string;
  readonly stats: OpenAIServerStats = {
    connections: 0,
    tlsHandshakes: 0,
    h2Sessions: 0,
    protocols: {},
    goaways: 0,
    idleCloses: 0,
  };
  readonly requests: RecordedRequest[] = [];

  private readonly options: OpenAIServerOptions;
  private readonly prefix: string;
  private readonly server: AnyServer;
  private readonly conns = new Set<Conn>();
  private readonly connBySocket = new WeakMap<object, Conn>();
  private readonly connBySession = new WeakMap<http2.ServerHttp2Session, Conn>();
  private readonly rawSockets = new Set<Socket>();
  private readonly sleepers = new Set<() => void>();
  private readonly requestWaiters = new Set<() => void>();
  private faults: Array<{ fault: Fault; remaining: number }> = [];
  private lastConn: Conn | undefined;
  private seq = 0;
  private closed = false;
  private closing: Promise<void> | undefined;
  private address: AddressInfo | undefined;

  constructor(options: OpenAIServerOptions, certificate: TestCertificate) {
    this.options = options;
    this.http1Only = options.http1Only === true;
    this.prefix = normalizePrefix(options.prefix ?? '/v1');
    this.ca = certificate.ca;
    const tlsOptions = { key: certificate.key, cert: certificate.cert };

    if (this.http1Only) {
      const server = https.createServer({ ...tlsOptions, ALPNProtocols: ['http/1.1'] });
      // Idle connections are closed by our own timer (idleTimeoutMs), not Node's 5 s default.
      server.keepAliveTimeout = 0;
      server.on('request', (req: IncomingMessage, res: ServerResponse) => this.onHttp1Request(req, res));
      this.server = server;
    } else {
      const server = http2.createSecureServer({
        ...tlsOptions,
        allowHTTP1: true,
        // A fault can queue a body over 10 MB (an oversized response). With Node's default 10 MB
        // session memory, a stream the client opens meanwhile (a retry, when the machine is slow
        // to read) is refused with ENHANCE_YOUR_CALM, which no real upstream does.
        maxSessionMemory: 1024,
        ...(options.h2Settings ? { settings: options.h2Settings } : {}),
      });
      server.on('session', (session) => this.onSession(session));
      server.on('sessionError', noop);
      server.on('request', (req, res) => {
        if (req.httpVersionMajor === 2) this.onHttp2Request(req, res);
        else this.onHttp1Request(req as unknown as IncomingMessage, res as unknown as ServerResponse);
      });
      this.server = server;
    }

    this.server.on('connection', (socket: Socket) => {
      this.stats.connections++;
      this.rawSockets.add(socket);
      socket.on('error', noop);
      socket.once('close', () => this.rawSockets.delete(socket));
      if (this.closed) socket.destroy();
    });
    // Runs before Node's own listener, which creates the HTTP/2 session (and
    // emits 'session') synchronously right after.
    this.server.prependListener('secureConnection', (socket: TLSSocket) => this.onSecureConnection(socket));
    this.server.on('tlsClientError', noop);
  }

  // -- public API ------------------------------------------------------------

  get port(): number {
    if (!this.address) throw new Error('server is not listening');
    return this.address.port;
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  get origin(): string {
    return this.url;
  }

  get baseUrl(): string {
    return this.url + this.prefix;
  }

  get openConnections(): number {
    return this.conns.size;
  }

  inject(fault: Fault): void {
    const times = fault.times ?? 1;
    if (!(times > 0)) throw new RangeError('fault.times must be positive');
    this.faults.push({ fault: { ...fault }, remaining: times });
  }

  clearFaults(): void {
    this.faults = [];
  }

  release(): void {
    for (const wake of [...this.sleepers]) wake();
  }

  async goawayAll(): Promise<void> {
    const pending: Promise<void>[] = [];
    for (const conn of this.conns) {
      const closedOnce = new Promise<void>((resolve) => {
        if (conn.socket.destroyed) resolve();
        else conn.socket.once('close', () => resolve());
      });
      if (conn.session) {
        if (conn.session.closed || conn.session.destroyed) continue;
        this.stats.goaways++;
        conn.session.close();
      } else if (conn.active === 0) {
        conn.socket.end();
      } else {
        conn.closing = true;
      }
      pending.push(closedOnce);
    }
    await Promise.all(pending);
  }

  closeConnections(): void {
    for (const conn of this.conns) {
      this.clearIdle(conn);
      conn.session?.destroy();
      conn.socket.destroy();
    }
    for (const socket of this.rawSockets) socket.destroy();
  }

  waitForRequests(count: number, timeoutMs = 5000): Promise<RecordedRequest[]> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        if (this.requests.length < count) return false;
        clearTimeout(timer);
        this.requestWaiters.delete(check);
        resolve([...this.requests]);
        return true;
      };
      const timer = setTimeout(() => {
        this.requestWaiters.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${count} request(s); got ${this.requests.length}`));
      }, timeoutMs);
      if (!check()) this.requestWaiters.add(check);
    });
  }

  reset(): void {
    this.requests.length = 0;
    this.stats.connections = 0;
    this.stats.tlsHandshakes = 0;
    this.stats.h2Sessions = 0;
    this.stats.goaways = 0;
    this.stats.idleCloses = 0;
    for (const key of Object.keys(this.stats.protocols)) delete this.stats.protocols[key];
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      this.faults = [];
      for (const wake of [...this.sleepers]) wake();
      const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
      this.closeConnections();
      await stopped;
    })();
    return this.closing;
  }

  // -- lifecycle ---------------------------------------------------------------

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen(0, '127.0.0.1', () => {
        this.server.off('error', onError);
        this.address = this.server.address() as AddressInfo;
        resolve();
      });
    });
  }

  private onSecureConnection(socket: TLSSocket): void {
    this.stats.tlsHandshakes++;
    socket.on('error', noop);
    const conn: Conn = { socket, session: undefined, active: 0, idleTimer: undefined, closing: false };
    this.conns.add(conn);
    this.connBySocket.set(socket, conn);
    this.lastConn = conn;
    socket.once('close', () => {
      this.clearIdle(conn);
      this.conns.delete(conn);
    });
    if (this.closed) {
      socket.destroy();
      return;
    }
    // HTTP/2 connections arm their idle timer once the session exists.
    if (socket.alpnProtocol !== 'h2') this.armIdle(conn);
  }

  private onSession(session: http2.ServerHttp2Session): void {
    this.stats.h2Sessions++;
    session.on('error', noop);
    const conn = this.lastConn;
    this.lastConn = undefined;
    if (!conn) return;
    conn.session = session;
    this.connBySession.set(session, conn);
    session.on('stream', (stream: http2.ServerHttp2Stream) => {
      conn.active++;
      this.clearIdle(conn);
      stream.on('error', noop);
      stream.once('close', () => {
        conn.active--;
        this.armIdle(conn);
      });
    });
    session.on('ping', () => {
      if (this.options.idlePingsKeepAlive !== false) this.armIdle(conn);
    });
    session.once('close', () => this.clearIdle(conn));
    this.armIdle(conn);
  }

  private armIdle(conn: Conn): void {
    const ms = this.options.idleTimeoutMs;
    this.clearIdle(conn);
    if (ms === undefined || ms <= 0 || this.closed || conn.active > 0) return;
    conn.idleTimer = setTimeout(() => {
      conn.idleTimer = undefined;
      if (conn.active > 0 || conn.socket.destroyed) return;
      this.stats.idleCloses++;
      if (conn.session) {
        if (!conn.session.closed && !conn.session.destroyed) {
          this.stats.goaways++;
          conn.session.close();
        }
      } else {
        conn.socket.end();
        setTimeout(() => conn.socket.destroy(), 1000).unref();
      }
    }, ms);
    conn.idleTimer.unref();
  }

  private clearIdle(conn: Conn): void {
    if (conn.idleTimer) clearTimeout(conn.idleTimer);
    conn.idleTimer = undefined;
  }

  private onHttp2Request(req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): void {
    const stream = req.stream;
    const conn = this.connBySession.get(stream.session as http2.ServerHttp2Session);
    const exchange = makeExchange('h2', req, res, conn, {
      writeHead: (status, headers) => {
        const filtered: Record<string, string> = {};
        for (const [k, v] of Object.entries(headers)) if (!HOP_BY_HOP.has(k)) filtered[k] = v;
        res.writeHead(status, filtered);
      },
      headersSent: () => res.headersSent,
      write: (chunk, cb) => {
        res.write(chunk, () => cb());
      },
      end: (chunk, cb) => {
        if (chunk) res.end(chunk, () => cb());
        else res.end(() => cb());
      },
      reset: () => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR),
    });
    this.dispatch(exchange);
  }

  private onHttp1Request(req: IncomingMessage, res: ServerResponse): void {
    const socket = req.socket;
    const conn = this.connBySocket.get(socket);
    if (conn) {
      conn.active++;
      this.clearIdle(conn);
      res.once('close', () => {
        conn.active--;
        if (conn.closing) socket.end();
        else this.armIdle(conn);
      });
    }
    res.on('error', noop);
    const exchange = makeExchange('http/1.1', req, res, conn, {
      writeHead: (status, headers) => {
        res.writeHead(status, headers);
        res.flushHeaders();
      },
      headersSent: () => res.headersSent,
      write: (chunk, cb) => {
        res.write(chunk, () => cb());
      },
      end: (chunk, cb) => {
        if (chunk) res.end(chunk, () => cb());
        else res.end(() => cb());
      },
      reset: () => socket.destroy(),
    });
    this.dispatch(exchange);
  }

  private dispatch(exchange: Exchange): void {
    this.handle(exchange).catch((err: unknown) => {
      if (exchange.gone()) return;
      if (exchange.headSent()) {
        exchange.reset();
        return;
      }
      const message = err instanceof Error ? err.message : String(err);
      this.send(exchange, errorReply(500, `fake server error: ${message}`, null, null, 'server_error'), undefined, performance.now()).catch(
        () => exchange.reset(),
      );
    });
  }

  private sleep(ms: number): Promise<void> {
    if (!(ms > 0) || this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.sleepers.add(wake);
    });
  }

  private takeFault(path: string): Fault | undefined {
    const index = this.faults.findIndex((f) => f.fault.path === undefined || path.endsWith(f.fault.path));
    if (index < 0) return undefined;
    const entry = this.faults[index];
    if (!entry) return undefined;
    entry.remaining--;
    if (entry.remaining <= 0) this.faults.splice(index, 1);
    return entry.fault;
  }

  // -- request handling --------------------------------------------------------

  private async handle(ex: Exchange): Promise<void> {
    const started = performance.now();
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of ex.body) {
        chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array));
      }
    } catch {
      return; // the client went away mid-upload
    }
    if (this.closed) {
      ex.reset();
      return;
    }
    const body = Buffer.concat(chunks);
    const url = new URL(ex.target, 'https://127.0.0.1');
    const headers = flattenHeaders(ex.headers);
    const record: RecordedRequest = {
      seq: ++this.seq,
      method: ex.method.toUpperCase(),
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers,
      protocol: ex.protocol,
      body,
      receivedAt: Date.now(),
    };
    const contentType = headers['content-type'] ?? '';
    if (/\bjson\b/i.test(contentType) && body.length > 0) {
      try {
        record.json = JSON.parse(body.toString('utf8')) as unknown;
      } catch {
        // left undefined: the route answers 400
      }
    } else if (/^multipart\/form-data/i.test(contentType)) {
      try {
        record.form = await parseMultipart(body, contentType);
      } catch (err) {
        record.formError = err instanceof Error ? err.message : String(err);
      }
    }
    const fault = this.takeFault(url.pathname);
    if (fault) record.fault = fault;
    this.requests.push(record);
    ex.onClientAbort(() => (record.aborted = true));
    this.stats.protocols[ex.protocol] = (this.stats.protocols[ex.protocol] ?? 0) + 1;
    for (const check of [...this.requestWaiters]) check();

    if (fault?.goaway) this.gracefulClose(ex);
    await this.sleep((this.options.thinkMs ?? 0) + (fault?.delayMs ?? 0));
    if (ex.gone()) return;
    if (this.closed) {
      ex.reset();
      return;
    }
    if (fault?.reset === 'before-response') {
      ex.reset();
      return;
    }

    let reply: Reply;
    if (fault && (fault.status !== undefined || fault.body !== undefined)) {
      reply = faultReply(fault);
    } else {
      try {
        reply = await this.route(record);
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        reply = errorReply(500, `fake server handler failed: ${message}`, null, null, 'server_error');
      }
    }
    await this.send(ex, reply, fault, started);
  }

  private gracefulClose(ex: Exchange): void {
    const conn = ex.conn;
    if (!conn) return;
    if (conn.session) {
      if (!conn.session.closed && !conn.session.destroyed) {
        this.stats.goaways++;
        conn.session.close();
      }
    } else {
      conn.closing = true;
    }
  }

  private async send(ex: Exchange, reply: Reply, fault: Fault | undefined, started: number): Promise<void> {
    const headers: Record<string, string> = {
      ...reply.headers,
      'x-request-id': randomId('req_', 16),
      'openai-version': '2020-10-01',
      'openai-processing-ms': String(Math.round(performance.now() - started)),
    };
    for (const [k, v] of Object.entries(fault?.headers ?? {})) headers[k.toLowerCase()] = v;
    if (ex.protocol === 'http/1.1' && ex.conn?.closing) headers['connection'] = 'close';

    const resetMidway = fault?.reset === 'during-response';
    let pieces: Buffer[];
    let total: number;
    if (reply.kind === 'body') {
      pieces = [reply.body];
      total = reply.body.length;
      if (!fault?.truncateJson) headers['content-length'] = String(total);
    } else {
      const events = reply.events.map((e) => Buffer.from(e));
      if (fault?.sseMalformed) {
        events.splice(Math.min(1, events.length), 0, Buffer.from('data: {"id":"malformed","object":\n\n'));
      }
      total = events.reduce((n, b) => n + b.length, 0);
      const size = this.options.sseChunkBytes;
      if (size !== undefined && size > 0) {
        const all = Buffer.concat(events);
        pieces = [];
        for (let i = 0; i < all.length; i += size) pieces.push(all.subarray(i, i + size));
      } else {
        pieces = events;
      }
    }
    if (fault?.truncateJson || resetMidway) pieces = cutAt(pieces, Math.floor(total / 2));

    ex.sendHead(reply.status, headers);
    if (fault?.stallBodyMs) await this.sleep(fault.stallBodyMs);
    if (reply.kind === 'body' && !resetMidway) {
      if (!ex.gone() && !this.closed) await ex.end(pieces[0]);
      else if (this.closed) ex.reset();
      return;
    }
    const gapMs = this.options.sseDelayMs ?? 0;
    for (let i = 0; i < pieces.length; i++) {
      if (ex.gone()) return;
      if (this.closed) {
        ex.reset();
        return;
      }
      const piece = pieces[i];
      if (piece && piece.length > 0) await ex.write(piece);
      if (i < pieces.length - 1 || resetMidway) await this.pause(gapMs);
    }
    if (resetMidway) {
      await this.pause(5);
      ex.reset();
      return;
    }
    if (!ex.gone()) await ex.end();
  }

  private pause(ms: number): Promise<void> {
    if (ms > 0) return this.sleep(ms);
    return new Promise((resolve) => setImmediate(resolve));
  }

  // -- routes ------------------------------------------------------------------

  private async route(req: RecordedRequest): Promise<Reply> {
    const apiKey = this.options.apiKey;
    if (apiKey !== undefined) {
      const auth = req.headers['authorization'];
      const match = auth === undefined ? null : /^Bearer\s+(.*)$/i.exec(auth);
      if (!match) {
        return errorReply(
          401,
          "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). You can obtain an API key from https://platform.openai.com/account/api-keys.",
          null,
          'invalid_api_key',
        );
      }
      const given = (match[1] ?? '').trim();
      if (given !== apiKey) {
        return errorReply(
          401,
          `Incorrect API key provided: ${maskApiKey(given)}. You can find your API key at https://platform.openai.com/account/api-keys.`,
          null,
          'invalid_api_key',
        );
      }
    }

    const invalidUrl = errorReply(404, `Invalid URL (${req.method} ${req.path})`);
    if (this.prefix !== '' && req.path !== this.prefix && !req.path.startsWith(`${this.prefix}/`)) return invalidUrl;
    const sub = req.path.slice(this.prefix.length).replace(/\/+$/, '') || '/';
    const wrongMethod = errorReply(405, `Invalid method for URL (${req.method} ${req.path})`);

    if (sub === '/models') return req.method === 'GET' ? this.listModels() : wrongMethod;
    if (sub.startsWith('/models/')) return req.method === 'GET' ? this.retrieveModel(decodeURIComponent(sub.slice(8))) : wrongMethod;
    if (sub === '/audio/transcriptions') return req.method === 'POST' ? this.transcription(req) : wrongMethod;
    if (sub === '/chat/completions') return req.method === 'POST' ? this.chatCompletion(req) : wrongMethod;
    if (sub === '/responses') return req.method === 'POST' ? this.response(req) : wrongMethod;
    return invalidUrl;
  }

  private modelObject(id: string): Record<string, unknown> {
    return { id, object: 'model', created: 1_700_000_000, owned_by: 'system' };
  }

  private listModels(): Reply {
    const ids = this.options.models ?? DEFAULT_MODELS;
    return jsonReply(200, { object: 'list', data: ids.map((id) => this.modelObject(id)) });
  }

  private retrieveModel(id: string): Reply {
    const ids = this.options.models ?? DEFAULT_MODELS;
    if (!ids.includes(id)) {
      return errorReply(404, `The model '${id}' does not exist`, 'model', 'model_not_found');
    }
    return jsonReply(200, this.modelObject(id));
  }

  private async transcription(req: RecordedRequest): Promise<Reply> {
    const form = req.form;
    if (!form) {
      if (req.formError) return errorReply(400, `Could not parse multipart form: ${req.formError}`);
      return errorReply(
        400,
        `Invalid Content-Type header (${req.headers['content-type'] ?? 'none'}), expected multipart/form-data. (HINT: If you're using curl, you can pass -H 'Content-Type: multipart/form-data')`,
      );
    }
    const file = form.files['file'];
    if (!file) return missingParam('file');
    const model = first(form.fields, 'model');
    if (!model) return missingParam('model');
    const format = first(form.fields, 'response_format') ?? 'json';
    if (!TRANSCRIPTION_FORMATS.has(format)) {
      return errorReply(
        400,
        `Invalid value for 'response_format': '${format}'. Supported values are: ${[...TRANSCRIPTION_FORMATS].map((f) => `'${f}'`).join(', ')}.`,
        'response_format',
        'invalid_value',
      );
    }
    // "Streaming is not supported for the `whisper-1` model and will be ignored."
    const stream = first(form.fields, 'stream') === 'true' && model !== 'whisper-1';
    const text = await (this.options.transcribe ?? (() => DEFAULT_TRANSCRIPT))(req);
    const duration = Math.round((wavDurationSeconds(file.data) ?? Math.max(0.5, file.data.length / 16_000)) * 1000) / 1000;
    const audioTokens = Math.max(1, Math.ceil(duration * 10));
    const outputTokens = estimateTokens(text);
    const tokenUsage = {
      type: 'tokens',
      input_tokens: audioTokens,
      input_token_details: { text_tokens: 0, audio_tokens: audioTokens },
      output_tokens: outputTokens,
      total_tokens: audioTokens + outputTokens,
    };
    const durationUsage = { type: 'duration', seconds: Math.ceil(duration) };
    const withLogprobs = all(form.fields, 'include').includes('logprobs');
    const logprobsOf = (token: string): Array<{ token: string; logprob: number; bytes: number[] }> => [
      { token, logprob: -0.0001, bytes: [...Buffer.from(token)] },
    ];

    if (stream) {
      const deltas = splitIntoDeltas(text);
      const events = deltas.map((delta) =>
        sseData({ type: 'transcript.text.delta', delta, ...(withLogprobs ? { logprobs: logprobsOf(delta) } : {}) }),
      );
      events.push(
        sseData({
          type: 'transcript.text.done',
          text,
          ...(withLogprobs ? { logprobs: deltas.flatMap(logprobsOf) } : {}),
          usage: tokenUsage,
        }),
      );
      return sseReply(events);
    }

    switch (format) {
      case 'text':
        return textReply(200, `${text}\n`);
      case 'srt':
        return textReply(200, `1\n${timestamp(0, ',')} --> ${timestamp(duration, ',')}\n${text}\n\n`);
      case 'vtt':
        return textReply(200, `WEBVTT\n\n${timestamp(0, '.')} --> ${timestamp(duration, '.')}\n${text}\n\n`);
      case 'verbose_json': {
        const granularities = all(form.fields, 'timestamp_granularities');
        const words = splitIntoDeltas(text).map((w) => w.trim());
        const result: Record<string, unknown> = {
          task: 'transcribe',
          language: first(form.fields, 'language') ?? 'english',
          duration,
          text,
          usage: durationUsage,
        };
        if (granularities.includes('word')) {
          result['words'] = words.map((word, i) => ({
            word,
            start: (duration * i) / words.length,
            end: (duration * (i + 1)) / words.length,
          }));
        }
        if (granularities.length === 0 || granularities.includes('segment')) {
          result['segments'] = [
            {
              id: 0,
              seek: 0,
              start: 0,
              end: duration,
              text: ` ${text}`,
              tokens: [],
              temperature: 0,
              avg_logprob: -0.2,
              compression_ratio: 1,
              no_speech_prob: 0.01,
            },
          ];
        }
        return jsonReply(200, result);
      }
      case 'diarized_json':
        return jsonReply(200, {
          task: 'transcribe',
          duration,
          text,
          segments: [{ type: 'transcript.text.segment', id: 'seg_001', start: 0, end: duration, text, speaker: 'A' }],
          usage: tokenUsage,
        });
      default:
        return jsonReply(200, {
          text,
          ...(withLogprobs ? { logprobs: splitIntoDeltas(text).flatMap(logprobsOf) } : {}),
          usage: model === 'whisper-1' ? durationUsage : tokenUsage,
        });
    }
  }

  private async chatCompletion(req: RecordedRequest): Promise<Reply> {
    const parsed = jsonBodyOf(req);
    if (!parsed.ok) return parsed.reply;
    const body = parsed.value;
    const model = body['model'];
    if (typeof model !== 'string' || model === '') return missingParam('model');
    if (!('messages' in body)) return missingParam('messages');
    const messages = body['messages'];
    if (!Array.isArray(messages)) {
      return errorReply(
        400,
        `Invalid type for 'messages': expected an array of objects, but got ${typeof messages} instead.`,
        'messages',
        'invalid_type',
      );
    }
    if (messages.length === 0) {
      return errorReply(
        400,
        "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
        'messages',
        'empty_array',
      );
    }
    const text = await (this.options.complete ?? (() => DEFAULT_COMPLETION))(req);
    const id = randomId('chatcmpl-');
    const created = unixNow();
    const promptTokens = estimateTokens(JSON.stringify(messages));
    const completionTokens = estimateTokens(text);
    const usage = {
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens,
      prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
      completion_tokens_details: {
        reasoning_tokens: 0,
        audio_tokens: 0,
        accepted_prediction_tokens: 0,
        rejected_prediction_tokens: 0,
      },
    };
    const fingerprint = 'fp_fake0penai';

    if (body['stream'] !== true) {
      return jsonReply(200, {
        id,
        object: 'chat.completion',
        created,
        model,
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: text, refusal: null, annotations: [] },
            logprobs: null,
            finish_reason: 'stop',
          },
        ],
        usage,
        service_tier: 'default',
        system_fingerprint: fingerprint,
      });
    }

    const streamOptions = isRecord(body['stream_options']) ? body['stream_options'] : {};
    const includeUsage = streamOptions['include_usage'] === true;
    const obfuscate = streamOptions['include_obfuscation'] !== false;
    const chunk = (choices: unknown[], extra: Record<string, unknown> = {}): string =>
      sseData({
        id,
        object: 'chat.completion.chunk',
        created,
        model,
        service_tier: 'default',
        system_fingerprint: fingerprint,
        choices,
        ...(includeUsage ? { usage: null } : {}),
        ...(obfuscate ? { obfuscation: randomBytes(3).toString('base64url') } : {}),
        ...extra,
      });
    const events = [chunk([{ index: 0, delta: { role: 'assistant', content: '', refusal: null }, logprobs: null, finish_reason: null }])];
    for (const delta of splitIntoDeltas(text)) {
      events.push(chunk([{ index: 0, delta: { content: delta }, logprobs: null, finish_reason: null }]));
    }
    events.push(chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }]));
    if (includeUsage) events.push(chunk([], { usage }));
    events.push('data: [DONE]\n\n');
    return sseReply(events);
  }

  private async response(req: RecordedRequest): Promise<Reply> {
    const parsed = jsonBodyOf(req);
    if (!parsed.ok) return parsed.reply;
    const body = parsed.value;
    const model = body['model'];
    if (typeof model !== 'string' || model === '') return missingParam('model');
    const text = await (this.options.complete ?? (() => DEFAULT_COMPLETION))(req);
    const id = randomId('resp_', 24);
    const itemId = randomId('msg_', 24);
    const createdAt = unixNow();
    const inputTokens = estimateTokens(JSON.stringify(body['input'] ?? '') + JSON.stringify(body['instructions'] ?? ''));
    const outputTokens = estimateTokens(text);
    const part = (t: string) => ({ type: 'output_text', text: t, annotations: [], logprobs: [] });
    const message = (status: 'in_progress' | 'completed', content: unknown[]) => ({
      id: itemId,
      type: 'message',
      status,
      role: 'assistant',
      content,
    });
    const responseObject = (status: 'in_progress' | 'completed'): Record<string, unknown> => ({
      id,
      object: 'response',
      created_at: createdAt,
      status,
      background: false,
      completed_at: status === 'completed' ? unixNow() : null,
      error: null,
      incomplete_details: null,
      instructions: body['instructions'] ?? null,
      max_output_tokens: body['max_output_tokens'] ?? null,
      model,
      output: status === 'completed' ? [message('completed', [part(text)])] : [],
      parallel_tool_calls: true,
      previous_response_id: body['previous_response_id'] ?? null,
      reasoning: { effort: null, summary: null },
      service_tier: 'default',
      store: body['store'] ?? true,
      temperature: body['temperature'] ?? 1,
      text: { format: { type: 'text' } },
      tool_choice: 'auto',
      tools: [],
      top_p: body['top_p'] ?? 1,
      truncation: 'disabled',
      usage:
        status === 'completed'
          ? {
              input_tokens: inputTokens,
              input_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 },
              output_tokens: outputTokens,
              output_tokens_details: { reasoning_tokens: 0 },
              total_tokens: inputTokens + outputTokens,
            }
          : null,
      user: null,
      metadata: isRecord(body['metadata']) ? body['metadata'] : {},
    });

    if (body['stream'] !== true) return jsonReply(200, responseObject('completed'));

    let sequence = 0;
    const event = (type: string, fields: Record<string, unknown>): string =>
      sseEvent(type, { type, ...fields, sequence_number: sequence++ });
    const events = [
      event('response.created', { response: responseObject('in_progress') }),
      event('response.in_progress', { response: responseObject('in_progress') }),
      event('response.output_item.added', { output_index: 0, item: message('in_progress', []) }),
      event('response.content_part.added', { item_id: itemId, output_index: 0, content_index: 0, part: part('') }),
    ];
    for (const delta of splitIntoDeltas(text)) {
      events.push(event('response.output_text.delta', { item_id: itemId, output_index: 0, content_index: 0, delta, logprobs: [] }));
    }
    events.push(
      event('response.output_text.done', { item_id: itemId, output_index: 0, content_index: 0, text, logprobs: [] }),
      event('response.content_part.done', { item_id: itemId, output_index: 0, content_index: 0, part: part(text) }),
      event('response.output_item.done', { output_index: 0, item: message('completed', [part(text)]) }),
      event('response.completed', { response: responseObject('completed') }),
    );
    return sseReply(events);
  }
}

/** Keep only the first `limit` bytes of a list of buffers. */
function cutAt(pieces: Buffer[], limit: number): Buffer[] {
  const out: Buffer[] = [];
  let left = limit;
  for (const piece of pieces) {
    if (left <= 0) break;
    out.push(piece.length <= left ? piece : piece.subarray(0, left));
    left -= piece.length;
  }
  return out;
}

async function parseMultipart(body: Buffer, contentType: string): Promise<RecordedForm> {
  const formData = await new Response(new Uint8Array(body), {
    headers: { 'content-type': contentType },
  }).formData();
  const form: RecordedForm = { fields: {}, files: {} };
  for (const [name, value] of formData.entries()) {
    if (typeof value === 'string') {
      (form.fields[name] ??= []).push(value);
    } else {
      form.files[name] = {
        filename: value.name,
        contentType: value.type || 'application/octet-stream',
        data: Buffer.from(await value.arrayBuffer()),
      };
    }
  }
  return form;
}
