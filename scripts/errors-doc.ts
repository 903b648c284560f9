// Regenerates the tables in docs/errors.md: the kernel's catalogue (src/kernel/errors.ts) and the
// codes each built-in plugin declares (`definePlugin({ errors })`), grouped by plugin.
// Run: `npx node scripts/errors-doc.ts`. test/errors-catalogue.test.ts fails when they drift apart.
//
// A built-in plugin keeps the codes it declares in `plugins/<name>/error-codes.ts`, a file with
// type-only imports: this script runs under Node's type stripping, which cannot load every
// plugin's index, and without a build (`koto-voice` at run time would need dist/). The test reads
// the real definitions, so codes declared anywhere else show up there.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { ERRORS, errorPrefixOf, type PluginErrorSpec } from '../src/kernel/errors.ts';

const file = new URL('../docs/errors.md', import.meta.url);
const pluginsDir = new URL('../plugins/', import.meta.url);
const cell = (text: string) => text.replace(/\|/g, '\\|');
const row = (code: string, spec: { exit?: number | undefined; message: string; fix: string }) =>
  `| \`${code}\` | ${spec.exit ?? 1} | ${cell(spec.message)} | ${cell(spec.fix)} |`;
const HEADER = ['| code | exit | message | fix |', '|---|---|---|---|'];

/** The codes a built-in plugin declares: the exported objects of its error-codes.ts keyed by its own prefix. */
async function pluginCodes(name: string): Promise<[string, PluginErrorSpec][]> {
  const source = new URL(`${name}/error-codes.ts`, pluginsDir);
  if (!existsSync(source)) return [];
  const prefix = `${errorPrefixOf(name)}_ERR_`;
  const mod = (await import(source.href)) as Record<string, unknown>;
  const codes: [string, PluginErrorSpec][] = [];
  for (const value of Object.values(mod)) {
    if (typeof value !== 'object' || value === null) continue;
    const entries = Object.entries(value as Record<string, PluginErrorSpec>);
    if (entries.length > 0 && entries.every(([code]) => code.startsWith(prefix))) codes.push(...entries);
  }
  return codes;
}

const kernel = [...HEADER, ...Object.entries(ERRORS).map(([code, spec]) => row(code, spec))].join('\n');
const groups: string[] = [];
for (const name of readdirSync(pluginsDir).sort()) {
  const codes = await pluginCodes(name);
  if (codes.length > 0) groups.push([`### ${name}`, '', ...HEADER, ...codes.map(([code, spec]) => row(code, spec))].join('\n'));
}

let doc = readFileSync(file, 'utf8');
doc = doc.replace(/<!-- table:start -->[\s\S]*<!-- table:end -->/, `<!-- table:start -->\n${kernel}\n<!-- table:end -->`);
doc = doc.replace(
  /<!-- plugins:start -->[\s\S]*<!-- plugins:end -->/,
  `<!-- plugins:start -->\n${groups.join('\n\n')}\n<!-- plugins:end -->`,
);
writeFileSync(file, doc);
