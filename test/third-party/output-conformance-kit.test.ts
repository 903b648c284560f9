import { describe, expect, test } from 'vitest';
import { definePlugin, z } from 'koto-voice';
import {
  ConformanceFailure,
  describeOutputConformance,
  firstDifference,
  outputConformanceChecks,
  type OutputConformanceCheckId,
  type OutputConformanceOptions,
} from 'koto-voice/testing';
import { memoOutput, memoSink, type MemoFlaws } from '../fixtures/outputs/memo-output.ts';

/**
 * The output conformance suite must catch what it promises to catch: each flawed output (the
 * memo fixture) fails the check for its flaw with a message that says how to fix it, and the
 * well-behaved one passes every check.
 */

function optionsFor(flaws: MemoFlaws): OutputConformanceOptions {
  return {
    plugin: memoOutput(flaws),
    sink: (context) => memoSink(context, flaws),
    invalidOptions: [{ options: { sink: '' }, path: 'sink' }],
    // Only a flawed output waits this out: a delivery settles at once.
    settleMs: 1500,
  };
}

async function outcomes(flaws: MemoFlaws): Promise<Record<OutputConformanceCheckId, string>> {
  const out: Partial<Record<OutputConformanceCheckId, string>> = {};
  for (const check of outputConformanceChecks(optionsFor(flaws))) {
    try {
      const outcome = await check.run();
      out[check.id] = outcome?.skipped ? `skipped: ${outcome.skipped}` : 'pass';
    } catch (err) {
      expect(err, (err as Error).stack).toBeInstanceOf(ConformanceFailure);
      out[check.id] = (err as Error).message;
    }
  }
  return out as Record<OutputConformanceCheckId, string>;
}

const ALL_PASS: Record<OutputConformanceCheckId, string> = {
  delivery: 'pass',
  options: 'pass',
  failure: 'pass',
  partial: 'pass',
  abort: 'pass',
  hang: 'pass',
  secrets: 'pass',
  close: 'pass',
};

/** Everything but `failed` passed. */
function onlyFailed(result: Record<OutputConformanceCheckId, string>, ...failed: OutputConformanceCheckId[]): void {
  const rest = { ...result };
  for (const id of failed) {
    expect(result[id]).not.toBe('pass');
    rest[id] = 'pass';
  }
  expect(rest).toEqual(ALL_PASS);
}

describe('the output conformance suite catches what it promises', () => {
  test('a well-behaved output passes every check', async () => {
    expect(await outcomes({})).toEqual(ALL_PASS);
  });

  test('an output that trims the text fails the delivery check on the spaces at the ends', async () => {
    const result = await outcomes({ trim: true });
    expect(result.delivery).toMatch(
      /the edges text arrived changed at output "memo": 31 characters sent, 27 arrived; the first difference is at character 0: sent " " \(U\+0020\), arrived "t"/,
    );
    expect(result.delivery).toMatch(/Deliver request\.text exactly/);
    onlyFailed(result, 'delivery');
  });

  test('an output that loses Unicode fails the delivery check', async () => {
    const result = await outcomes({ latin1: true });
    expect(result.delivery).toMatch(
      /the unicode text arrived changed at output "memo": .*first difference is at character 2: sent "ü" \(U\+00FC\), arrived "Ã" \(U\+00C3\)/,
    );
    onlyFailed(result, 'delivery');
  });

  test('an output that cuts a long text fails the delivery check', async () => {
    const result = await outcomes({ truncate: true });
    expect(result.delivery).toMatch(
      /the long text arrived changed at output "memo": \d+ characters sent, (\d+) arrived; the first difference is at character \1: sent .*, arrived the end of the text/,
    );
    onlyFailed(result, 'delivery');
  });

  test('an output whose schema drops unknown keys fails the options check', async () => {
    const result = await outcomes({ looseSchema: true });
    expect(result.options).toMatch(
      /an unknown option \(kotoConformanceUnknownKey\) was accepted by output "memo": declare its schema with z\.strictObject/,
    );
    onlyFailed(result, 'options');
  });

  test("an output throwing the sink's plain Error fails the failure check, saying to throw KOTO_ERR_OUTPUT", async () => {
    const result = await outcomes({ plainErrors: true });
    expect(result.failure).toMatch(
      /a sink that refused the text: the output threw a plain Error \(plugin "koto-plugin-memo" failed in hook output:memo: memo sink: the sink refused the text\)\. Throw kotoError\('KOTO_ERR_OUTPUT', \{ output: 'memo', detail \}\) \(or a code your plugin declares\)/,
    );
    // The sink's own message, token included, goes out unscrubbed with it.
    expect(result.secrets).toMatch(/the canary credential appears in the output's error/);
    onlyFailed(result, 'failure', 'secrets');
  });

  test('an output that swallows a failure fails the failure check', async () => {
    const result = await outcomes({ swallowErrors: true });
    expect(result.failure).toMatch(/output "memo" resolved although its sink refused the text: throw when the text did not arrive/);
    onlyFailed(result, 'failure');
  });

  test('an output that does not report a partial delivery fails the partial check', async () => {
    const result = await outcomes({ noWarn: true });
    expect(result.partial).toMatch(/the session reports no warning: call request\.warn/);
    onlyFailed(result, 'partial');
  });

  test('an output delivering before the output stage fails the abort check', async () => {
    const result = await outcomes({ early: true });
    expect(result.abort).toMatch(
      /the text reached output "memo" although the session was cancelled before its output stage: deliver from hooks\.output only/,
    );
    // Delivering from the transcript hook also takes the sink's failures and hangs out of the output
    // stage. (The secrets check passes: the kernel scrubs what run() rejects with, as it does the record.)
    onlyFailed(result, 'abort', 'failure', 'partial', 'hang');
  });

  test('an output ignoring an aborted signal fails the abort check', async () => {
    const result = await outcomes({ ignoreAborted: true });
    expect(result.abort).toMatch(/called with an already aborted signal, delivered the text: check request\.signal\.aborted first/);
    onlyFailed(result, 'abort');
  });

  test('an output that does not pass the signal on fails the hang check', async () => {
    const result = await outcomes({ ignoreSignal: true });
    expect(result.hang).toMatch(
      /the session was still delivering 1500 ms after it was cancelled, with the sink not answering: pass request\.signal to every wait of output "memo"/,
    );
    onlyFailed(result, 'hang');
  });

  test('an output that resolves when cancelled mid-delivery fails the hang check', async () => {
    const result = await outcomes({ resolveOnAbort: true });
    expect(result.hang).toMatch(
      /output "memo" resolved when the session was cancelled mid-delivery, so the text counts as delivered: reject with kotoError\('KOTO_ERR_ABORTED'/,
    );
    onlyFailed(result, 'hang');
  });

  test('an output echoing what the sink said, token included, fails the secrets check', async () => {
    const result = await outcomes({ leakSecret: true });
    expect(result.secrets).toMatch(
      /the canary credential appears in the output's error \(.*invalid token <canary>.*\): scrub what the sink says with api\.scrub\(text\)/,
    );
    expect(result.secrets).not.toMatch(/canary[0-9a-f]{32}/);
    onlyFailed(result, 'secrets');
  });

  test('a credential the kernel does not know fails the secrets check', async () => {
    const result = await outcomes({ hiddenSecret: true });
    expect(result.secrets).toMatch(/the kernel does not know the credential in the output's options: call api\.registerSecret/);
    onlyFailed(result, 'secrets');
  });

  test('a timer left running after close fails the close check', async () => {
    const result = await outcomes({ leakTimer: true });
    expect(result.close).toMatch(/handles left that keep the process alive: Timeout ×1/);
    onlyFailed(result, 'close');
  });

  test('a sink without the optional methods skips those checks, saying which method is missing', async () => {
    const options = optionsFor({});
    const bare: OutputConformanceOptions = {
      ...options,
      sink: (context) => {
        const sink = memoSink(context);
        return { options: { sink: sink.options.sink }, read: sink.read, ...(sink.close ? { close: sink.close } : {}) };
      },
    };
    const out: Record<string, string> = {};
    for (const check of outputConformanceChecks(bare)) {
      const outcome = await check.run();
      out[check.id] = outcome?.skipped ?? 'pass';
    }
    expect(out).toEqual({
      ...ALL_PASS,
      failure: 'not checked: the sink has no failNext',
      partial: 'not checked: the sink has no partialNext',
      hang: 'not checked: the sink has no hangNext',
      secrets:
        "not checked: the sink's options carry no credential (configure context.secret as the output's token or key, if it takes one)",
    });
  });

  test('a plugin with several outputs must say which one the suite checks', () => {
    const plugin = definePlugin({ name: 'two', outputs: { a: z.strictObject({}), b: z.strictObject({}) }, apply() {} });
    expect(() => describeOutputConformance({ plugin, sink: () => ({ options: {}, read: () => '' }) })).toThrow(
      /plugin "two" declares several outputs \(a, b\): pass `output` to the suite/,
    );
  });

  test('a difference is shown by code point, where it is', () => {
    expect(firstDifference('a\u00a0b', 'a b')).toBe(
      '3 characters sent, 3 arrived; the first difference is at character 1: sent "\u00a0" (U+00A0), arrived " " (U+0020)',
    );
    expect(firstDifference('ab', 'a')).toMatch(/at character 1: sent "b" \(U\+0062\), arrived the end of the text/);
  });
});
