/**
 * The output conformance suite: what every Koto output must do, checked through a real kernel
 * and the real session pipeline (`kernel.run()`, `kernel.deliver()`), with the output's own sink.
 *
 * An output author calls {@link describeOutputConformance} in one of their vitest files, with a
 * sink: the options that point the output at something the test can read back, and `read()`.
 *
 * ```ts
 * import { describeOutputConformance } from 'koto-voice/testing';
 * import plugin from '../src/index.ts';
 *
 * describeOutputConformance({
 *   plugin,
 *   output: 'webhook',
 *   sink: async ({ secret }) => {
 *     const server = await startHookServer({ token: secret });
 *     return { options: { url: server.url, token: secret }, read: () => server.received(), failNext: (m) => server.failNext(m), close: () => server.close() };
 *   },
 * });
 * ```
 *
 * Each check builds a fresh kernel with only the plugin under test and the suite's own text
 * provider (an ASR provider that answers the text the check wants delivered), and checks:
 *
 * 1. **delivery**: the text arrives exactly: Unicode (combining marks, emoji sequences, right to
 *    left scripts, no-break spaces), newlines (`\n`, `\r\n`, blank lines, tabs), a long text, and
 *    spaces at both ends (delivered again from history, the way `koto paste ID` does: a
 *    transcript is trimmed, a history entry is delivered as it is).
 * 2. **options**: the options are validated by the output's schema before anything runs: an
 *    unknown key (and each of the author's `invalidOptions`) fails with KOTO_ERR_CONFIG_INVALID
 *    naming the key's path.
 * 3. **failure**: a sink that refuses the text makes the output throw a KotoError of the catalogue
 *    (`KOTO_ERR_OUTPUT`) or one of the plugin's declared codes, not a plain `Error`; the session
 *    then fails (a non-zero exit code) with the text kept in its result and its history entry.
 * 4. **partial**: a delivery that only partly arrived is reported with `request.warn`.
 * 5. **abort**: a session cancelled before its output stage delivers nothing (the output delivers
 *    from the `output` hook only), and an output called with an aborted signal delivers nothing.
 * 6. **hang**: a sink that never answers is abandoned when the session is cancelled: the output
 *    rejects promptly instead of hanging the session.
 * 7. **secrets**: a canary credential in the output's options is known to the kernel and never
 *    appears in an error, a warning, the history or a log line, even when the sink echoes it.
 * 8. **close**: after `kernel.close()` nothing the output opened keeps the process alive.
 *
 * Optional {@link OutputSink} methods the sink lacks skip the checks that need them (saying
 * which), never pass them. The checks are also available one by one
 * ({@link outputConformanceChecks}); each throws a {@link ConformanceFailure} that says what to fix.
 *
 * @module
 */

import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { describe as describeError, KotoError } from '../kernel/errors.ts';
import { createKernel, type Kernel, type KernelOptions } from '../kernel/kernel.ts';
import { definePlugin, type AnyKotoPlugin } from '../kernel/plugin.ts';
import type { RunResult } from '../kernel/session.ts';
import type { OutputRequest, SessionContext } from '../kernel/types.ts';
import { activeResources, errorText, resourcesAbove, settleWithin, summary, waitUntil, type Settled } from './check-helpers.ts';
import { ConformanceFailure, type ConformanceConfig } from './conformance.ts';
import { toneWav } from './fake-audio.ts';

// Optional peer dependency, as for the provider suite: loaded only to register the suite.
type Vitest = typeof import('vitest');
let vitest: Vitest | undefined;
let vitestError: unknown;
try {
  vitest = await import('vitest');
} catch (err) {
  vitestError = err;
}

/** What a check's sink factory gets. */
export interface OutputSinkContext {
  /** A fresh folder for this check, removed after it: files, sockets and fixtures go here. */
  readonly dir: string;
  /** A canary credential: if the output takes one (a token, a key), configure it with this. */
  readonly secret: string;
}

/**
 * Where the output under test delivers, as the test sees it. Each check makes a fresh one.
 * Only `options` and `read` are required; each optional method enables the checks that need it.
 */
export interface OutputSink {
  /** The output's options (its `output` entry without `use`), pointing at this sink. */
  readonly options: Readonly<Record<string, unknown>>;
  /**
   * What the sink has received since it was made, as the text of the one delivery the check
   * makes: remove what the output adds around it (the newline after a line of a file, a JSON
   * envelope). `undefined` or `''`: nothing arrived.
   */
  read(): string | undefined | Promise<string | undefined>;
  /**
   * Make the next delivery fail at the sink (an HTTP 500, a full disk, a closed pipe), with
   * `message` as what the sink says (an error body, an errno text): the suite puts the canary
   * credential in it, as some services echo a bad token back. Without it the failure check is skipped.
   */
  failNext?(message: string): void;
  /** Make the next delivery arrive only in part, so the output must say so with `request.warn`. */
  partialNext?(): void;
  /** Hold the next delivery: never answer it (until `close`). With {@link OutputSink.heldDeliveries}. */
  hangNext?(): void;
  /** Deliveries held by {@link OutputSink.hangNext} so far. */
  heldDeliveries?(): number;
  /** Release what the sink holds (servers, captured streams, held deliveries). */
  close?(): void | Promise<void>;
}

/** An option value the output's schema must refuse. */
export interface InvalidOutputOptions {
  /** The output's options (without `use`) with one wrong value. */
  readonly options: Readonly<Record<string, unknown>>;
  /** The key of the wrong value inside the options, dotted (`url`, `headers.x-token`): the error must name it. */
  readonly path: string;
}

export interface OutputConformanceOptions {
  /** The plugin that serves the output: your package's default export. */
  readonly plugin: AnyKotoPlugin;
  /** The output to check (default: the one output the plugin declares). */
  readonly output?: string | undefined;
  /** Title of the `describe` block (default `<plugin name>: output "<name>" conformance`). */
  readonly name?: string | undefined;
  /** Makes the sink of one check (each check gets a fresh one, and a fresh kernel). */
  readonly sink: (context: OutputSinkContext) => OutputSink | Promise<OutputSink>;
  /** Options the schema must refuse, besides an unknown key (which every strict schema refuses). */
  readonly invalidOptions?: readonly InvalidOutputOptions[] | undefined;
  /** Extra config merged over the suite's (`asr`, `correction` and `transport` key by key). */
  readonly config?: ((context: OutputSinkContext) => ConformanceConfig) | undefined;
  /** Other plugins the kernel must load (dependencies of the plugin under test). */
  readonly plugins?: KernelOptions['plugins'];
  /** How long a delivery may take to settle after the session is cancelled (default 10 000 ms). */
  readonly settleMs?: number | undefined;
  /** Test timeout of each check (default 60 000 ms). */
  readonly timeoutMs?: number | undefined;
}

export type OutputConformanceCheckId = 'delivery' | 'options' | 'failure' | 'partial' | 'abort' | 'hang' | 'secrets' | 'close';

export interface OutputConformanceCheck {
  readonly id: OutputConformanceCheckId;
  readonly title: string;
  /** Runs the check; throws a {@link ConformanceFailure}, or resolves `{ skipped }` when the sink lacks what it needs. */
  run(): Promise<void | { skipped: string }>;
}

/**
 * The texts the delivery check sends, by what they exercise. `edges` goes through a history
 * entry (`kernel.deliver`): the pipeline trims transcripts, a re-delivery does not.
 */
export const OUTPUT_CONFORMANCE_TEXTS: Readonly<Record<'unicode' | 'newlines' | 'long' | 'edges', string>> = Object.freeze({
  unicode:
    'Grüße, naïve café — 日本語のテキスト, עברית ו-العربية, emoji 👩🏽‍💻🎉🇯🇵, e\u0301 (combining), a\u00a0b (no-break space), ‘quotes’ «guillemets» ½ ≠ ∞',
  newlines: 'first line\nsecond line\r\nthird, after CRLF\n\nafter a blank line\twith a tab\n   indented',
  long: longText(),
  edges: '  two spaces before and after  ',
});

/** About 48 000 characters (a long dictation is a few thousand): words, Unicode and line breaks, none repeating for long. */
function longText(): string {
  const words = ['dictation', 'Koto', 'übermäßig', 'résumé', '東京', 'naïve', 'ok', 'deliver', '🎙️', 'exactly', 'Ωmega', 'line'];
  const parts: string[] = [];
  for (let i = 0; i < 6000; i++) {
    parts.push(`${words[(i * 7) % words.length]}${i}`);
    if (i % 13 === 12) parts.push('\n');
  }
  return parts.join(' ').replaceAll(' \n ', '\n');
}

/** The provider instance and plugin the suite dictates with, and the output that spies for it. */
const TEXT_PLUGIN = 'koto-conformance-text';
const TEXT_PROVIDER = 'conformance-text';
const DEFAULT_SETTLE_MS = 10_000;
/** A key no output takes: a strict schema refuses it. */
const UNKNOWN_KEY = 'kotoConformanceUnknownKey';

function fail(message: string): never {
  throw new ConformanceFailure(message);
}

function outputName(options: OutputConformanceOptions): string {
  if (options.output) return options.output;
  const declared = Object.keys(options.plugin.outputs ?? {});
  if (declared.length === 1) return declared[0]!;
  throw new ConformanceFailure(
    declared.length === 0
      ? `plugin "${options.plugin.name}" declares no outputs: add \`outputs: { name: z.strictObject({ … }) }\` to definePlugin`
      : `plugin "${options.plugin.name}" declares several outputs (${declared.join(', ')}): pass \`output\` to the suite, once per output`,
  );
}

// ---------------------------------------------------------------------------
// Harness: a sink, a kernel with the plugin and the suite's text provider, a KOTO_HOME
// ---------------------------------------------------------------------------

interface TextState {
  next: string;
  /** Runs when the text provider is asked for the transcript (the abort check cancels there). */
  onAsr: (() => void) | undefined;
}

/** An ASR provider answering whatever the check wants delivered: the text reaches the output through the real pipeline. */
function textPlugin(state: TextState): AnyKotoPlugin {
  return definePlugin({
    name: TEXT_PLUGIN,
    capabilities: ['asr'],
    provider: z.strictObject({}),
    apply(api) {
      api.hooks.asr.for(TEXT_PLUGIN).tapPromise(TEXT_PLUGIN, async () => {
        state.onAsr?.();
        return { text: state.next };
      });
    },
  });
}

interface OutputHarness {
  readonly name: string;
  readonly plugin: string;
  readonly sink: OutputSink;
  readonly secret: string;
  readonly logs: string[];
  readonly kernel: Kernel;
  readonly text: TextState;
}

function merge(base: ConformanceConfig, extra: ConformanceConfig): ConformanceConfig {
  const out: ConformanceConfig = { ...base };
  for (const [key, value] of Object.entries(extra)) {
    const current = out[key];
    const plain = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
    out[key] = ['asr', 'correction', 'transport'].includes(key) && plain(current) && plain(value) ? { ...current, ...value } : value;
  }
  return out;
}

interface HarnessSetup {
  /** The output entry's options instead of the sink's. */
  readonly entry?: (sink: OutputSink) => Record<string, unknown>;
  /** Runs after the sink is made and before the kernel starts (the close check's baseline). */
  readonly beforeKernel?: () => void;
  /** A kernel that fails to start throws its own error (the options check wants it), not a ConformanceFailure. */
  readonly rawStartError?: boolean;
}

async function withOutputHarness(
  options: OutputConformanceOptions,
  fn: (h: OutputHarness) => Promise<void>,
  setup: HarnessSetup = {},
): Promise<void> {
  const name = outputName(options);
  const secret = `canary${randomBytes(16).toString('hex')}`;
  const root = await mkdtemp(path.join(os.tmpdir(), 'koto-output-conformance-'));
  const dir = path.join(root, 'sink');
  await mkdir(dir);
  const context: OutputSinkContext = { dir, secret };
  const logs: string[] = [];
  const text: TextState = { next: '', onAsr: undefined };
  let sink: OutputSink | undefined;
  let kernel: Kernel | undefined;
  try {
    sink = await options.sink(context);
    setup.beforeKernel?.();
    const base: ConformanceConfig = {
      providers: { [TEXT_PROVIDER]: { use: TEXT_PLUGIN } },
      asr: { provider: TEXT_PROVIDER, retries: 0 },
      correction: { enabled: false },
      output: [{ use: name, ...(setup.entry ? setup.entry(sink) : sink.options) }],
    };
    kernel = await createKernel({
      config: merge(base, options.config?.(context) ?? {}),
      search: false,
      builtins: false,
      plugins: [...(options.plugins ?? []), options.plugin, textPlugin(text)],
      env: { KOTO_HOME: path.join(root, 'home') },
      logLevel: 'debug',
      logSink: (entry) =>
        logs.push(`${entry.level} [${entry.scope}] ${entry.message}${entry.fields ? ` ${JSON.stringify(entry.fields)}` : ''}`),
    }).catch((err: unknown) => {
      if (setup.rawStartError) throw err;
      fail(`the kernel did not start with output "${name}" and the sink's options: ${summary(err)}`);
    });
    await fn({ name, plugin: options.plugin.name, sink, secret, logs, kernel, text });
  } finally {
    await kernel?.close().catch(() => undefined);
    await sink?.close?.();
    await rm(root, { recursive: true, force: true });
  }
}

function settleBudget(options: OutputConformanceOptions): number {
  return options.settleMs ?? DEFAULT_SETTLE_MS;
}

/** One dictation through the whole pipeline (text provider → transcript → output), bounded so a hanging output fails the check instead of the test runner. */
async function dictate(
  h: OutputHarness,
  options: OutputConformanceOptions,
  text: string,
  signal?: AbortSignal,
): Promise<Exclude<Settled<RunResult>, { ok: 'pending' }>> {
  h.text.next = text;
  const outcome = await settleWithin(
    h.kernel.run({ data: toneWav({ seconds: 0.2 }), name: 'conformance.wav' }, { signal }),
    30_000 + settleBudget(options),
  );
  if (outcome.ok === 'pending') {
    fail(
      `a session was still delivering to output "${h.name}" ${30_000 + settleBudget(options)} ms after it started: resolve when the text is delivered, and pass request.signal to every wait`,
    );
  }
  return outcome;
}

/** A session that must succeed. */
async function dictateOk(h: OutputHarness, options: OutputConformanceOptions, text: string): Promise<RunResult> {
  const outcome = await dictate(h, options, text);
  if (!outcome.ok) fail(`a normal delivery to output "${h.name}" failed: ${summary(outcome.error)}`);
  return outcome.value;
}

/** The output hook called the way the kernel calls it, so the output's own error is seen before the session wraps it. */
function callOutput(h: OutputHarness, text: string, signal: AbortSignal, warnings: string[] = []): Promise<void> {
  const config = h.kernel.config;
  const hook = h.kernel.hooks.output.get(h.name);
  if (!hook?.isUsed()) fail(`plugin "${h.plugin}" declares the output "${h.name}" but taps no hooks.output.for('${h.name}')`);
  const entry = config.resolved.outputs.find((o) => o.name === h.name);
  const session: SessionContext = {
    id: `conformance-${randomBytes(3).toString('hex')}`,
    config,
    signal,
    startedAt: Date.now(),
    mode: 'file',
    state: 'output',
    timings: {},
    providers: {},
  };
  const request: OutputRequest = {
    session,
    name: h.name,
    text,
    raw: text,
    options: entry?.options ?? {},
    signal,
    warn: (m) => void warnings.push(m),
  };
  return hook.promise(request);
}

async function readSink(h: OutputHarness): Promise<string> {
  try {
    return (await h.sink.read()) ?? '';
  } catch (err) {
    throw new Error(`the sink's read() failed: ${describeError(err)}`, { cause: err });
  }
}

/** Where two texts first differ, shown with code points (invisible differences are the usual ones). */
export function firstDifference(expected: string, actual: string): string {
  const a = [...expected];
  const b = [...actual];
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  const show = (chars: string[]) => {
    if (i >= chars.length) return 'the end of the text';
    const c = chars[i]!;
    return `${JSON.stringify(c)} (U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')})`;
  };
  return `${a.length} characters sent, ${b.length} arrived; the first difference is at character ${i}: sent ${show(a)}, arrived ${show(b)}`;
}

function outputError(err: unknown, h: OutputHarness, what: string): KotoError {
  const plugin = h.plugin;
  if (!KotoError.is(err)) fail(`${what}: the output rejected with something that is not a KotoError: ${describeError(err)}`);
  if (err.code === 'KOTO_ERR_HOOK_FAILED') {
    fail(
      `${what}: the output threw a plain Error (${err.message}). Throw kotoError('KOTO_ERR_OUTPUT', { output: '${h.name}', detail }) ` +
        '(or a code your plugin declares) so the user reads what failed and how to fix it',
    );
  }
  if (err.code === 'KOTO_ERR_INTERNAL')
    fail(
      `${what}: the output threw a code nobody declared (${err.message}): declare it in definePlugin({ errors }) or use KOTO_ERR_OUTPUT`,
    );
  if (err.plugin !== plugin || err.hook !== `output:${h.name}`) {
    fail(`${what}: the error is tagged [${String(err.plugin)} ${String(err.hook)}], expected [${plugin} output:${h.name}]`);
  }
  return err;
}

// ---------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------

async function checkDelivery(options: OutputConformanceOptions): Promise<void> {
  for (const [label, text] of Object.entries(OUTPUT_CONFORMANCE_TEXTS)) {
    await withOutputHarness(options, async (h) => {
      let sent = text;
      if (label === 'edges') {
        // A history entry, delivered again as `koto paste ID` does: nothing trims it on the way.
        const id = `conformance-${randomBytes(4).toString('hex')}`;
        h.kernel.history.finish({
          id,
          state: 'done',
          input: 'conformance',
          raw: text,
          text,
          fallback: false,
          asrProvider: TEXT_PROVIDER,
          asrModel: undefined,
          correctionProvider: undefined,
          correctionModel: undefined,
          audioPath: undefined,
          timings: {},
          error: undefined,
          warnings: [],
        });
        const outcome = await settleWithin(h.kernel.deliver(id), 30_000 + settleBudget(options));
        if (outcome.ok === 'pending') fail(`delivering a history entry again to output "${h.name}" did not finish`);
        if (!outcome.ok) fail(`delivering a history entry again to output "${h.name}" failed: ${summary(outcome.error)}`);
      } else {
        const result = await dictateOk(h, options, text);
        // The pipeline trims a transcript; anything else it changed would be the kernel's bug, not the output's.
        sent = text.trim();
        if (result.text !== sent)
          throw new Error(`the kernel delivered ${JSON.stringify(result.text?.slice(0, 80))}, not the text provider's answer`);
      }
      const arrived = await readSink(h);
      if (arrived !== sent) {
        fail(
          `the ${label} text arrived changed at output "${h.name}": ${firstDifference(sent, arrived)}. ` +
            'Deliver request.text exactly (no trimming, no normalising, no encoding but UTF-8, no length limit); ' +
            "if the sink adds framing (a trailing newline, a JSON envelope), remove it in the sink's read()",
        );
      }
    });
  }
}

async function expectConfigInvalid(
  options: OutputConformanceOptions,
  entry: (sink: OutputSink) => Record<string, unknown>,
  keyPath: string,
  refusal: string,
): Promise<void> {
  const outcome = await settleWithin(
    withOutputHarness(options, async () => undefined, { entry, rawStartError: true }),
    30_000,
  );
  if (outcome.ok === 'pending') fail('the kernel did not start or fail within 30 s');
  if (outcome.ok) fail(refusal);
  const err = outcome.error;
  if (err instanceof ConformanceFailure) throw err;
  if (!KotoError.is(err) || err.code !== 'KOTO_ERR_CONFIG_INVALID')
    fail(`a wrong option (${keyPath}) should fail config validation with KOTO_ERR_CONFIG_INVALID, got ${summary(err)}`);
  const where = `output.0.${keyPath}`;
  if (!err.message.includes(where)) fail(`the config error should name the wrong key ${where}, but says: ${err.message}`);
}

async function checkOptions(options: OutputConformanceOptions): Promise<void> {
  const name = outputName(options);
  const outputs = options.plugin.outputs ?? {};
  if (!(name in outputs))
    fail(`plugin "${options.plugin.name}" does not declare the output "${name}": add it to \`outputs\` in definePlugin`);
  // No schema means no options: the kernel then refuses every key, so the checks below still hold.
  await expectConfigInvalid(
    options,
    (sink) => ({ ...sink.options, [UNKNOWN_KEY]: true }),
    UNKNOWN_KEY,
    `an unknown option (${UNKNOWN_KEY}) was accepted by output "${name}": declare its schema with z.strictObject, so a typo in the config is an error instead of being ignored`,
  );
  for (const invalid of options.invalidOptions ?? []) {
    await expectConfigInvalid(
      options,
      () => ({ ...invalid.options }),
      invalid.path,
      `the invalid option ${invalid.path} (${JSON.stringify(invalid.options)}) was accepted by output "${name}": say in its schema what a valid value is`,
    );
  }
}

async function checkFailure(options: OutputConformanceOptions): Promise<void | { skipped: string }> {
  let skipped: string | undefined;
  await withOutputHarness(options, async (h) => {
    if (!h.sink.failNext) {
      skipped = 'not checked: the sink has no failNext';
      return;
    }
    // The output's own error, as the hook throws it.
    h.sink.failNext('the sink refused the text');
    const direct = await settleWithin(callOutput(h, 'refused text', AbortSignal.timeout(60_000)), 30_000 + settleBudget(options));
    if (direct.ok === 'pending') fail(`output "${h.name}" did not settle after its sink refused the text`);
    if (direct.ok)
      fail(
        `output "${h.name}" resolved although its sink refused the text: throw when the text did not arrive, so the session does not report it delivered`,
      );
    outputError(direct.error, h, 'a sink that refused the text');
    // The session: every output failed, so it fails, and the text is kept.
    const text = 'the text must survive a failed output';
    h.sink.failNext('the sink refused the text');
    const outcome = await dictate(h, options, text);
    if (outcome.ok)
      fail(`the session succeeded although output "${h.name}", its only output, failed: throw when the sink refuses the text`);
    const err = outcome.error;
    if (!KotoError.is(err) || err.code !== 'KOTO_ERR_OUTPUT')
      fail(`a session whose only output failed should end with KOTO_ERR_OUTPUT, got ${summary(err)}`);
    if (err.exitCode === 0) fail('a session whose only output failed should exit non-zero');
    const record = (err as KotoError & { record?: RunResult }).record;
    if (record?.text !== text || record.state !== 'failed')
      fail(
        `the failed session's result should keep the text and say failed, it has ${JSON.stringify({ state: record?.state, text: record?.text })}`,
      );
    const entry = h.kernel.history.get(record.id);
    if (entry?.text !== text || entry.state !== 'failed')
      fail(
        `the history entry of a session whose output failed should keep the text (for koto paste), it has ${JSON.stringify({ state: entry?.state, text: entry?.text })}`,
      );
  });
  return skipped ? { skipped } : undefined;
}

async function checkPartial(options: OutputConformanceOptions): Promise<void | { skipped: string }> {
  let skipped: string | undefined;
  await withOutputHarness(options, async (h) => {
    if (!h.sink.partialNext) {
      skipped = 'not checked: the sink has no partialNext';
      return;
    }
    h.sink.partialNext();
    const outcome = await dictate(h, options, 'only part of this arrives');
    if (!outcome.ok)
      fail(
        `a partial delivery failed the session (${summary(outcome.error)}): report it with request.warn(message) and resolve; throw only when nothing arrived`,
      );
    if (outcome.value.warnings.length === 0) {
      fail(
        `the sink received only part of the delivery, but the session reports no warning: call request.warn('…') saying what did not arrive (the session record and \`koto history\` show it)`,
      );
    }
  });
  return skipped ? { skipped } : undefined;
}

async function checkAbort(options: OutputConformanceOptions): Promise<void> {
  await withOutputHarness(options, async (h) => {
    const controller = new AbortController();
    // Cancelled while the transcript comes in: the kernel must not reach the output stage, and the output must not have delivered on its own.
    h.text.onAsr = () => controller.abort();
    const outcome = await dictate(h, options, 'this session was cancelled', controller.signal);
    h.text.onAsr = undefined;
    if (outcome.ok) fail('a session cancelled before its output stage succeeded');
    if (KotoError.is(outcome.error) && (outcome.error as { record?: RunResult }).record?.state !== 'cancelled') {
      fail(`a session cancelled before its output stage should end cancelled, got ${summary(outcome.error)}`);
    }
    const early = await readSink(h);
    if (early !== '') {
      fail(
        `the text reached output "${h.name}" although the session was cancelled before its output stage: deliver from hooks.output only ` +
          '(the kernel calls it once the text is final and the session still wanted), never from transcript, sessionState or sessionEnd taps',
      );
    }
  });
  await withOutputHarness(options, async (h) => {
    const controller = new AbortController();
    controller.abort();
    const outcome = await settleWithin(callOutput(h, 'this delivery was cancelled', controller.signal), 30_000);
    if (outcome.ok === 'pending')
      fail(`output "${h.name}", called with an aborted signal, did not settle: check request.signal before and while delivering`);
    if ((await readSink(h)) !== '') {
      fail(
        `output "${h.name}", called with an already aborted signal, delivered the text: check request.signal.aborted first and throw kotoError('KOTO_ERR_ABORTED', { what: 'the delivery' })`,
      );
    }
  });
}

async function checkHang(options: OutputConformanceOptions): Promise<void | { skipped: string }> {
  let skipped: string | undefined;
  const budget = settleBudget(options);
  await withOutputHarness(options, async (h) => {
    const { hangNext, heldDeliveries } = h.sink;
    if (!hangNext || !heldDeliveries) {
      skipped = `not checked: the sink has no ${hangNext ? 'heldDeliveries' : 'hangNext'}`;
      return;
    }
    const controller = new AbortController();
    hangNext.call(h.sink);
    h.text.next = 'the sink never answers this one';
    const call = h.kernel.run({ data: toneWav({ seconds: 0.2 }), name: 'conformance.wav' }, { signal: controller.signal });
    call.catch(() => undefined);
    if (!(await waitUntil(() => heldDeliveries.call(h.sink) > 0, 30_000))) {
      const early = await settleWithin(call, 0);
      fail(
        `the delivery never reached the sink's held route${early.ok === false ? ` (the session failed first: ${summary(early.error)})` : ''}`,
      );
    }
    controller.abort();
    const outcome = await settleWithin(call, budget);
    if (outcome.ok === 'pending') {
      fail(
        `the session was still delivering ${budget} ms after it was cancelled, with the sink not answering: pass request.signal to every wait of output "${h.name}" (requests, child processes, timers)`,
      );
    }
    if (outcome.ok) {
      fail(
        `output "${h.name}" resolved when the session was cancelled mid-delivery, so the text counts as delivered: reject with kotoError('KOTO_ERR_ABORTED', { what: 'the delivery' }) when request.signal aborts`,
      );
    }
    const record = (outcome.error as { record?: RunResult }).record;
    if (record?.state !== 'cancelled') fail(`a session cancelled mid-delivery should end cancelled, got ${summary(outcome.error)}`);
  });
  return skipped ? { skipped } : undefined;
}

async function checkSecrets(options: OutputConformanceOptions): Promise<void | { skipped: string }> {
  let skipped: string | undefined;
  await withOutputHarness(options, async (h) => {
    if (!JSON.stringify(h.sink.options).includes(h.secret)) {
      skipped =
        "not checked: the sink's options carry no credential (configure context.secret as the output's token or key, if it takes one)";
      return;
    }
    if (h.kernel.scrub(`key=${h.secret}`).includes(h.secret)) {
      fail(
        "the kernel does not know the credential in the output's options: call api.registerSecret(value) (in apply() and on configChanged), " +
          'or name the option token / apiKey / secret so the kernel finds it',
      );
    }
    const seen: { where: string; text: string }[] = [];
    const result = await dictateOk(h, options, 'a normal delivery');
    seen.push({ where: 'a warning', text: result.warnings.join('\n') });
    if (h.sink.failNext) {
      h.sink.failNext(`invalid token ${h.secret}`);
      const direct = await settleWithin(callOutput(h, 'refused text', AbortSignal.timeout(60_000)), 30_000);
      if (direct.ok === false) seen.push({ where: "the output's error", text: errorText(direct.error) });
      h.sink.failNext(`invalid token ${h.secret}`);
      const outcome = await dictate(h, options, 'refused text');
      if (!outcome.ok) {
        seen.push({ where: "the session's error", text: errorText(outcome.error) });
        const record = (outcome.error as { record?: RunResult }).record;
        const entry = record ? h.kernel.history.get(record.id) : undefined;
        seen.push({ where: 'the history entry', text: JSON.stringify(entry ?? {}) });
      }
    }
    if (h.sink.partialNext) {
      h.sink.partialNext();
      const outcome = await dictate(h, options, 'partly delivered');
      if (outcome.ok) seen.push({ where: 'a warning', text: outcome.value.warnings.join('\n') });
    }
    seen.push({ where: 'a log line', text: h.logs.join('\n') });
    for (const { where, text } of seen) {
      if (!text.includes(h.secret)) continue;
      const line = text.split('\n').find((l) => l.includes(h.secret)) ?? '';
      fail(
        `the canary credential appears in ${where} (${line.replaceAll(h.secret, '<canary>').slice(0, 300)}): ` +
          'scrub what the sink says with api.scrub(text) before putting it into an error or a warning',
      );
    }
  });
  return skipped ? { skipped } : undefined;
}

async function checkClose(options: OutputConformanceOptions): Promise<void> {
  let baseline = new Map<string, number>();
  await withOutputHarness(
    options,
    async (h) => {
      await dictateOk(h, options, 'delivered before close');
      const closing = await settleWithin(h.kernel.close(), 15_000);
      if (closing.ok === 'pending') fail('kernel.close() did not finish within 15 s: a close tap of the plugin hangs');
      if (closing.ok === false) fail(`kernel.close() failed: ${summary(closing.error)}`);
      if (!(await waitUntil(() => resourcesAbove(baseline).length === 0, DEFAULT_SETTLE_MS, 25))) {
        fail(
          `after kernel.close(), handles left that keep the process alive: ${resourcesAbove(baseline).join(', ')}. ` +
            'Clear timers and close what the output opened (child processes, sockets, files) in a hooks.close tap.',
        );
      }
    },
    { beforeKernel: () => (baseline = activeResources()) },
  );
}

/** Every check for these options, in the order the suite runs them. */
export function outputConformanceChecks(options: OutputConformanceOptions): OutputConformanceCheck[] {
  const name = outputName(options);
  const check = (id: OutputConformanceCheckId, title: string, run: () => Promise<void | { skipped: string }>): OutputConformanceCheck => ({
    id,
    title,
    run,
  });
  return [
    check('delivery', `output "${name}": the text arrives exactly (Unicode, newlines, a long text, spaces at both ends)`, () =>
      checkDelivery(options),
    ),
    check('options', `output "${name}": its options are validated by its schema before anything runs`, () => checkOptions(options)),
    check('failure', `output "${name}": a failing sink is a KotoError, and the session fails keeping the text`, () =>
      checkFailure(options),
    ),
    check('partial', `output "${name}": a partial delivery is reported with request.warn`, () => checkPartial(options)),
    check('abort', `output "${name}": a cancelled session delivers nothing`, () => checkAbort(options)),
    check('hang', `output "${name}": a sink that never answers is abandoned when the session is cancelled`, () => checkHang(options)),
    check('secrets', `output "${name}": the credential never appears in errors, warnings, history or logs`, () => checkSecrets(options)),
    check('close', `output "${name}": kernel.close() leaves nothing running`, () => checkClose(options)),
  ];
}

/**
 * Registers the output conformance suite (a vitest `describe` with one `it` per check). Call it
 * at the top level of a test file, once per output the plugin serves.
 */
export function describeOutputConformance(options: OutputConformanceOptions): void {
  if (!vitest) {
    throw new Error(
      `describeOutputConformance needs vitest (an optional peer dependency of koto-voice): npm install --save-dev vitest (${describeError(vitestError)})`,
    );
  }
  const { describe, it } = vitest;
  const checks = outputConformanceChecks(options);
  describe(options.name ?? `${options.plugin.name}: output "${outputName(options)}" conformance`, () => {
    for (const c of checks) {
      it(c.title, { timeout: options.timeoutMs ?? 60_000 }, async (context) => {
        const outcome = await c.run();
        if (outcome?.skipped) context.skip(outcome.skipped);
      });
    }
  });
}
