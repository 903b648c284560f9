/**
 * docs/plugins.md's webhook output and the loopback sink its "Testing an output plugin" section
 * gives for it, taken from the guide as written and run through the output conformance suite:
 * the guide's output passes, and its sink drives the failure, hang and secrets checks over real
 * HTTP (the samples test only type-checks them).
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const guide = readFileSync(path.join(ROOT, 'docs', 'plugins.md'), 'utf8');
const blocks = [...guide.matchAll(/^```ts\n([\s\S]*?)^```/gm)].map((m) => m[1]!);
const only = (what: string, test: (code: string) => boolean): string => {
  const found = blocks.filter(test);
  if (found.length !== 1) throw new Error(`docs/plugins.md should have one ${what} sample, it has ${found.length}`);
  return found[0]!;
};
const output = only('webhook output', (code) => code.includes("name: 'koto-plugin-webhook'"));
const suite = only('webhook sink', (code) => code.includes('async function hookSink'));

// Inside the checkout (ignored by git: .koto-test-*/), laid out as the plugin's package.
const dir = path.join(ROOT, `.koto-test-doc-output-${process.pid}`);
mkdirSync(path.join(dir, 'src'), { recursive: true });
mkdirSync(path.join(dir, 'test'), { recursive: true });
// The guide's output sample takes its imports from the prose ("definePlugin, kotoError, z from koto-voice").
writeFileSync(path.join(dir, 'src', 'index.ts'), `import { definePlugin, kotoError, z } from 'koto-voice';\n${output}`);
writeFileSync(path.join(dir, 'test', 'output-conformance.ts'), suite);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Registers the suite, as the author's test file does.
await import(pathToFileURL(path.join(dir, 'test', 'output-conformance.ts')).href);
