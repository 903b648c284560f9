/**
 * Rule-based transcript clean-up, no network: dictionary spelling and casing, spoken
 * punctuation, filler removal, sentence capitals and final punctuation. Order:
 * dictionary → spoken punctuation → fillers → spacing → capitals → final mark.
 * Text that already has punctuation and capitals (a cloud transcript) keeps them.
 */

import type { CorrectionOptions } from './options.ts';

type Attach = 'open' | 'close' | 'newline' | 'word';

interface Token {
  text: string;
  kind: 'word' | 'mark' | 'newline' | 'other';
  /** Whitespace before it (from the source, or decided when it was made). */
  space: boolean;
  /** Made from spoken words. */
  spoken?: boolean;
  attach?: Attach;
  /** A filler was removed just before it. */
  afterRemoval?: boolean;
}

export interface SpokenMark {
  readonly words: readonly string[];
  readonly symbol: string;
  readonly attach: Attach;
}

/** Built-in spoken punctuation: phrase → mark. */
export const SPOKEN_PUNCTUATION: Readonly<Record<string, string>> = {
  comma: ',',
  period: '.',
  'full stop': '.',
  'question mark': '?',
  'exclamation mark': '!',
  'exclamation point': '!',
  colon: ':',
  semicolon: ';',
  'semi colon': ';',
  ellipsis: '…',
  'dot dot dot': '…',
  'new line': '\n',
  newline: '\n',
  'next line': '\n',
  'new paragraph': '\n\n',
  'next paragraph': '\n\n',
  'open parenthesis': '(',
  'open paren': '(',
  'close parenthesis': ')',
  'close paren': ')',
  'open bracket': '[',
  'close bracket': ']',
  'open quote': '"',
  'begin quote': '"',
  'close quote': '"',
  'end quote': '"',
  unquote: '"',
};

/** A spoken form right after one of these is a noun ("a period of", "the colon"), kept as a word. */
const DETERMINERS = new Set(
  'a an the this that these those each every per one another any no which what whose my your his her its our their'.split(' '),
);
/** "literal comma" → "comma". */
const LITERAL = 'literal';

const TERMINAL = new Set(['.', '?', '!', '…']);
const CLOSERS = new Set([',', '.', '?', '!', ':', ';', '…', ')', ']', '}', '”', '’', '%']);
const OPENERS = new Set(['(', '[', '{', '“', '‘', '¿', '¡']);

function attachOf(symbol: string, phrase: string): Attach {
  if (/^\n+$/.test(symbol)) return 'newline';
  if (OPENERS.has(symbol) || /^(open|begin|start|left)\b/.test(phrase)) return 'open';
  if ([...symbol].every((c) => CLOSERS.has(c)) || /^(close|end|right)\b|^unquote$/.test(phrase)) return 'close';
  return 'word';
}

/** The spoken forms in effect: built-ins with the user's additions; "" removes one. */
export function spokenMarks(overrides: Readonly<Record<string, string>>): SpokenMark[] {
  const table = new Map<string, string>();
  for (const [phrase, symbol] of Object.entries({ ...SPOKEN_PUNCTUATION, ...overrides })) {
    const key = phrase.toLowerCase().trim().split(/\s+/).join(' ');
    if (symbol === '') table.delete(key);
    else table.set(key, symbol);
  }
  return [...table]
    .map(([phrase, symbol]) => ({ words: phrase.split(' '), symbol, attach: attachOf(symbol, phrase) }))
    .sort((a, b) => b.words.length - a.words.length);
}

const WORD = String.raw`[\p{L}\p{N}](?:[\p{L}\p{N}\p{M}]|['’.:/@&_+#-](?=[\p{L}\p{N}]))*[+#]*`;
const TOKEN = new RegExp(String.raw`(\n[\s]*)|(${WORD})|([,.?!:;…()\[\]{}“”‘’"'%¿¡])|(\S)`, 'gu');

export function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let last = 0;
  for (const m of text.matchAll(TOKEN)) {
    const gap = text.slice(last, m.index);
    last = m.index + m[0].length;
    const space = /\s/.test(gap);
    if (m[1] !== undefined) {
      const breaks = (m[1].match(/\n/g) ?? []).length;
      const prev = tokens.at(-1);
      if (prev?.kind === 'newline') prev.text += '\n'.repeat(breaks);
      else tokens.push({ text: '\n'.repeat(breaks), kind: 'newline', space: false, attach: 'newline' });
    } else if (m[2] !== undefined) tokens.push({ text: m[2], kind: 'word', space });
    else if (m[3] !== undefined) tokens.push({ text: m[3], kind: 'mark', space });
    else tokens.push({ text: m[4]!, kind: 'other', space });
  }
  return tokens;
}

const lower = (t: Token | undefined) => (t?.kind === 'word' ? t.text.toLowerCase() : undefined);

function matchWords(tokens: readonly Token[], at: number, words: readonly string[]): boolean {
  for (let k = 0; k < words.length; k++) if (lower(tokens[at + k]) !== words[k]) return false;
  return true;
}

function applySpokenPunctuation(tokens: Token[], marks: readonly SpokenMark[]): Token[] {
  const out: Token[] = [];
  let quotes = 0;
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    const mark = token.kind === 'word' ? marks.find((m) => matchWords(tokens, i, m.words)) : undefined;
    if (!mark) {
      if (token.kind === 'mark' && token.text === '"') quotes++;
      out.push(token);
      continue;
    }
    const prev = out.at(-1);
    if (lower(prev) === LITERAL) {
      out.pop();
      for (let k = 0; k < mark.words.length; k++) out.push({ ...tokens[i + k]!, space: k === 0 ? prev!.space : tokens[i + k]!.space });
      i += mark.words.length - 1;
      continue;
    }
    if (DETERMINERS.has(lower(prev) ?? '')) {
      out.push(token);
      continue;
    }
    let attach = mark.attach;
    if (mark.symbol === '"') attach = attach === 'word' ? (quotes % 2 === 0 ? 'open' : 'close') : attach;
    if (mark.symbol === '"') quotes++;
    out.push({ text: mark.symbol, kind: attach === 'newline' ? 'newline' : 'mark', space: token.space, spoken: true, attach });
    i += mark.words.length - 1;
  }
  return out;
}

function startsClause(t: Token | undefined): boolean {
  return (
    t === undefined ||
    t.kind === 'newline' ||
    (t.kind === 'mark' && (TERMINAL.has(t.text) || t.text === ',' || t.text === ';' || t.text === ':' || OPENERS.has(t.text)))
  );
}
function endsClause(t: Token | undefined): boolean {
  return (
    t === undefined ||
    t.kind === 'newline' ||
    (t.kind === 'mark' && (TERMINAL.has(t.text) || t.text === ',' || t.text === ';' || CLOSERS.has(t.text)))
  );
}

function removeFillers(
  tokens: Token[],
  words: readonly string[][],
  phrases: readonly string[][],
  protectedWords: ReadonlySet<string>,
): Token[] {
  const out: Token[] = [];
  let markNext = false;
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    let drop = 0;
    if (token.kind === 'word' && !protectedWords.has(token.text)) {
      drop = words.find((w) => matchWords(tokens, i, w))?.length ?? 0;
      if (!drop) {
        const phrase = phrases.find((p) => matchWords(tokens, i, p));
        if (phrase && startsClause(out.at(-1)) && endsClause(tokens[i + phrase.length])) drop = phrase.length;
      }
    }
    if (drop) {
      i += drop - 1;
      // The comma that set the filler off goes with it.
      if (tokens[i + 1]?.kind === 'mark' && tokens[i + 1]!.text === ',') i++;
      markNext = true;
      continue;
    }
    out.push(markNext ? { ...token, afterRemoval: true } : token);
    markNext = false;
  }
  return out;
}

/** Tidies marks next to spoken or removed words: no comma at a clause start, one final mark. */
function tidy(tokens: readonly Token[]): Token[] {
  const out: Token[] = [];
  for (const token of tokens) {
    const prev = out.at(-1);
    const touched = token.spoken || token.afterRemoval || prev?.spoken;
    if (token.kind === 'mark' && touched) {
      if (
        token.text === ',' &&
        (prev === undefined ||
          prev.kind === 'newline' ||
          (prev.kind === 'mark' && (TERMINAL.has(prev.text) || prev.text === ',' || OPENERS.has(prev.text))))
      )
        continue;
      if (TERMINAL.has(token.text) && prev?.kind === 'mark') {
        if (TERMINAL.has(prev.text)) continue;
        if (prev.text === ',' || prev.text === ';' || prev.text === ':') out.pop();
      }
    }
    if (token.kind === 'newline' && prev?.kind === 'mark' && prev.text === ',' && (token.spoken || prev.spoken)) out.pop();
    out.push(token);
  }
  return out;
}

/**
 * Joins the tokens into text. Built from parts, never by re-reading the text made so far (a
 * growing string searched per token is quadratic: 1 MB took minutes).
 */
function render(tokens: readonly Token[]): string {
  const parts: string[] = [];
  /** Nothing written yet, or the text written ends with a line break. */
  let lineStart = true;
  let prev: Token | undefined;
  for (const token of tokens) {
    if (token.kind === 'newline') {
      // No spaces or tabs before a line break: drop them from the end of what was written.
      while (parts.length) {
        const last = parts.at(-1)!;
        const kept = last.replace(/[ \t]+$/, '');
        if (kept.length === last.length) break;
        if (kept) {
          parts[parts.length - 1] = kept;
          break;
        }
        parts.pop();
      }
      if (token.text) {
        parts.push(token.text);
        lineStart = token.text.endsWith('\n');
      }
      prev = token;
      continue;
    }
    let space = token.space;
    if (lineStart) space = false;
    if (token.spoken && token.attach === 'close') space = false;
    if (prev?.spoken && prev.attach === 'open') space = false;
    if (prev?.spoken && prev.attach === 'close' && token.kind === 'word') space = true;
    const part = (space ? ' ' : '') + token.text;
    if (part) {
      parts.push(part);
      lineStart = part.endsWith('\n');
    }
    prev = token;
  }
  return parts.join('');
}

/** Spelling and casing of dictionary terms: one compiled matcher per dictionary. */
export interface DictionaryMatcher {
  readonly apply: (text: string) => string;
  /** Words of the terms exactly as written (fillers never remove them). */
  readonly words: ReadonlySet<string>;
  /** Terms that start with a small letter on purpose (iPhone, macOS): never capitalised. */
  readonly lowerStarts: readonly string[];
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const SEPARATOR = String.raw`[\s._-]*`;
const keyOf = (s: string) => s.toLowerCase().replace(/[\s._-]+/g, '');

/**
 * A term matches case-insensitively as whole words, with any spacing, dots, hyphens or
 * underscores between its parts ("node js", "nodejs" → "Node.js"; "visual studio code"), and a
 * space allowed where its casing changes inside a word ("java script" → "JavaScript").
 */
export function termPattern(term: string): string {
  let out = '';
  let chunk = '';
  let pendingSeparator = false;
  const chars = [...term];
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    if (/[\p{L}\p{N}]/u.test(ch)) {
      if (pendingSeparator) {
        out += SEPARATOR;
        pendingSeparator = false;
        chunk = '';
      } else {
        const before = chars[i - 1];
        const camel = before !== undefined && /\p{Ll}/u.test(before) && /\p{Lu}/u.test(ch) && chunk.length >= 2;
        const digitEdge =
          before !== undefined && /\p{L}/u.test(before) !== /\p{L}/u.test(ch) && /[\p{L}\p{N}]/u.test(before) && chunk.length >= 2;
        if (camel || digitEdge) {
          out += '[\\s-]?';
          chunk = '';
        }
      }
      out += escape(ch);
      chunk += ch;
    } else if (/[\s._-]/.test(ch)) {
      pendingSeparator = out.length > 0;
    } else {
      out += `\\s*${escape(ch)}`;
      pendingSeparator = false;
      chunk = '';
    }
  }
  return out;
}

const matchers = new Map<string, DictionaryMatcher>();

export function dictionaryMatcher(terms: readonly string[]): DictionaryMatcher {
  const cacheKey = terms.join('\n');
  const cached = matchers.get(cacheKey);
  if (cached) return cached;
  const byKey = new Map<string, string>();
  const patterns: string[] = [];
  for (const term of [...terms].sort((a, b) => b.length - a.length)) {
    const key = keyOf(term);
    if (!key || byKey.has(key)) continue;
    const pattern = termPattern(term);
    if (!pattern) continue;
    byKey.set(key, term);
    patterns.push(pattern);
  }
  const regex = patterns.length ? new RegExp(String.raw`(?<![\p{L}\p{N}])(?:${patterns.join('|')})(?![\p{L}\p{N}])`, 'giu') : undefined;
  const matcher: DictionaryMatcher = {
    apply: (text) => (regex ? text.replace(regex, (m) => byKey.get(keyOf(m)) ?? m) : text),
    words: new Set(terms.flatMap((t) => t.split(/\s+/))),
    lowerStarts: terms.filter((t) => /^\p{Ll}/u.test(t) && /\p{Lu}/u.test(t)),
  };
  if (matchers.size > 32) matchers.clear();
  matchers.set(cacheKey, matcher);
  return matcher;
}

const ABBREVIATIONS = new Set(['eg', 'ie', 'etc', 'vs', 'mr', 'mrs', 'ms', 'dr', 'prof', 'sr', 'jr', 'st', 'cf', 'approx', 'no']);

const OPENING = new Set(['"', '“', '‘', '(', '[']);
const SENTENCE_END = new Set(['.', '!', '?', '…']);
const CLOSING = new Set(['"', '”', '’', ')', ']']);
const isSpace = (ch: string | undefined) => ch !== undefined && /\s/.test(ch);
/** A small letter a sentence may start with: at the text's start, or after a run of whitespace, behind opening marks. */
const SENTENCE_START = /^["“‘([]*(?=\p{Ll})|(?<!\s)\s+["“‘([]*(?=\p{Ll})/gu;

/**
 * Where a sentence starts before the small letter at `letter`, whose opening marks start at
 * `opens` (preceded by whitespace from `space`): after `.`/`!`/`?`/`…` (and closing marks) and
 * whitespace, after a line break, or at the very start. Returns that mark's index, or -1.
 * Every scan stays inside the run of marks and whitespace before the letter, so capitalising a
 * whole text is linear (a regex over such runs rescans them from each position: quadratic).
 */
function sentenceMark(text: string, space: number, opens: number): { at: number; kind: 'start' | 'mark' | 'newline' } | undefined {
  if (opens === 0) return { at: 0, kind: 'start' };
  if (space === opens) return undefined;
  let closers = space;
  while (closers > 0 && CLOSING.has(text[closers - 1]!)) closers--;
  if (closers > 0 && SENTENCE_END.has(text[closers - 1]!)) return { at: closers - 1, kind: 'mark' };
  for (let i = space; i < opens; i++) if (text[i] === '\n') return { at: i, kind: 'newline' };
  return undefined;
}

/**
 * The abbreviation a `.` at `end` may close: the letters and dots right before it, dots removed,
 * in lower case (`e.g` → `eg`); undefined when there are more letters than any abbreviation has.
 */
function abbreviationBefore(text: string, end: number): string | undefined {
  let start = end;
  let letters = 0;
  while (start > 0) {
    const low = text.charCodeAt(start - 1);
    const pair = low >= 0xdc00 && low <= 0xdfff && start > 1 ? 2 : 1;
    const ch = text.slice(start - pair, start);
    if (ch !== '.') {
      if (!/^\p{L}$/u.test(ch)) break;
      if (++letters > LONGEST_ABBREVIATION) return undefined;
    }
    start -= pair;
  }
  return text.slice(start, end).replace(/\./g, '').toLowerCase();
}

const LONGEST_ABBREVIATION = Math.max(...[...ABBREVIATIONS].map((a) => a.length));

export function capitalize(text: string, lowerStarts: readonly string[] = []): string {
  const parts: string[] = [];
  let copied = 0;
  for (const m of text.matchAll(SENTENCE_START)) {
    const letter = m.index + m[0].length;
    let opens = letter;
    while (opens > m.index && OPENING.has(text[opens - 1]!)) opens--;
    // Whitespace, then opening marks: the whitespace run starts at the match (or there is none).
    const space = isSpace(text[m.index]) ? m.index : opens;
    const mark = sentenceMark(text, space, opens);
    if (!mark) continue;
    if (lowerStarts.some((t) => text.startsWith(t, letter))) continue;
    if (mark.kind === 'mark' && text[mark.at] === '.') {
      const before = abbreviationBefore(text, mark.at);
      if (before && ABBREVIATIONS.has(before)) continue;
    }
    const ch = String.fromCodePoint(text.codePointAt(letter)!);
    parts.push(text.slice(copied, letter), ch.toUpperCase());
    copied = letter + ch.length;
  }
  parts.push(text.slice(copied));
  // The pronoun I (I'm, I'll, I've, I'd), but not "i.e." or a part of a word.
  return parts.join('').replace(/(?<![\p{L}\p{N}_'’.-])i(?![\p{L}\p{N}_]|[.-]\p{L})/gu, 'I');
}

const WH = new Set(['what', 'who', 'whom', 'whose', 'where', 'when', 'why', 'how', 'which']);
const AUX = new Set(
  "is are was were am do does did can could will would should shall may might must have has had isn't aren't wasn't weren't don't doesn't didn't can't couldn't won't wouldn't shouldn't haven't hasn't".split(
    ' ',
  ),
);
const SUBJECTS = new Set(
  'i you we they he she it there this that these those anyone anybody someone somebody everyone everybody your my our their his her its'.split(
    ' ',
  ),
);

/**
 * Whether a sentence reads like a question: "what is…", "who…", "how many…", "what time is it",
 * "can you…", "is it…". A heuristic: "do the dishes" stays a statement, and so may some questions.
 */
export function looksLikeQuestion(sentence: string): boolean {
  const words =
    sentence
      .toLowerCase()
      .replace(/’/g, "'")
      .match(/[\p{L}']+/gu) ?? [];
  const [first = '', second = ''] = words;
  if (/^(what|who|where|when|why|how)'s$/.test(first)) return true;
  if (first === 'who') return true;
  if (WH.has(first) && (AUX.has(second) || second === 'about' || second === 'if')) return true;
  if (first === 'how' && ['many', 'much', 'long', 'far', 'often', 'old', 'come'].includes(second)) return true;
  // "what time is it", "which train does the…": an auxiliary before its subject, later on.
  if (
    WH.has(first) &&
    words.some((w, i) => i > 0 && AUX.has(w) && (SUBJECTS.has(words[i + 1] ?? '') || ['the', 'a', 'an'].includes(words[i + 1] ?? '')))
  )
    return true;
  return AUX.has(first) && SUBJECTS.has(second);
}

export function finalPunctuation(text: string, questions: boolean): string {
  let t = text.trimEnd();
  if (!t || /[.!?…]["”’)\]]*$/.test(t)) return t;
  if (/[,;:]$/.test(t)) t = t.slice(0, -1).trimEnd();
  if (!/[\p{L}\p{N}"”’)\]]$/u.test(t)) return t;
  const last = t.split(/[.!?…\n]/).pop() ?? t;
  return t + (questions && looksLikeQuestion(last) ? '?' : '.');
}

const splitWords = (list: readonly string[]) => list.map((p) => p.toLowerCase().split(/\s+/)).filter((w) => w.length > 0 && w[0] !== '');

/** Applies every enabled rule to one transcript. */
export function correctText(text: string, dictionary: readonly string[], options: CorrectionOptions): string {
  const matcher = options.dictionary && dictionary.length ? dictionaryMatcher(dictionary) : undefined;
  let result = matcher ? matcher.apply(text) : text;
  if (options.spokenPunctuation || options.fillers) {
    let tokens = tokenize(result);
    if (options.spokenPunctuation) tokens = applySpokenPunctuation(tokens, spokenMarks(options.punctuation));
    if (options.fillers) {
      const fillerWords = splitWords(options.fillerWords).sort((a, b) => b.length - a.length);
      const fillerPhrases = splitWords(options.fillerPhrases).sort((a, b) => b.length - a.length);
      tokens = removeFillers(tokens, fillerWords, fillerPhrases, matcher?.words ?? new Set());
    }
    result = render(tidy(tokens));
  }
  result = result
    .replace(/[ \t]+/g, ' ')
    .replace(/ *\n */g, '\n')
    .trim();
  if (options.capitalize) result = capitalize(result, matcher?.lowerStarts);
  if (options.finalPunctuation) result = finalPunctuation(result, options.questions);
  return result;
}
