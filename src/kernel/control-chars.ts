/**
 * Text that reaches a terminal or a log may come from anywhere: a file name, a transcript, a
 * provider's error body. Escape sequences in it can retitle the window, rewrite what was printed before,
 * or (OSC 52) write the clipboard, and a line break can forge a log line, so control characters
 * are shown, not obeyed. Bidi overrides are shown too: they can make a path read differently
 * from what it is.
 */
// C0 (but tab and newline, handled by the caller), DEL, C1, and the bidi embedding/override/isolate marks.
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

function escapeChar(char: string): string {
  const code = char.codePointAt(0) ?? 0;
  return code > 0xff ? `\\u${code.toString(16).toUpperCase().padStart(4, '0')}` : `\\x${code.toString(16).toUpperCase().padStart(2, '0')}`;
}

/** For one-line messages (stderr): every control character escaped, newlines and tabs included. */
export function escapeLine(text: string): string {
  return text.replace(CONTROL, escapeChar).replace(/\n/g, '\\n').replace(/\t/g, '\\t');
}

/** For dictated text shown on a terminal: line breaks and tabs stay, other controls are escaped. */
export function escapeText(text: string): string {
  return text.replace(CONTROL, escapeChar);
}
