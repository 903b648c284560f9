import { existsSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { describe, KotoError } from '../kernel/errors.ts';
import type { Kernel } from '../kernel/kernel.ts';
import { qualityError, usageError } from './errors.ts';
import { errorRate, sumCounts, type ErrorCounts, type Metric } from './wer.ts';

/** Audio the corpus scan picks up (WAV … M4A are sent as they are; the others need ffmpeg). */
export const AUDIO_EXTENSIONS: ReadonlySet<string> = new Set([
  '.wav',
  '.flac',
  '.mp3',
  '.ogg',
  '.oga',
  '.opus',
  '.webm',
  '.m4a',
  '.mp4',
  '.aac',
  '.aif',
  '.aiff',
]);

export interface CorpusItem {
  /** Path relative to the corpus folder (what reports show). */
  readonly name: string;
  readonly audio: string;
  readonly referenceFile: string;
  readonly reference: string;
}

export interface Corpus {
  readonly dir: string;
  readonly items: readonly CorpusItem[];
  /** Audio files without a sibling .txt (relative names). */
  readonly missing: readonly string[];
}

async function walk(dir: string, base: string, out: string[]): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true });
  for (const entry of entries) {
    if (entry.name.startsWith('.')) continue;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) await walk(full, base, out);
    else if (entry.isFile() && AUDIO_EXTENSIONS.has(path.extname(entry.name).toLowerCase())) out.push(path.relative(base, full));
  }
}

/**
 * A corpus is a folder (searched recursively, dot-files skipped) of audio files, each with a
 * sibling reference transcript of the same name ending in `.txt` (`a/clip.wav` + `a/clip.txt`).
 * A folder that does not exist is a usage error; one without any referenced audio is
 * `KOTO_ERR_CORPUS_EMPTY` (exit 2).
 */
export async function scanCorpus(dir: string): Promise<Corpus> {
  const root = path.resolve(dir);
  const info = await stat(root).catch(() => undefined);
  if (!info?.isDirectory())
    throw usageError(`${dir} is not a folder: \`koto bench accuracy\` takes a folder of audio files with .txt references`);
  const found: string[] = [];
  await walk(root, root, found);
  found.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (found.length === 0) throw qualityError('KOTO_ERR_CORPUS_EMPTY', { dir: root, detail: ' (no audio files at all)' });
  const items: CorpusItem[] = [];
  const missing: string[] = [];
  for (const name of found) {
    const audio = path.join(root, name);
    const referenceFile = audio.slice(0, audio.length - path.extname(audio).length) + '.txt';
    if (!existsSync(referenceFile)) {
      missing.push(name);
      continue;
    }
    const reference = (await readFile(referenceFile, 'utf8')).replace(/^\uFEFF/, '').trim();
    items.push({ name, audio, referenceFile, reference });
  }
  if (items.length === 0) {
    throw qualityError('KOTO_ERR_CORPUS_EMPTY', { dir: root, detail: ` (${found.length} audio file(s), none with a .txt reference)` });
  }
  return { dir: root, items, missing };
}

export type BenchMode = 'raw' | 'corrected';

/** One measurement: a file, through one ASR provider, raw or corrected. */
export interface BenchRow extends Partial<ErrorCounts> {
  readonly type: 'file';
  readonly file: string;
  readonly provider: string;
  readonly model: string | null;
  readonly mode: BenchMode;
  readonly metric: Metric;
  /** Error rate (0.125 = 12.5 %); null when the file failed. */
  readonly rate: number | null;
  readonly edits?: number;
  /** ASR time (raw), or ASR + correction time (corrected), in ms. */
  readonly latencyMs: number | null;
  readonly timings: Readonly<Record<string, number>>;
  readonly reference: string;
  readonly hypothesis: string | null;
  /** Corrected mode: the correction failed and the raw text was measured (what the pipeline would deliver). */
  readonly fallback?: boolean;
  readonly correctionProvider?: string | null;
  readonly correctionModel?: string | null;
  readonly error?: { code: string; message: string; fix: string };
}

export interface BenchTotal extends ErrorCounts {
  readonly provider: string;
  readonly mode: BenchMode;
  readonly metric: Metric;
  readonly edits: number;
  /** Corpus-level: total edits / total reference tokens. */
  readonly rate: number;
  readonly files: number;
  readonly failed: number;
  readonly fallbacks: number;
  readonly latencyMs: { readonly mean: number | null; readonly median: number | null; readonly max: number | null };
}

export interface BenchSummary {
  readonly type: 'summary';
  readonly dir: string;
  readonly files: number;
  readonly skipped: readonly string[];
  readonly providers: readonly string[];
  readonly modes: readonly BenchMode[];
  readonly totals: readonly BenchTotal[];
}

export interface BenchJob {
  readonly item: CorpusItem;
  readonly provider: string;
}

function errorJson(err: unknown, scrub: (text: string) => string): { code: string; message: string; fix: string } {
  if (KotoError.is(err)) return { code: err.code, message: scrub(err.message), fix: scrub(err.fix) };
  return { code: 'KOTO_ERR_INTERNAL', message: scrub(describe(err)), fix: 'run with --debug and report it' };
}

function measured(base: Omit<BenchRow, keyof ErrorCounts | 'rate' | 'edits' | 'metric'>, reference: string, hypothesis: string): BenchRow {
  const { metric, substitutions, deletions, insertions, hits, referenceTokens, hypothesisTokens, edits, rate } = errorRate(
    reference,
    hypothesis,
  );
  return { ...base, metric, rate, edits, substitutions, deletions, insertions, hits, referenceTokens, hypothesisTokens };
}

/**
 * Measures one file through one ASR provider: one transcription (raw), and when `correct` is set,
 * the correction of that same transcript (corrected), so both modes score the same ASR output.
 * Never throws: a failed transcription gives rows carrying `error`.
 */
export async function benchFile(
  kernel: Kernel,
  job: BenchJob,
  options: { correct: boolean; warn?: (message: string) => void },
): Promise<BenchRow[]> {
  const { item, provider } = job;
  const modes: BenchMode[] = options.correct ? ['raw', 'corrected'] : ['raw'];
  let transcript;
  try {
    // The provider under test answers, or its failure is counted: never a fallback's answer.
    transcript = await kernel.transcribe(item.audio, { provider, fallback: false });
  } catch (err) {
    const error = errorJson(err, (t) => kernel.scrub(t));
    const metric = errorRate(item.reference, '').metric;
    return modes.map((mode) => ({
      type: 'file',
      file: item.name,
      provider,
      model: null,
      mode,
      metric,
      rate: null,
      latencyMs: null,
      timings: {},
      reference: item.reference,
      hypothesis: null,
      error,
    }));
  }
  const asrMs = transcript.timings.asr ?? transcript.timings.total ?? 0;
  const rows: BenchRow[] = [
    measured(
      {
        type: 'file',
        file: item.name,
        provider,
        model: transcript.model ?? null,
        mode: 'raw',
        latencyMs: asrMs,
        timings: { asr: asrMs },
        reference: item.reference,
        hypothesis: transcript.text,
      },
      item.reference,
      transcript.text,
    ),
  ];
  if (!options.correct) return rows;
  let text = transcript.text;
  let fallback = false;
  let correctionMs = 0;
  let correctionProvider: string | null = null;
  let correctionModel: string | null = null;
  if (text) {
    let corrected;
    try {
      corrected = await kernel.correct(text, { fallback: false });
    } catch (err) {
      rows.push({
        type: 'file',
        file: item.name,
        provider,
        model: transcript.model ?? null,
        mode: 'corrected',
        metric: rows[0]!.metric,
        rate: null,
        latencyMs: null,
        timings: { asr: asrMs },
        reference: item.reference,
        hypothesis: null,
        error: errorJson(err, (t) => kernel.scrub(t)),
      });
      return rows;
    }
    text = corrected.text;
    fallback = corrected.fallback;
    correctionMs = corrected.timings.correction ?? corrected.timings.total ?? 0;
    correctionProvider = corrected.provider ?? null;
    correctionModel = corrected.model ?? null;
    for (const warning of corrected.warnings) options.warn?.(`${item.name} (${provider}): ${warning}`);
  }
  rows.push(
    measured(
      {
        type: 'file',
        file: item.name,
        provider,
        model: transcript.model ?? null,
        mode: 'corrected',
        latencyMs: asrMs + correctionMs,
        timings: { asr: asrMs, correction: correctionMs },
        reference: item.reference,
        hypothesis: text,
        fallback,
        correctionProvider,
        correctionModel,
      },
      item.reference,
      text,
    ),
  );
  return rows;
}

function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : Math.round(((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2);
}

/** Totals per provider × mode × metric (a corpus mixing languages gets a WER and a CER line). */
export function summarize(
  corpus: Corpus,
  providers: readonly string[],
  modes: readonly BenchMode[],
  rows: readonly BenchRow[],
): BenchSummary {
  const totals: BenchTotal[] = [];
  for (const provider of providers) {
    for (const mode of modes) {
      const mine = rows.filter((r) => r.provider === provider && r.mode === mode);
      const metrics = [...new Set(mine.map((r) => r.metric))]; // in corpus order
      for (const metric of metrics) {
        const group = mine.filter((r) => r.metric === metric);
        const ok = group.filter((r) => !r.error) as (BenchRow & ErrorCounts)[];
        const latencies = ok.map((r) => r.latencyMs).filter((v): v is number => v !== null);
        totals.push({
          provider,
          mode,
          ...sumCounts(metric, ok),
          files: ok.length,
          failed: group.length - ok.length,
          fallbacks: ok.filter((r) => r.fallback).length,
          latencyMs: {
            mean: latencies.length ? Math.round(latencies.reduce((a, b) => a + b, 0) / latencies.length) : null,
            median: median(latencies),
            max: latencies.length ? Math.max(...latencies) : null,
          },
        });
      }
    }
  }
  return { type: 'summary', dir: corpus.dir, files: corpus.items.length, skipped: corpus.missing, providers, modes, totals };
}

export function percent(rate: number | null): string {
  return rate === null ? '-' : `${(rate * 100).toFixed(2)}%`;
}

/** The table `koto bench accuracy` prints: one line per file × provider × mode, then the totals. */
export function formatTable(rows: readonly BenchRow[], summary: BenchSummary): string {
  const header = ['FILE', 'PROVIDER', 'MODE', 'METRIC', 'RATE', 'SUB', 'DEL', 'INS', 'REF', 'LATENCY'];
  const lines: string[][] = [header];
  for (const r of rows) {
    lines.push([
      r.file,
      r.provider,
      r.mode + (r.fallback ? '*' : ''),
      r.metric.toUpperCase(),
      r.error ? `error ${r.error.code}` : percent(r.rate),
      String(r.substitutions ?? '-'),
      String(r.deletions ?? '-'),
      String(r.insertions ?? '-'),
      String(r.referenceTokens ?? '-'),
      r.latencyMs === null ? '-' : `${r.latencyMs} ms`,
    ]);
  }
  const totalsAt = lines.length;
  for (const t of summary.totals) {
    lines.push([
      `TOTAL (${t.files} file${t.files === 1 ? '' : 's'}${t.failed ? `, ${t.failed} failed` : ''})`,
      t.provider,
      t.mode + (t.fallbacks ? '*' : ''),
      t.metric.toUpperCase(),
      percent(t.rate),
      String(t.substitutions),
      String(t.deletions),
      String(t.insertions),
      String(t.referenceTokens),
      t.latencyMs.median === null ? '-' : `${t.latencyMs.median} ms median, ${t.latencyMs.mean} mean`,
    ]);
  }
  const numeric = new Set([4, 5, 6, 7, 8]);
  const widths = header.map((_, c) => Math.max(...lines.map((l) => (l[c] ?? '').length)));
  const render = (l: string[]) =>
    l
      .map((cell, c) => (c === l.length - 1 ? cell : numeric.has(c) ? cell.padStart(widths[c] ?? 0) : cell.padEnd(widths[c] ?? 0)))
      .join('  ')
      .trimEnd();
  const out = lines.slice(0, totalsAt).map(render);
  out.push('');
  out.push(...lines.slice(totalsAt).map(render));
  if (rows.some((r) => r.fallback))
    out.push('', '* the correction failed for some files; their raw transcript was scored (what the pipeline delivers)');
  return out.join('\n');
}
