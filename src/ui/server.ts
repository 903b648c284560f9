import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HistoryEntry, HistoryStore } from '../history/store.ts';
import { describe, KotoError, kotoError } from '../kernel/errors.ts';
import type { Kernel } from '../kernel/kernel.ts';
import { deleteIfOwned, isKotoOwned } from '../kernel/owned-files.ts';
import { loadAssets } from './assets.ts';
import { isLoopbackHost } from './config.ts';
import { refuse, SECURITY_HEADERS, UiGuard } from './guard.ts';
import { LiveFeed } from './live.ts';
import { readSettings, SettingsError, writeSettings } from './settings.ts';

/** What the panel needs from the daemon: the same commands the control socket runs. */
export interface UiHost {
  readonly kernel: Kernel;
  readonly history: HistoryStore;
  command(cmd: 'start' | 'stop' | 'cancel' | 'retry' | 'rewrite' | 'deliver' | 'status', args: Record<string, unknown>): Promise<unknown>;
}

export interface UiOptions {
  readonly host: string;
  readonly port: number;
}

const MAX_BODY = 1024 * 1024;
const ID = /^[A-Za-z0-9_.-]{1,200}$/;

/**
 * The control panel's HTTP server (node:http, in the daemon's process): the page, its JSON API
 * and an event stream. See docs/ui.md for the routes and the security model (guard.ts).
 */
export class UiServer {
  readonly #host: UiHost;
  readonly #guard = new UiGuard();
  readonly #server: http.Server;
  readonly #live: LiveFeed;
  #port = 0;
  #hostName: string;
  #saving: Promise<unknown> = Promise.resolve();

  private constructor(host: UiHost, server: http.Server, hostName: string) {
    this.#host = host;
    this.#server = server;
    this.#hostName = hostName;
    this.#live = new LiveFeed(host.kernel);
  }

  static async start(host: UiHost, options: UiOptions): Promise<UiServer> {
    // The schema refuses it too; checked again here because this is the line that must hold.
    if (!isLoopbackHost(options.host)) {
      throw kotoError('KOTO_ERR_UI_UNAVAILABLE', {
        reason: `daemon.ui.host is ${options.host}, not a loopback address`,
        remedy: 'set daemon.ui.host to 127.0.0.1 (the panel is never served to the network)',
      });
    }
    loadAssets();
    const server = http.createServer();
    const ui = new UiServer(host, server, options.host);
    server.on('request', (req, res) => void ui.#handle(req, res));
    // Slow or idle clients must not hold sockets for ever; event streams are kept open by heartbeats.
    server.headersTimeout = 10_000;
    server.requestTimeout = 60_000;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(options.port, options.host, () => resolve());
      });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw kotoError('KOTO_ERR_UI_UNAVAILABLE', {
        reason:
          code === 'EADDRINUSE'
            ? `port ${options.port} on ${options.host} is in use`
            : `cannot listen on ${options.host}:${options.port} (${describe(err)})`,
        remedy:
          code === 'EADDRINUSE'
            ? 'set daemon.ui.port to a free port, or 0 for any free port, and restart the daemon'
            : 'check daemon.ui in the config and restart the daemon',
      });
    }
    ui.#port = (server.address() as AddressInfo).port;
    ui.#guard.bind(ui.#port, ui.#urlHost());
    return ui;
  }

  #urlHost(): string {
    return this.#hostName === '::1' ? '[::1]' : this.#hostName;
  }

  /** The panel's address, without any token (status, logs). */
  get url(): string {
    return `http://${this.#urlHost()}:${this.#port}/`;
  }

  get port(): number {
    return this.#port;
  }

  /** A single-use login link (the `ui` control command; only the socket's owner can ask). */
  loginUrl(): string {
    return `http://${this.#urlHost()}:${this.#port}/login?token=${this.#guard.mintLogin()}`;
  }

  async close(): Promise<void> {
    this.#live.close();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'http://panel');
      if (url.pathname === '/login') return this.#login(req, res, url);
      // The login page's script is public code (it holds nothing) and must load before anything else.
      if (url.pathname === '/login.js') return this.#asset(req, res, url.pathname, { login: true });
      const verdict = this.#guard.check(req, { api: url.pathname.startsWith('/api/') });
      if (!verdict.ok) return refuse(res, verdict.status, verdict.reason);
      if (url.pathname.startsWith('/api/')) return await this.#api(req, res, url);
      return this.#asset(req, res, url.pathname);
    } catch (err) {
      this.#error(res, err);
    }
  }

  #asset(req: IncomingMessage, res: ServerResponse, pathname: string, opts: { login?: boolean } = {}): void {
    if (opts.login) {
      const verdict = this.#guard.check(req, { login: true });
      if (!verdict.ok) return refuse(res, verdict.status, verdict.reason);
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return refuse(res, 405, 'method not allowed');
    const asset = loadAssets().get(pathname);
    if (!asset) return refuse(res, 404, 'not found');
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'content-type': asset.type,
      'content-length': asset.body.length,
      'cache-control': 'no-cache',
    });
    res.end(req.method === 'HEAD' ? undefined : asset.body);
  }

  #login(req: IncomingMessage, res: ServerResponse, url: URL): void {
    const verdict = this.#guard.check(req, { login: true });
    if (!verdict.ok) return refuse(res, verdict.status, verdict.reason);
    const token = url.searchParams.get('token') ?? '';
    if (this.#guard.redeem(token)) {
      // A page, not a redirect: the navigation to the panel then starts from the panel's own
      // origin (a redirect would inherit the opener's cross-site chain, e.g. the file `koto ui`
      // opens, and the SameSite=Strict cookie would not be sent). /login.js stores the page key
      // (only this answer carries it, to the holder of the token) and replaces this entry in the
      // browser's history, so neither the token nor the key stays in the address bar.
      const body = `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="koto-key" content="${this.#guard.key}"><title>Koto</title><script type="module" src="/login.js"></script></head><body><p>Opening the Koto control panel…</p></body></html>`;
      res.writeHead(200, {
        ...SECURITY_HEADERS,
        'set-cookie': this.#guard.cookieHeader(),
        'content-type': 'text/html; charset=utf-8',
        'cache-control': 'no-store',
        'content-length': Buffer.byteLength(body),
      });
      res.end(body);
      return;
    }
    // An old link in a browser that is already logged in just opens the panel (the page keeps its key).
    if (this.#guard.hasSession(req)) {
      res.writeHead(303, { ...SECURITY_HEADERS, location: '/', 'cache-control': 'no-store' }).end();
      return;
    }
    refuse(res, 401, 'this login link was already used or has expired: run `koto ui` for a new one');
  }

  async #api(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const method = req.method ?? 'GET';
    let parts: string[];
    try {
      parts = url.pathname.split('/').slice(2).map(decodeURIComponent);
    } catch {
      return refuse(res, 400, 'malformed path');
    }
    const route = `${method} /${parts.map((p, i) => (i === 1 && parts[0] === 'history' ? ':id' : p)).join('/')}`;
    const id = parts[0] === 'history' ? parts[1] : undefined;
    if (id !== undefined && !ID.test(id)) return refuse(res, 400, 'not a session id');
    switch (route) {
      case 'GET /status':
        return this.#json(res, await this.#host.command('status', {}));
      case 'GET /events':
        return this.#live.subscribe(res, { status: await this.#host.command('status', {}) });
      case 'POST /control/start':
      case 'POST /control/stop':
      case 'POST /control/cancel':
        await this.#body(req);
        // The same dispatch as the control socket and the hotkey.
        return this.#json(res, await this.#host.command(parts[1] as 'start', { source: 'ui', at: Date.now() }));
      case 'GET /history':
        return this.#json(res, this.#history(url));
      case 'GET /history/:id':
        return this.#json(res, view(this.#entry(id!)));
      case 'GET /history/:id/audio':
        return this.#audio(req, res, this.#entry(id!));
      case 'POST /history/:id/retry':
        await this.#body(req);
        return this.#json(res, await this.#host.command('retry', { id }));
      case 'POST /history/:id/deliver':
        await this.#body(req);
        return this.#json(res, await this.#host.command('deliver', { id }));
      case 'POST /history/:id/rewrite': {
        const body = (await this.#body(req)) as { template?: unknown };
        return this.#json(res, await this.#host.command('rewrite', { id, template: body.template }));
      }
      case 'DELETE /history/:id':
        return this.#json(res, await this.#delete(this.#entry(id!)));
      case 'GET /settings':
        return this.#json(res, await readSettings(this.#host.kernel));
      case 'PUT /settings': {
        const body = (await this.#body(req)) as Record<string, unknown>;
        // One save at a time: two tabs saving at once must not both pass the "unchanged since
        // loaded" check and then overwrite each other.
        const saved = this.#saving.then(() => writeSettings(this.#host.kernel, body));
        this.#saving = saved.catch(() => undefined);
        return this.#json(res, await saved);
      }
      case 'GET /devices':
        return this.#json(res, await this.#devices());
      case 'POST /doctor':
        await this.#body(req);
        return this.#json(res, await this.#doctor());
      case 'GET /templates':
        return this.#json(res, Object.keys(this.#host.kernel.config.rewrite.templates));
      default:
        return refuse(res, 404, 'no such API route');
    }
  }

  async #devices(): Promise<unknown> {
    const { source, device } = this.#host.kernel.config.audio;
    try {
      return { source, device, devices: await this.#host.kernel.devices() };
    } catch (err) {
      const error = KotoError.is(err) ? err : kotoError('KOTO_ERR_INTERNAL', { detail: describe(err) });
      return { source, device, devices: [], error: { code: error.code, message: error.message, fix: error.fix } };
    }
  }

  /** `koto doctor`'s checks through the daemon's own (warm) kernel: config, providers, connections. */
  async #doctor(): Promise<unknown> {
    const kernel = this.#host.kernel;
    const { resolved } = kernel.config;
    const checks: { check: string; ok: boolean; detail: string }[] = [];
    const lastError = kernel.lastConfigError;
    checks.push({
      check: 'config',
      ok: !lastError,
      detail: lastError
        ? `the last edit was not applied: ${lastError.message}`
        : `${resolved.file ?? 'no file (defaults and environment)'} is valid (generation ${kernel.configGeneration})`,
    });
    checks.push({
      check: 'active',
      ok: Boolean(resolved.asrProvider),
      detail: `asr ${resolved.asrProvider ?? 'none'}, correction ${resolved.correctionProvider ?? 'none'}`,
    });
    const probes = await Promise.all(Object.keys(resolved.providers).map(async (name) => ({ name, result: await kernel.probe(name) })));
    for (const { name, result } of probes) checks.push({ check: `provider ${name}`, ok: result.ok, detail: result.detail });
    for (const [origin, s] of Object.entries(kernel.http.stats().origins)) {
      if (s.connections > 0)
        checks.push({
          check: 'transport',
          ok: true,
          detail: `${origin}: ${s.lastProtocol ?? '-'}, ${s.tlsHandshakes} TLS handshake(s), ${s.requests} request(s)`,
        });
    }
    return { checks };
  }

  #history(url: URL): unknown {
    const q = url.searchParams;
    const number = (name: string) => {
      const n = Number(q.get(name));
      return q.has(name) && Number.isFinite(n) ? n : undefined;
    };
    const { entries, total } = this.#host.history.search({
      query: q.get('q')?.slice(0, 500) || undefined,
      state: q.get('state') || undefined,
      provider: q.get('provider') || undefined,
      from: q.get('from') || undefined,
      to: q.get('to') || undefined,
      limit: number('limit'),
      offset: number('offset'),
    });
    return { entries: entries.map(view), total, providers: this.#host.history.providers(), fullText: this.#host.history.fullText };
  }

  #entry(id: string): HistoryEntry {
    const entry = this.#host.history.get(id);
    if (!entry) throw kotoError('KOTO_ERR_HISTORY_NOT_FOUND', { id });
    return entry;
  }

  /** The recording of that session only, and only from the recordings folder (not a user's own input file). */
  async #audio(req: IncomingMessage, res: ServerResponse, entry: HistoryEntry): Promise<void> {
    const file = entry.audioPath;
    if (!file || !(await isKotoOwned(file, this.#host.kernel.paths.recordings)))
      return refuse(res, 404, 'this session has no recording in the recordings folder');
    const size = (await stat(file)).size;
    const type = file.endsWith('.wav')
      ? 'audio/wav'
      : file.endsWith('.flac')
        ? 'audio/flac'
        : file.endsWith('.mp3')
          ? 'audio/mpeg'
          : file.endsWith('.ogg')
            ? 'audio/ogg'
            : 'application/octet-stream';
    const headers = { ...SECURITY_HEADERS, 'content-type': type, 'accept-ranges': 'bytes', 'cache-control': 'no-store' };
    const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
    let start = 0;
    let end = size - 1;
    if (range && (range[1] || range[2])) {
      start = range[1] ? Number(range[1]) : Math.max(0, size - Number(range[2]));
      end = range[1] && range[2] ? Math.min(Number(range[2]), size - 1) : size - 1;
      if (start > end || start >= size) {
        res.writeHead(416, { ...headers, 'content-range': `bytes */${size}` }).end();
        return;
      }
      res.writeHead(206, { ...headers, 'content-range': `bytes ${start}-${end}/${size}`, 'content-length': end - start + 1 });
    } else {
      res.writeHead(200, { ...headers, 'content-length': size });
    }
    if (req.method === 'HEAD' || size === 0) return void res.end();
    createReadStream(file, { start, end })
      .on('error', () => res.destroy())
      .pipe(res);
  }

  async #delete(entry: HistoryEntry): Promise<unknown> {
    const { removed, audioPath } = this.#host.history.delete(entry.id);
    // Koto's own recordings only, and only when no other row (a retry) still points at it.
    const audioDeleted = audioPath ? await deleteIfOwned(audioPath, this.#host.kernel.paths.recordings).catch(() => false) : false;
    return { removed, audioDeleted };
  }

  async #body(req: IncomingMessage): Promise<unknown> {
    const type = req.headers['content-type'] ?? '';
    let size = 0;
    const chunks: Buffer[] = [];
    // Past the limit the rest is read and dropped (bounded by requestTimeout), so the client gets
    // the 413 instead of a reset connection.
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size <= MAX_BODY) chunks.push(chunk);
    }
    if (size > MAX_BODY) throw new SettingsError(413, `the request is larger than ${MAX_BODY} bytes`);
    if (size === 0) return {};
    // JSON only: a cross-site HTML form cannot send it without a preflight (and Origin is checked anyway).
    if (!type.startsWith('application/json')) throw new SettingsError(415, 'send JSON (content-type: application/json)');
    try {
      const value = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
      if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not an object');
      return value;
    } catch {
      throw new SettingsError(400, 'the request body is not a JSON object');
    }
  }

  #json(res: ServerResponse, value: unknown, status = 200): void {
    // Scrubbed like every daemon answer: a key that slipped into a text never leaves.
    const body = this.#host.kernel.scrub(JSON.stringify(value ?? null));
    res.writeHead(status, {
      ...SECURITY_HEADERS,
      'content-type': 'application/json; charset=utf-8',
      'cache-control': 'no-store',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
  }

  #error(res: ServerResponse, err: unknown): void {
    if (res.headersSent) return void res.destroy();
    if (err instanceof SettingsError) {
      return this.#json(res, { error: { status: err.status, message: err.message, fields: err.errors } }, err.status);
    }
    const error = KotoError.is(err) ? err : kotoError('KOTO_ERR_INTERNAL', { detail: describe(err) });
    const status =
      error.code === 'KOTO_ERR_HISTORY_NOT_FOUND'
        ? 404
        : error.code === 'KOTO_ERR_CONTROL_MESSAGE' || error.code === 'KOTO_ERR_USAGE'
          ? 400
          : KotoError.is(err)
            ? 409
            : 500;
    const record = (err as { record?: unknown }).record;
    this.#json(res, { error: { status, code: error.code, message: error.message, fix: error.fix, ...(record ? { record } : {}) } }, status);
  }
}

/** A history row for the page: the recording's path becomes whether it can be played. */
function view(entry: HistoryEntry): Record<string, unknown> {
  const { audioPath, ...rest } = entry;
  return { ...rest, hasAudio: audioPath !== null, audioName: audioPath ? audioPath.split('/').pop() : null };
}
