import { escapeLine, escapeText } from '../kernel/control-chars.ts';

export { escapeLine, escapeText };

/**
 * stdout is escaped only when it is a terminal: a pipe or a file gets the exact bytes, which is
 * what scripts rely on (`koto run a.wav > note.txt`). stderr is for people: always escaped.
 */
export function forStdout(text: string, stream: { isTTY?: boolean } = process.stdout): string {
  return stream.isTTY ? escapeText(text) : text;
}
