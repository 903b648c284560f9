/**
 * Credentials for Azure requests: the `api-key` header, or a Microsoft Entra ID bearer token
 * from a fixed value, an environment variable, a command (`az account get-access-token`) or
 * `@azure/identity`. Tokens are cached, refreshed before they expire, and concurrent refreshes
 * share one fetch.
 */

import { exec, execFile, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describeError, kotoError, type KotoError } from 'koto-voice';
import { azureError } from './errors.ts';
import { IDENTITY_CREDENTIALS, type AuthOptions, type EntraAuth, type IdentityCredential } from './options.ts';

/** A bearer token and when it stops working (ms since the epoch), if known. */
export interface AccessToken {
  readonly token: string;
  readonly expiresAt: number | undefined;
}

/** Where Entra tokens come from. */
export interface TokenSource {
  /** How the auth mode is named in messages: `entra (command: az account get-access-token …)`. */
  readonly description: string;
  /** The source kind, for advice in messages. */
  readonly kind: 'token' | 'env' | 'command' | 'identity';
  /** A token from the source itself (env, command output, @azure/identity): no request through Koto's client. */
  getToken(): Promise<AccessToken>;
  /** How long a token of unknown expiry is reused (0: fetch every time). */
  readonly unknownExpiryTtlMs: number;
  /** Stops what the source runs (a token command still running at shutdown). */
  close?(): void;
}

/** Token values look like this; anything else (spaces, newlines) must never reach a header. */
const TOKEN_CHARS = /^[\x21-\x7e]+$/;
/** How long before its expiry a token is no longer used even when a refresh fails. */
const STALE_GRACE_MS = 30_000;
const MAX_COMMAND_OUTPUT = 1024 * 1024;

/** `exp` of a JWT (ms since the epoch), or undefined when the token is not a readable JWT. */
export function jwtExpiry(token: string): number | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts[1]) return undefined;
  try {
    const payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof payload.exp === 'number' && Number.isFinite(payload.exp) ? payload.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A date as token tools print it: epoch seconds or milliseconds (number or digits), ISO 8601,
 * or the Azure CLI's `expiresOn` (`2025-01-31 14:03:10.000000`), which is local time.
 */
export function parseExpiry(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return value < 1e12 ? value * 1000 : value;
  if (typeof value !== 'string' || value.trim() === '') return undefined;
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return parseExpiry(Number(text));
  const local = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?$/.exec(text);
  if (local) {
    const [, y, mo, d, h, mi, s, frac] = local;
    const ms = frac ? Math.round(Number(`0.${frac}`) * 1000) : 0;
    return new Date(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), ms).getTime();
  }
  const parsed = Date.parse(text);
  return Number.isNaN(parsed) ? undefined : parsed;
}

/**
 * The token in a command's output: JSON with `accessToken` / `access_token` / `token` and an
 * expiry (`expires_on`, `expiresOn`, `expiresOnTimestamp`, `expires_in`), or the bare token.
 * Without an explicit expiry, a JWT's `exp` is used.
 */
export function parseTokenOutput(output: string, now = Date.now()): AccessToken {
  const text = output.trim();
  if (text === '') throw new Error('it printed nothing');
  if (text.startsWith('{')) {
    let value: Record<string, unknown>;
    try {
      value = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw new Error('it printed invalid JSON');
    }
    const token = [value.accessToken, value.access_token, value.token].find((t): t is string => typeof t === 'string' && t !== '');
    if (!token) throw new Error('its JSON has no accessToken, access_token or token field');
    if (!TOKEN_CHARS.test(token)) throw new Error('the token contains spaces or control characters');
    const expiresIn = typeof value.expires_in === 'number' ? now + value.expires_in * 1000 : undefined;
    const expiresAt =
      parseExpiry(value.expires_on) ??
      parseExpiry(value.expiresOnTimestamp) ??
      parseExpiry(value.expiresOn) ??
      expiresIn ??
      jwtExpiry(token);
    return { token, expiresAt };
  }
  const lines = text.split(/\r?\n/);
  const token = lines.at(-1)!.trim();
  if (lines.length > 1 || !TOKEN_CHARS.test(token))
    throw new Error('it printed more than one token-like line (print JSON or only the token)');
  return { token, expiresAt: jwtExpiry(token) };
}

export interface TokenCacheOptions {
  readonly refreshMarginMs: number;
  /** Every new token is passed here (the plugin registers it as a secret). */
  readonly onToken: (token: string) => void;
  /** A refresh failed but the previous token is still valid and is used. */
  readonly onStaleUse?: ((err: unknown) => void) | undefined;
  readonly now?: (() => number) | undefined;
}

interface CachedToken extends AccessToken {
  readonly refreshAt: number;
}

/**
 * Caches one source's token; refreshes it `refreshMarginMs` before it expires (at most half its
 * lifetime early, so short-lived tokens are not refetched on every request); concurrent callers
 * share one refresh.
 */
export class TokenCache {
  readonly source: TokenSource;
  readonly #options: TokenCacheOptions;
  #current: CachedToken | undefined;
  #pending: Promise<CachedToken> | undefined;
  #fetches = 0;

  constructor(source: TokenSource, options: TokenCacheOptions) {
    this.source = source;
    this.#options = options;
  }

  #now(): number {
    return this.#options.now?.() ?? Date.now();
  }

  /** Fetches so far (tests, diagnostics). */
  get fetches(): number {
    return this.#fetches;
  }

  /** The current token, if one is cached (possibly due for refresh). */
  get current(): string | undefined {
    return this.#current?.token;
  }

  async token(): Promise<string> {
    const now = this.#now();
    const current = this.#current;
    if (current && now < current.refreshAt) return current.token;
    try {
      return (await this.#refresh()).token;
    } catch (err) {
      // The old token still works for a while: better a dictation now and a warning.
      if (current && current.expiresAt !== undefined && this.#now() < current.expiresAt - STALE_GRACE_MS) {
        this.#options.onStaleUse?.(err);
        return current.token;
      }
      throw err;
    }
  }

  /** Forget the cached token (the service refused it); the next request fetches a new one. */
  invalidate(token?: string): void {
    if (token === undefined || this.#current?.token === token) this.#current = undefined;
  }

  #refresh(): Promise<CachedToken> {
    this.#pending ??= (async () => {
      try {
        this.#fetches += 1;
        const fetched = await this.source.getToken();
        if (!TOKEN_CHARS.test(fetched.token)) throw new Error('the token contains spaces or control characters');
        this.#options.onToken(fetched.token);
        const now = this.#now();
        if (fetched.expiresAt !== undefined && fetched.expiresAt <= now) {
          throw new Error(`the token expired at ${new Date(fetched.expiresAt).toISOString()}`);
        }
        const refreshAt =
          fetched.expiresAt === undefined
            ? now + this.source.unknownExpiryTtlMs
            : fetched.expiresAt - Math.min(this.#options.refreshMarginMs, (fetched.expiresAt - now) / 2);
        const cached: CachedToken = { ...fetched, refreshAt };
        this.#current = cached;
        return cached;
      } finally {
        this.#pending = undefined;
      }
    })();
    return this.#pending;
  }
}

/** Runs a token command; resolves with its stdout. `running` holds the child while it runs. */
function runCommand(command: string | readonly string[], timeoutMs: number, running: Set<ChildProcess>): Promise<string> {
  return new Promise((resolve, reject) => {
    const options = { timeout: timeoutMs, maxBuffer: MAX_COMMAND_OUTPUT, windowsHide: true, encoding: 'utf8' as const };
    const done = (err: (Error & { code?: unknown; killed?: boolean; signal?: unknown }) | null, stdout: string, stderr: string) => {
      running.delete(child);
      if (!err) return resolve(stdout);
      const said = (stderr || stdout)
        .split(/\r?\n/)
        .map((l) => l.trim())
        .find((l) => l !== '');
      if (err.killed || err.signal === 'SIGTERM') return reject(new Error(`it did not finish within ${timeoutMs} ms`));
      if (err.code === 'ENOENT') return reject(new Error(`${Array.isArray(command) ? command[0] : command} was not found`));
      const status = typeof err.code === 'number' ? `exit ${err.code}` : describeError(err);
      reject(new Error(`it failed (${status})${said ? `: ${said.slice(0, 300)}` : ''}`));
    };
    const child = typeof command === 'string' ? exec(command, options, done) : execFile(command[0]!, command.slice(1), options, done);
    running.add(child);
  });
}

function commandText(command: string | readonly string[]): string {
  const text = typeof command === 'string' ? command : command.join(' ');
  return text.length > 80 ? `${text.slice(0, 79)}…` : text;
}

/** The `@azure/identity` module, or undefined when it is not installed. */
export type IdentityLoader = () => Promise<Record<string, unknown> | undefined>;

/**
 * Loads `@azure/identity` (an optional peer dependency) as Node would from Koto's own folder,
 * then from the given folders (the config's folder): a global Koto still finds an install next
 * to the config. Resolves undefined when it is installed nowhere.
 */
export function identityLoader(searchFrom: () => readonly string[]): IdentityLoader {
  const specifier = '@azure/identity';
  return async () => {
    for (const dir of [path.dirname(fileURLToPath(import.meta.url)), ...searchFrom()]) {
      let resolved: string;
      try {
        resolved = createRequire(path.join(dir, 'noop.js')).resolve(specifier);
      } catch {
        continue;
      }
      return (await import(pathToFileURL(resolved).href)) as Record<string, unknown>;
    }
    return undefined;
  };
}

interface IdentityCredentialInstance {
  getToken(
    scopes: string | string[],
    options?: { abortSignal?: AbortSignal },
  ): Promise<{ token: string; expiresOnTimestamp: number } | null>;
}

export interface SourceDeps {
  readonly provider: string;
  readonly loadIdentity: IdentityLoader;
  /** Where `env` sources read (the process environment). */
  readonly env: NodeJS.ProcessEnv;
}

/** The token source an `entra` auth config describes. */
export function tokenSource(auth: EntraAuth, deps: SourceDeps): TokenSource {
  if (auth.token !== undefined) {
    const token = auth.token;
    return {
      description: 'entra (a fixed token)',
      kind: 'token',
      unknownExpiryTtlMs: 24 * 3600_000,
      getToken: async () => ({ token, expiresAt: jwtExpiry(token) }),
    };
  }
  if (auth.env !== undefined) {
    const name = auth.env;
    return {
      description: `entra (token in $${name})`,
      kind: 'env',
      unknownExpiryTtlMs: 0,
      getToken: async () => {
        const token = deps.env[name]?.trim();
        if (!token) throw new Error(`the environment variable ${name} is not set`);
        return { token, expiresAt: jwtExpiry(token) };
      },
    };
  }
  if (auth.command !== undefined) {
    const command = auth.command;
    const running = new Set<ChildProcess>();
    return {
      description: `entra (command: ${commandText(command)})`,
      kind: 'command',
      unknownExpiryTtlMs: 5 * 60_000,
      close: () => {
        for (const child of running) child.kill();
      },
      getToken: async () => {
        const stdout = await runCommand(command, auth.commandTimeoutMs, running);
        try {
          return parseTokenOutput(stdout);
        } catch (err) {
          throw new Error(`its output is not a token: ${describeError(err)}`);
        }
      },
    };
  }
  const credential: IdentityCredential = auth.credential ?? 'default';
  const className = IDENTITY_CREDENTIALS[credential];
  let instance: IdentityCredentialInstance | undefined;
  return {
    description: `entra (@azure/identity ${className})`,
    kind: 'identity',
    unknownExpiryTtlMs: 5 * 60_000,
    getToken: async () => {
      if (!instance) {
        const mod = await deps.loadIdentity();
        if (!mod) throw new Error('@azure/identity is not installed');
        const Credential = (mod[className] ?? (mod.default as Record<string, unknown> | undefined)?.[className]) as
          (new (options?: Record<string, unknown>) => IdentityCredentialInstance) | undefined;
        if (typeof Credential !== 'function') throw new Error(`@azure/identity has no ${className} (is it version 4 or newer?)`);
        const options: Record<string, unknown> = {};
        if (auth.tenantId) options.tenantId = auth.tenantId;
        if (auth.clientId) {
          if (credential === 'default') options.managedIdentityClientId = auth.clientId;
          else options.clientId = auth.clientId;
        }
        instance = new Credential(options);
      }
      const result = await instance.getToken(auth.scope, { abortSignal: AbortSignal.timeout(auth.commandTimeoutMs) });
      if (!result?.token) throw new Error(`${className} returned no token`);
      return { token: result.token, expiresAt: result.expiresOnTimestamp };
    },
  };
}

/** What to do about a failed token fetch, by source. */
function tokenAdvice(auth: EntraAuth, source: TokenSource, err: unknown): string {
  const text = describeError(err);
  switch (source.kind) {
    case 'token':
      return 'the fixed token (auth.token) has expired; Entra tokens live about an hour: use auth.command or auth.credential so Koto can refresh them';
    case 'env':
      return `export a current token in ${auth.env} (e.g. \`export ${auth.env}=$(az account get-access-token --resource https://cognitiveservices.azure.com --query accessToken -o tsv)\`), or use auth.command so Koto can refresh it`;
    case 'command':
      if (/az login|AADSTS|expired|refresh token/i.test(text)) return 'sign in again (`az login`), then retry';
      return 'run the command in a shell and check it prints a token (e.g. `az account get-access-token --resource https://cognitiveservices.azure.com -o json`; sign in with `az login` first)';
    case 'identity':
      if (/not installed/.test(text)) {
        return 'install it next to koto-voice (`npm install @azure/identity`), or use auth.command: az account get-access-token --resource https://cognitiveservices.azure.com -o json';
      }
      return `check the ${auth.credential ?? 'default'} credential's setup (az login, managed identity, or AZURE_CLIENT_ID / AZURE_TENANT_ID / AZURE_CLIENT_SECRET), and the scope ${auth.scope}`;
  }
}

function abortError(signal: AbortSignal): KotoError {
  return kotoError('KOTO_ERR_ABORTED', { what: 'getting the Entra ID token' }, { cause: signal.reason, details: { retryable: false } });
}

/** The auth of one instance: what the `request` hook adds to its requests. */
export class Authenticator {
  /** Opaque id carried by the marker header; never a secret. */
  readonly id: string;
  readonly provider: string;
  /** The resource origin this auth is attached to (plus, at most, `realtime.endpoint`: see {@link allows}). */
  readonly origin: string;
  readonly auth: AuthOptions;
  readonly cache: TokenCache | undefined;
  readonly #secrets = new Set<string>();
  /** Tokens seen, newest last; only the last few can still be in flight or in an error. */
  readonly #tokens: string[] = [];

  /** Other origins the instance's configuration sends these credentials to (`realtime.endpoint`). */
  readonly #extraOrigins: ReadonlySet<string>;

  constructor(
    id: string,
    provider: string,
    origin: string,
    auth: AuthOptions,
    cache: TokenCache | undefined,
    extraOrigins: readonly string[] = [],
  ) {
    this.id = id;
    this.provider = provider;
    this.origin = origin;
    this.auth = auth;
    this.cache = cache;
    this.#extraOrigins = new Set(extraOrigins);
    if (auth.type === 'api-key') this.#secrets.add(auth.apiKey);
    if (auth.type === 'entra' && auth.token) this.#secrets.add(auth.token);
  }

  /** Whether a request to `origin` may carry these credentials (the instance's own origins only). */
  allows(origin: string): boolean {
    return origin === this.origin || this.#extraOrigins.has(origin);
  }

  /** `api-key` or `entra (command: …)`: how messages name the auth mode. */
  get mode(): string {
    return this.auth.type === 'api-key' ? 'api-key header' : (this.cache?.source.description ?? 'entra');
  }

  /** The key, or the recent tokens: scrubbed from errors. */
  get secrets(): readonly string[] {
    return [...this.#secrets, ...this.#tokens];
  }

  /** A new token (the kernel's scrubber gets it too, through api.registerSecret). */
  addToken(value: string): void {
    if (this.#tokens.includes(value)) return;
    this.#tokens.push(value);
    if (this.#tokens.length > 4) this.#tokens.shift();
  }

  async headers(): Promise<Record<string, string>> {
    if (this.auth.type === 'api-key') return { 'api-key': this.auth.apiKey };
    return { authorization: `Bearer ${await this.#token()}` };
  }

  /**
   * Makes sure a token is cached before a request is sent, within the request's signal: the
   * `request` hook has no signal, so a slow token command must not hold a cancelled dictation.
   * (The fetch itself goes on and fills the cache for the next request.)
   */
  async prepare(signal: AbortSignal): Promise<void> {
    if (this.auth.type === 'api-key') return;
    if (signal.aborted) throw abortError(signal);
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(abortError(signal));
      signal.addEventListener('abort', onAbort, { once: true });
    });
    const fetching = this.#token();
    fetching.catch(() => undefined);
    try {
      await Promise.race([fetching, aborted]);
    } finally {
      signal.removeEventListener('abort', onAbort!);
    }
  }

  async #token(): Promise<string> {
    const cache = this.cache!;
    try {
      return await cache.token();
    } catch (err) {
      throw azureError(
        'token-failed',
        {
          provider: this.provider,
          source: cache.source.description.replace(/^entra \((.*)\)$/, '$1'),
          detail: describeError(err),
          advice: tokenAdvice(this.auth as EntraAuth, cache.source, err),
        },
        { secrets: this.secrets, details: { provider: this.provider, authMode: this.mode, retryable: false } },
      );
    }
  }

  /** The service refused the current token: fetch a new one next time. */
  invalidate(): void {
    this.cache?.invalidate();
  }
}
