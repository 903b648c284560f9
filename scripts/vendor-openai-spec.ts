/**
 * Regenerates test/fixtures/openai-openapi.subset.yaml: the schemas of OpenAI's official OpenAPI
 * description that the tests validate request bodies against (test/openai-compatible/spec.ts),
 * with everything they reference. Tests read only this file, never a copy outside the repository.
 *
 *   npx node scripts/vendor-openai-spec.ts <openapi.yaml: a path or an https URL> [ExtraSchema…]
 *
 * The official description: https://github.com/openai/openai-openapi (openapi.yaml). A test that
 * needs another schema: add it to ROOTS (or pass it) and run this again.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';

/** The schemas the tests name (schemaNamed / formToObject); their references come along. */
const ROOTS = [
  'CreateTranscriptionRequest',
  'CreateChatCompletionRequest',
  'CreateResponse',
  'RealtimeClientEventInputAudioBufferAppend',
  'RealtimeClientEventSessionUpdate',
  'RealtimeTranscriptionSessionCreateRequestGA',
];

const OUT = fileURLToPath(new URL('../test/fixtures/openai-openapi.subset.yaml', import.meta.url));

type Schema = Record<string, unknown>;

async function load(source: string): Promise<string> {
  if (/^https:\/\//.test(source)) {
    const response = await fetch(source);
    if (!response.ok) throw new Error(`${source}: HTTP ${response.status}`);
    return response.text();
  }
  return readFileSync(source, 'utf8');
}

/** Names of every `#/components/schemas/…` reference anywhere inside `value`. */
function refsIn(value: unknown, into: Set<string>): void {
  if (Array.isArray(value)) for (const item of value) refsIn(item, into);
  else if (value && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      if (key === '$ref' && typeof item === 'string') {
        const name = /^#\/components\/schemas\/(.+)$/.exec(item)?.[1];
        if (!name) throw new Error(`unsupported $ref ${item}: the subset keeps only component schemas`);
        into.add(name);
      } else refsIn(item, into);
    }
  }
}

async function main(): Promise<void> {
  const [source, ...extra] = process.argv.slice(2);
  if (!source) {
    console.error('usage: npx node scripts/vendor-openai-spec.ts <openapi.yaml path or https URL> [ExtraSchema…]');
    process.exit(2);
  }
  const text = await load(source);
  const doc = parse(text, { maxAliasCount: -1 }) as {
    openapi: string;
    info: { title: string; version: string; license?: unknown };
    components: { schemas: Record<string, Schema> };
  };
  const all = doc.components.schemas;
  const keep = new Set<string>();
  const queue = [...ROOTS, ...extra];
  while (queue.length > 0) {
    const name = queue.pop()!;
    if (keep.has(name)) continue;
    const schema = all[name];
    if (!schema) throw new Error(`${source} has no schema ${name}`);
    keep.add(name);
    const refs = new Set<string>();
    refsIn(schema, refs);
    queue.push(...refs);
  }
  const schemas = Object.fromEntries([...keep].sort().map((name) => [name, all[name]]));
  const sha256 = createHash('sha256').update(text).digest('hex');
  const header = [
    '# A subset of the official OpenAI OpenAPI description, for the tests only (test/openai-compatible/spec.ts).',
    `# Source: OpenAI's openapi.yaml (https://github.com/openai/openai-openapi), "${doc.info.title}" info.version ${doc.info.version}`,
    `#   (OpenAPI ${doc.openapi}), sha256 ${sha256} of ${source.includes('://') ? source : `a local copy named ${path.basename(source)}`}`,
    `# Vendored ${new Date().toISOString().slice(0, 10)} by scripts/vendor-openai-spec.ts: the schemas ${[...ROOTS, ...extra].join(', ')}`,
    '#   and every schema they reference; nothing else is changed. Licence of the description: MIT (its info.license).',
    '# Do not edit by hand: run `npx node scripts/vendor-openai-spec.ts <openapi.yaml>` again.',
    '',
  ].join('\n');
  const body = stringify(
    {
      openapi: doc.openapi,
      info: { title: doc.info.title, version: doc.info.version, license: doc.info.license },
      components: { schemas },
    },
    { lineWidth: 0, aliasDuplicateObjects: false },
  );
  writeFileSync(OUT, header + body);
  console.log(
    `wrote ${OUT}: ${keep.size} of ${Object.keys(all).length} schemas, ${(Buffer.byteLength(header + body) / 1024).toFixed(0)} KiB`,
  );
}

await main();
