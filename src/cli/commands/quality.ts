import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline/promises';
import { DAEMON_PING_MS, daemonAnswers, sendCommand } from '../../daemon/client.ts';
import { HistoryStore } from '../../history/store.ts';
import { KotoError, kotoError } from '../../kernel/errors.ts';
import { kotoPaths } from '../../kernel/paths.ts';
import { benchFile, formatTable, scanCorpus, summarize, type BenchJob, type BenchMode, type BenchRow } from '../../quality/bench.ts';
import { appendTerms, cleanTerms, dictionaryLocation, planAdd, readDictionary } from '../../quality/dictionary.ts';
import { qualityError, usageError } from '../../quality/errors.ts';
import { historyText, rewriteText, SESSION_ID, type RewriteResult } from '../../quality/rewrite.ts';
import { suggestTerms } from '../../quality/suggest.ts';
import { runBatch } from '../batch.ts';
import type { CliContext } from '../context.ts';
import { OrderedPrinter, printErr, printLine, readStdin } from '../io.ts';
import { reportError, warn } from '../report.ts';

/**
 * The dictation quality commands: `koto bench accuracy`, `koto rewrite`, `koto dict suggest`,
 * `koto dict add`. Each prints its own errors (one line) and returns the exit code.
 */

function positiveInt(value: string | undefined, fallback: number, flag: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw usageError(`${flag} takes a whole number of 1 or more, not "${value}"`);
  return n;
}

// ---------------------------------------------------------------------------
// koto bench accuracy DIR
// ---------------------------------------------------------------------------

export interface BenchFlags {
  /** Comma-separated provider names (keys of `providers`); default the configured ASR provider. */
  providers?: string | undefined;
  json?: boolean | undefined;
  /** false with --no-correct: raw transcripts only. */
  correct?: boolean | undefined;
  concurrency?: string | undefined;
}

/**
 * `koto bench accuracy DIR [--providers a,b] [--json] [--no-correct] [-j N]`: WER (CER for CJK)
 * and latency per file × ASR provider × mode (raw, corrected), then corpus totals. Audio without
 * a `.txt` reference is skipped with a warning; no measurable audio at all is
 * `KOTO_ERR_CORPUS_EMPTY` (exit 2). Exit 1 when any transcription failed.
 */
export async function benchAccuracyCommand(ctx: CliContext, dir: string, flags: BenchFlags): Promise<number> {
  try {
    const concurrency = positiveInt(flags.concurrency, 4, '--concurrency');
    const corpus = await scanCorpus(dir);
    for (const name of corpus.missing) warn(`${name}: no reference transcript (${name.replace(/\.[^./]+$/, '')}.txt); skipped`, ctx);

    const kernel = await ctx.kernel();
    const { resolved } = kernel.config;
    const providers = flags.providers
      ? [
          ...new Set(
            flags.providers
              .split(',')
              .map((p) => p.trim())
              .filter(Boolean),
          ),
        ]
      : resolved.asrProvider
        ? [resolved.asrProvider]
        : [];
    if (providers.length === 0) {
      throw flags.providers !== undefined
        ? usageError('--providers names no provider')
        : kotoError('KOTO_ERR_NO_PROVIDER', { capability: 'asr' });
    }
    const plugins = new Map(kernel.plugins().map((p) => [p.name, p]));
    for (const name of providers) {
      const ref = resolved.providers[name];
      if (!ref) {
        throw kotoError('KOTO_ERR_PROVIDER_UNKNOWN', {
          section: '--providers',
          provider: name,
          known: Object.keys(resolved.providers).join(', ') || 'none',
        });
      }
      if (!plugins.get(ref.use)?.capabilities.includes('asr')) {
        throw kotoError('KOTO_ERR_PROVIDER_UNSERVED', { capability: 'asr', provider: name, use: ref.use });
      }
    }
    let correct = flags.correct !== false;
    if (correct && (!kernel.config.correction.enabled || !resolved.correctionProvider)) {
      warn(
        `no correction to measure (${kernel.config.correction.enabled ? 'no correction provider is configured' : 'correction.enabled is false'}): raw transcripts only`,
        ctx,
      );
      correct = false;
    }
    const modes: BenchMode[] = correct ? ['raw', 'corrected'] : ['raw'];

    const jobs: BenchJob[] = corpus.items.flatMap((item) => providers.map((provider) => ({ item, provider })));
    const printer = flags.json
      ? new OrderedPrinter<BenchRow[]>(async (rows) => {
          for (const row of rows) await printLine(JSON.stringify(row));
        })
      : undefined;
    const results = await runBatch(
      jobs.map((j) => `${j.item.name} (${j.provider})`),
      concurrency,
      async (label, index) => {
        const rows = await benchFile(kernel, jobs[index] as BenchJob, { correct, warn: (message) => warn(message, ctx) });
        const failure = rows.find((r) => r.error)?.error;
        if (failure) printErr(`koto: ${ctx.scrub(`${label}: ${failure.message}. Fix: ${failure.fix}. (${failure.code})`)}`);
        await printer?.add(index, rows);
        return rows;
      },
    );
    const rows = results.flat();
    const summary = summarize(corpus, providers, modes, rows);
    if (flags.json) await printLine(JSON.stringify(summary));
    else await printLine(formatTable(rows, summary));
    return rows.some((r) => r.error) ? 1 : 0;
  } catch (err) {
    return reportError(err, ctx);
  }
}

// ---------------------------------------------------------------------------
// koto rewrite --template NAME [ID | TEXT | -]
// ---------------------------------------------------------------------------

export interface RewriteFlags {
  template?: string | undefined;
  json?: boolean | undefined;
}

type RewriteSource = { kind: 'text'; text: string } | { kind: 'id'; id: string } | { kind: 'last' };

function openHistory(): HistoryStore | undefined {
  const file = kotoPaths(process.env).history;
  return existsSync(file) ? new HistoryStore(file) : undefined;
}

/** No argument: the last result; `-`: stdin; one argument that is a history id: that session; else the text. */
async function rewriteSource(words: readonly string[]): Promise<RewriteSource> {
  if (words.length === 0) return { kind: 'last' };
  if (words.length === 1 && words[0] === '-') return { kind: 'text', text: (await readStdin()).toString('utf8') };
  const only = words.length === 1 ? (words[0] as string).trim() : undefined;
  if (only) {
    const store = openHistory();
    try {
      if (store?.get(only)) return { kind: 'id', id: only };
    } finally {
      store?.close();
    }
    // Looks like a session id but is not one: rewriting the id itself would be nonsense.
    if (SESSION_ID.test(only)) throw kotoError('KOTO_ERR_HISTORY_NOT_FOUND', { id: only });
  }
  return { kind: 'text', text: words.join(' ') };
}

/** A daemon's socket when one answers (and the command did not ask for another config). */
async function daemonSocket(ctx: CliContext): Promise<string | undefined> {
  if (ctx.options.daemon === false || ctx.options.config) return undefined;
  const socket = kotoPaths(process.env).socket;
  // An unsafe runtime folder (another user's, issue #17) is never used: say so, work standalone.
  return (await daemonAnswers(socket, DAEMON_PING_MS, (err) => warn(`not using the daemon: ${err.toLine()}`, ctx))) ? socket : undefined;
}

function isUnknownDaemonCommand(err: unknown): boolean {
  return KotoError.is(err) && err.code === 'KOTO_ERR_USAGE' && /unknown daemon command/.test(err.message);
}

/**
 * `koto rewrite --template NAME [ID | TEXT | -]`: applies a rewrite template to a history session,
 * the last result (no argument), the given text, or stdin; prints the result (never types it).
 * Goes through a running daemon (warm connection; it knows a dictation that is still finishing),
 * else standalone. Unknown template: exit 3. A failed LLM call: exit 1, nothing on stdout.
 */
export async function rewriteCommand(ctx: CliContext, words: string[], flags: RewriteFlags): Promise<number> {
  try {
    const template = flags.template?.trim();
    if (!template) throw usageError('--template NAME is required (a key of `rewrite.templates`)');
    const source = await rewriteSource(words);
    let result: RewriteResult | undefined;
    const socket = await daemonSocket(ctx);
    if (socket) {
      const args = { template, ...(source.kind === 'text' ? { text: source.text } : source.kind === 'id' ? { id: source.id } : {}) };
      try {
        result = (await sendCommand(socket, 'rewrite', args, 600_000)) as RewriteResult;
      } catch (err) {
        // A daemon from before `rewrite` existed: do it here instead.
        if (!isUnknownDaemonCommand(err)) throw err;
      }
    }
    if (!result) {
      const kernel = await ctx.kernel();
      if (source.kind === 'text') {
        result = await rewriteText(kernel, template, source.text);
      } else {
        const store = openHistory();
        if (!store && source.kind === 'last') throw qualityError('KOTO_ERR_NO_LAST_RESULT');
        let input: { id: string; text: string };
        try {
          input = historyText(store!, source.kind === 'id' ? source.id : undefined);
        } finally {
          store?.close();
        }
        result = await rewriteText(kernel, template, input.text, { id: input.id });
      }
    }
    await printLine(flags.json ? JSON.stringify(result) : result.text);
    return 0;
  } catch (err) {
    return reportError(err, ctx);
  }
}

// ---------------------------------------------------------------------------
// koto dict suggest / koto dict add
// ---------------------------------------------------------------------------

export interface DictSuggestFlags {
  minSessions?: string | undefined;
  json?: boolean | undefined;
}

function shellWord(term: string): string {
  return /^[\p{L}\p{N}._+@%/:=-]+$/u.test(term) ? term : `'${term.replace(/'/g, `'\\''`)}'`;
}

/**
 * `koto dict suggest [--min-sessions N] [--json]`: terms the correction keeps fixing, across the
 * history, that the dictionary lacks. A table (TERM, SESSIONS, COUNT, EXAMPLE) or NDJSON, one
 * candidate per line; nothing is ever added (`koto dict add` does that, after asking).
 */
export async function dictSuggestCommand(ctx: CliContext, flags: DictSuggestFlags): Promise<number> {
  try {
    const minSessions = positiveInt(flags.minSessions, 2, '--min-sessions');
    const location = await dictionaryLocation({ configPath: ctx.options.config });
    const known = readDictionary(location.file);
    const store = openHistory();
    let entries;
    try {
      entries = store ? store.list(1_000_000) : [];
    } finally {
      store?.close();
    }
    const suggestions = suggestTerms(entries, { minSessions, known });
    if (flags.json) {
      for (const s of suggestions) await printLine(JSON.stringify(s));
    } else if (suggestions.length > 0) {
      const rows = [
        ['TERM', 'SESSIONS', 'COUNT', 'EXAMPLE'],
        ...suggestions.map((s) => [s.term, String(s.sessions), String(s.count), `${s.example.raw} → ${s.example.corrected}`]),
      ];
      const widths = [0, 1, 2].map((c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
      for (const r of rows) {
        await printLine(
          [
            (r[0] ?? '').padEnd(widths[0] ?? 0),
            (r[1] ?? '').padStart(widths[1] ?? 0),
            (r[2] ?? '').padStart(widths[2] ?? 0),
            r[3] ?? '',
          ].join('  '),
        );
      }
    }
    if (suggestions.length === 0) {
      process.stderr.write(
        `koto: no dictionary candidates: no new term was corrected in ${minSessions} or more sessions (of ${entries.length} in the history)\n`,
      );
    } else if (!flags.json) {
      printErr(`koto: add the ones you want with: koto dict add ${suggestions.map((s) => shellWord(s.term)).join(' ')}`);
    }
    return 0;
  } catch (err) {
    return reportError(err, ctx);
  }
}

export interface DictAddFlags {
  /** Add without asking (needed when there is no terminal). */
  yes?: boolean | undefined;
}

/** How `koto dict add` asks for confirmation. */
export interface ConfirmPrompt {
  /** Whether a person can answer (stdin and stderr are terminals). */
  readonly interactive: boolean;
  /** Asks a question and resolves with the answer. */
  ask(question: string): Promise<string>;
}

/** The terminal: the question on stderr (stdout carries results only), the answer from stdin. */
export function terminalPrompt(): ConfirmPrompt {
  return {
    interactive: process.stdin.isTTY === true && process.stderr.isTTY === true,
    async ask(question) {
      const rl = createInterface({ input: process.stdin, output: process.stderr });
      try {
        return await rl.question(question);
      } finally {
        rl.close();
      }
    },
  };
}

/**
 * `koto dict add TERM... [--yes]`: appends terms to the configured dictionary file, after the user
 * confirms (y/N on a terminal; `--yes` otherwise). Terms already there are left out; comments and
 * lines already in the file are kept as they are; the file is created when `dictionary` is
 * configured but does not exist yet. No `dictionary` in the config: exit 3, saying how to set one.
 * Declined: exit 1, nothing written.
 */
export async function dictAddCommand(
  ctx: CliContext,
  terms: string[],
  flags: DictAddFlags,
  prompt: ConfirmPrompt = terminalPrompt(),
): Promise<number> {
  try {
    const wanted = cleanTerms(terms);
    const location = await dictionaryLocation({ configPath: ctx.options.config });
    if (!location.file) {
      throw qualityError('KOTO_ERR_NO_DICTIONARY', {
        where: location.configFile ? ` in ${location.configFile}` : ' (no config file was found)',
        config: location.configFile ?? kotoPaths(process.env).userConfig,
      });
    }
    const plan = await planAdd(location.file, wanted);
    if (plan.present.length) printErr(`koto: already in the dictionary: ${plan.present.join(', ')}`);
    if (plan.add.length === 0) {
      await printLine(`nothing to add: ${location.file} has every term`);
      return 0;
    }
    if (!flags.yes) {
      if (!prompt.interactive) throw qualityError('KOTO_ERR_CONFIRM_REQUIRED', { what: location.file });
      const answer = await prompt.ask(
        `Add ${plan.add.length} term${plan.add.length === 1 ? '' : 's'} to ${location.file}: ${plan.add.join(', ')}? [y/N] `,
      );
      if (!/^\s*y(es)?\s*$/i.test(answer)) {
        printErr('koto: nothing added');
        return 1;
      }
    }
    await appendTerms(location.file, plan.add);
    await printLine(`added ${plan.add.length} term${plan.add.length === 1 ? '' : 's'} to ${location.file}: ${plan.add.join(', ')}`);
    return 0;
  } catch (err) {
    return reportError(err, ctx);
  }
}
