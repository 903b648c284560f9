/**
 * Reasoning models served by compatible servers (DeepSeek-R1, Qwen3, …) often put their
 * reasoning in a leading `<think>…</think>` block of the answer. It is never part of the text.
 */

const OPEN = '<think>';
const CLOSE = '</think>';

/**
 * The answer without a leading think block, trimmed. `null` when there is nothing to use:
 * an unterminated `<think>` (the model ran out of tokens while reasoning) or an empty answer.
 */
export function stripThink(text: string): string | null {
  const start = text.trimStart();
  if (start.slice(0, OPEN.length).toLowerCase() === OPEN) {
    const end = start.toLowerCase().indexOf(CLOSE, OPEN.length);
    if (end < 0) return null;
    const rest = start.slice(end + CLOSE.length).trim();
    return rest === '' ? null : rest;
  }
  const trimmed = text.trim();
  return trimmed === '' ? null : trimmed;
}

/**
 * What of a partial (streaming) answer may be shown: nothing while a leading think block is
 * open, or while the text could still turn out to be one (`<thi`); the rest after it closes.
 */
export function visibleText(partial: string): string {
  const start = partial.trimStart();
  const head = start.slice(0, OPEN.length).toLowerCase();
  if (head.length < OPEN.length && OPEN.startsWith(head)) return '';
  if (head !== OPEN) return start;
  const end = start.toLowerCase().indexOf(CLOSE, OPEN.length);
  return end < 0 ? '' : start.slice(end + CLOSE.length).trimStart();
}
