/**
 * The provider conformance suite: what every Koto provider plugin must do, checked against a
 * real loopback HTTPS/HTTP/2 server and a real kernel.
 *
 * A provider author calls {@link describeProviderConformance} in one of their own vitest files:
 *
 * ```ts
 * import { describeProviderConformance } from 'koto-voice/testing';
 * import plugin from '../src/index.ts';
 * import { startMyServer } from './server.ts';
 *
 * describeProviderConformance({
 *   plugin,
 *   server: ({ secret }) => startMyServer({ apiKey: secret }),
 *   provider: ({ server, secret }) => ({ baseUrl: server.url, apiKey: secret }),
 * });
 * ```
 *
 * Checked, for each capability the plugin declares (`asr`, `correction`):
 *
 * 1. **shared client**: requests go through the kernel's client (`api.http`). Every request the
 *    server receives must be counted by `kernel.http.stats()`; a plugin that builds its own
 *    client (undici Agent, `fetch`, `node:https`) fails here.
 * 2. **errors**: an HTTP error from the server becomes a catalogue `KotoError` (not the generic
 *    `KOTO_ERR_HOOK_FAILED` that wraps a plain `Error`), tagged with the plugin and the hook;
 *    a 401 is `KOTO_ERR_AUTH`.
 * 3. **failures**: 403, 404, 500 and 429 map to their codes and retryability; a dropped
 *    connection is retryable, an unreadable answer `KOTO_ERR_BAD_RESPONSE` (optional server
 *    methods; skipped when the server lacks them).
 * 4. **retry**: a 503 carries `details.retryable: true`, so the kernel's retry (within the
 *    stage's deadline) turns one failed attempt into a success; a 429's `Retry-After` (seconds
 *    or an HTTP date) becomes `details.retryAfter`, and the retry waits it out.
 * 4. **abort**: cancelling the session's signal settles the call promptly (`KOTO_ERR_ABORTED`).
 * 5. **timeout**: the kernel's deadline (`asr.timeoutMs`, `correction.timeoutMs`) is honoured
 *    through `request.signal`: no hang while the server holds the request.
 *
 * And once per plugin:
 *
 * 6. **secrets**: a canary credential never appears in a log line (at debug level) or in any
 *    error text, even when the server echoes it back in an error body; the kernel knows it
 *    (so `kernel.scrub()` and the CLI redact it).
 * 7. **close**: after `kernel.close()` no socket, timer or other handle the kernel or the plugin
 *    opened is left (`process.getActiveResourcesInfo()` back to its count before the kernel
 *    started) and the server sees no open connection.
 *
 * The checks are also available one by one ({@link conformanceChecks}), as plain async
 * functions that throw a {@link ConformanceFailure} with a message that says what to fix.
 *
 * `vitest` is an optional peer dependency of koto-voice: it is loaded only when
 * {@link describeProviderConformance} is called.
 *
 * @module
 */

import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe as describeError, KotoError } from '../kernel/errors.ts';
import { createKernel, type Kernel, type KernelOptions } from '../kernel/kernel.ts';
import type { AnyKotoPlugin } from '../kernel/plugin.ts';
import type { CorrectResult, TranscribeResult } from '../kernel/session.ts';
import type { CorrectionRequest, SessionContext } from '../kernel/types.ts';
import { correctionProviderOptions, correctionSettings } from '../kernel/correction-settings.ts';
import { activeResources, errorText, matches, resourcesAbove, settleWithin, summary, waitUntil } from './check-helpers.ts';
import { toneWav } from './fake-audio.ts';
import { openAIError, startOpenAIServer, type OpenAIServerOptions } from './openai-server.ts';

// Optional peer dependency: loaded once, here, so that `koto-voice/testing` (the loopback
// servers, fake audio) still works in a project without vitest.
type Vitest = typeof import('vitest');
let vitest: Vitest | undefined;
let vitestError: unknown;
try {
  vitest = await import('vitest');
} catch (err) {
  vitestError = err;
}

/** What a provider serves; each is checked separately. */
export type ConformanceCapability = 'asr' | 'correction';

/**
 * A loopback server the suite can drive. Use {@link openAIConformanceServer} for an
 * OpenAI-wire provider, or implement this over your own server (see the example plugin in
 * koto-voice's `examples/`).
 */
export interface ConformanceServer {
  /** What the provider instance should point at (its `baseUrl`), e.g. `https://127.0.0.1:PORT/v1`. */
  readonly url: string;
  /** `https://127.0.0.1:PORT`: the origin the kernel's client counts requests under. */
  readonly origin: string;
  /** PEM of the CA the server's certificate is signed by (the kernel is told to trust it). */
  readonly ca: string;
  /** Requests received so far (all of them: pre-warms and probes too). */
  requestCount(): number;
  /** Connections open right now. */
  openConnections(): number;
  /**
   * Answer the next request for `capability` with HTTP `status` and an error body in the
   * server's wire format; when `message` is given, the body's error message is exactly that
   * (the suite puts the canary secret in it, as some services echo a bad key back).
   */
  failNext(capability: ConformanceCapability, status: number, message?: string): void;
  /** Hold the next request for `capability`: never answer it (until the server closes). */
  hangNext(capability: ConformanceCapability): void;
  /** Requests held because of {@link ConformanceServer.hangNext} so far. */
  heldRequests(): number;
  /**
   * Answer the next request for `capability` with HTTP 429 and, when given, this `Retry-After`
   * header value (`"1"`, or an HTTP date). Optional: without it the Retry-After checks are skipped.
   */
  rateLimitNext?(capability: ConformanceCapability, retryAfter?: string): void;
  /** Drop the connection (or HTTP/2 stream) of the next request before any answer. Optional. */
  dropNext?(capability: ConformanceCapability): void;
  /** Answer the next request with HTTP 200 and a body the provider cannot read. Optional. */
  malformedNext?(capability: ConformanceCapability): void;
  /** Stop listening and drop every connection. */
  close(): Promise<void>;
}

export interface ConformanceContext {
  readonly server: ConformanceServer;
  /** A canary credential: configure it as the instance's API key / token. */
  readonly secret: string;
}

/** Config sections the suite fills in, which {@link ProviderConformanceOptions.config} may extend. */
export type ConformanceConfig = Record<string, unknown>;

export interface ProviderConformanceOptions {
  /** The plugin under test: your package's default export. */
  readonly plugin: AnyKotoPlugin;
  /** Title of the `describe` block (default `<plugin name>: Koto provider conformance`). */
  readonly name?: string | undefined;
  /** Capabilities to check (default: the plugin's `capabilities`). */
  readonly capabilities?: readonly ConformanceCapability[] | undefined;
  /**
   * Starts the loopback server for one check (each check gets a fresh server and kernel).
   * Default: {@link openAIConformanceServer} requiring the canary as its API key.
   */
  readonly server?: ((context: { readonly secret: string }) => Promise<ConformanceServer>) | undefined;
  /** The provider instance's options (everything but `use`), pointing at the server. */
  readonly provider: (context: ConformanceContext) => Record<string, unknown>;
  /**
   * Extra config, merged over what the suite sets (`asr`, `correction` and `transport` are
   * merged key by key), e.g. `{ asr: { model: 'nova-3' }, pluginOptions: { … } }`.
   */
  readonly config?: ((context: ConformanceContext) => ConformanceConfig) | undefined;
  /** Other plugins the kernel must load (dependencies of the plugin under test). */
  readonly plugins?: KernelOptions['plugins'];
  /** Audio sent for transcription (default: 0.5 s of a 440 Hz tone as WAV, from `toneWav()`). */
  readonly audio?: Uint8Array | undefined;
  /** Text sent for correction (default `hello world`). */
  readonly text?: string | undefined;
  /** What the server's normal transcription answer should come out as. */
  readonly expectText?: string | RegExp | undefined;
  /** What the server's normal correction answer should come out as. */
  readonly expectCorrection?: string | RegExp | undefined;
  /**
   * The `asr.timeoutMs` / `correction.timeoutMs` the timeout check configures (default 1500: the
   * request must reach the server's held route before it, even on a loaded CI machine).
   */
  readonly deadlineMs?: number | undefined;
  /** How long a call may take to settle after an abort or its deadline (default 10 000 ms; a passing call settles at once). */
  readonly settleMs?: number | undefined;
  /** Test timeout of each check (default 60 000 ms). */
  readonly timeoutMs?: number | undefined;
}

// Generous bounds that only a failing plugin waits out: plugin authors run this suite on loaded
// CI machines, where a check that races the clock would blame the plugin for the machine.
const DEFAULT_DEADLINE_MS = 1500;
const DEFAULT_SETTLE_MS = 10_000;

/** A conformance check failed: the message says what the plugin does wrong and how to fix it. */
export class ConformanceFailure extends Error {
  override readonly name = 'ConformanceFailure';
}

export type ConformanceCheckId =
  'shared-client' | 'errors' | 'failures' | 'dropped' | 'malformed' | 'retry' | 'retry-after' | 'abort' | 'timeout' | 'secrets' | 'close';

export interface ConformanceCheck {
  readonly id: ConformanceCheckId;
  /** Set for the per-capability checks. */
  readonly capability: ConformanceCapability | undefined;
  readonly title: string;
  /**
   * Runs the check with a fresh server and kernel; throws a {@link ConformanceFailure}. Resolves
   * with `{ skipped }` when the server cannot produce the situation (an optional
   * {@link ConformanceServer} method it lacks).
   */
  run(): Promise<void | { skipped: string }>;
}

/** The provider instance name the suite configures. */
export const CONFORMANCE_PROVIDER = 'conformance';

const DEFAULT_TEXT = 'hello world';
/** How long a held request is held at most (the server's close ends it sooner). */
const HOLD_MS = 10 * 60_000;

function fail(message: string): never {
  throw new ConformanceFailure(message);
}

function capabilitiesOf(options: ProviderConformanceOptions): ConformanceCapability[] {
  const declared = options.capabilities ?? options.plugin.capabilities ?? [];
  const caps = [...new Set(declared)];
  if (caps.length === 0) {
    throw new ConformanceFailure(
      `plugin "${options.plugin.name}" declares no capabilities: add \`capabilities: ['asr']\` (and/or 'correction') to definePlugin, or pass \`capabilities\` to the suite`,
    );
  }
  return caps;
}

// ---------------------------------------------------------------------------
// The built-in server, adapted
// ---------------------------------------------------------------------------

export interface OpenAIConformanceServerOptions extends OpenAIServerOptions {
  /** Path suffix of the correction operation (default `/chat/completions`; `/responses` for that protocol). */
  readonly correctionPath?: string | undefined;
}

/**
 * The built-in OpenAI-compatible loopback server ({@link startOpenAIServer}) as a
 * {@link ConformanceServer}: for plugins that speak the OpenAI wire format.
 */
export async function openAIConformanceServer(options: OpenAIConformanceServerOptions = {}): Promise<ConformanceServer> {
  const server = await startOpenAIServer(options);
  const paths: Record<ConformanceCapability, string> = {
    asr: '/audio/transcriptions',
    correction: options.correctionPath ?? '/chat/completions',
  };
  return {
    url: server.baseUrl,
    origin: server.origin,
    ca: server.ca,
    requestCount: () => server.requests.length,
    openConnections: () => server.openConnections,
    failNext(capability, status, message) {
      server.inject({
        path: paths[capability],
        status,
        ...(message === undefined ? {} : { body: openAIError(message, status === 401 ? 'invalid_request_error' : 'server_error') }),
      });
    },
    hangNext(capability) {
      server.inject({ path: paths[capability], delayMs: HOLD_MS });
    },
    rateLimitNext(capability, retryAfter) {
      server.inject({
        path: paths[capability],
        status: 429,
        ...(retryAfter === undefined ? {} : { headers: { 'retry-after': retryAfter } }),
      });
    },
    dropNext(capability) {
      server.inject({ path: paths[capability], reset: 'before-response' });
    },
    malformedNext(capability) {
      server.inject({
        path: paths[capability],
        status: 200,
        body: '{"text": "cut off in the mid',
        headers: { 'content-type': 'application/json' },
      });
    },
    heldRequests: () => server.requests.filter((r) => r.fault?.delayMs === HOLD_MS).length,
    close: () => server.close(),
  };
}

// ---------------------------------------------------------------------------
// Harness: one server, one kernel, one temporary KOTO_HOME per check
// ---------------------------------------------------------------------------

interface Harness {
  readonly server: ConformanceServer;
  readonly secret: string;
  readonly logs: string[];
  readonly kernel: Kernel;
  start(): Promise<Kernel>;
}

function merge(base: ConformanceConfig, extra: ConformanceConfig): ConformanceConfig {
  const out: ConformanceConfig = { ...base };
  for (const [key, value] of Object.entries(extra)) {
    const current = out[key];
    const mergeable = ['asr', 'correction', 'transport'].includes(key);
    out[key] = mergeable && isPlainObject(current) && isPlainObject(value) ? { ...current, ...value } : value;
  }
  return out;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

async function withHarness(
  options: ProviderConformanceOptions,
  sections: ConformanceConfig,
  fn: (h: Harness) => Promise<void>,
): Promise<void> {
  const secret = `canary${randomBytes(16).toString('hex')}`;
  const server = await (options.server ?? ((ctx) => openAIConformanceServer({ apiKey: ctx.secret })))({ secret });
  const home = await mkdtemp(path.join(os.tmpdir(), 'koto-conformance-'));
  const logs: string[] = [];
  const caps = capabilitiesOf(options);
  const context: ConformanceContext = { server, secret };
  let kernel: Kernel | undefined;
  const start = async (): Promise<Kernel> => {
    if (kernel) return kernel;
    const base: ConformanceConfig = {
      providers: { [CONFORMANCE_PROVIDER]: { use: options.plugin.name, ...options.provider(context) } },
      asr: caps.includes('asr') ? { provider: CONFORMANCE_PROVIDER } : {},
      correction: caps.includes('correction') ? { enabled: true, provider: CONFORMANCE_PROVIDER } : { enabled: false },
      transport: { ca: server.ca },
      output: [],
    };
    const config = merge(merge(base, options.config?.(context) ?? {}), sections);
    kernel = await createKernel({
      config,
      search: false,
      builtins: false,
      plugins: [...(options.plugins ?? []), options.plugin],
      env: { KOTO_HOME: home },
      logLevel: 'debug',
      logSink: (entry) =>
        logs.push(`${entry.level} [${entry.scope}] ${entry.message}${entry.fields ? ` ${JSON.stringify(entry.fields)}` : ''}`),
    });
    return kernel;
  };
  try {
    await fn({
      server,
      secret,
      logs,
      get kernel(): Kernel {
        if (!kernel) throw new Error('the kernel is not started');
        return kernel;
      },
      start,
    });
  } finally {
    await kernel?.close().catch(() => undefined);
    await server.close();
    await rm(home, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------
// One call per capability, the way the kernel makes it
// ---------------------------------------------------------------------------

function audioOf(options: ProviderConformanceOptions): Uint8Array {
  return options.audio ?? toneWav({ seconds: 0.5 });
}

/** A successful call; fails with the reason when the provider could not serve it. */
async function serve(h: Harness, options: ProviderConformanceOptions, capability: ConformanceCapability): Promise<string> {
  const kernel = h.kernel;
  if (capability === 'asr') {
    let result;
    try {
      result = await kernel.transcribe({ data: audioOf(options), name: 'conformance.wav' });
    } catch (err) {
      fail(`a normal transcription failed: ${summary(err)}`);
    }
    if (!result.text) fail('a normal transcription came back empty: the server answered with text, the provider must return it');
    if (options.expectText !== undefined && !matches(result.text, options.expectText)) {
      fail(`the transcription was ${JSON.stringify(result.text)}, expected ${String(options.expectText)}`);
    }
    return result.text;
  }
  const result = await kernel.correct(options.text ?? DEFAULT_TEXT);
  if (result.fallback) {
    fail(`a normal correction fell back to the raw text: ${result.warnings.join('; ') || 'no warning given'}`);
  }
  if (options.expectCorrection !== undefined && !matches(result.text, options.expectCorrection)) {
    fail(`the correction was ${JSON.stringify(result.text)}, expected ${String(options.expectCorrection)}`);
  }
  return result.text;
}

/**
 * The correction hook called directly, the way the kernel calls it: `kernel.correct()` turns
 * every provider error into a raw-text fallback, so the error itself is only visible here.
 */
function callCorrectionHook(kernel: Kernel, options: ProviderConformanceOptions, signal: AbortSignal): Promise<unknown> {
  const config = kernel.config;
  const provider = config.resolved.providers[CONFORMANCE_PROVIDER];
  if (!provider) throw new Error('the conformance provider is not configured');
  const hook = kernel.hooks.correction.get(provider.use);
  if (!hook?.isUsed())
    fail(`plugin "${provider.use}" declares the correction capability but taps no hooks.correction.for('${provider.use}')`);
  const session: SessionContext = {
    id: 'conformance',
    config,
    signal,
    startedAt: Date.now(),
    mode: 'file',
    state: 'correcting',
    timings: {},
    providers: { correction: provider },
  };
  const request: CorrectionRequest = {
    session,
    provider,
    text: options.text ?? DEFAULT_TEXT,
    model: config.correction.model,
    dictionary: config.resolved.dictionary,
    interimHistory: [],
    settings: correctionSettings(config.correction),
    providerOptions: correctionProviderOptions(config, provider.use),
    systemPrompt: config.resolved.systemPrompt,
    userPrompt: config.resolved.userPrompt,
    signal,
    onDelta: () => undefined,
  };
  return hook.promise(request);
}

/** A call expected to fail; returns the error. */
async function failingCall(h: Harness, options: ProviderConformanceOptions, capability: ConformanceCapability): Promise<unknown> {
  const budget = options.settleMs ?? DEFAULT_SETTLE_MS;
  const call: Promise<unknown> =
    capability === 'asr'
      ? h.kernel.transcribe({ data: audioOf(options), name: 'conformance.wav' })
      : callCorrectionHook(h.kernel, options, AbortSignal.timeout(30_000));
  const outcome = await settleWithin(call, 10_000 + budget);
  if (outcome.ok === 'pending') fail(`the ${capability} call did not settle after the server answered with an error status`);
  if (outcome.ok) {
    fail(
      `the ${capability} call succeeded although the server answered with an error status ` +
        '(was a 4xx marked retryable? only 429, 5xx and dropped connections are worth another try)',
    );
  }
  return outcome.error;
}

// ---------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------

async function checkSharedClient(options: ProviderConformanceOptions, capability: ConformanceCapability): Promise<void> {
  await withHarness(options, {}, async (h) => {
    await h.start();
    await serve(h, options, capability);
    const served = h.server.requestCount();
    const sent = h.kernel.http.stats().origins[h.server.origin]?.requests ?? 0;
    if (served === 0) fail(`the server at ${h.server.origin} received no request: does the provider use the configured URL?`);
    if (served > sent) {
      fail(
        `the server received ${served} request(s) but only ${sent} went through the kernel's client: the plugin sends requests ` +
          'through a client of its own. Send every request with api.http.request({ origin, path, method, headers, body, signal }).',
      );
    }
  });
}

async function checkErrors(options: ProviderConformanceOptions, capability: ConformanceCapability): Promise<void> {
  const name = options.plugin.name;
  const hook = `${capability}:${name}`;
  const verify = (err: unknown, status: number) => {
    if (!KotoError.is(err)) fail(`HTTP ${status}: the error is not a KotoError: ${describeError(err)}`);
    if (err.code === 'KOTO_ERR_HOOK_FAILED') {
      fail(
        `HTTP ${status}: the plugin threw a plain Error (${err.message}); map upstream errors to catalogue codes with ` +
          "kotoError('KOTO_ERR_AUTH' | 'KOTO_ERR_BAD_REQUEST' | 'KOTO_ERR_UPSTREAM' | …, params) so users get a message, a fix and an exit code",
      );
    }
    if (err.plugin !== name || err.hook !== hook) {
      fail(`HTTP ${status}: the error is tagged [${String(err.plugin)} ${String(err.hook)}], expected [${name} ${hook}]`);
    }
    return err;
  };
  await withHarness(options, {}, async (h) => {
    await h.start();
    h.server.failNext(capability, 401, 'Invalid credentials.');
    const auth = verify(await failingCall(h, options, capability), 401);
    if (auth.code !== 'KOTO_ERR_AUTH') fail(`HTTP 401: expected KOTO_ERR_AUTH (rejected credentials), got ${summary(auth)}`);
    h.server.failNext(capability, 400, 'Bad request.');
    verify(await failingCall(h, options, capability), 400);
    // The provider still works after errors (no poisoned state).
    await serve(h, options, capability);
  });
}

async function checkRetry(options: ProviderConformanceOptions, capability: ConformanceCapability): Promise<void> {
  await withHarness(options, {}, async (h) => {
    await h.start();
    h.server.failNext(capability, 503, 'The service is briefly unavailable.');
    try {
      await serve(h, options, capability);
    } catch (err) {
      if (!(err instanceof ConformanceFailure)) throw err;
      fail(
        `one HTTP 503 should be retried by the kernel, but ${err.message}. Mark 429 and 5xx errors (and connections dropped ` +
          'before an answer) with `details: { retryable: true }`, plus `retryAfter` (seconds) from a Retry-After header',
      );
    }
  });
}

/** The error of one failing call, checked against what the catalogue says of that status. */
function expectMapped(
  err: unknown,
  what: string,
  name: string,
  capability: ConformanceCapability,
  expect: { codes?: readonly string[]; retryable: boolean },
): KotoError {
  if (!KotoError.is(err)) fail(`${what}: the error is not a KotoError: ${describeError(err)}`);
  if (err.code === 'KOTO_ERR_HOOK_FAILED' || err.code === 'KOTO_ERR_INTERNAL') {
    fail(
      `${what}: the plugin threw ${err.code === 'KOTO_ERR_INTERNAL' ? 'an undeclared code' : 'a plain Error'} (${err.message}); map it to a catalogue code${expect.codes ? ` (${expect.codes.join(' or ')})` : ''} or one of your declared codes`,
    );
  }
  const ownCode = !err.code.startsWith('KOTO_ERR_');
  if (expect.codes && !ownCode && !expect.codes.includes(err.code))
    fail(`${what}: expected ${expect.codes.join(' or ')}, got ${summary(err)}`);
  if ((err.details.retryable === true) !== expect.retryable) {
    fail(
      `${what}: details.retryable is ${String(err.details.retryable)}, expected ${String(expect.retryable)} ` +
        (expect.retryable
          ? '(429, 5xx and dropped connections are worth another try: the kernel retries only what says so)'
          : '(another try would fail the same way: only 429, 5xx and dropped connections are retryable)'),
    );
  }
  if (err.plugin !== name || err.hook !== `${capability}:${name}`) {
    fail(`${what}: the error is tagged [${String(err.plugin)} ${String(err.hook)}], expected [${name} ${capability}:${name}]`);
  }
  return err;
}

/** 403, 404, 500 and 429 without Retry-After: each mapped to its code and retryability. */
async function checkFailures(options: ProviderConformanceOptions, capability: ConformanceCapability): Promise<void> {
  const name = options.plugin.name;
  // No retries: each failing call must show the plugin's own mapping, not the kernel's next try.
  await withHarness(options, { [capability]: { retries: 0 } }, async (h) => {
    await h.start();
    h.server.failNext(capability, 403, 'Forbidden.');
    expectMapped(await failingCall(h, options, capability), 'HTTP 403', name, capability, { codes: ['KOTO_ERR_AUTH'], retryable: false });
    h.server.failNext(capability, 404, 'Not found.');
    expectMapped(await failingCall(h, options, capability), 'HTTP 404', name, capability, { retryable: false });
    h.server.failNext(capability, 500, 'Internal error.');
    expectMapped(await failingCall(h, options, capability), 'HTTP 500', name, capability, {
      codes: ['KOTO_ERR_UPSTREAM'],
      retryable: true,
    });
    h.server.failNext(capability, 429, 'Slow down.');
    expectMapped(await failingCall(h, options, capability), 'HTTP 429', name, capability, {
      codes: ['KOTO_ERR_RATE_LIMITED'],
      retryable: true,
    });
    await serve(h, options, capability);
  });
}

/** A connection dropped before the answer (retryable), and an answer that cannot be read (not). */
async function checkBrokenAnswers(
  options: ProviderConformanceOptions,
  capability: ConformanceCapability,
  kind: 'dropped' | 'malformed',
): Promise<void | { skipped: string }> {
  const name = options.plugin.name;
  let skipped: string | undefined;
  await withHarness(options, { [capability]: { retries: 0 } }, async (h) => {
    const inject = kind === 'dropped' ? h.server.dropNext : h.server.malformedNext;
    if (!inject) {
      skipped = `not checked: the server has no ${kind === 'dropped' ? 'dropNext' : 'malformedNext'}`;
      return;
    }
    await h.start();
    inject.call(h.server, capability);
    if (kind === 'dropped') {
      expectMapped(await failingCall(h, options, capability), 'a connection dropped before the answer', name, capability, {
        codes: ['KOTO_ERR_NETWORK', 'KOTO_ERR_UPSTREAM'],
        retryable: true,
      });
    } else {
      expectMapped(await failingCall(h, options, capability), 'an answer that cannot be read', name, capability, {
        codes: ['KOTO_ERR_BAD_RESPONSE'],
        retryable: false,
      });
    }
    // Nothing poisoned: the next call works.
    await serve(h, options, capability);
  });
  return skipped ? { skipped } : undefined;
}

/** A 429 with Retry-After (seconds, then an HTTP date): `details.retryAfter` set, and the kernel's retry waits it out. */
async function checkRetryAfter(
  options: ProviderConformanceOptions,
  capability: ConformanceCapability,
): Promise<void | { skipped: string }> {
  const name = options.plugin.name;
  let skipped: string | undefined;
  await withHarness(options, { [capability]: { retries: 0 } }, async (h) => {
    if (!h.server.rateLimitNext) {
      skipped = 'the server has no rateLimitNext';
      return;
    }
    await h.start();
    h.server.rateLimitNext(capability, '1');
    const seconds = expectMapped(await failingCall(h, options, capability), 'HTTP 429 with Retry-After: 1', name, capability, {
      retryable: true,
    });
    if (seconds.details.retryAfter !== 1)
      fail(
        `HTTP 429 with Retry-After: 1: details.retryAfter is ${String(seconds.details.retryAfter)}, expected 1 (seconds, from the header)`,
      );
    // HTTP dates have whole seconds: three ahead is at least two from now.
    h.server.rateLimitNext(capability, new Date(Date.now() + 3000).toUTCString());
    const date = expectMapped(await failingCall(h, options, capability), 'HTTP 429 with Retry-After as an HTTP date', name, capability, {
      retryable: true,
    });
    const after = date.details.retryAfter;
    if (typeof after !== 'number' || after < 1 || after > 4) {
      fail(
        `HTTP 429 with Retry-After as an HTTP date 3 s ahead: details.retryAfter is ${String(after)}, expected the seconds until then (about 2–3)`,
      );
    }
  });
  if (skipped) return { skipped: `not checked: ${skipped}` };
  // With a retry allowed: the second attempt waits the second the server asked for.
  await withHarness(options, { [capability]: { retries: 1, timeoutMs: 60_000 } }, async (h) => {
    await h.start();
    h.server.rateLimitNext!(capability, '1');
    const started = performance.now();
    await serve(h, options, capability);
    const waited = performance.now() - started;
    // A lower bound only: a slow machine makes it longer, never shorter.
    if (waited < 950)
      fail(
        `after a 429 with Retry-After: 1 the call succeeded ${Math.round(waited)} ms later: set details.retryAfter (seconds) so the kernel waits before retrying`,
      );
  });
  return undefined;
}

async function checkAbort(options: ProviderConformanceOptions, capability: ConformanceCapability): Promise<void> {
  const budget = options.settleMs ?? DEFAULT_SETTLE_MS;
  await withHarness(options, {}, async (h) => {
    await h.start();
    h.server.hangNext(capability);
    const controller = new AbortController();
    const call: Promise<TranscribeResult | CorrectResult> =
      capability === 'asr'
        ? h.kernel.transcribe({ data: audioOf(options), name: 'conformance.wav' }, { signal: controller.signal })
        : h.kernel.correct(options.text ?? DEFAULT_TEXT, { signal: controller.signal });
    call.catch(() => undefined);
    if (!(await waitUntil(() => h.server.heldRequests() > 0, 30_000))) {
      const early = await settleWithin(call, 0);
      fail(
        `the ${capability} request never reached the server's held route` +
          (early.ok === false ? ` (the call failed first: ${summary(early.error)})` : ''),
      );
    }
    controller.abort();
    const outcome = await settleWithin(call, budget);
    if (outcome.ok === 'pending') {
      fail(
        `the ${capability} call was still pending ${budget} ms after the session was cancelled: pass request.signal to api.http.request() and to every wait`,
      );
    }
    if (outcome.ok) fail(`the ${capability} call succeeded after the session was cancelled`);
    if (!KotoError.is(outcome.error) || outcome.error.code !== 'KOTO_ERR_ABORTED') {
      fail(`a cancelled ${capability} call should fail with KOTO_ERR_ABORTED, got ${summary(outcome.error)}`);
    }
  });
}

async function checkTimeout(options: ProviderConformanceOptions, capability: ConformanceCapability): Promise<void> {
  const budget = options.settleMs ?? DEFAULT_SETTLE_MS;
  const deadlineMs = options.deadlineMs ?? DEFAULT_DEADLINE_MS;
  await withHarness(options, { [capability]: { timeoutMs: deadlineMs } }, async (h) => {
    await h.start();
    h.server.hangNext(capability);
    const call: Promise<TranscribeResult | CorrectResult> =
      capability === 'asr'
        ? h.kernel.transcribe({ data: audioOf(options), name: 'conformance.wav' })
        : h.kernel.correct(options.text ?? DEFAULT_TEXT);
    call.catch(() => undefined);
    const outcome = await settleWithin(call, deadlineMs + budget);
    if (outcome.ok === 'pending') {
      fail(
        `the ${capability} call was still pending ${deadlineMs + budget} ms after it started, with ${capability}.timeoutMs = ${deadlineMs}: ` +
          'honour request.signal (the kernel aborts it at the deadline)',
      );
    }
    if (h.server.heldRequests() === 0) fail(`the ${capability} request never reached the server's held route`);
    if (capability === 'asr') {
      if (outcome.ok) fail('the transcription succeeded although the server never answered');
      if (!KotoError.is(outcome.error) || outcome.error.code !== 'KOTO_ERR_TIMEOUT') {
        fail(`a transcription past its deadline should fail with KOTO_ERR_TIMEOUT, got ${summary(outcome.error)}`);
      }
    } else {
      if (!outcome.ok) fail(`a correction past its deadline should fall back to the raw text, but it failed: ${summary(outcome.error)}`);
      if (!('fallback' in outcome.value) || !outcome.value.fallback)
        fail('a correction past its deadline should fall back to the raw text');
    }
  });
}

async function checkSecrets(options: ProviderConformanceOptions, caps: readonly ConformanceCapability[]): Promise<void> {
  await withHarness(options, {}, async (h) => {
    await h.start();
    if (h.kernel.scrub(`key=${h.secret}`).includes(h.secret)) {
      fail(
        'the kernel does not know the credential: call api.registerSecret(value) for every key or token (in apply() and on configChanged), ' +
          'or name the option apiKey / token / secret so the kernel finds it',
      );
    }
    const errors: unknown[] = [];
    for (const capability of caps) {
      await serve(h, options, capability);
      h.server.failNext(capability, 401, `Invalid credentials: ${h.secret}`);
      errors.push(await failingCall(h, options, capability));
      h.server.failNext(capability, 400, `Bad request for key ${h.secret}`);
      errors.push(await failingCall(h, options, capability));
    }
    for (const err of errors) {
      if (errorText(err).includes(h.secret)) {
        fail(
          `the canary credential appears in an error (${summary(err).replaceAll(h.secret, '<canary>')}): ` +
            'scrub secrets out of upstream messages before putting them in an error',
        );
      }
    }
    const leaked = h.logs.find((line) => line.includes(h.secret));
    if (leaked) fail(`the canary credential appears in a log line: ${leaked.replaceAll(h.secret, '<canary>')}`);
  });
}

async function checkClose(options: ProviderConformanceOptions, caps: readonly ConformanceCapability[]): Promise<void> {
  await withHarness(options, {}, async (h) => {
    const baseline = activeResources();
    const kernel = await h.start();
    for (const capability of caps) await serve(h, options, capability);
    const closing = settleWithin(kernel.close(), 15_000);
    const outcome = await closing;
    if (outcome.ok === 'pending') fail('kernel.close() did not finish within 15 s: a close tap of the plugin hangs');
    if (outcome.ok === false) fail(`kernel.close() failed: ${summary(outcome.error)}`);
    await kernel.close(); // idempotent
    if (kernel.state !== 'closed') fail(`the kernel is ${kernel.state} after close()`);
    const released = await waitUntil(
      () => h.server.openConnections() === 0 && resourcesAbove(baseline).length === 0,
      DEFAULT_SETTLE_MS,
      25,
    );
    if (!released) {
      const left = resourcesAbove(baseline);
      fail(
        `after kernel.close(): ${h.server.openConnections()} connection(s) still open at the server` +
          (left.length ? `; handles left that keep the process alive: ${left.join(', ')}` : '') +
          '. Clear timers and close what the plugin opened in a hooks.close tap; never build an HTTP client of your own.',
      );
    }
  });
}

/** Every check for these options, in the order the suite runs them. */
export function conformanceChecks(options: ProviderConformanceOptions): ConformanceCheck[] {
  const caps = capabilitiesOf(options);
  const checks: ConformanceCheck[] = [];
  for (const capability of caps) {
    checks.push(
      {
        id: 'shared-client',
        capability,
        title: `${capability}: requests go through the kernel's shared client`,
        run: () => checkSharedClient(options, capability),
      },
      {
        id: 'errors',
        capability,
        title: `${capability}: HTTP errors become catalogue KotoErrors tagged with plugin and hook`,
        run: () => checkErrors(options, capability),
      },
      {
        id: 'failures',
        capability,
        title: `${capability}: 403, 404, 500 and 429 are each mapped to their code and retryability`,
        run: () => checkFailures(options, capability),
      },
      {
        id: 'dropped',
        capability,
        title: `${capability}: a connection dropped before the answer is retryable`,
        run: () => checkBrokenAnswers(options, capability, 'dropped'),
      },
      {
        id: 'malformed',
        capability,
        title: `${capability}: an answer that cannot be read is KOTO_ERR_BAD_RESPONSE, not a crash`,
        run: () => checkBrokenAnswers(options, capability, 'malformed'),
      },
      {
        id: 'retry',
        capability,
        title: `${capability}: a 503 is marked retryable, and the kernel's retry succeeds`,
        run: () => checkRetry(options, capability),
      },
      {
        id: 'retry-after',
        capability,
        title: `${capability}: a 429's Retry-After (seconds or a date) becomes details.retryAfter, and the retry waits it out`,
        run: () => checkRetryAfter(options, capability),
      },
      {
        id: 'abort',
        capability,
        title: `${capability}: cancelling the session settles the call promptly`,
        run: () => checkAbort(options, capability),
      },
      {
        id: 'timeout',
        capability,
        title: `${capability}: the kernel's deadline is honoured`,
        run: () => checkTimeout(options, capability),
      },
    );
  }
  checks.push(
    {
      id: 'secrets',
      capability: undefined,
      title: 'the credential never appears in logs or errors',
      run: () => checkSecrets(options, caps),
    },
    {
      id: 'close',
      capability: undefined,
      title: 'kernel.close() releases every socket and handle',
      run: () => checkClose(options, caps),
    },
  );
  return checks;
}

/**
 * Registers the conformance suite (a vitest `describe` with one `it` per check) for a provider
 * plugin. Call it at the top level of a test file.
 */
export function describeProviderConformance(options: ProviderConformanceOptions): void {
  if (!vitest) {
    throw new Error(
      `describeProviderConformance needs vitest (an optional peer dependency of koto-voice): npm install --save-dev vitest (${describeError(vitestError)})`,
    );
  }
  const { describe, it } = vitest;
  const checks = conformanceChecks(options);
  describe(options.name ?? `${options.plugin.name}: Koto provider conformance`, () => {
    for (const check of checks) {
      it(check.title, { timeout: options.timeoutMs ?? 60_000 }, async (context) => {
        const outcome = await check.run();
        if (outcome?.skipped) context.skip(outcome.skipped);
      });
    }
  });
}
