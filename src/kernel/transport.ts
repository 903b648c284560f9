import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { TransportConfig } from './config/schema.ts';
import { kotoError, KotoError } from './errors.ts';
import type { KernelHooks } from './hooks.ts';
import type { Logger } from './logger.ts';
import { originStats, type OriginStats, type TransportStats } from './transport-stats.ts';
import type { OutgoingRequest, TransportAgentOptions } from './types.ts';
import type { buildConnector as BuildConnector, WebSocket } from 'undici';
import { undici, type DispatcherType } from './undici.ts';

type Handler = DispatcherType.DispatchHandler;
type DispatchOptions = DispatcherType.DispatchOptions;

const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\]|::1)$/i;

/** Loopback hosts, where plain http is allowed (local servers, tests). */
export function isLoopbackHost(hostname: string): boolean {
  return LOOPBACK.test(hostname);
}

/** Agent options from the `transport` config section, before plugins adjust them. */
export function agentOptionsFrom(config: TransportConfig): TransportAgentOptions {
  return {
    allowH2: config.http2,
    connectTimeout: config.connectTimeoutMs,
    headersTimeout: config.headersTimeoutMs,
    bodyTimeout: config.bodyTimeoutMs,
    // undici drops idle HTTP/2 sessions after keepAliveTimeout (default 4 s; PINGs don't count
    // as activity): at dictation spacing that would throw the warm connection away.
    keepAliveTimeout: config.keepAliveMs,
    keepAliveMaxTimeout: config.keepAliveMs,
    pingInterval: config.pingIntervalMs,
    connections: config.maxConnectionsPerOrigin,
    ca: config.ca,
    proxy: config.proxy,
  };
}

interface BuiltDispatcher {
  readonly generation: number;
  /**
   * The agent, made on first use from options the `transportOptions` taps already shaped: undici
   * is loaded only when something is sent (see undici.ts).
   */
  dispatcher: DispatcherType | undefined;
  readonly makeDispatcher: () => DispatcherType;
  /** HTTP/1.1-only dispatcher (large uploads), built on first use. */
  http1: DispatcherType | undefined;
  readonly makeHttp1: () => DispatcherType;
  readonly sockets: Set<Socket>;
}

function agentOf(built: BuiltDispatcher): DispatcherType {
  built.dispatcher ??= built.makeDispatcher();
  return built.dispatcher;
}

/** Which client a facade sends through: the shared one, the upload choice, or HTTP/1.1 always. */
type Route = 'default' | 'uploads' | 'http1';

/**
 * The kernel's one HTTP client. Plugins get `KotoHttp` facades whose dispatch always goes to
 * the current agent, so a rebuild never leaves a plugin holding a dead client.
 */
export class Transport {
  readonly #hooks: KernelHooks;
  readonly #log: Logger;
  readonly #stats = new Map<string, OriginStats>();
  readonly #insecureAllowed = new Set<string>();
  readonly #prewarming = new Map<string, Promise<boolean>>();
  #config: TransportConfig;
  /** Built on first use (or by start()), after the plugins have tapped `transportOptions`. */
  #built: BuiltDispatcher | undefined;
  #retired = new Set<BuiltDispatcher>();
  #generation = 0;
  #closed = false;
  readonly http: KotoHttp;
  readonly uploads: KotoHttp;
  readonly http1: KotoHttp;
  readonly #prewarmAborts = new Set<AbortController>();

  constructor(config: TransportConfig, hooks: KernelHooks, log: Logger) {
    this.#hooks = hooks;
    this.#log = log;
    this.#config = config;
    this.http = new KotoHttp(this, 'default');
    this.uploads = new KotoHttp(this, 'uploads');
    this.http1 = new KotoHttp(this, 'http1');
  }

  get generation(): number {
    return this.#current.generation;
  }

  /**
   * The agent in use. The first is built lazily so that every `transportOptions` tap a plugin
   * registers while it applies shapes it (the kernel calls start() once all plugins applied).
   */
  get #current(): BuiltDispatcher {
    this.#built ??= this.#build(this.#config);
    return this.#built;
  }

  /** Builds the first agent now (the kernel's start, after the plugins' apply). */
  start(): void {
    void this.#current;
  }

  get config(): TransportConfig {
    return this.#config;
  }

  #build(config: TransportConfig): BuiltDispatcher {
    const generation = ++this.#generation;
    const options = this.#hooks.transportOptions.call(agentOptionsFrom(config));
    const sockets = new Set<Socket>();
    // Read only with an extra CA: importing node:tls by name materialises every root certificate.
    const ca = options.ca ? [...process.getBuiltinModule('node:tls').rootCertificates, options.ca] : undefined;
    const connector = (allowH2: boolean) => {
      const base = undici().buildConnector({
        allowH2,
        // ALPN offers http/1.1 first unless asked: we want h2 wherever the server has it.
        preferH2: allowH2,
        timeout: options.connectTimeout,
        maxCachedSessions: 100,
        ...(ca ? { ca } : {}),
      });
      return (connectOptions: BuildConnector.Options, callback: BuildConnector.Callback) =>
        base(connectOptions, (err, socket) => {
          if (!err && socket) this.#track(connectOptions, socket as Socket, sockets);
          callback(err as Error & null, socket as never);
        });
    };
    const agentOptions = (allowH2: boolean, connections: number) => ({
      allowH2,
      connections,
      headersTimeout: options.headersTimeout,
      bodyTimeout: options.bodyTimeout,
      keepAliveTimeout: options.keepAliveTimeout,
      keepAliveMaxTimeout: options.keepAliveMaxTimeout,
      ...(allowH2 ? { h2Options: { pingInterval: options.pingInterval } } : {}),
      connect: connector(allowH2),
    });
    const make = (allowH2: boolean, connections: number): DispatcherType => {
      const { Agent, EnvHttpProxyAgent, ProxyAgent } = undici();
      const opts = agentOptions(allowH2, connections);
      const proxy = options.proxy;
      const envProxy = process.env.https_proxy || process.env.HTTPS_PROXY || process.env.http_proxy || process.env.HTTP_PROXY;
      if (proxy === 'none' || (proxy === 'auto' && !envProxy)) return new Agent(opts);
      const { connect: _connect, ...proxied } = opts;
      const tls = ca ? { requestTls: { ca } } : {};
      if (proxy === 'auto') return new EnvHttpProxyAgent({ ...proxied, ...tls });
      return new ProxyAgent({ ...proxied, ...tls, uri: proxy });
    };
    // Without HTTP/2 the shared agent is the HTTP/1.1 one too.
    const built: BuiltDispatcher = {
      generation,
      dispatcher: undefined,
      makeDispatcher: () => make(options.allowH2, options.connections),
      http1: undefined,
      makeHttp1: () => (options.allowH2 ? make(false, options.connections) : agentOf(built)),
      sockets,
    };
    return built;
  }

  #track(connectOptions: BuildConnector.Options, socket: Socket, sockets: Set<Socket>): void {
    const origin = originOf(`${connectOptions.protocol}//${connectOptions.hostname}:${connectOptions.port}`);
    const stats = this.#statsFor(origin);
    stats.connections += 1;
    stats.open += 1;
    const tlsSocket = socket as Socket & { alpnProtocol?: string | false; encrypted?: boolean; isSessionReused?: () => boolean };
    if (tlsSocket.encrypted) {
      stats.tlsHandshakes += 1;
      if (tlsSocket.isSessionReused?.()) stats.tlsResumed += 1;
    }
    const protocol = tlsSocket.alpnProtocol || 'http/1.1';
    stats.protocols[protocol] = (stats.protocols[protocol] ?? 0) + 1;
    stats.lastProtocol = protocol;
    sockets.add(socket);
    socket.once('close', () => {
      stats.open -= 1;
      sockets.delete(socket);
    });
  }

  #statsFor(origin: string): OriginStats {
    let stats = this.#stats.get(origin);
    if (!stats) {
      stats = originStats();
      this.#stats.set(origin, stats);
    }
    return stats;
  }

  /** Allows plain http to a non-loopback origin (a provider opted in; the caller warns). */
  allowInsecure(origin: string): void {
    this.#insecureAllowed.add(originOf(origin));
  }

  /** @internal Dispatch through the current agent, decorated by the `request` hook. */
  dispatchVia(route: Route, opts: DispatchOptions, handler: Handler): boolean {
    const fail = (err: Error) => {
      handler.onResponseError?.(null as never, err);
      return true;
    };
    if (this.#closed) return fail(kotoError('KOTO_ERR_CLOSED', { state: 'closed' }));
    let url: URL;
    try {
      url = new URL(String(opts.origin));
    } catch {
      return fail(kotoError('KOTO_ERR_NETWORK', { origin: String(opts.origin), detail: 'not a valid URL' }));
    }
    if (url.protocol === 'http:' && !isLoopbackHost(url.hostname) && !this.#insecureAllowed.has(url.origin)) {
      return fail(kotoError('KOTO_ERR_INSECURE_ENDPOINT', { url: url.origin }));
    }
    const stats = this.#statsFor(url.origin);
    stats.requests += 1;
    stats.inFlight += 1;
    const tracked = new TrackingHandler(handler, url, () => {
      stats.inFlight -= 1;
    });
    const target = this.#current;
    const wantsHttp1 = route === 'http1' || (route === 'uploads' && this.#config.uploadsOverHttp1);
    const dispatcher = wantsHttp1 ? (target.http1 ??= target.makeHttp1()) : agentOf(target);
    if (!this.#hooks.request.isUsed()) return dispatcher.dispatch(opts, tracked);
    const outgoing: OutgoingRequest = {
      origin: url.origin,
      path: opts.path,
      method: opts.method,
      headers: headersToRecord(opts.headers),
    };
    this.#hooks.request.promise(outgoing).then(
      (decorated) => {
        dispatcher.dispatch({ ...opts, headers: decorated.headers }, tracked);
      },
      (err: unknown) => tracked.onResponseError(null as never, err as Error),
    );
    return true;
  }

  /**
   * Opens (or refreshes) a connection to `origin` ahead of the real request, with a cheap
   * request whose answer is discarded. undici has no public "connect only" call; a request is
   * also what keeps a server's idle timer from closing the connection mid-dictation.
   * Resolves true when the origin answered at all (any status).
   */
  prewarm(origin: string, path = '/', headers: Record<string, string> = {}, route: Route = 'default'): Promise<boolean> {
    const key = originOf(origin);
    const dedupe = `${route} ${key}`;
    const pending = this.#prewarming.get(dedupe);
    if (pending) return pending;
    // Aborted at close(): a slow pre-warm must never hold up shutdown.
    const abort = new AbortController();
    this.#prewarmAborts.add(abort);
    const facade = route === 'default' ? this.http : route === 'uploads' ? this.uploads : this.http1;
    const started = facade
      .request({ origin: key, path, method: 'GET', headers, headersTimeout: this.#config.connectTimeoutMs * 2, signal: abort.signal })
      .then(
        async (res) => {
          await res.body.dump();
          this.#statsFor(key).prewarms += 1;
          return true;
        },
        (err: unknown) => {
          this.#log.debug(`pre-warm of ${key} failed`, { error: err instanceof Error ? err.message : String(err) });
          return false;
        },
      )
      .finally(() => {
        this.#prewarming.delete(dedupe);
        this.#prewarmAborts.delete(abort);
      });
    this.#prewarming.set(dedupe, started);
    return started;
  }

  /**
   * Builds a new agent from new transport settings, swaps it in, then lets the old one finish
   * its in-flight requests for up to `drainTimeoutMs` before destroying it.
   */
  async rebuild(config: TransportConfig): Promise<void> {
    await this.prepare(config).commit();
  }

  /**
   * Builds an agent from new settings without putting it in use (a reload's "build new" step):
   * a throwing `transportOptions` tap fails here, before anything changed. commit() swaps it in
   * and drains the old one; discard() closes it unused.
   */
  prepare(config: TransportConfig): PreparedTransport {
    if (this.#closed) throw kotoError('KOTO_ERR_CLOSED', { state: 'closed' });
    // The generation is taken only by a commit: a discarded build leaves no gap in the numbering.
    const counter = this.#generation;
    const next = this.#build(config);
    this.#generation = counter;
    let settled = false;
    return {
      commit: async () => {
        if (settled) return;
        settled = true;
        if (this.#closed) throw kotoError('KOTO_ERR_CLOSED', { state: 'closed' });
        const built = { ...next, generation: ++this.#generation };
        const old = this.#built;
        this.#built = built;
        this.#config = config;
        this.#log.info(`transport rebuilt (generation ${built.generation})`);
        if (old) await this.#retire(old, config.drainTimeoutMs);
      },
      discard: async () => {
        if (settled) return;
        settled = true;
        await next.dispatcher?.destroy().catch(() => undefined);
      },
    };
  }

  async #retire(old: BuiltDispatcher, deadlineMs: number): Promise<void> {
    this.#retired.add(old);
    const parts = [...new Set([old.dispatcher, old.http1].filter((d): d is DispatcherType => d !== undefined))];
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), deadlineMs);
      timer.unref();
    });
    const closed = Promise.all(parts.map((d) => d.close())).then(() => 'closed' as const);
    const result = await Promise.race([closed, deadline]);
    clearTimeout(timer);
    if (result === 'timeout') {
      this.#log.warn(`old HTTP client still busy after ${deadlineMs} ms; aborting its requests`);
      await Promise.all(parts.map((d) => d.destroy().catch(() => undefined)));
    }
    // close() resolves when requests finish; make sure no socket outlives it.
    for (const socket of old.sockets) socket.destroy();
    this.#retired.delete(old);
  }

  stats(): TransportStats {
    const origins: Record<string, OriginStats> = {};
    for (const [origin, stats] of this.#stats) origins[origin] = { ...stats, protocols: { ...stats.protocols } };
    return {
      generation: this.#current.generation,
      http2: this.#config.http2,
      uploadsOverHttp1: this.#config.uploadsOverHttp1,
      retiring: this.#retired.size,
      openSockets: this.#current.sockets.size,
      origins,
    };
  }

  async close(deadlineMs = this.#config.drainTimeoutMs): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const abort of this.#prewarmAborts) abort.abort();
    if (this.#built) await this.#retire(this.#built, deadlineMs);
  }
}

/** A new agent built but not yet in use: see Transport.prepare. */
export interface PreparedTransport {
  commit(): Promise<void>;
  discard(): Promise<void>;
}

/**
 * undici's Dispatcher without loading undici: an EventEmitter whose request, stream, pipeline,
 * connect, upgrade and compose are undici's own (they only call `this.dispatch`), taken from its
 * prototype on first call.
 */
class LazyDispatcher extends EventEmitter {}
for (const method of ['request', 'stream', 'pipeline', 'connect', 'upgrade', 'compose'] as const) {
  Object.defineProperty(LazyDispatcher.prototype, method, {
    value(this: unknown, ...args: unknown[]): unknown {
      return (undici().Dispatcher.prototype[method] as (...a: unknown[]) => unknown).apply(this, args);
    },
    writable: true,
    configurable: true,
  });
}
const DispatcherBase = LazyDispatcher as unknown as typeof DispatcherType;

/** The shared client as plugins see it: an undici Dispatcher they can `request()` through. */
export class KotoHttp extends DispatcherBase {
  readonly #transport: Transport;
  readonly #route: Route;

  constructor(transport: Transport, route: Route) {
    super();
    this.#transport = transport;
    this.#route = route;
  }

  override dispatch(opts: DispatchOptions, handler: Handler): boolean {
    return this.#transport.dispatchVia(this.#route, opts, handler);
  }

  /** The client for large uploads: HTTP/1.1 when `transport.uploadsOverHttp1` is on, else the shared one. */
  get uploads(): KotoHttp {
    return this.#transport.uploads;
  }

  /** Always HTTP/1.1 (kernel-owned, built on first use): for a provider that opts its uploads out of HTTP/2. */
  get http1(): KotoHttp {
    return this.#transport.http1;
  }

  /** Opens (or refreshes) the connection this facade would use, e.g. `api.http.uploads.prewarm(...)`. */
  prewarm(origin: string, path?: string, headers?: Record<string, string>): Promise<boolean> {
    return this.#transport.prewarm(origin, path, headers, this.#route);
  }

  allowInsecure(origin: string): void {
    this.#transport.allowInsecure(origin);
  }

  /**
   * Opens a WebSocket (e.g. a realtime transcription session) through the kernel's HTTP/1.1
   * client: counted, proxied and TLS-configured like every other request, and its handshake
   * decorated by the `request` hook. `wss:` only, except on loopback.
   */
  websocket(url: string, options: { headers?: Record<string, string>; protocols?: string | string[] } = {}): WebSocket {
    const target = new URL(url);
    if (target.protocol === 'ws:' && !isLoopbackHost(target.hostname)) {
      throw kotoError('KOTO_ERR_INSECURE_ENDPOINT', { url: target.origin });
    }
    return new (undici().WebSocket)(url, {
      dispatcher: this.#transport.http1,
      ...(options.headers ? { headers: options.headers } : {}),
      ...(options.protocols ? { protocols: options.protocols } : {}),
    });
  }

  stats(): TransportStats {
    return this.#transport.stats();
  }

  // The shared client belongs to the kernel: a plugin closing it would cut every other plugin off.
  override close(): Promise<void> {
    return Promise.resolve();
  }

  override destroy(): Promise<void> {
    return Promise.resolve();
  }
}

/** Forwards to the caller's handler; counts completion; refuses cross-origin redirects. */
class TrackingHandler implements Handler {
  readonly #inner: Handler;
  readonly #url: URL;
  #done: (() => void) | undefined;

  constructor(inner: Handler, url: URL, done: () => void) {
    this.#inner = inner;
    this.#url = url;
    this.#done = done;
  }

  #finish(): void {
    const done = this.#done;
    this.#done = undefined;
    done?.();
  }

  onRequestStart(controller: DispatcherType.DispatchController, context: unknown): void {
    this.#inner.onRequestStart?.(controller, context);
  }

  onRequestUpgrade(controller: DispatcherType.DispatchController, statusCode: number, headers: never, socket: never): void {
    this.#inner.onRequestUpgrade?.(controller, statusCode, headers, socket);
  }

  onResponseStart(
    controller: DispatcherType.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[]>,
    statusMessage?: string,
  ): void {
    if (statusCode >= 300 && statusCode < 400) {
      const location = headers.location;
      const target = Array.isArray(location) ? location[0] : location;
      if (target) {
        const next = safeUrl(target, this.#url);
        if (!next || next.origin !== this.#url.origin) {
          controller.abort(kotoError('KOTO_ERR_REDIRECT_REFUSED', { url: this.#url.origin, location: next?.origin ?? 'an invalid URL' }));
          return;
        }
      }
    }
    this.#inner.onResponseStart?.(controller, statusCode, headers, statusMessage);
  }

  onResponseData(controller: DispatcherType.DispatchController, chunk: Buffer): void {
    this.#inner.onResponseData?.(controller, chunk);
  }

  onResponseEnd(controller: DispatcherType.DispatchController, trailers: Record<string, string | string[]>): void {
    this.#finish();
    this.#inner.onResponseEnd?.(controller, trailers);
  }

  onResponseError(controller: DispatcherType.DispatchController, err: Error): void {
    this.#finish();
    this.#inner.onResponseError?.(controller, KotoError.is(err) ? err : err);
  }
}

function safeUrl(value: string, base: URL): URL | undefined {
  try {
    return new URL(value, base);
  } catch {
    return undefined;
  }
}

export function originOf(value: string): string {
  return new URL(value).origin;
}

function headersToRecord(headers: DispatchOptions['headers']): Record<string, string> {
  const out: Record<string, string> = {};
  if (!headers) return out;
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2) out[String(headers[i]).toLowerCase()] = String(headers[i + 1]);
    return out;
  }
  if (typeof (headers as Iterable<unknown>)[Symbol.iterator] === 'function' && !(typeof headers === 'string')) {
    for (const [k, v] of headers as Iterable<[string, string]>) out[k.toLowerCase()] = String(v);
    return out;
  }
  for (const [k, v] of Object.entries(headers as Record<string, unknown>)) {
    if (v !== undefined) out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : String(v);
  }
  return out;
}
