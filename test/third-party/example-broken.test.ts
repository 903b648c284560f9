/**
 * Issue #22's acceptance: the example plugin and a deliberately broken variant of it (a plain
 * `Error` on 429) go through the conformance suite; the example passes, the variant fails with a
 * message that says how to fix it.
 *
 * The variant is the example itself, copied (its src and its test server) into a scratch folder
 * in the checkout and patched in one place: its HTTP error mapping throws `new Error(…)` for a
 * 429 instead of KOTO_ERR_RATE_LIMITED. A copy, not a fork kept in the repository: whatever the
 * example becomes, the variant is it plus that one mistake (and the patch fails loudly if the
 * 429 branch it targets is gone). Then:
 *
 * - both run through `conformanceChecks` here, check by check: the copy as it is passes every
 *   check, the patched one fails exactly the two checks that send a 429, saying what to throw;
 * - the patched copy's own test file (the example's test/conformance.test.ts, unchanged) runs in
 *   a child vitest, the way its author runs `npm test`: it exits non-zero and prints the fix.
 */
import { spawn } from 'node:child_process';
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { AnyKotoPlugin } from 'koto-voice';
import { ConformanceFailure, conformanceChecks, type ConformanceCheckId } from 'koto-voice/testing';
import { DEFAULT_TRANSCRIPT, startDeepgramServer } from '../../examples/koto-plugin-deepgram/test/server.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const EXAMPLE = path.join(ROOT, 'examples', 'koto-plugin-deepgram');
// Inside the checkout (ignored by git: .koto-test-*/), so `vitest` and the aliases resolve as for any test.
const WORK = path.join(ROOT, `.koto-test-broken-example-${process.pid}`);

/** The one mistake: a plain Error for HTTP 429, ahead of the example's own 429 mapping. */
const PLAIN_429 = "if (status === 429) throw new Error('Deepgram answered HTTP 429 (too many requests)');";

async function copyExample(into: string, patch: boolean): Promise<AnyKotoPlugin> {
  await mkdir(path.join(into, 'test'), { recursive: true });
  await cp(path.join(EXAMPLE, 'src'), path.join(into, 'src'), { recursive: true });
  for (const file of ['server.ts', 'conformance.test.ts']) await cp(path.join(EXAMPLE, 'test', file), path.join(into, 'test', file));
  if (patch) {
    const wire = path.join(into, 'src', 'wire.ts');
    const source = await readFile(wire, 'utf8');
    const branches = source.match(/\n(\s*)if \(status === 429\)/g) ?? [];
    // The example must still map 429 in exactly one place, or the variant would not be "the example plus one mistake".
    expect(branches, "the example's 429 branch in src/wire.ts moved: update PLAIN_429 in this test").toHaveLength(1);
    await writeFile(wire, source.replace(/\n(\s*)if \(status === 429\)/, `\n$1${PLAIN_429}\n$1if (status === 429)`));
  }
  const module = (await import(pathToFileURL(path.join(into, 'src', 'index.ts')).href)) as { default: AnyKotoPlugin };
  return module.default;
}

async function outcomes(plugin: AnyKotoPlugin): Promise<Record<ConformanceCheckId, string>> {
  const out: Partial<Record<ConformanceCheckId, string>> = {};
  const checks = conformanceChecks({
    plugin,
    server: ({ secret }) => startDeepgramServer({ apiKey: secret }),
    provider: ({ server, secret }) => ({ baseUrl: server.url, apiKey: secret }),
    expectText: DEFAULT_TRANSCRIPT,
  });
  for (const check of checks) {
    try {
      const outcome = await check.run();
      out[check.id] = outcome?.skipped ? `skipped: ${outcome.skipped}` : 'pass';
    } catch (err) {
      expect(err, (err as Error).stack).toBeInstanceOf(ConformanceFailure);
      out[check.id] = (err as Error).message;
    }
  }
  return out as Record<ConformanceCheckId, string>;
}

const ALL_PASS: Record<ConformanceCheckId, string> = {
  'shared-client': 'pass',
  errors: 'pass',
  failures: 'pass',
  dropped: 'pass',
  malformed: 'pass',
  retry: 'pass',
  'retry-after': 'pass',
  abort: 'pass',
  timeout: 'pass',
  secrets: 'pass',
  close: 'pass',
};

let example: AnyKotoPlugin;
let broken: AnyKotoPlugin;

beforeAll(async () => {
  example = await copyExample(path.join(WORK, 'as-is'), false);
  broken = await copyExample(path.join(WORK, 'plain-429'), true);
});

afterAll(async () => {
  await rm(WORK, { recursive: true, force: true });
});

describe('the example plugin and its broken variant through the conformance suite (#22)', () => {
  test('the example passes every check', async () => {
    expect(await outcomes(example)).toEqual(ALL_PASS);
  });

  test('the variant throwing a plain Error on 429 fails the 429 checks, saying what to throw instead', async () => {
    const result = await outcomes(broken);
    expect(result.failures).toMatch(
      /^HTTP 429: the plugin threw a plain Error \(plugin "koto-plugin-deepgram" failed in hook asr:koto-plugin-deepgram: Deepgram answered HTTP 429 \(too many requests\)\); map it to a catalogue code \(KOTO_ERR_RATE_LIMITED\) or one of your declared codes$/,
    );
    expect(result['retry-after']).toMatch(
      /^HTTP 429 with Retry-After: 1: the plugin threw a plain Error .*; map it to a catalogue code or one of your declared codes$/,
    );
    expect({ ...result, failures: 'pass', 'retry-after': 'pass' }).toEqual(ALL_PASS);
  });

  test("the variant's own test file fails under vitest, printing the fix", async () => {
    const dir = path.join(WORK, 'plain-429');
    const alias = {
      'koto-voice/testing': path.join(ROOT, 'src/testing/index.ts'),
      'koto-voice/openai-wire': path.join(ROOT, 'plugins/openai-compatible/wire.ts'),
      'koto-voice': path.join(ROOT, 'src/index.ts'),
    };
    // koto-voice resolved to this checkout, as `npm link` would; no global setup (nothing to build).
    await writeFile(
      path.join(dir, 'vitest.config.ts'),
      `import { defineConfig } from 'vitest/config';\nexport default defineConfig({ resolve: { alias: ${JSON.stringify(alias)} }, test: { include: ['test/**/*.test.ts'], testTimeout: 120_000 } });\n`,
    );
    const run = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [path.join(ROOT, 'node_modules/vitest/vitest.mjs'), 'run', '--root', dir], {
        cwd: dir,
        env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0', CI: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      // A hang guard only: the suite's own checks bound every wait.
      const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, output });
      });
    });
    expect(run.code, run.output).toBe(1);
    expect(run.output).toMatch(
      /ConformanceFailure: HTTP 429: the plugin threw a plain Error .*map it to a catalogue code \(KOTO_ERR_RATE_LIMITED\) or one of your declared codes/,
    );
    // The two checks that send a 429 fail; every other check of the suite passes.
    expect(run.output).toMatch(/Tests\s+2 failed \| \d+ passed/);
  }, 360_000);
});
