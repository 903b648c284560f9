import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * Who may talk to the control panel. The panel listens on loopback, but loopback is not a
 * boundary in a browser: any web page the user opens can send requests to 127.0.0.1, and a
 * DNS-rebinding page can even read the answers under its own host name. So:
 *
 * - every request needs the session cookie, which only a browser that opened a one-time login
 *   link (from `koto ui`, through the 0600 control socket) has; HttpOnly (no script reads it),
 *   SameSite=Strict (no other site's page sends it);
 * - every API request also needs the page key (`x-koto-key`, or `?key=` where a browser cannot
 *   send headers: the event stream, the audio player). Cookies are not scoped by port: a page
 *   or server of another local user on another 127.0.0.1 port receives the cookie on any
 *   same-site request. The key reaches the page only in the answer to a redeemed login link
 *   and lives in the panel origin's localStorage, which is scoped by port;
 * - the `Host` header must name the panel itself (127.0.0.1:PORT, localhost:PORT, [::1]:PORT):
 *   a rebinding page's requests carry its own host name and are refused;
 * - a state-changing request must come from the panel's own origin (`Origin`, and
 *   `Sec-Fetch-Site` when the browser sends it): cross-site forms and fetches are refused.
 */
export const COOKIE = 'koto_ui';
/** How long a login link from `koto ui` stays usable (it is single-use). */
export const LOGIN_TTL_MS = 10 * 60_000;

export const SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  // No inline script or style anywhere; the page loads its own modules, nothing from elsewhere.
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; connect-src 'self'; " +
    "font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=()',
});

export type Verdict = { ok: true } | { ok: false; status: 401 | 403; reason: string };

export class UiGuard {
  /** The cookie's value: random per daemon, never in a URL. */
  readonly #session = randomBytes(32).toString('base64url');
  /** The page key: port-scoped where the cookie is not (see above). */
  readonly key = randomBytes(32).toString('base64url');
  /** One-time login tokens from `koto ui`, with their expiry. */
  readonly #logins = new Map<string, number>();
  #hosts: ReadonlySet<string> = new Set();
  #origins: ReadonlySet<string> = new Set();

  /** Once listening: the host names the panel answers to (`host`: how the URL names it, e.g. 127.0.0.2). */
  bind(port: number, host: string): void {
    const hosts = [...new Set([`${host}:${port}`, `127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`])];
    this.#hosts = new Set(hosts);
    this.#origins = new Set(hosts.map((h) => `http://${h}`));
  }

  /** A fresh single-use login token (the `ui` control command). */
  mintLogin(now = Date.now()): string {
    for (const [token, expires] of this.#logins) if (expires <= now) this.#logins.delete(token);
    // Bounded: a script calling `koto ui` in a loop cannot grow the map without end.
    if (this.#logins.size >= 100) this.#logins.delete(this.#logins.keys().next().value!);
    const token = randomBytes(24).toString('base64url');
    this.#logins.set(token, now + LOGIN_TTL_MS);
    return token;
  }

  /** Consumes a login token: true once, for a token minted less than LOGIN_TTL_MS ago. */
  redeem(token: string, now = Date.now()): boolean {
    for (const [known, expires] of this.#logins) {
      if (equal(known, token)) {
        this.#logins.delete(known);
        return expires > now;
      }
    }
    return false;
  }

  cookieHeader(): string {
    return `${COOKIE}=${this.#session}; HttpOnly; SameSite=Strict; Path=/`;
  }

  /** Host first (a rebinding page must not even learn whether it is logged in), then the cookie, then the origin. */
  check(req: IncomingMessage, opts: { login?: boolean; api?: boolean } = {}): Verdict {
    const host = req.headers.host ?? '';
    if (!this.#hosts.has(host.toLowerCase()))
      return { ok: false, status: 403, reason: 'this address is not the control panel (Host header refused)' };
    const method = req.method ?? 'GET';
    const changes = !(method === 'GET' || method === 'HEAD');
    if (changes) {
      const origin = req.headers.origin;
      if (!origin || !this.#origins.has(origin.toLowerCase()))
        return { ok: false, status: 403, reason: 'cross-site request refused (Origin)' };
    }
    const site = req.headers['sec-fetch-site'];
    if (typeof site === 'string' && site === 'cross-site' && (changes || !opts.login)) {
      return { ok: false, status: 403, reason: 'cross-site request refused (Sec-Fetch-Site)' };
    }
    if (opts.login) return { ok: true };
    if (!this.hasSession(req)) return { ok: false, status: 401, reason: 'not logged in: open the panel with `koto ui`' };
    if (opts.api && !this.hasKey(req))
      return { ok: false, status: 401, reason: 'this page has no key for this daemon: open the panel with `koto ui`' };
    return { ok: true };
  }

  hasKey(req: IncomingMessage): boolean {
    const header = req.headers['x-koto-key'];
    const value = typeof header === 'string' ? header : (new URL(req.url ?? '/', 'http://panel').searchParams.get('key') ?? '');
    return equal(value, this.key);
  }

  hasSession(req: IncomingMessage): boolean {
    const value = cookieValue(req.headers.cookie, COOKIE);
    return value !== undefined && equal(value, this.#session);
  }
}

function equal(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const [key, ...rest] = part.trim().split('=');
    if (key === name) return rest.join('=');
  }
  return undefined;
}

/** A refusal: JSON for the page's API calls, a readable page for a person's browser tab. */
export function refuse(res: ServerResponse, status: number, reason: string): void {
  const wantsPage = String(res.req?.headers.accept ?? '').includes('text/html');
  const body = wantsPage
    ? `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Koto</title></head><body><h1>Koto control panel</h1><p>${escapeHtml(reason)}</p></body></html>`
    : JSON.stringify({ error: { status, message: reason } });
  const type = wantsPage ? 'text/html; charset=utf-8' : 'application/json; charset=utf-8';
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    'content-type': type,
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
