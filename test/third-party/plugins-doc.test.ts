import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { HookMap } from 'tapable';
import { describe, expect, test } from 'vitest';
import { createKernel, definePlugin, ERRORS, type PluginApi } from 'koto-voice';
import { createHooks } from '../../src/kernel/hooks.ts';

/**
 * docs/plugins.md is the plugin author's reference: its tables must say what the code does.
 * The hook table is compared with src/kernel/hooks.ts (names, tapable kinds, argument names and
 * types, what a tap returns); the API tables with the real `api` object and `PluginDefinition`.
 */

const read = (relative: string) => readFileSync(fileURLToPath(new URL(relative, import.meta.url)), 'utf8');
const DOC = read('../../docs/plugins.md');
const HOOKS_SOURCE = read('../../src/kernel/hooks.ts');
const PLUGIN_SOURCE = read('../../src/kernel/plugin.ts');

interface HookRow {
  kind: string;
  args: string;
  returns: string;
}

/** Cells of a markdown table row; `\|` inside a cell is a literal pipe. */
function cells(line: string): string[] {
  return line
    .trim()
    .replace(/^\||\|$/g, '')
    .split(/(?<!\\)\|/)
    .map((cell) => cell.trim().replace(/\\\|/g, '|'));
}

const code = (cell: string) => cell.replace(/^`|`$/g, '');

function docHooks(): Map<string, HookRow> {
  const start = DOC.indexOf('<!-- hooks:start');
  const end = DOC.indexOf('<!-- hooks:end -->');
  expect(start).toBeGreaterThan(0);
  const rows = DOC.slice(start, end)
    .split('\n')
    .filter((line) => line.startsWith('| `'));
  const out = new Map<string, HookRow>();
  for (const row of rows) {
    const [name, kind, args, returns] = cells(row);
    out.set(code(name!), { kind: code(kind!), args: args === '(none)' ? '' : code(args!), returns: code(returns!) });
  }
  return out;
}

/** What src/kernel/hooks.ts declares: `name: new Kind<[Args], Result>(['argNames'], …)`, maps included. */
function sourceHooks(): Map<string, HookRow> {
  const body = HOOKS_SOURCE.slice(HOOKS_SOURCE.indexOf('export function createHooks()'), HOOKS_SOURCE.indexOf('export type KernelHooks'));
  const starts = [...body.matchAll(/^ {4}(\w+): new /gm)];
  const runtime = createHooks() as unknown as Record<string, unknown>;
  const out = new Map<string, HookRow>();
  for (const [i, match] of starts.entries()) {
    const name = match[1]!;
    const chunk = body.slice(match.index, starts[i + 1]?.index ?? body.length);
    const decl = /new (\w+Hook)<\[([^\]]*)\](?:,\s*(.+?))?>\(\[/s.exec(chunk);
    expect(decl, `hook ${name}: declaration not understood`).not.toBeNull();
    const [, kind, tuple, result] = decl!;
    const types = tuple!.trim() === '' ? [] : tuple!.split(',').map((t) => t.trim());
    const hook = runtime[name] as { _args: string[] } | HookMap<{ _args: string[] }>;
    const argNames = hook instanceof HookMap ? hook.for('x')._args : hook._args;
    expect(argNames, `hook ${name}: argument names vs types`).toHaveLength(types.length);
    const isMap = chunk.trimStart().startsWith(`${name}: new HookMap(`);
    const returns = /Bail/.test(kind!) ? result!.trim() : /Waterfall/.test(kind!) ? types[0]! : 'nothing';
    out.set(name, {
      kind: isMap ? `HookMap → ${kind}` : kind!,
      args: types.map((type, j) => `${argNames[j]}: ${type}`).join(', '),
      returns,
    });
  }
  return out;
}

describe('docs/plugins.md matches the code', () => {
  test('the hook table lists every hook, with its tapable kind, arguments and return value', () => {
    const documented = docHooks();
    const declared = sourceHooks();
    expect([...documented.keys()].sort()).toEqual([...declared.keys()].sort());
    expect(Object.keys(createHooks()).sort()).toEqual([...declared.keys()].sort());
    for (const [name, row] of declared) expect(documented.get(name), `hook ${name}`).toEqual(row);
  });

  test('the plugin API table names every member of `api`, and nothing else', async () => {
    let api: PluginApi | undefined;
    const kernel = await createKernel({
      config: {},
      search: false,
      builtins: false,
      logLevel: 'silent',
      plugins: [definePlugin({ name: 'probe-api', apply: (a) => void (api = a) })],
    });
    await kernel.close();
    const section = DOC.slice(DOC.indexOf('## The plugin API'), DOC.indexOf('## Hooks'));
    const documented = [...section.matchAll(/^\| `api\.(\w+)/gm)].map((m) => m[1]).sort();
    expect(documented).toEqual(Object.keys(api!).sort());
  });

  test('the definition table names every field of PluginDefinition', () => {
    const iface = PLUGIN_SOURCE.slice(
      PLUGIN_SOURCE.indexOf('export interface PluginDefinition'),
      PLUGIN_SOURCE.indexOf('export interface PluginApi'),
    );
    const fields = [...iface.matchAll(/^ {2}readonly (\w+)\??:/gm)].map((m) => m[1]).sort();
    const section = DOC.slice(DOC.indexOf('## The definition'), DOC.indexOf('## The plugin API'));
    const documented = [...section.matchAll(/^\| `(\w+)/gm)].map((m) => m[1]).sort();
    expect(documented).toEqual(fields);
  });

  test('the api.http table names members that exist on the client', async () => {
    let api: PluginApi | undefined;
    const kernel = await createKernel({
      config: {},
      search: false,
      builtins: false,
      logLevel: 'silent',
      plugins: [definePlugin({ name: 'probe-http', apply: (a) => void (api = a) })],
    });
    await kernel.close();
    const section = DOC.slice(DOC.indexOf('## HTTP: `api.http`'), DOC.indexOf('## Config schemas'));
    const members = [...section.matchAll(/^\| `(\w+)/gm)].map((m) => m[1]!);
    expect(members.length).toBeGreaterThan(5);
    for (const member of members) expect(member in api!.http, `api.http.${member}`).toBe(true);
  });

  test('every error code the guide names is in the catalogue', () => {
    const codes = new Set(DOC.match(/KOTO_ERR_[A-Z_]+/g));
    expect(codes.size).toBeGreaterThan(10);
    for (const codeName of codes) expect(ERRORS, codeName).toHaveProperty(codeName);
  });
});
