/**
 * A TCP proxy on loopback that simulates a network round-trip time, for benchmarks.
 *
 * - Bytes are forwarded in each direction RTT/2 after they arrive, in order.
 * - The first client bytes of each new connection are held one extra RTT (configurable), which
 *   is what the TCP three-way handshake costs before data can flow. With it, a fresh TLS 1.3
 *   connection costs TCP 1 RTT + TLS 1 RTT before the first request can leave, and the request
 *   one more: think time + 3 RTT for a cold request, think time + 1 RTT on a warm connection.
 * - No bandwidth limit, no loss: it models latency only (good enough for ratios).
 *
 * Safety: it listens on a loopback address only and forwards to a loopback address only (both
 * checked; anything else throws), refuses connections from non-loopback peers, caps the number
 * of connections and the bytes buffered per direction (back-pressure pauses the sender), never
 * keeps the process alive by itself (the listener is unref'd), and stops by itself after
 * `maxLifetimeMs` (default 1 h) or after `idleShutdownMs` with no open connection (when set).
 *
 * @module
 */

import { once } from 'node:events';
import { createServer, connect, isIP, type AddressInfo, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

export interface DelayProxyOptions {
  /** Where to forward: a loopback address (`127.0.0.1` by default, `::1` or `localhost`) and port. */
  readonly target: { readonly host?: string; readonly port: number };
  /** Round-trip time to simulate, in ms (each direction gets half). */
  readonly rttMs: number;
  /** Loopback address to listen on: `127.0.0.1` (default) or `::1`. The port is random. */
  readonly host?: string;
  /** Extra round trips the first client bytes wait on a new connection (TCP handshake; default 1). */
  readonly handshakeRtts?: number;
  /** Most connections open at once; more are refused (default 256). */
  readonly maxConnections?: number;
  /** Bytes buffered per direction before the sending side is paused (default 4 MiB). */
  readonly highWaterBytes?: number;
  /** Closes itself this long after starting, whatever is going on (default 1 h). */
  readonly maxLifetimeMs?: number;
  /** Closes itself after this long without any open connection (default: never). */
  readonly idleShutdownMs?: number;
}

export interface DelayProxyStats {
  /** Connections accepted since start. */
  connections: number;
  /** Connections refused (over `maxConnections`, non-loopback peer, upstream unreachable). */
  refused: number;
  /** Bytes forwarded client → server and server → client. */
  bytesUp: number;
  bytesDown: number;
}

export interface DelayProxy {
  readonly host: string;
  readonly port: number;
  /** `host:port` as an URL authority (IPv6 in brackets). */
  readonly authority: string;
  readonly rttMs: number;
  readonly stats: DelayProxyStats;
  readonly openConnections: number;
  /** Resolves once the proxy has stopped (by `close()` or by itself). */
  readonly closed: Promise<void>;
  /** Stops listening and destroys every connection. Safe to call twice. */
  close(): Promise<void>;
}

const DEFAULT_MAX_CONNECTIONS = 256;
const DEFAULT_HIGH_WATER = 4 * 1024 * 1024;
const DEFAULT_LIFETIME_MS = 60 * 60 * 1000;
/** The last stretch before a chunk is due is waited on setImmediate rather than a timer. */
const SPIN_MS = 1.5;

/** True for 127.0.0.0/8, ::1 and ::ffff:127.x (what a loopback socket reports). */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  const bare = address.replace(/^\[|\]$/g, '');
  if (bare === '::1') return true;
  const v4 = bare.startsWith('::ffff:') ? bare.slice(7) : bare;
  return isIP(v4) === 4 && v4.startsWith('127.');
}

function loopbackHost(host: string | undefined, what: string): string {
  const value = host ?? '127.0.0.1';
  const resolved = value === 'localhost' ? '127.0.0.1' : value.replace(/^\[|\]$/g, '');
  if (!isLoopbackAddress(resolved)) {
    throw new RangeError(`delay proxy: ${what} must be a loopback address (127.x.x.x, ::1 or localhost), got "${value}"`);
  }
  return resolved;
}

type Item = { at: number; chunk: Buffer } | { at: number; end: 'end' | 'destroy' };

/** One direction of one connection: a FIFO of chunks, each released at its due time. */
class DelayedPipe {
  readonly #queue: Item[] = [];
  readonly #from: Socket;
  readonly #to: Socket;
  readonly #oneWayMs: number;
  readonly #highWater: number;
  readonly #onBytes: (n: number) => void;
  #notBefore: number;
  #lastAt = 0;
  #queuedBytes = 0;
  #timer: NodeJS.Timeout | undefined;
  #immediate: NodeJS.Immediate | undefined;
  #paused = false;
  #finished = false;

  constructor(from: Socket, to: Socket, oneWayMs: number, notBefore: number, highWater: number, onBytes: (n: number) => void) {
    this.#from = from;
    this.#to = to;
    this.#oneWayMs = oneWayMs;
    this.#notBefore = notBefore;
    this.#highWater = highWater;
    this.#onBytes = onBytes;
    from.on('data', (chunk: Buffer) => this.#push({ at: this.#due(), chunk }));
    from.once('end', () => this.#push({ at: this.#due(), end: 'end' }));
    // A reset (error, or close without end) reaches the other side one way later, like an RST.
    from.once('close', () => {
      if (!this.#finished) this.#push({ at: this.#due(), end: 'destroy' });
    });
  }

  #due(): number {
    // Sent no earlier than the handshake allows, arriving one way later, never overtaking.
    const at = Math.max(performance.now(), this.#notBefore) + this.#oneWayMs;
    this.#lastAt = Math.max(this.#lastAt, at);
    return this.#lastAt;
  }

  #push(item: Item): void {
    if (this.#finished) return;
    if ('end' in item) this.#finished = true;
    else {
      this.#queuedBytes += item.chunk.length;
      if (!this.#paused && this.#queuedBytes > this.#highWater) {
        this.#paused = true;
        this.#from.pause();
      }
    }
    this.#queue.push(item);
    if (this.#queue.length === 1) this.#arm();
  }

  #arm(): void {
    const head = this.#queue[0];
    if (!head || this.#timer || this.#immediate) return;
    // Timers have 1 ms granularity and fire up to ~1 ms late (or early, against
    // performance.now()): sleep until ~1.5 ms before the due time, then finish on setImmediate,
    // so each hop is accurate to ~0.1 ms instead of adding a millisecond of our own.
    const wait = head.at - performance.now();
    if (wait > SPIN_MS) {
      this.#timer = setTimeout(
        () => {
          this.#timer = undefined;
          this.#release();
        },
        Math.floor(wait - SPIN_MS),
      );
    } else {
      this.#immediate = setImmediate(() => {
        this.#immediate = undefined;
        this.#release();
      });
    }
  }

  #release(): void {
    const now = performance.now();
    while (this.#queue.length > 0 && this.#queue[0]!.at <= now) {
      const item = this.#queue.shift()!;
      if ('chunk' in item) {
        this.#queuedBytes -= item.chunk.length;
        this.#onBytes(item.chunk.length);
        if (!this.#to.destroyed) this.#to.write(item.chunk);
      } else if (item.end === 'end') {
        if (!this.#to.destroyed) this.#to.end();
      } else {
        this.#to.destroy();
      }
    }
    if (this.#paused && this.#queuedBytes <= this.#highWater / 2) {
      this.#paused = false;
      if (!this.#from.destroyed) this.#from.resume();
    }
    this.#arm();
  }

  /** Drops what is queued (the proxy is closing). */
  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#immediate) clearImmediate(this.#immediate);
    this.#timer = undefined;
    this.#immediate = undefined;
    this.#queue.length = 0;
    this.#finished = true;
  }
}

/** Starts a delay proxy in front of a loopback server. Always `close()` it. */
export async function startDelayProxy(options: DelayProxyOptions): Promise<DelayProxy> {
  const rttMs = options.rttMs;
  if (!Number.isFinite(rttMs) || rttMs < 0 || rttMs > 10_000) throw new RangeError(`delay proxy: rttMs must be 0..10000, got ${rttMs}`);
  const listenHost = loopbackHost(options.host, 'host');
  const targetHost = loopbackHost(options.target.host, 'target.host');
  const targetPort = options.target.port;
  if (!Number.isInteger(targetPort) || targetPort <= 0 || targetPort > 65_535)
    throw new RangeError(`delay proxy: bad target port ${targetPort}`);
  const handshakeMs = (options.handshakeRtts ?? 1) * rttMs;
  const maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  const highWater = options.highWaterBytes ?? DEFAULT_HIGH_WATER;
  const oneWay = rttMs / 2;

  const stats: DelayProxyStats = { connections: 0, refused: 0, bytesUp: 0, bytesDown: 0 };
  const open = new Set<{ client: Socket; upstream: Socket; pipes: DelayedPipe[] }>();
  let idleTimer: NodeJS.Timeout | undefined;
  let closing: Promise<void> | undefined;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((resolve) => (resolveClosed = resolve));

  const armIdle = () => {
    if (!options.idleShutdownMs || open.size > 0 || closing) return;
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => void close(), options.idleShutdownMs);
    idleTimer.unref();
  };

  const server: Server = createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
    client.on('error', () => undefined);
    if (closing || open.size >= maxConnections || !isLoopbackAddress(client.remoteAddress)) {
      stats.refused += 1;
      client.destroy();
      return;
    }
    stats.connections += 1;
    clearTimeout(idleTimer);
    const acceptedAt = performance.now();
    const upstream = connect({ host: targetHost, port: targetPort, allowHalfOpen: true, noDelay: true });
    upstream.on('error', () => undefined);
    client.setNoDelay(true);
    const entry = {
      client,
      upstream,
      pipes: [
        // The client's first bytes wait for the simulated TCP handshake.
        new DelayedPipe(client, upstream, oneWay, acceptedAt + handshakeMs, highWater, (n) => (stats.bytesUp += n)),
        new DelayedPipe(upstream, client, oneWay, 0, highWater, (n) => (stats.bytesDown += n)),
      ],
    };
    open.add(entry);
    let closedSockets = 0;
    const onClose = () => {
      closedSockets += 1;
      if (closedSockets < 2) return;
      open.delete(entry);
      armIdle();
    };
    client.once('close', onClose);
    upstream.once('close', onClose);
  });
  server.on('error', () => undefined);
  server.listen(0, listenHost);
  await once(server, 'listening');
  server.unref();
  const address = server.address() as AddressInfo;

  const lifetime = setTimeout(() => void close(), options.maxLifetimeMs ?? DEFAULT_LIFETIME_MS);
  lifetime.unref();
  armIdle();

  function close(): Promise<void> {
    closing ??= (async () => {
      clearTimeout(lifetime);
      clearTimeout(idleTimer);
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const entry of open) {
        for (const pipe of entry.pipes) pipe.stop();
        entry.client.destroy();
        entry.upstream.destroy();
      }
      open.clear();
      await stopped;
      resolveClosed();
    })();
    return closing;
  }

  return {
    host: listenHost,
    port: address.port,
    authority: listenHost.includes(':') ? `[${listenHost}]:${address.port}` : `${listenHost}:${address.port}`,
    rttMs,
    stats,
    get openConnections() {
      return open.size;
    },
    closed,
    close,
  };
}
