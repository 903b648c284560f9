/**
 * A loopback Azure OpenAI / Azure AI Foundry data plane: HTTPS + HTTP/2 (HTTP/1.1 fallback) on
 * 127.0.0.1, with the routes, `api-version` rules, auth headers and error bodies of the real
 * service, and the OpenAI shapes for transcriptions (multipart; JSON, text or SSE) and chat
 * completions (JSON or SSE, with Azure's prompt_filter_results chunk first).
 *
 * Checked on every request, in Azure's order:
 * 1. no `x-koto-*` header reaches the network (the plugin's marker is the request hook's);
 * 2. credentials: exactly one of `api-key: <key>` or `Authorization: Bearer <token>`;
 * 3. the route: `/openai/deployments/{d}/audio/transcriptions|chat/completions`, `/openai/models`
 *    (dated `api-version` required) or `/openai/v1/audio/transcriptions|chat/completions|models`
 *    (no dated version; `preview`/`latest` allowed), always at the resource root (never below a
 *    Foundry project path `/api/projects/{p}`) — anything else is Azure's 404
 *    `{"error":{"code":"404","message":"Resource not found"}}`;
 * 4. the deployment (path, or `model` on v1): unknown → 404 DeploymentNotFound; the wrong kind
 *    (chat on a whisper deployment) → 400 OperationNotSupported.
 */

import { randomBytes } from 'node:crypto';
import * as http2 from 'node:http2';
import type { IncomingHttpHeaders } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { getTestCertificate, splitIntoDeltas } from 'koto-voice/testing';

export type AzureRoute = 'transcriptions' | 'chat' | 'models';
export type AzureShape = 'deployments' | 'v1';

export interface AzureDeployment {
  readonly kind: 'transcription' | 'chat';
  /** Model behind the deployment (reported in answers). */
  readonly model?: string;
  /** Accepts `stream=true` for transcriptions (gpt-4o-transcribe family). */
  readonly streaming?: boolean;
}

/** The verdict on a bearer token: accepted, or which 401 to answer. */
export type TokenVerdict = 'ok' | 'invalid' | 'expired' | 'forbidden';

export interface AzureServerOptions {
  /** The resource's key (`api-key` header). Default: none accepted. */
  readonly apiKey?: string;
  /** Judges `Authorization: Bearer` tokens. Default: none accepted. */
  readonly token?: (token: string) => TokenVerdict;
  readonly deployments?: Readonly<Record<string, AzureDeployment>>;
  /** Dated api-versions the deployments routes accept. */
  readonly versions?: readonly string[];
  readonly transcript?: (req: AzureRequest) => string;
  readonly complete?: (req: AzureRequest) => string;
}

export interface AzureRequest {
  readonly seq: number;
  readonly method: string;
  readonly path: string;
  readonly query: Record<string, string>;
  readonly headers: Record<string, string>;
  readonly protocol: 'h2' | 'http/1.1';
  readonly route: AzureRoute | undefined;
  readonly shape: AzureShape | undefined;
  readonly deployment: string | undefined;
  readonly json?: Record<string, unknown> | undefined;
  readonly form?: { fields: Record<string, string>; file?: { filename: string; contentType: string; size: number } } | undefined;
  status: number;
}

export interface AzureFault {
  /** Route to match (default: any). */
  readonly route?: AzureRoute | undefined;
  readonly status?: number | undefined;
  readonly body?: unknown;
  readonly headers?: Readonly<Record<string, string>> | undefined;
  /** How many matching requests it applies to (default 1). */
  readonly times?: number | undefined;
  /** Never answer (until the server closes). */
  readonly hang?: boolean | undefined;
  /** Reset the request (HTTP/2 stream, or the HTTP/1.1 connection) before any answer. */
  readonly drop?: boolean | undefined;
  /** Answer 200 with this text as a JSON body, unparsed (a cut-off answer). */
  readonly raw?: string | undefined;
}

export interface AzureServer {
  /** `https://127.0.0.1:PORT` */
  readonly url: string;
  readonly origin: string;
  readonly ca: string;
  readonly requests: AzureRequest[];
  readonly stats: { connections: number; tlsHandshakes: number; h2Sessions: number };
  readonly openConnections: number;
  readonly held: number;
  inject(fault: AzureFault): void;
  /** Requests to a route (pre-warms and probes are `models`). */
  to(route: AzureRoute): AzureRequest[];
  close(): Promise<void>;
}

export const DEFAULT_VERSIONS: readonly string[] = [
  '2024-06-01',
  '2024-10-21',
  '2025-01-01-preview',
  '2025-03-01-preview',
  '2025-04-01-preview',
];
export const DEFAULT_DEPLOYMENTS: Readonly<Record<string, AzureDeployment>> = {
  whisper: { kind: 'transcription', model: 'whisper' },
  'gpt-4o-mini-transcribe': { kind: 'transcription', model: 'gpt-4o-mini-transcribe', streaming: true },
  'gpt-4o-mini': { kind: 'chat', model: 'gpt-4o-mini' },
};
export const DEFAULT_TRANSCRIPT = 'hello from azure';
export const DEFAULT_COMPLETION = 'Hello from Azure.';

/** The error bodies the real service sends. */
export const AZURE_BODIES = {
  resourceNotFound: { error: { code: '404', message: 'Resource not found' } },
  deploymentNotFound: {
    error: {
      code: 'DeploymentNotFound',
      message:
        'The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.',
    },
  },
  invalidKey: {
    error: {
      code: '401',
      message:
        'Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.',
    },
  },
  missingKey: {
    error: {
      code: '401',
      message: 'Access denied due to missing subscription key. Make sure to include subscription key when making requests to an API.',
    },
  },
  badToken: {
    error: {
      code: '401',
      message:
        'Unauthorized. Access token is missing, invalid, audience is incorrect (https://cognitiveservices.azure.com), or have expired.',
    },
  },
  permissionDenied: { error: { code: 'PermissionDenied', message: 'Principal does not have access to API/Operation.' } },
  versionNotSupported: { error: { code: 'BadRequest', message: 'API version not supported' } },
  rateLimited: {
    error: {
      code: '429',
      message:
        'Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 1 second. Please go here: https://aka.ms/oai/quotaincrease if you would like to further increase the default rate limit.',
    },
  },
  contentFilter: {
    error: {
      message:
        "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry. To learn more about our content filtering policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766",
      type: null,
      param: 'prompt',
      code: 'content_filter',
      status: 400,
      innererror: {
        code: 'ResponsibleAIPolicyViolation',
        content_filter_result: {
          hate: { filtered: false, severity: 'safe' },
          self_harm: { filtered: false, severity: 'safe' },
          sexual: { filtered: false, severity: 'safe' },
          violence: { filtered: true, severity: 'medium' },
        },
      },
    },
  },
} as const;

const FILTER_RESULTS = {
  hate: { filtered: false, severity: 'safe' },
  self_harm: { filtered: false, severity: 'safe' },
  sexual: { filtered: false, severity: 'safe' },
  violence: { filtered: false, severity: 'safe' },
};

function parseMultipart(body: Buffer, contentType: string): AzureRequest['form'] {
  const boundary = /boundary=(?:"([^"]+)"|([^;]+))/i.exec(contentType);
  const marker = boundary?.[1] ?? boundary?.[2];
  if (!marker) return undefined;
  const fields: Record<string, string> = {};
  let file: { filename: string; contentType: string; size: number } | undefined;
  const delimiter = Buffer.from(`--${marker}`);
  let start = body.indexOf(delimiter);
  while (start !== -1) {
    const next = body.indexOf(delimiter, start + delimiter.length);
    if (next === -1) break;
    const part = body.subarray(start + delimiter.length + 2, next - 2); // skip CRLF after the delimiter and before the next
    const split = part.indexOf('\r\n\r\n');
    if (split !== -1) {
      const head = part.subarray(0, split).toString('utf8');
      const content = part.subarray(split + 4);
      const name = /name="([^"]*)"/.exec(head)?.[1] ?? '';
      const filename = /filename="([^"]*)"/.exec(head)?.[1];
      if (filename !== undefined) {
        file = { filename, contentType: /content-type:\s*([^\r\n]+)/i.exec(head)?.[1] ?? 'application/octet-stream', size: content.length };
      } else {
        fields[name] = content.toString('utf8');
      }
    }
    start = next;
  }
  return { fields, ...(file ? { file } : {}) };
}

function plainHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(headers)) {
    if (key.startsWith(':') || value === undefined) continue;
    out[key] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

interface Match {
  route: AzureRoute;
  shape: AzureShape;
  deployment: string | undefined;
}

function matchRoute(method: string, path: string): Match | undefined {
  const dep = /^\/openai\/deployments\/([^/]+)\/(audio\/transcriptions|chat\/completions)$/.exec(path);
  if (dep && method === 'POST') {
    return {
      route: dep[2] === 'chat/completions' ? 'chat' : 'transcriptions',
      shape: 'deployments',
      deployment: decodeURIComponent(dep[1]!),
    };
  }
  if (path === '/openai/models' && method === 'GET') return { route: 'models', shape: 'deployments', deployment: undefined };
  const v1 = /^\/openai\/v1\/(audio\/transcriptions|chat\/completions|models)$/.exec(path);
  if (v1) {
    const route: AzureRoute = v1[1] === 'models' ? 'models' : v1[1] === 'chat/completions' ? 'chat' : 'transcriptions';
    if ((route === 'models') !== (method === 'GET')) return undefined;
    return { route, shape: 'v1', deployment: undefined };
  }
  return undefined;
}

export async function startAzureServer(options: AzureServerOptions = {}): Promise<AzureServer> {
  const certificate = await getTestCertificate();
  const deployments = options.deployments ?? DEFAULT_DEPLOYMENTS;
  const versions = new Set(options.versions ?? DEFAULT_VERSIONS);
  const requests: AzureRequest[] = [];
  const stats = { connections: 0, tlsHandshakes: 0, h2Sessions: 0 };
  const sockets = new Set<Socket>();
  const faults: { fault: AzureFault; remaining: number }[] = [];
  let held = 0;
  let seq = 0;

  const server = http2.createSecureServer({ key: certificate.key, cert: certificate.cert, allowHTTP1: true });
  server.on('connection', (socket: Socket) => {
    stats.connections += 1;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('secureConnection', () => {
    stats.tlsHandshakes += 1;
  });
  server.on('session', () => {
    stats.h2Sessions += 1;
  });
  server.on('sessionError', () => undefined);
  server.on('tlsClientError', () => undefined);

  server.on('request', (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      try {
        handle(req, res, Buffer.concat(chunks));
      } catch (err) {
        json(res, 500, { error: { code: 'InternalServerError', message: String(err) } });
      }
    });
  });

  const json = (res: http2.Http2ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, {
      'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
      'apim-request-id': randomBytes(8).toString('hex'),
      ...headers,
    });
    res.end(text);
  };

  const sse = async (res: http2.Http2ServerResponse, events: unknown[]) => {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
    for (const event of events) {
      res.write(`data: ${typeof event === 'string' ? event : JSON.stringify(event)}\n\n`);
      await new Promise((resolve) => setImmediate(resolve));
    }
    res.end();
  };

  const takeFault = (route: AzureRoute): AzureFault | undefined => {
    const index = faults.findIndex((f) => f.fault.route === undefined || f.fault.route === route);
    if (index === -1) return undefined;
    const entry = faults[index]!;
    entry.remaining -= 1;
    if (entry.remaining <= 0) faults.splice(index, 1);
    return entry.fault;
  };

  function handle(req: http2.Http2ServerRequest, res: http2.Http2ServerResponse, body: Buffer): void {
    const url = new URL(req.url, 'https://azure.invalid');
    const headers = plainHeaders(req.headers);
    const contentType = headers['content-type'] ?? '';
    let parsedJson: Record<string, unknown> | undefined;
    if (contentType.includes('json') && body.length > 0) {
      try {
        parsedJson = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
      } catch {
        parsedJson = undefined;
      }
    }
    const form = contentType.startsWith('multipart/form-data') ? parseMultipart(body, contentType) : undefined;
    const match = matchRoute(req.method, url.pathname);
    const record: AzureRequest = {
      seq: ++seq,
      method: req.method,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers,
      protocol: req.httpVersionMajor === 2 ? 'h2' : 'http/1.1',
      route: match?.route,
      shape: match?.shape,
      deployment:
        match?.deployment ?? (match?.shape === 'v1' ? ((parsedJson?.model as string | undefined) ?? form?.fields.model) : undefined),
      ...(parsedJson ? { json: parsedJson } : {}),
      ...(form ? { form } : {}),
      status: 0,
    };
    requests.push(record);
    const answer = (status: number, payload: unknown, extra?: Record<string, string>) => {
      record.status = status;
      json(res, status, payload, extra);
    };

    // 1. The plugin's marker header must have been consumed by the request hook.
    const leaked = Object.keys(headers).find((name) => name.startsWith('x-koto-'));
    if (leaked) return answer(400, { error: { code: 'BadRequest', message: `unexpected header ${leaked}` } });

    // 2. Credentials, exactly.
    const key = headers['api-key'];
    const authorization = headers.authorization;
    if (key !== undefined && authorization !== undefined) {
      return answer(400, { error: { code: 'BadRequest', message: 'send either api-key or Authorization, not both' } });
    }
    if (key !== undefined) {
      if (options.apiKey === undefined || key !== options.apiKey) return answer(401, AZURE_BODIES.invalidKey);
    } else if (authorization !== undefined) {
      const bearer = /^Bearer ([\x21-\x7e]+)$/.exec(authorization)?.[1];
      const verdict: TokenVerdict = bearer && options.token ? options.token(bearer) : 'invalid';
      if (verdict === 'forbidden') return answer(401, AZURE_BODIES.permissionDenied);
      if (verdict !== 'ok') return answer(401, AZURE_BODIES.badToken);
    } else {
      return answer(401, AZURE_BODIES.missingKey);
    }

    // 3. The route and its api-version.
    if (!match) return answer(404, AZURE_BODIES.resourceNotFound);
    const version = url.searchParams.get('api-version');
    if (match.shape === 'deployments') {
      if (version === null || !versions.has(version)) return answer(404, AZURE_BODIES.resourceNotFound);
    } else if (version !== null && version !== 'preview' && version !== 'latest') {
      return answer(400, AZURE_BODIES.versionNotSupported);
    }

    const fault = takeFault(match.route);
    if (fault?.hang) {
      held += 1;
      record.status = -1;
      return;
    }
    if (fault?.drop) {
      record.status = -2;
      if (res.stream) res.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      else req.socket.destroy();
      return;
    }
    if (fault?.raw !== undefined) {
      record.status = 200;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(fault.raw);
      return;
    }
    if (fault?.status !== undefined || fault?.body !== undefined) {
      return answer(fault.status ?? 200, fault.body ?? { error: { code: String(fault.status), message: `HTTP ${fault.status}` } }, {
        ...fault.headers,
      });
    }

    if (match.route === 'models') {
      return answer(200, {
        object: 'list',
        data: Object.entries(deployments).map(([id, d]) => ({
          id: d.model ?? id,
          object: 'model',
          created_at: 1_700_000_000,
          status: 'succeeded',
        })),
      });
    }

    // 4. The deployment.
    const name = record.deployment;
    if (match.shape === 'v1' && !name)
      return answer(400, { error: { code: 'BadRequest', message: "Missing required parameter: 'model'." } });
    const deployment = name === undefined ? undefined : deployments[name];
    if (!deployment) return answer(404, AZURE_BODIES.deploymentNotFound);
    const wanted = match.route === 'chat' ? 'chat' : 'transcription';
    if (deployment.kind !== wanted) {
      const operation = match.route === 'chat' ? 'chatCompletion' : 'audio transcription';
      return answer(400, {
        error: {
          code: 'OperationNotSupported',
          message: `The ${operation} operation does not work with the specified model, ${deployment.model ?? name}. Please choose different model and try again.`,
        },
      });
    }

    if (match.route === 'transcriptions') {
      if (!form?.file) return answer(400, { error: { code: 'BadRequest', message: "Missing required parameter: 'file'." } });
      const text = options.transcript?.(record) ?? DEFAULT_TRANSCRIPT;
      if (form.fields.stream === 'true') {
        if (!deployment.streaming)
          return answer(400, { error: { code: 'BadRequest', message: 'stream is not supported for this model.' } });
        record.status = 200;
        void sse(res, [
          ...splitIntoDeltas(text).map((delta) => ({ type: 'transcript.text.delta', delta })),
          { type: 'transcript.text.done', text },
        ]);
        return;
      }
      if (form.fields.response_format === 'text') return answer(200, `${text}\n`);
      return answer(200, { text });
    }

    // Chat completions.
    if (!parsedJson || !Array.isArray(parsedJson.messages)) {
      return answer(400, { error: { code: 'BadRequest', message: "Missing required parameter: 'messages'." } });
    }
    const content = options.complete?.(record) ?? DEFAULT_COMPLETION;
    const model = deployment.model ?? name ?? 'unknown';
    const id = `chatcmpl-${randomBytes(6).toString('hex')}`;
    const created = Math.floor(Date.now() / 1000);
    if (parsedJson.stream === true) {
      record.status = 200;
      void sse(res, [
        // Azure's first chunk: no choices, the prompt's filter results.
        {
          id: '',
          object: '',
          created: 0,
          model: '',
          choices: [],
          prompt_filter_results: [{ prompt_index: 0, content_filter_results: FILTER_RESULTS }],
        },
        {
          id,
          object: 'chat.completion.chunk',
          created,
          model,
          choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }],
        },
        ...splitIntoDeltas(content).map((delta) => ({
          id,
          object: 'chat.completion.chunk',
          created,
          model,
          choices: [{ index: 0, delta: { content: delta }, finish_reason: null, content_filter_results: FILTER_RESULTS }],
        })),
        { id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] },
        '[DONE]',
      ]);
      return;
    }
    return answer(200, {
      id,
      object: 'chat.completion',
      created,
      model,
      prompt_filter_results: [{ prompt_index: 0, content_filter_results: FILTER_RESULTS }],
      choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content }, content_filter_results: FILTER_RESULTS }],
      usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
    });
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const url = `https://127.0.0.1:${port}`;
  let closing: Promise<void> | undefined;

  return {
    url,
    origin: url,
    ca: certificate.ca,
    requests,
    stats,
    get openConnections() {
      return sockets.size;
    },
    get held() {
      return held;
    },
    inject(fault) {
      faults.push({ fault, remaining: fault.times ?? 1 });
    },
    to(route) {
      return requests.filter((r) => r.route === route);
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      return closing;
    },
  };
}
