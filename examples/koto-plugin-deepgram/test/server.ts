/**
 * A small Deepgram-style loopback server: HTTPS with HTTP/2 (and HTTP/1.1 fallback) on
 * 127.0.0.1, a run-time certificate from koto-voice/testing, the two routes this plugin uses,
 * request recording, one-shot faults, and the ConformanceServer interface the Koto conformance
 * suite drives.
 */
import { constants as h2, createSecureServer, type Http2ServerRequest, type Http2ServerResponse, type Http2Session } from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { getTestCertificate, type ConformanceCapability, type ConformanceServer } from 'koto-voice/testing';

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly headers: Readonly<Record<string, string>>;
  readonly protocol: 'h2' | 'http/1.1';
  readonly body: Buffer;
}

/** What the next `POST /v1/listen` gets instead of a transcript. */
export interface ListenFault {
  readonly status?: number | undefined;
  /** A string is sent as-is; anything else as JSON. */
  readonly body?: unknown;
  readonly headers?: Readonly<Record<string, string>> | undefined;
  /** Never answer (until the server closes). */
  readonly hang?: boolean | undefined;
  /** Reset the request (its HTTP/2 stream, or the connection) before any answer. */
  readonly drop?: boolean | undefined;
}

export interface DeepgramServerOptions {
  /** Require `Authorization: Token <apiKey>` (401 INVALID_AUTH otherwise). */
  readonly apiKey?: string | undefined;
  /** The transcript of every recording (default `hello from the loopback server`). */
  readonly transcript?: string | ((request: RecordedRequest) => string) | undefined;
}

export interface DeepgramServer extends ConformanceServer {
  /** Every request, in order. */
  readonly requests: RecordedRequest[];
  /** Queue a fault for the next `POST /v1/listen`. */
  inject(fault: ListenFault): void;
}

export const DEFAULT_TRANSCRIPT = 'hello from the loopback server';
const LISTEN = '/v1/listen';
const PROJECTS = '/v1/projects';

function deepgramError(status: number, message?: string): Record<string, string> {
  const code =
    status === 401 ? 'INVALID_AUTH' : status === 429 ? 'TOO_MANY_REQUESTS' : status >= 500 ? 'INTERNAL_SERVER_ERROR' : 'Bad Request';
  return { err_code: code, err_msg: message ?? (status === 401 ? 'Invalid credentials.' : `HTTP ${status}`), request_id: randomUUID() };
}

function flatten(headers: Http2ServerRequest['headers']): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(headers)) {
    if (key.startsWith(':') || value === undefined) continue;
    out[key] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

export async function startDeepgramServer(options: DeepgramServerOptions = {}): Promise<DeepgramServer> {
  const { cert, key, ca } = await getTestCertificate();
  const requests: RecordedRequest[] = [];
  const faults: ListenFault[] = [];
  const sockets = new Set<Socket>();
  const sessions = new Set<Http2Session>();
  const held = new Set<Http2ServerResponse>();
  let heldCount = 0;

  const send = (res: Http2ServerResponse, status: number, body: unknown, headers: Readonly<Record<string, string>> = {}) => {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, {
      'content-type': typeof body === 'string' ? 'text/plain' : 'application/json',
      'dg-request-id': randomUUID(),
      ...headers,
    });
    res.end(text);
  };

  const handle = async (req: Http2ServerRequest, res: Http2ServerResponse) => {
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of req) chunks.push(chunk as Buffer);
    } catch {
      return; // the client went away mid-upload
    }
    const url = new URL(req.url, 'https://127.0.0.1');
    const recorded: RecordedRequest = {
      method: req.method,
      path: url.pathname,
      query: url.searchParams,
      headers: flatten(req.headers),
      protocol: req.httpVersion === '2.0' ? 'h2' : 'http/1.1',
      body: Buffer.concat(chunks),
    };
    requests.push(recorded);
    if (options.apiKey !== undefined && recorded.headers.authorization !== `Token ${options.apiKey}`) {
      return send(res, 401, deepgramError(401));
    }
    if (url.pathname === PROJECTS && req.method === 'GET') {
      return send(res, 200, { projects: [{ project_id: randomUUID(), name: 'loopback' }] });
    }
    if (url.pathname !== LISTEN) return send(res, 404, deepgramError(404, 'Not found'));
    if (req.method !== 'POST') return send(res, 405, deepgramError(405, 'Method not allowed'));
    const fault = faults.shift();
    if (fault?.hang) {
      heldCount += 1;
      held.add(res);
      res.once('close', () => held.delete(res));
      return;
    }
    if (fault?.drop) {
      if (res.stream) res.stream.close(h2.NGHTTP2_INTERNAL_ERROR);
      else req.socket.destroy();
      return;
    }
    if (fault) return send(res, fault.status ?? 200, fault.body ?? deepgramError(fault.status ?? 500), fault.headers);
    if (recorded.body.length === 0) return send(res, 400, deepgramError(400, 'Bad Request: no audio in the request body'));
    const transcript = typeof options.transcript === 'function' ? options.transcript(recorded) : (options.transcript ?? DEFAULT_TRANSCRIPT);
    const language = url.searchParams.get('language') ?? (url.searchParams.get('detect_language') === 'true' ? 'en' : undefined);
    send(res, 200, {
      metadata: {
        request_id: randomUUID(),
        created: new Date().toISOString(),
        duration: 0.5,
        channels: 1,
        models: [randomUUID()],
      },
      results: {
        channels: [
          {
            alternatives: [{ transcript, confidence: 0.98, words: [] }],
            ...(language ? { detected_language: language, language_confidence: 0.9 } : {}),
          },
        ],
      },
    });
  };

  const server = createSecureServer({ cert, key, allowHTTP1: true }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, deepgramError(500, String(err)));
    });
  });
  server.on('secureConnection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('session', (session: Http2Session) => {
    sessions.add(session);
    session.on('error', () => undefined);
    session.once('close', () => sessions.delete(session));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const origin = `https://127.0.0.1:${port}`;
  let closing: Promise<void> | undefined;

  return {
    url: origin,
    origin,
    ca,
    requests,
    inject: (fault) => void faults.push(fault),
    requestCount: () => requests.length,
    openConnections: () => sockets.size,
    failNext(capability: ConformanceCapability, status: number, message?: string) {
      if (capability !== 'asr') throw new Error(`this server serves asr only, not ${capability}`);
      faults.push({ status, body: deepgramError(status, message) });
    },
    hangNext(capability: ConformanceCapability) {
      if (capability !== 'asr') throw new Error(`this server serves asr only, not ${capability}`);
      faults.push({ hang: true });
    },
    rateLimitNext(capability: ConformanceCapability, retryAfter?: string) {
      if (capability !== 'asr') throw new Error(`this server serves asr only, not ${capability}`);
      faults.push({
        status: 429,
        body: deepgramError(429, 'Too many requests'),
        ...(retryAfter === undefined ? {} : { headers: { 'retry-after': retryAfter } }),
      });
    },
    dropNext(capability: ConformanceCapability) {
      if (capability !== 'asr') throw new Error(`this server serves asr only, not ${capability}`);
      faults.push({ drop: true });
    },
    malformedNext(capability: ConformanceCapability) {
      if (capability !== 'asr') throw new Error(`this server serves asr only, not ${capability}`);
      // A string body is sent as-is: JSON cut off mid-way.
      faults.push({ status: 200, body: '{"metadata": {"request_id": "cut off', headers: { 'content-type': 'application/json' } });
    },
    heldRequests: () => heldCount,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const res of held) res.stream?.close();
        for (const session of sessions) session.destroy();
        for (const socket of sockets) socket.destroy();
      });
      return closing;
    },
  };
}
