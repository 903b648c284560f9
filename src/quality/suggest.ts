import type { HistoryEntry } from '../history/store.ts';
import { align, normalizeText } from './wer.ts';

/**
 * Dictionary suggestions mined from the history: where the correction step changed what the
 * recogniser heard into something that looks like a name or a technical term ("get hub" →
 * "GitHub", "cube control" → "kubectl"), again and again across sessions, that term is worth a
 * dictionary entry — the recogniser (and the corrector) then get it right the first time.
 *
 * Per session: the raw and corrected texts are split into words, aligned on their normalised
 * forms (the WER alignment), and the changed stretches collected: replacements (one or more raw
 * words → one or more corrected words) and case-only changes ("new relic" → "New Relic"), each
 * kind grouped on its own so a capitalised sentence start never merges into a neighbouring
 * replacement. A corrected stretch is a candidate when, after trimming ordinary words at its
 * edges, it has words that look like a term (ordinary words may stay inside: "Ministry of Defence"):
 * - letters with digits (`k8s`, `GPT-4o`), an inner capital (`GitHub`, `iOS`), an acronym
 *   (`AWS`), a dot or underscore inside (`node.js`, `snake_case`), or
 * - a capital letter mid-sentence (`Grafana`), but not at the start of a sentence, or
 * - one lower-case word that replaced several heard words (`cube control` → `kubectl`), unless it
 *   is only those words run together (`every one` → `everyone`),
 * where words in a small stop-list of common words (`I`, `OK`, weekdays, months…) never count.
 * Pure insertions and deletions (fillers removed, words added) are not candidates.
 */

/** Common words that are capitalised or short without being terms. */
export const STOP_WORDS: ReadonlySet<string> = new Set(
  (
    "i i'm i've i'll i'd im ive ill id ok okay yes no hi hello hey thanks thank please so and but or nor " +
    'the a an of to in on at for with from by as is are was be it its this that these those we you he she they them ' +
    'my our your his her their me us him mr mrs ms dr st ' +
    'monday tuesday wednesday thursday friday saturday sunday ' +
    'january february march april may june july august september october november december'
  ).split(' '),
);

export interface WordToken {
  /** The word as written (with its punctuation). */
  readonly surface: string;
  /** Without leading and trailing punctuation. */
  readonly core: string;
  /** What alignment compares: normalised (lower case, no punctuation). */
  readonly norm: string;
  /** First word of a sentence. */
  readonly sentenceStart: boolean;
}

const EDGE = /^[^\p{L}\p{N}]+|[^\p{L}\p{N}]+$/gu;
const SENTENCE_END = /[.!?…。！？:]["'”’)\]»]*$/u;

export function wordTokens(text: string): WordToken[] {
  const surfaces = text.split(/\s+/u).filter(Boolean);
  const out: WordToken[] = [];
  surfaces.forEach((surface, i) => {
    const core = surface.replace(EDGE, '');
    const norm = normalizeText(core);
    if (!norm) return;
    const prev = surfaces[i - 1];
    out.push({ surface, core, norm, sentenceStart: prev === undefined || SENTENCE_END.test(prev) });
  });
  return out;
}

/** A word that looks like a name or a technical term where it stands. */
export function looksLikeTerm(word: Pick<WordToken, 'core' | 'sentenceStart'>): boolean {
  const { core } = word;
  if (!/\p{L}/u.test(core)) return false;
  if (STOP_WORDS.has(core.toLowerCase())) return false;
  if (/\p{N}/u.test(core)) return true;
  if (/\p{Ll}\p{Lu}/u.test(core)) return true;
  if (/^\p{Lu}{2,}/u.test(core)) return true;
  if (/\p{L}[._]\p{L}/u.test(core)) return true;
  return /^\p{Lu}/u.test(core) && !word.sentenceStart;
}

export interface CorrectionSpan {
  readonly kind: 'replace' | 'case';
  readonly raw: readonly WordToken[];
  readonly corrected: readonly WordToken[];
}

/** The stretches the correction changed, from the word alignment of raw and corrected text. */
export function correctionSpans(raw: string, corrected: string): CorrectionSpan[] {
  const a = wordTokens(raw);
  const b = wordTokens(corrected);
  const ops = align(
    a.map((t) => t.norm),
    b.map((t) => t.norm),
  );
  const spans: CorrectionSpan[] = [];
  let current: { kind: 'replace' | 'case'; raw: WordToken[]; corrected: WordToken[] } | undefined;
  const close = () => {
    if (current) spans.push(current);
    current = undefined;
  };
  for (const op of ops) {
    let kind: 'replace' | 'case' | undefined;
    if (op.type === 'equal') kind = a[op.ref]?.core === b[op.hyp]?.core ? undefined : 'case';
    else kind = 'replace';
    if (!kind) {
      close();
      continue;
    }
    if (current?.kind !== kind) {
      close();
      current = { kind, raw: [], corrected: [] };
    }
    if (op.ref >= 0) current.raw.push(a[op.ref] as WordToken);
    if (op.hyp >= 0) current.corrected.push(b[op.hyp] as WordToken);
  }
  close();
  return spans;
}

/** The term a span suggests, if any: edge words that are not term-like trimmed off. */
export function spanTerm(span: CorrectionSpan, maxWords = 4): string | undefined {
  if (span.raw.length === 0 || span.corrected.length === 0) return undefined;
  const words = [...span.corrected];
  while (words.length && !looksLikeTerm(words[0] as WordToken)) words.shift();
  while (words.length && !looksLikeTerm(words.at(-1) as WordToken)) words.pop();
  if (words.length === 0) {
    const merged = mergedWord(span);
    return merged === undefined ? undefined : merged;
  }
  if (words.length > maxWords) return undefined;
  const term = words.map((w) => w.core).join(' ');
  // The correction only has to matter: a term the recogniser already wrote the same way is no news.
  const heard = span.raw.map((w) => w.core).join(' ');
  return heard === term ? undefined : term;
}

/**
 * A lower-case term the recogniser could only hear as several ordinary words: one corrected word
 * replacing two or more heard ones (`cube control` → `kubectl`, `engine x` → `nginx`), unless it
 * is just those words run together (`every one` → `everyone`).
 */
function mergedWord(span: CorrectionSpan): string | undefined {
  if (span.kind !== 'replace' || span.raw.length < 2 || span.corrected.length !== 1) return undefined;
  const word = span.corrected[0] as WordToken;
  if (word.core.length < 3 || !/\p{L}/u.test(word.core) || STOP_WORDS.has(word.core.toLowerCase())) return undefined;
  const joined = span.raw.map((w) => w.norm).join('');
  return word.norm.replace(/ /g, '') === joined ? undefined : word.core;
}

export interface Suggestion {
  readonly term: string;
  /** Distinct sessions it was corrected in (a retry counts with the session it re-ran). */
  readonly sessions: number;
  /** Times it was corrected in all. */
  readonly count: number;
  /** The most recent correction: what was heard → what was written. */
  readonly example: { readonly raw: string; readonly corrected: string; readonly id: string };
  /** What the recogniser wrote instead, most frequent first. */
  readonly heard: readonly { readonly raw: string; readonly count: number }[];
}

export interface SuggestOptions {
  /** Only terms corrected in at least this many sessions (default 2). */
  readonly minSessions?: number;
  /** Terms already in the dictionary (compared case-insensitively): never suggested. */
  readonly known?: readonly string[];
}

type HistoryLike = Pick<HistoryEntry, 'id' | 'raw' | 'text' | 'fallback' | 'retryOf'>;

/** Mines the history (newest first, as `HistoryStore.list` returns it) for dictionary candidates. */
export function suggestTerms(entries: readonly HistoryLike[], options: SuggestOptions = {}): Suggestion[] {
  const minSessions = options.minSessions ?? 2;
  const known = new Set((options.known ?? []).map((t) => t.toLowerCase()));
  const byTerm = new Map<string, { sessions: Set<string>; count: number; example: Suggestion['example']; heard: Map<string, number> }>();
  for (const entry of entries) {
    if (!entry.raw || !entry.text || entry.fallback || entry.raw === entry.text) continue;
    const session = entry.retryOf ?? entry.id;
    for (const span of correctionSpans(entry.raw, entry.text)) {
      const term = spanTerm(span);
      if (!term || known.has(term.toLowerCase())) continue;
      const raw = span.raw.map((w) => w.core).join(' ');
      let stat = byTerm.get(term);
      if (!stat) {
        stat = {
          sessions: new Set(),
          count: 0,
          example: { raw, corrected: span.corrected.map((w) => w.core).join(' '), id: entry.id },
          heard: new Map(),
        };
        byTerm.set(term, stat);
      }
      stat.sessions.add(session);
      stat.count += 1;
      stat.heard.set(raw, (stat.heard.get(raw) ?? 0) + 1);
    }
  }
  return [...byTerm.entries()]
    .filter(([, s]) => s.sessions.size >= minSessions)
    .map(([term, s]) => ({
      term,
      sessions: s.sessions.size,
      count: s.count,
      example: s.example,
      heard: [...s.heard.entries()].sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : 1)).map(([raw, count]) => ({ raw, count })),
    }))
    .sort((x, y) => y.sessions - x.sessions || y.count - x.count || (x.term.toLowerCase() < y.term.toLowerCase() ? -1 : 1));
}
