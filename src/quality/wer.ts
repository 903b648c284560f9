/**
 * Word and character error rates, with the alignment behind them.
 *
 * - WER (space-separated languages): the text is normalised (NFKC, lower case, punctuation and
 *   symbols removed, apostrophes inside words dropped so "don't" = "dont", whitespace collapsed)
 *   and split on spaces.
 * - CER (Chinese, Japanese, Korean): every ideograph, kana and hangul syllable is one token;
 *   runs of other letters or digits inside such text ("我用Kubernetes部署") stay one token each, as
 *   common CJK scoring tools do. Whitespace does not count.
 * - `auto` (the default) picks CER when CJK characters make up at least half of the reference's
 *   tokens, else WER — per reference, so one corpus can mix languages.
 *
 * rate = (substitutions + deletions + insertions) / reference tokens, from a Levenshtein
 * alignment with backtrace. An empty reference has rate 0 when the hypothesis is empty too, and 1
 * otherwise (everything said is an insertion). Corpus totals are sums of counts: total edits /
 * total reference tokens, never a mean of per-file rates.
 */

export type Metric = 'wer' | 'cer';

export type AlignOpType = 'equal' | 'substitution' | 'deletion' | 'insertion';

/** One step of an alignment. `ref` / `hyp` are token indexes, -1 where that side has none. */
export interface AlignOp {
  readonly type: AlignOpType;
  readonly ref: number;
  readonly hyp: number;
}

export interface ErrorCounts {
  readonly substitutions: number;
  readonly deletions: number;
  readonly insertions: number;
  /** Tokens that matched. */
  readonly hits: number;
  readonly referenceTokens: number;
  readonly hypothesisTokens: number;
}

export interface ErrorRate extends ErrorCounts {
  readonly metric: Metric;
  /** substitutions + deletions + insertions */
  readonly edits: number;
  /** edits / referenceTokens (see the module comment for an empty reference). */
  readonly rate: number;
}

export interface ErrorRateDetail extends ErrorRate {
  readonly reference: readonly string[];
  readonly hypothesis: readonly string[];
  readonly alignment: readonly AlignOp[];
}

const CJK_CHAR = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}\u30fc\uff70]/u;
const CJK_SPLIT = /([\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}\u30fc\uff70])/u;

export function isCjkChar(char: string): boolean {
  return CJK_CHAR.test(char);
}

/** NFKC, lower case, punctuation and symbols removed, whitespace collapsed. */
export function normalizeText(text: string): string {
  return text
    .normalize('NFKC')
    .toLowerCase()
    .replace(/(?<=\p{L})['’ʼ](?=\p{L})/gu, '')
    .replace(/[\p{P}\p{S}]+/gu, ' ')
    .replace(/\s+/gu, ' ')
    .trim();
}

/** Tokens of already normalised text for a metric. */
function tokensOf(normalized: string, metric: Metric): string[] {
  if (normalized === '') return [];
  if (metric === 'wer') return normalized.split(' ');
  const out: string[] = [];
  for (const word of normalized.split(' ')) {
    for (const piece of word.split(CJK_SPLIT)) if (piece) out.push(piece);
  }
  return out;
}

/** Normalises and splits a text into the tokens a metric counts. */
export function tokenize(text: string, metric: Metric): string[] {
  return tokensOf(normalizeText(text), metric);
}

/** CER when CJK characters are at least half of the reference's tokens, else WER. */
export function detectMetric(reference: string): Metric {
  const tokens = tokensOf(normalizeText(reference), 'cer');
  const cjk = tokens.filter((t) => t.length === 1 && isCjkChar(t)).length;
  return cjk > 0 && cjk * 2 >= tokens.length ? 'cer' : 'wer';
}

// Backtrace directions.
const DIAG = 0;
const UP = 1; // deletion: a reference token with no hypothesis token
const LEFT = 2; // insertion: a hypothesis token with no reference token

/**
 * Minimal edit alignment of two token lists (Levenshtein, unit costs) with its backtrace.
 * Ties prefer a match or substitution, then a deletion, then an insertion. Memory is one byte per
 * cell for the backtrace plus two rows of costs.
 */
export function align<T>(ref: readonly T[], hyp: readonly T[], equals: (a: T, b: T) => boolean = Object.is): AlignOp[] {
  const n = ref.length;
  const m = hyp.length;
  const width = m + 1;
  const dir = new Uint8Array((n + 1) * width);
  let prev = new Uint32Array(width);
  let cur = new Uint32Array(width);
  for (let j = 0; j <= m; j++) {
    prev[j] = j;
    dir[j] = LEFT;
  }
  for (let i = 1; i <= n; i++) {
    cur[0] = i;
    dir[i * width] = UP;
    const r = ref[i - 1] as T;
    for (let j = 1; j <= m; j++) {
      const diag = (prev[j - 1] as number) + (equals(r, hyp[j - 1] as T) ? 0 : 1);
      const up = (prev[j] as number) + 1;
      const left = (cur[j - 1] as number) + 1;
      let best = diag;
      let d = DIAG;
      if (up < best) {
        best = up;
        d = UP;
      }
      if (left < best) {
        best = left;
        d = LEFT;
      }
      cur[j] = best;
      dir[i * width + j] = d;
    }
    [prev, cur] = [cur, prev];
  }
  const ops: AlignOp[] = [];
  let i = n;
  let j = m;
  while (i > 0 || j > 0) {
    const d = i === 0 ? LEFT : j === 0 ? UP : (dir[i * width + j] as number);
    if (d === DIAG) {
      ops.push({ type: equals(ref[i - 1] as T, hyp[j - 1] as T) ? 'equal' : 'substitution', ref: i - 1, hyp: j - 1 });
      i -= 1;
      j -= 1;
    } else if (d === UP) {
      ops.push({ type: 'deletion', ref: i - 1, hyp: -1 });
      i -= 1;
    } else {
      ops.push({ type: 'insertion', ref: -1, hyp: j - 1 });
      j -= 1;
    }
  }
  return ops.reverse();
}

/** Counts of an alignment. */
export function countOps(ops: readonly AlignOp[], referenceTokens: number, hypothesisTokens: number): ErrorCounts {
  let substitutions = 0;
  let deletions = 0;
  let insertions = 0;
  let hits = 0;
  for (const op of ops) {
    if (op.type === 'equal') hits += 1;
    else if (op.type === 'substitution') substitutions += 1;
    else if (op.type === 'deletion') deletions += 1;
    else insertions += 1;
  }
  return { substitutions, deletions, insertions, hits, referenceTokens, hypothesisTokens };
}

/** rate of counts; see the module comment for an empty reference. */
export function rateOf(counts: ErrorCounts): number {
  const edits = counts.substitutions + counts.deletions + counts.insertions;
  if (counts.referenceTokens === 0) return edits === 0 ? 0 : 1;
  return edits / counts.referenceTokens;
}

/** WER or CER of a hypothesis against a reference, with the tokens and alignment. */
export function errorRate(reference: string, hypothesis: string, metric: Metric | 'auto' = 'auto'): ErrorRateDetail {
  const chosen = metric === 'auto' ? detectMetric(reference) : metric;
  const ref = tokenize(reference, chosen);
  const hyp = tokenize(hypothesis, chosen);
  const alignment = align(ref, hyp);
  const counts = countOps(alignment, ref.length, hyp.length);
  return {
    metric: chosen,
    ...counts,
    edits: counts.substitutions + counts.deletions + counts.insertions,
    rate: rateOf(counts),
    reference: ref,
    hypothesis: hyp,
    alignment,
  };
}

/** Corpus-level totals: summed counts, rate = total edits / total reference tokens. */
export function sumCounts(metric: Metric, items: readonly ErrorCounts[]): ErrorRate {
  const total = { substitutions: 0, deletions: 0, insertions: 0, hits: 0, referenceTokens: 0, hypothesisTokens: 0 };
  for (const c of items) {
    total.substitutions += c.substitutions;
    total.deletions += c.deletions;
    total.insertions += c.insertions;
    total.hits += c.hits;
    total.referenceTokens += c.referenceTokens;
    total.hypothesisTokens += c.hypothesisTokens;
  }
  return { metric, ...total, edits: total.substitutions + total.deletions + total.insertions, rate: rateOf(total) };
}
