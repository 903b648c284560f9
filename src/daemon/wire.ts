import { describe, KotoError, kotoError } from '../kernel/errors.ts';

/**
 * The control socket speaks newline-delimited JSON: one request per line, one response per
 * request (matched by id). Small on purpose: `koto start` must answer in milliseconds.
 *
 * Whatever arrives on the socket is checked here before the daemon acts on it: a malformed
 * message gets an error reply (`KOTO_ERR_CONTROL_MESSAGE`), never a crash, and the daemon keeps
 * serving everyone else.
 */
export const DAEMON_COMMANDS = [
  'ping',
  'start',
  'stop',
  'toggle',
  'cancel',
  'status',
  'reload',
  'transcribe',
  'run',
  'correct',
  'retry',
  'rewrite',
  'deliver',
  'ui',
] as const;

export type DaemonCommand = (typeof DAEMON_COMMANDS)[number];

export interface DaemonRequest {
  readonly id: number;
  readonly cmd: DaemonCommand;
  readonly args?: Record<string, unknown>;
}

export interface DaemonErrorJson {
  code: string;
  message: string;
  fix: string;
  exitCode: number;
  /** The session's record when the error ended one (its text survives a failed output). */
  record?: unknown;
}

/** `id` is null when the request's own id could not be read. */
export type DaemonResponse =
  | { readonly id: number | null; readonly ok: true; readonly result: unknown }
  | { readonly id: number | null; readonly ok: false; readonly error: DaemonErrorJson };

/**
 * One request line may be at most 1 MiB: enough for any command (audio larger than that goes by
 * file, see client.ts), small enough that a client cannot make the daemon buffer without bound.
 */
export const MAX_REQUEST_BYTES = 1024 * 1024;
/** Answers come from our own daemon (a socket we checked) and may carry long texts. */
export const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

export function controlError(detail: string): KotoError {
  return kotoError('KOTO_ERR_CONTROL_MESSAGE', { detail });
}

/**
 * Splits a byte stream into lines and parses each as JSON. Works on bytes, so a UTF-8 character
 * split across two chunks survives and invalid UTF-8 is reported instead of silently replaced.
 * A line longer than `maxBytes` is fatal (`fatal: true`): the framing is lost, nothing after it
 * is parsed. Other errors concern one line; the next line parses normally. `end()` parses a
 * last line that had no newline when the stream ended.
 */
export function lineParser(
  onMessage: (value: unknown) => void,
  onError: (err: KotoError, fatal: boolean) => void,
  maxBytes: number = MAX_REQUEST_BYTES,
): ((chunk: Buffer) => void) & { end: () => void } {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let parts: Buffer[] = [];
  let size = 0;
  let dead = false;
  const line = (bytes: Buffer) => {
    let text: string;
    try {
      text = decoder.decode(bytes).trim();
    } catch {
      onError(controlError('the line is not valid UTF-8'), false);
      return;
    }
    if (!text) return;
    let value: unknown;
    try {
      value = JSON.parse(text, noProtoKeys);
    } catch (err) {
      onError(KotoError.is(err) ? err : controlError(`the line is not JSON (${describe(err)})`), false);
      return;
    }
    onMessage(value);
  };
  const push = (chunk: Buffer) => {
    let start = 0;
    while (!dead && start < chunk.length) {
      const newline = chunk.indexOf(0x0a, start);
      const end = newline < 0 ? chunk.length : newline;
      if (size + (end - start) > maxBytes) {
        dead = true;
        parts = [];
        onError(controlError(`a line is longer than ${maxBytes} bytes (${maxBytes / (1024 * 1024)} MiB)`), true);
        return;
      }
      const piece = chunk.subarray(start, end);
      if (newline < 0) {
        parts.push(piece);
        size += piece.length;
        return;
      }
      const bytes = size ? Buffer.concat([...parts, piece]) : piece;
      parts = [];
      size = 0;
      start = newline + 1;
      line(bytes);
    }
  };
  return Object.assign(push, {
    end: () => {
      if (dead || !size) return;
      const bytes = Buffer.concat(parts);
      parts = [];
      size = 0;
      line(bytes);
    },
  });
}

/**
 * JSON.parse makes `"__proto__"` an own key (no pollution by itself), but any later spread or
 * merge of such an object could set a prototype: no control message needs that key.
 */
function noProtoKeys(key: string, value: unknown): unknown {
  if (key === '__proto__') throw controlError('the key "__proto__" is not allowed');
  return value;
}

export function encodeRequest(id: number, cmd: DaemonCommand, args: Record<string, unknown>): string {
  return `${JSON.stringify({ id, cmd, args })}\n`;
}
