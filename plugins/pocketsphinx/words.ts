import { execFile } from 'node:child_process';

/**
 * Pronunciations for Koto dictionary words the engine does not know, in the en-us model's
 * phone set (ARPAbet without stress: `K UW B ER N EH T IY Z`). What is feasible offline, and
 * no more: each word is split at camelCase, digit and punctuation boundaries; every part the
 * engine's dictionary knows keeps its pronunciation, short or all-caps parts are spelled out
 * letter by letter, numbers are read as words, and the remaining parts get flite's
 * letter-to-sound rules (`flite -ps`) when flite is installed. A word with a part none of these
 * can pronounce is left out.
 */

/** The phones of the pocketsphinx en-us acoustic model. */
export const PHONES = new Set(
  'AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W Y Z ZH'.split(' '),
);

const LETTERS: Readonly<Record<string, string>> = {
  a: 'EY',
  b: 'B IY',
  c: 'S IY',
  d: 'D IY',
  e: 'IY',
  f: 'EH F',
  g: 'JH IY',
  h: 'EY CH',
  i: 'AY',
  j: 'JH EY',
  k: 'K EY',
  l: 'EH L',
  m: 'EH M',
  n: 'EH N',
  o: 'OW',
  p: 'P IY',
  q: 'K Y UW',
  r: 'AA R',
  s: 'EH S',
  t: 'T IY',
  u: 'Y UW',
  v: 'V IY',
  w: 'D AH B AH L Y UW',
  x: 'EH K S',
  y: 'W AY',
  z: 'Z IY',
};

/** Symbols inside a word that are read aloud; others (`.`, `-`, `_`, `'`) are silent. */
const SYMBOLS: Readonly<Record<string, string>> = { '+': 'plus', '#': 'sharp', '&': 'and', '@': 'at', '/': 'slash' };

const ONES = [
  'zero',
  'one',
  'two',
  'three',
  'four',
  'five',
  'six',
  'seven',
  'eight',
  'nine',
  'ten',
  'eleven',
  'twelve',
  'thirteen',
  'fourteen',
  'fifteen',
  'sixteen',
  'seventeen',
  'eighteen',
  'nineteen',
];
const TENS = ['', '', 'twenty', 'thirty', 'forty', 'fifty', 'sixty', 'seventy', 'eighty', 'ninety'];

/** English words for a number as it is usually read (1999: nineteen ninety nine; 2023: two thousand twenty three); over 9999, digit by digit. */
export function numberWords(digits: string): string[] {
  const upTo99 = (v: number): string[] =>
    v < 20 ? [ONES[v]!] : v % 10 === 0 ? [TENS[Math.floor(v / 10)]!] : [TENS[Math.floor(v / 10)]!, ONES[v % 10]!];
  const upTo999 = (v: number): string[] =>
    v < 100 ? upTo99(v) : [ONES[Math.floor(v / 100)]!, 'hundred', ...(v % 100 ? upTo99(v % 100) : [])];
  const n = Number(digits);
  if ((digits.length > 1 && digits.startsWith('0')) || n > 9999) return [...digits].map((d) => ONES[Number(d)]!);
  if (n < 1000) return upTo999(n);
  const high = Math.floor(n / 100);
  const low = n % 100;
  if (high % 10 !== 0) return [...upTo99(high), ...(low === 0 ? ['hundred'] : low < 10 ? ['oh', ONES[low]!] : upTo99(low))];
  return [ONES[Math.floor(n / 1000)]!, 'thousand', ...(n % 1000 ? upTo999(n % 1000) : [])];
}

/**
 * The form a dictionary term's words take in the engine: lower case, surrounding punctuation
 * removed (`Node.js` → `node.js`, `(beta)` → `beta`, `C++` → `c++`). One entry per unique word.
 */
export function engineWords(terms: readonly string[]): { word: string; original: string }[] {
  const out = new Map<string, string>();
  for (const term of terms) {
    for (const token of term.split(/\s+/)) {
      const original = token.replace(/^[^\p{L}\p{N}]+/u, '').replace(/[^\p{L}\p{N}+#]+$/u, '');
      const word = original.toLowerCase();
      // The engine reads `word(2)` as an alternative pronunciation: keep parentheses out.
      if (!word || /[()\s]/.test(word) || out.has(word)) continue;
      out.set(word, original);
    }
  }
  return [...out].map(([word, original]) => ({ word, original }));
}

/** A word split where its pronunciation changes: camelCase, letters/digits, punctuation. */
export function splitParts(original: string): string[] {
  return original
    .replace(/([\p{Ll}])([\p{Lu}])/gu, '$1 $2')
    .replace(/([\p{Lu}]+)([\p{Lu}][\p{Ll}])/gu, '$1 $2')
    .replace(/([\p{L}])([\p{N}])|([\p{N}])([\p{L}])/gu, (_m, a?: string, b?: string, c?: string, d?: string) =>
      a ? `${a} ${b}` : `${c} ${d}`,
    )
    .replace(/[+#&@/]/g, (s) => ` ${s} `)
    .split(/[\s.\-_'’]+/)
    .filter(Boolean);
}

/** Maps flite's phone names to the en-us model's; undefined when a phone has no counterpart. */
export function fliteToModel(fliteOutput: string): string | undefined {
  const map: Readonly<Record<string, string>> = { ax: 'AH', axr: 'ER', el: 'AH L', em: 'AH M', en: 'AH N', dx: 'D' };
  const phones: string[] = [];
  for (const raw of fliteOutput.trim().split(/\s+/)) {
    const phone = raw.replace(/\d$/, '').toLowerCase();
    if (!phone || phone === 'pau' || phone === 'h#' || phone === 'brth' || phone === 'sil') continue;
    const mapped = map[phone] ?? phone.toUpperCase();
    for (const p of mapped.split(' ')) {
      if (!PHONES.has(p)) return undefined;
      phones.push(p);
    }
  }
  return phones.length ? phones.join(' ') : undefined;
}

const fliteCache = new Map<string, Promise<string | undefined>>();

/** flite's letter-to-sound pronunciation of one word, or undefined (no flite, or nothing usable). */
export function flitePhones(flite: string, word: string): Promise<string | undefined> {
  const key = `${flite}\0${word}`;
  let pending = fliteCache.get(key);
  if (!pending) {
    pending = new Promise((resolve) => {
      execFile(flite, ['-ps', '-t', word, '-o', 'none'], { timeout: 5000 }, (err, stdout) =>
        resolve(err ? undefined : fliteToModel(String(stdout))),
      );
    });
    fliteCache.set(key, pending);
  }
  return pending;
}

export interface PronounceOptions {
  /** The engine's own pronunciation of a word (its dictionary), if any. */
  readonly lookup: (word: string) => string | undefined;
  /** flite program, or false. */
  readonly flite: string | false;
}

const spell = (letters: string): string | undefined => {
  const phones = [...letters.toLowerCase()].map((l) => LETTERS[l]);
  return phones.every(Boolean) ? phones.join(' ') : undefined;
};

/** A pronunciation for a word the engine does not know, or undefined when none can be made. */
export async function pronounce(original: string, options: PronounceOptions): Promise<string | undefined> {
  const parts = splitParts(original);
  if (parts.length === 0) return undefined;
  const out: string[] = [];
  for (const part of parts) {
    const lower = part.toLowerCase();
    const symbol = SYMBOLS[part];
    if (symbol) {
      const phones = options.lookup(symbol);
      if (!phones) return undefined;
      out.push(phones);
      continue;
    }
    if (/^\p{N}+$/u.test(part)) {
      if (!/^[0-9]+$/.test(part)) return undefined;
      const phones = numberWords(part).map((w) => options.lookup(w));
      if (!phones.every(Boolean)) return undefined;
      out.push(...(phones as string[]));
      continue;
    }
    if (!/^[a-z]+$/i.test(part)) return undefined;
    const isAcronym = part.length <= 5 && part === part.toUpperCase() && part.length > 1;
    const known = isAcronym ? undefined : options.lookup(lower);
    if (known) {
      out.push(known);
      continue;
    }
    if (isAcronym || part.length <= 2 || !/[aeiouy]/i.test(part)) {
      const spelled = spell(part);
      if (!spelled) return undefined;
      out.push(spelled);
      continue;
    }
    const guessed = options.flite ? await flitePhones(options.flite, lower) : undefined;
    if (!guessed) return undefined;
    out.push(guessed);
  }
  return out.join(' ');
}
