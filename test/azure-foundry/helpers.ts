import { createHmac } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createKernel, type Kernel } from 'koto-voice';
import { toneWav } from 'koto-voice/testing';
import { startAzureServer, type AzureServer, type AzureServerOptions, type TokenVerdict } from './azure-server.ts';

export const API_KEY = 'azkey0123456789abcdef0123456789ab';
export const AUDIENCE = 'https://cognitiveservices.azure.com';
/** Signs the test's "Entra" tokens: the server accepts only tokens signed with it. */
const SIGNING_KEY = 'koto-azure-test-signing-key';

export const audio = (): Uint8Array => toneWav({ seconds: 0.3 });

export interface LogLine {
  readonly level: string;
  readonly scope: string;
  readonly message: string;
  readonly fields?: Record<string, unknown> | undefined;
}

export interface Harness {
  readonly server: AzureServer;
  readonly kernel: Kernel;
  readonly home: string;
  readonly logs: LogLine[];
  /** Every log line as text. */
  logText(): string;
  close(): Promise<void>;
}

/** Kernel config; `provider` is merged into the `az` instance (`null`: no providers at all). */
type Config = Record<string, unknown> & { provider?: Record<string, unknown> | null; transport?: Record<string, unknown> };

/**
 * A loopback Azure server and a kernel whose `az` provider points at it (api-key auth, the
 * default deployments), built-ins limited to azure-foundry.
 */
export async function harness(
  serverOptions: AzureServerOptions = {},
  config: Config | ((ctx: { server: AzureServer; home: string }) => Config | Promise<Config>) = {},
  kernelEnv: Record<string, string> | ((server: AzureServer) => Record<string, string>) = {},
): Promise<Harness> {
  const server = await startAzureServer({ apiKey: API_KEY, token: verifyToken, ...serverOptions });
  const home = await mkdtemp(path.join(os.tmpdir(), 'koto-azure-test-'));
  const logs: LogLine[] = [];
  let kernel: Kernel;
  try {
    const resolved = typeof config === 'function' ? await config({ server, home }) : config;
    const { provider, transport, ...rest } = resolved;
    kernel = await createKernel({
      search: false,
      builtins: ['azure-foundry'],
      env: { KOTO_HOME: home, ...(typeof kernelEnv === 'function' ? kernelEnv(server) : kernelEnv) },
      logLevel: 'debug',
      logSink: (entry) => logs.push({ level: entry.level, scope: entry.scope, message: entry.message, fields: entry.fields }),
      config: {
        ...(provider === null
          ? {}
          : {
              providers: {
                az: {
                  use: 'azure-foundry',
                  endpoint: server.url,
                  auth: { type: 'api-key', apiKey: API_KEY },
                  deployments: { asr: 'whisper', correction: 'gpt-4o-mini' },
                  ...provider,
                },
              },
            }),
        output: [],
        transport: { ca: server.ca, ...transport },
        ...rest,
      },
    });
  } catch (err) {
    await server.close();
    await rm(home, { recursive: true, force: true });
    throw err;
  }
  return {
    server,
    kernel,
    home,
    logs,
    logText: () => logs.map((l) => `${l.level} [${l.scope}] ${l.message} ${l.fields ? JSON.stringify(l.fields) : ''}`).join('\n'),
    async close() {
      await kernel.close();
      await server.close();
      await rm(home, { recursive: true, force: true });
    },
  };
}

/** A JWT-shaped token for the test audience, expiring at `exp` (seconds), signed for the server. */
export function makeToken(exp: number, n: number | string = 0, audience = AUDIENCE): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const head = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ aud: audience, exp, n })}`;
  return `${head}.${createHmac('sha256', SIGNING_KEY).update(head).digest('base64url')}`;
}

/** The server's judgement of a bearer token: signature, audience, expiry. */
export function verifyToken(token: string): TokenVerdict {
  const [head, payload, signature] = token.split('.');
  if (!head || !payload || !signature) return 'invalid';
  if (createHmac('sha256', SIGNING_KEY).update(`${head}.${payload}`).digest('base64url') !== signature) return 'invalid';
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { aud?: string; exp?: number; n?: unknown };
  if (claims.aud !== AUDIENCE) return 'invalid';
  if (typeof claims.exp !== 'number' || claims.exp * 1000 <= Date.now()) return 'expired';
  if (claims.n === 'no-role') return 'forbidden';
  return 'ok';
}

/** The `n` claim of a token the server received. */
export function tokenNumber(authorization: string | undefined): unknown {
  const payload = authorization?.replace(/^Bearer /, '').split('.')[1];
  return payload ? (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { n?: unknown }).n : undefined;
}

export interface TokenCommand {
  /** The `command` option (argv form: this Node runs the script). */
  readonly command: string[];
  /** How many times the command ran. */
  invocations(): Promise<number>;
  /** Every token it printed. */
  tokens(): Promise<string[]>;
}

/**
 * A token command in `dir`: a small script printing `az account get-access-token -o json`-like
 * JSON (accessToken, expiresOn, expires_on) whose token expires `ttlSeconds` from now; each run
 * appends its token to a log, so tests can count invocations. `delayMs` makes it slow (so
 * concurrent callers overlap); `fail: true` makes it fail like `az` when signed out.
 */
export async function tokenCommand(dir: string, options: { ttlSeconds: number; delayMs?: number; fail?: boolean }): Promise<TokenCommand> {
  const script = path.join(dir, 'get-token.mjs');
  const log = path.join(dir, 'tokens.log');
  await writeFile(log, '');
  await writeFile(
    script,
    `import { appendFileSync, readFileSync } from 'node:fs';
import { createHmac } from 'node:crypto';
const log = ${JSON.stringify(log)};
await new Promise((r) => setTimeout(r, ${options.delayMs ?? 0}));
if (${options.fail === true}) {
  process.stderr.write("ERROR: AADSTS700082: The refresh token has expired. Please run 'az login' to setup account.\\n");
  process.exit(1);
}
const n = readFileSync(log, 'utf8').split('\\n').filter(Boolean).length + 1;
const exp = Math.floor(Date.now() / 1000) + ${options.ttlSeconds};
const part = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
const head = part({ alg: 'HS256', typ: 'JWT' }) + '.' + part({ aud: ${JSON.stringify(AUDIENCE)}, exp, n });
const token = head + '.' + createHmac('sha256', ${JSON.stringify(SIGNING_KEY)}).update(head).digest('base64url');
appendFileSync(log, token + '\\n');
const local = new Date(exp * 1000);
const pad = (x) => String(x).padStart(2, '0');
const expiresOn = local.getFullYear() + '-' + pad(local.getMonth() + 1) + '-' + pad(local.getDate()) + ' ' + pad(local.getHours()) + ':' + pad(local.getMinutes()) + ':' + pad(local.getSeconds()) + '.000000';
process.stdout.write(JSON.stringify({ accessToken: token, expiresOn, expires_on: exp, subscription: '00000000-0000-0000-0000-000000000000', tenant: '11111111-1111-1111-1111-111111111111', tokenType: 'Bearer' }, null, 2) + '\\n');
`,
  );
  const tokens = async () => (await readFile(log, 'utf8')).split('\n').filter(Boolean);
  return {
    command: [process.execPath, script],
    tokens,
    invocations: async () => (await tokens()).length,
  };
}

/** Runs `fn` and returns what it threw (fails the test if it did not throw). */
export async function caught(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to throw');
}

/** Everything an error shows a user, a log or a bug report. */
export function everythingShown(err: unknown): string {
  const parts: string[] = [];
  let current: unknown = err;
  for (let depth = 0; current && depth < 5; depth++) {
    const e = current as {
      message?: string;
      fix?: string;
      stack?: string;
      toLine?: () => string;
      toJSON?: () => unknown;
      details?: unknown;
      cause?: unknown;
    };
    parts.push(
      String(current),
      e.message ?? '',
      e.fix ?? '',
      e.stack ?? '',
      e.toLine?.() ?? '',
      JSON.stringify(e.toJSON?.() ?? null),
      JSON.stringify(e.details ?? null),
    );
    current = e.cause;
  }
  return parts.join('\n');
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until `check` holds: a condition to wait for, not a guessed delay (fails after 20 s). */
export async function until(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}
