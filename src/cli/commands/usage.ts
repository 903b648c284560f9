import { HistoryStore, type UsageRow } from '../../history/store.ts';
import { kotoError } from '../../kernel/errors.ts';
import { kotoPaths } from '../../kernel/paths.ts';
import type { CliContext } from '../context.ts';
import { printLine } from '../io.ts';

export interface UsageFlags {
  since?: string | undefined;
  by?: string | undefined;
  json?: boolean | undefined;
}

const GROUPINGS = ['provider', 'model', 'day'] as const;
type Grouping = (typeof GROUPINGS)[number];

const UNIT_MS: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 };

function usageError(detail: string) {
  return kotoError('KOTO_ERR_USAGE', { detail });
}

/** `7d`, `12h`, `2w`, `30m`, or a date (`2026-12-01`): the start of the window. */
export function parseSince(text: string, now = Date.now()): Date {
  const relative = /^(\d{1,9})([mhdw])$/.exec(text.trim());
  if (relative) {
    // Further back than dates go (999999999w) is simply "everything".
    return new Date(Math.max(0, now - Number(relative[1]) * UNIT_MS[relative[2]!]!));
  }
  if (/^\d{4}-\d{2}-\d{2}([T ][\d:.]+Z?)?$/.test(text.trim())) {
    const date = new Date(text.trim());
    if (!Number.isNaN(date.getTime())) return date;
  }
  throw usageError(`--since takes a duration such as 7d, 24h, 2w or 30m, or a date such as 2026-12-01, not "${text}"`);
}

export interface UsageGroup {
  readonly key: string;
  readonly calls: number;
  /** Calls whose answer was used / that lost a hedge / that failed (not billed). */
  readonly answered: number;
  readonly aborted: number;
  readonly failed: number;
  readonly audioSeconds: number;
  readonly inputTokens: number;
  readonly outputTokens: number;
  /** USD of the calls with a known price; null when none of them has one. */
  readonly cost: number | null;
  /** Calls whose cost is unknown (no price for the model, or no token counts reported). */
  readonly unpricedCalls: number;
}

function keyOf(row: UsageRow, by: Grouping): string {
  if (by === 'provider') return row.provider;
  if (by === 'model') return row.model ?? '(unknown model)';
  return row.at.slice(0, 10);
}

export function summarise(rows: readonly UsageRow[], by: Grouping): { groups: UsageGroup[]; total: UsageGroup } {
  const groups = new Map<string, UsageRow[]>();
  for (const row of rows) {
    const key = keyOf(row, by);
    groups.set(key, [...(groups.get(key) ?? []), row]);
  }
  const sum = (key: string, list: readonly UsageRow[]): UsageGroup => {
    const priced = list.filter((r) => r.cost !== null);
    return {
      key,
      calls: list.length,
      answered: list.filter((r) => r.outcome === 'answered').length,
      aborted: list.filter((r) => r.outcome === 'aborted').length,
      failed: list.filter((r) => r.outcome === 'failed').length,
      audioSeconds: round(
        list.reduce((n, r) => n + (r.outcome === 'failed' ? 0 : (r.audioSeconds ?? 0)), 0),
        3,
      ),
      inputTokens: list.reduce((n, r) => n + (r.inputTokens ?? 0), 0),
      outputTokens: list.reduce((n, r) => n + (r.outputTokens ?? 0), 0),
      cost: priced.length
        ? round(
            priced.reduce((n, r) => n + (r.cost ?? 0), 0),
            6,
          )
        : null,
      unpricedCalls: list.length - priced.length,
    };
  };
  const sorted = [...groups.entries()].sort(([a], [b]) => (by === 'day' ? a.localeCompare(b) : 0));
  return { groups: sorted.map(([key, list]) => sum(key, list)), total: sum('total', rows) };
}

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

function money(group: UsageGroup): string {
  const known = group.cost === null ? '' : `$${group.cost < 0.01 && group.cost > 0 ? group.cost.toFixed(4) : group.cost.toFixed(2)}`;
  if (group.unpricedCalls === 0) return known || '$0.00';
  const unknown = `${group.unpricedCalls} unpriced`;
  return known ? `${known} + ${unknown}` : `unknown (${unknown})`;
}

function minutes(seconds: number): string {
  const whole = Math.round(seconds);
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, '0')}`;
}

/** `koto usage [--since 7d] [--by provider|model|day] [--json]`: what the providers were asked, and its estimated cost. */
export async function usageCommand(_ctx: CliContext, flags: UsageFlags): Promise<number> {
  const by = (flags.by ?? 'provider') as Grouping;
  if (!GROUPINGS.includes(by)) throw usageError(`--by takes provider, model or day, not "${flags.by}"`);
  const since = parseSince(flags.since ?? '30d');
  const store = new HistoryStore(kotoPaths(process.env).history);
  let rows: UsageRow[];
  try {
    rows = store.usage(since.toISOString());
  } finally {
    store.close();
  }
  const { groups, total } = summarise(rows, by);
  if (flags.json) {
    await printLine(JSON.stringify({ since: since.toISOString(), by, groups, total }));
    return 0;
  }
  await printLine(
    `usage since ${since.toISOString().slice(0, 16).replace('T', ' ')} UTC, by ${by} (estimated; prices: docs/configuration.md#pricing)`,
  );
  if (rows.length === 0) {
    await printLine('no provider calls');
    return 0;
  }
  const table = [
    [by, 'calls', 'audio', 'tokens in', 'tokens out', 'cost'],
    ...[...groups, total].map((g) => [
      g.key,
      `${g.calls}${g.aborted ? ` (${g.aborted} hedge lost)` : ''}${g.failed ? ` (${g.failed} failed)` : ''}`,
      minutes(g.audioSeconds),
      String(g.inputTokens),
      String(g.outputTokens),
      money(g),
    ]),
  ];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  for (const row of table)
    await printLine(row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  '));
  return 0;
}
