import { describe, expect, it } from 'vitest';
import { align, detectMetric, errorRate, normalizeText, sumCounts, tokenize } from '../../src/quality/wer.ts';

const counts = (r: ReturnType<typeof errorRate>) => ({
  S: r.substitutions,
  D: r.deletions,
  I: r.insertions,
  N: r.referenceTokens,
  hits: r.hits,
});

describe('WER (space-separated languages)', () => {
  it('is 0 for identical text', () => {
    const r = errorRate('the cat sat on the mat', 'the cat sat on the mat');
    expect(r).toMatchObject({ metric: 'wer', rate: 0, edits: 0, hits: 6, referenceTokens: 6, hypothesisTokens: 6 });
  });

  it('counts a substitution', () => {
    const r = errorRate('the cat sat on the mat', 'the cat sat on the hat');
    expect(counts(r)).toEqual({ S: 1, D: 0, I: 0, N: 6, hits: 5 });
    expect(r.rate).toBeCloseTo(1 / 6, 10);
  });

  it('counts a deletion', () => {
    const r = errorRate('the cat sat on the mat', 'the cat on the mat');
    expect(counts(r)).toEqual({ S: 0, D: 1, I: 0, N: 6, hits: 5 });
    expect(r.alignment.find((op) => op.type === 'deletion')).toEqual({ type: 'deletion', ref: 2, hyp: -1 });
  });

  it('counts an insertion', () => {
    const r = errorRate('the cat sat on the mat', 'the cat sat on the red mat');
    expect(counts(r)).toEqual({ S: 0, D: 0, I: 1, N: 6, hits: 6 });
    expect(r.alignment.find((op) => op.type === 'insertion')).toEqual({ type: 'insertion', ref: -1, hyp: 5 });
  });

  it('counts mixed edits and can exceed 100 %', () => {
    const mixed = errorRate('a b c d', 'a x c d e');
    expect(counts(mixed)).toEqual({ S: 1, D: 0, I: 1, N: 4, hits: 3 });
    expect(mixed.rate).toBe(0.5);
    const noisy = errorRate('yes', 'well yes I think so');
    expect(counts(noisy)).toEqual({ S: 0, D: 0, I: 4, N: 1, hits: 1 });
    expect(noisy.rate).toBe(4);
    const allWrong = errorRate('one two three', 'four five');
    expect(allWrong.edits).toBe(3);
    expect(allWrong.substitutions + allWrong.deletions).toBe(3);
  });

  it('normalises case, punctuation and whitespace before comparing', () => {
    expect(normalizeText('  Hello,   World!\tIt’s FINE… "really" (yes) ')).toBe('hello world its fine really yes');
    expect(tokenize("Well -- that's it.", 'wer')).toEqual(['well', 'thats', 'it']);
    const r = errorRate("Hello, World! It's fine.", 'hello world   its FINE');
    expect(r).toMatchObject({ rate: 0, hits: 4, referenceTokens: 4 });
    // Full-width forms are folded too (NFKC).
    expect(normalizeText('ＡＢＣ１２３！')).toBe('abc123');
  });

  it('handles an empty reference and an empty hypothesis', () => {
    expect(errorRate('', '')).toMatchObject({ rate: 0, edits: 0, referenceTokens: 0 });
    expect(errorRate('  ...  ', '')).toMatchObject({ rate: 0, referenceTokens: 0 });
    expect(counts(errorRate('', 'uh hello'))).toEqual({ S: 0, D: 0, I: 2, N: 0, hits: 0 });
    expect(errorRate('', 'uh hello').rate).toBe(1);
    const silent = errorRate('two words', '');
    expect(counts(silent)).toEqual({ S: 0, D: 2, I: 0, N: 2, hits: 0 });
    expect(silent.rate).toBe(1);
  });
});

describe('CER (Chinese, Japanese, Korean)', () => {
  it('makes every ideograph, kana and hangul syllable one token, ignoring spaces and punctuation', () => {
    expect(tokenize('今天天气很好。', 'cer')).toEqual(['今', '天', '天', '气', '很', '好']);
    expect(tokenize('ありがとう、ございます', 'cer')).toHaveLength(10);
    expect(tokenize('コーヒー', 'cer')).toEqual(['コ', 'ー', 'ヒ', 'ー']);
    expect(tokenize('안녕 하세요!', 'cer')).toEqual(['안', '녕', '하', '세', '요']);
    // Latin words inside CJK text stay whole, as CJK scoring tools count them.
    expect(tokenize('我用Kubernetes部署 v2', 'cer')).toEqual(['我', '用', 'kubernetes', '部', '署', 'v2']);
  });

  it('computes CER with substitutions, deletions and insertions', () => {
    const sub = errorRate('今天天气很好', '今天天汽很好');
    expect(sub.metric).toBe('cer');
    expect(counts(sub)).toEqual({ S: 1, D: 0, I: 0, N: 6, hits: 5 });
    expect(sub.rate).toBeCloseTo(1 / 6, 10);
    expect(counts(errorRate('今天天气很好', '今天气很好'))).toEqual({ S: 0, D: 1, I: 0, N: 6, hits: 5 });
    expect(counts(errorRate('東京に行きます', '東京に行きますね'))).toEqual({ S: 0, D: 0, I: 1, N: 7, hits: 7 });
    expect(errorRate('今天天气很好。', '今天 天气 很好')).toMatchObject({ rate: 0 });
    expect(errorRate('감사합니다', '감사함니다')).toMatchObject({ metric: 'cer', substitutions: 1, referenceTokens: 5 });
  });

  it('detects the metric per reference', () => {
    expect(detectMetric('The quick brown fox')).toBe('wer');
    expect(detectMetric('今天天气很好')).toBe('cer');
    expect(detectMetric('我用Kubernetes部署')).toBe('cer');
    expect(detectMetric('I visited 東京 last year')).toBe('wer');
    expect(detectMetric('')).toBe('wer');
    // Forcing a metric overrides detection.
    expect(errorRate('今天 天气', '今天 天汽', 'wer')).toMatchObject({ metric: 'wer', substitutions: 1, referenceTokens: 2 });
  });
});

describe('alignment and totals', () => {
  it('returns the backtrace in order', () => {
    expect(align(['a', 'b', 'c'], ['a', 'x', 'c', 'd'])).toEqual([
      { type: 'equal', ref: 0, hyp: 0 },
      { type: 'substitution', ref: 1, hyp: 1 },
      { type: 'equal', ref: 2, hyp: 2 },
      { type: 'insertion', ref: -1, hyp: 3 },
    ]);
    expect(align([], ['x'])).toEqual([{ type: 'insertion', ref: -1, hyp: 0 }]);
    expect(align(['x'], [])).toEqual([{ type: 'deletion', ref: 0, hyp: -1 }]);
    expect(align([], [])).toEqual([]);
  });

  it('takes a custom equality', () => {
    const ops = align(['Hello', 'World'], ['hello', 'world'], (a, b) => a.toLowerCase() === b.toLowerCase());
    expect(ops.every((op) => op.type === 'equal')).toBe(true);
  });

  it('is minimal on longer texts', () => {
    const words = Array.from({ length: 1500 }, (_, i) => `w${i % 97}`);
    const hyp = [...words];
    hyp.splice(700, 3);
    hyp[10] = 'zzz';
    hyp.push('extra');
    const r = errorRate(words.join(' '), hyp.join(' '));
    expect(counts(r)).toEqual({ S: 1, D: 3, I: 1, N: 1500, hits: 1496 });
  });

  it('sums corpus totals as total edits over total reference tokens', () => {
    const a = errorRate('the quick brown fox jumps over the lazy dog', 'the quick brown fox jumped over the dog');
    const b = errorRate('hello world', 'hello there world');
    const total = sumCounts('wer', [a, b]);
    expect(total).toMatchObject({ substitutions: 1, deletions: 1, insertions: 1, referenceTokens: 11, edits: 3 });
    expect(total.rate).toBeCloseTo(3 / 11, 10);
    // Not the mean of per-file rates.
    expect(total.rate).not.toBeCloseTo((a.rate + b.rate) / 2, 3);
  });
});
