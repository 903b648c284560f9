import { z } from 'koto-voice';

/** Hesitation sounds removed wherever they stand as words. */
export const DEFAULT_FILLER_WORDS = ['um', 'umm', 'uh', 'uhh', 'uhm', 'er', 'erm', 'hmm', 'mm', 'mhm'] as const;

/**
 * Phrases that are fillers only when set off from the sentence: at its start or after a comma,
 * and followed by a comma or its end ("you know, it works" but not "do you know the way").
 */
export const DEFAULT_FILLER_PHRASES = ['you know', 'i mean'] as const;

/**
 * One provider instance (`providers.<name>` with `use: local-correction`). Every rule can be
 * switched off, and every list replaced.
 */
export const providerSchema = z.strictObject({
  /** Spell and case Koto dictionary terms as written there (case-insensitive, whole words, multi-word terms). */
  dictionary: z.boolean().default(true),
  /** Remove filler words and set-off filler phrases. */
  fillers: z.boolean().default(true),
  /** Words (or phrases) removed wherever they occur as whole words. Replaces the default list. */
  fillerWords: z.array(z.string().trim().min(1)).default([...DEFAULT_FILLER_WORDS]),
  /** Phrases removed only when set off by commas or sentence boundaries. Replaces the default list. */
  fillerPhrases: z.array(z.string().trim().min(1)).default([...DEFAULT_FILLER_PHRASES]),
  /** Turn spoken punctuation ("comma", "period", "new line", …) into marks. */
  spokenPunctuation: z.boolean().default(true),
  /**
   * Spoken forms added to (or replacing) the built-in ones: `{ "smiley": ":)" }`. An empty string
   * switches a built-in form off (`{ "period": "" }`).
   */
  punctuation: z.record(z.string().trim().min(1), z.string()).default({}),
  /** Capital letter at the start of each sentence and for the pronoun "I". */
  capitalize: z.boolean().default(true),
  /** End the text with a full stop (or a question mark, see `questions`) when it has no final punctuation. */
  finalPunctuation: z.boolean().default(true),
  /** The final mark is "?" when the last sentence opens like a question (what…, can you…, is it…). */
  questions: z.boolean().default(true),
});

export type CorrectionOptions = z.output<typeof providerSchema>;

export function defaultProviders(): Record<string, Record<string, unknown>> {
  return { local: {} };
}
