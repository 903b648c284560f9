/**
 * `koto-voice/openai-wire` is a public package (#19 item 3): every name it exports is promised
 * stable, so the list is pinned. The table in docs/plugins.md ("The OpenAI wire package") is the
 * list; the package's runtime exports (source and the built dist a user installs) and its type
 * exports must be exactly those names. A name exported by accident (a wholesale `export *`, a
 * helper added to the entry point) fails here until it is documented, i.e. decided.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import * as wire from 'koto-voice/openai-wire';

const root = fileURLToPath(new URL('../../', import.meta.url));
const DOC = readFileSync(path.join(root, 'docs', 'plugins.md'), 'utf8');
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as {
  exports: Record<string, { types: string; default: string }>;
};

interface Documented {
  readonly name: string;
  readonly kind: string;
}

function documented(): Documented[] {
  const start = DOC.indexOf('<!-- openai-wire:start');
  const end = DOC.indexOf('<!-- openai-wire:end -->');
  expect(start, 'docs/plugins.md has the openai-wire export table').toBeGreaterThan(0);
  expect(end).toBeGreaterThan(start);
  return DOC.slice(start, end)
    .split('\n')
    .filter((line) => line.startsWith('| `'))
    .map((line) => {
      const [name, kind] = line
        .replace(/^\|/, '')
        .split(/(?<!\\)\|/)
        .map((cell) => cell.trim().replace(/^`|`$/g, ''));
      return { name: name!, kind: kind! };
    });
}

const sorted = (names: Iterable<string>) => [...names].sort();
const values = () =>
  documented()
    .filter((d) => d.kind !== 'type')
    .map((d) => d.name);

/** Every name the entry point exports to TypeScript (values and types), by the compiler's own reading. */
function typeCheckedExports(entry: string): string[] {
  const config = ts.readConfigFile(path.join(root, 'tsconfig.json'), (file) => ts.sys.readFile(file));
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, root);
  const program = ts.createProgram([entry], { ...parsed.options, noEmit: true });
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(entry);
  const symbol = source && checker.getSymbolAtLocation(source);
  expect(symbol, `${entry} is a module`).toBeDefined();
  return checker.getExportsOfModule(symbol!).map((s) => s.getName());
}

describe('koto-voice/openai-wire exports exactly the documented names', () => {
  it('the documentation lists each name once, with a kind', () => {
    const names = documented().map((d) => d.name);
    expect(names.length).toBeGreaterThan(20);
    expect(new Set(names).size).toBe(names.length);
    for (const d of documented()) expect(['function', 'class', 'const', 'type'], d.name).toContain(d.kind);
  });

  it('runtime exports of the source entry point', () => {
    expect(sorted(Object.keys(wire))).toEqual(sorted(values()));
  });

  it('runtime exports of the built package (what `import … from "koto-voice/openai-wire"` loads)', async () => {
    const entry = pkg.exports['./openai-wire'];
    expect(entry?.default).toBe('./dist/plugins/openai-compatible/wire.js');
    const built = (await import(pathToFileURL(path.join(root, entry!.default)).href)) as Record<string, unknown>;
    expect(sorted(Object.keys(built))).toEqual(sorted(values()));
  });

  it('type exports (values and types) of the entry point', () => {
    const entry = path.join(root, 'plugins', 'openai-compatible', 'wire.ts');
    expect(sorted(typeCheckedExports(entry))).toEqual(sorted(documented().map((d) => d.name)));
  });

  it('each kind is what the name is', () => {
    const exported = wire as Record<string, unknown>;
    for (const { name, kind } of documented()) {
      if (kind === 'type') expect(exported[name], `${name} is documented as a type`).toBeUndefined();
      else if (kind === 'const') expect(typeof exported[name], name).not.toBe('function');
      else expect(typeof exported[name], name).toBe('function');
    }
  });
});
