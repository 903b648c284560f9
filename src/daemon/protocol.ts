import path from 'node:path';
import { z } from 'zod';
import { describe, KotoError, kotoError } from '../kernel/errors.ts';

/**
 * The control socket speaks newline-delimited JSON: one request per line, one response per
 * request (matched by id). Small on purpose: `koto start` must answer in milliseconds.
 *
 * Whatever arrives on the socket is checked here before the daemon acts on it: a malformed
 * message gets an error reply (`KOTO_ERR_CONTROL_MESSAGE`), never a crash, and the daemon keeps
 * serving everyone else.
 */
export const DAEMON_COMMANDS = ['ping', 'start', 'stop', 'toggle', 'cancel', 'status', 'reload', 'transcribe', 'run', 'correct', 'retry', 'rewrite'] as const;

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

/** The envelope: a plain object with a numeric id, a known command, and an object of args. */
export function parseRequest(value: unknown): { ok: true; request: DaemonRequest } | { ok: false; id: number | null; error: KotoError } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, id: null, error: controlError(`expected a JSON object, got ${kindOf(value)}`) };
  }
  const message = value as Record<string, unknown>;
  const id = Object.hasOwn(message, 'id') ? message.id : undefined;
  if (typeof id !== 'number' || !Number.isSafeInteger(id)) {
    return { ok: false, id: null, error: controlError(`"id" must be an integer, got ${kindOf(id)}`) };
  }
  const cmd = Object.hasOwn(message, 'cmd') ? message.cmd : undefined;
  if (typeof cmd !== 'string') return { ok: false, id, error: controlError(`"cmd" must be a string, got ${kindOf(cmd)}`) };
  if (!isCommand(cmd)) return { ok: false, id, error: unknownCommand(cmd) };
  const args = Object.hasOwn(message, 'args') ? message.args : undefined;
  if (args !== undefined && (typeof args !== 'object' || args === null || Array.isArray(args))) {
    return { ok: false, id, error: controlError(`"args" must be an object, got ${kindOf(args)}`) };
  }
  return { ok: true, request: { id, cmd, ...(args ? { args: args as Record<string, unknown> } : {}) } };
}

export function isCommand(cmd: string): cmd is DaemonCommand {
  return (DAEMON_COMMANDS as readonly string[]).includes(cmd);
}

/** Kept as KOTO_ERR_USAGE with this wording: older CLIs recognise it to fall back (quality.ts). */
export function unknownCommand(cmd: unknown): KotoError {
  return kotoError('KOTO_ERR_USAGE', { detail: `unknown daemon command "${String(cmd).slice(0, 100)}"` });
}

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (value === undefined) return 'nothing';
  return `a ${typeof value}`;
}

// ---- arguments of each command ----

const optional = <T extends z.ZodType>(schema: T) => schema.nullish().transform((v) => v ?? undefined);
const absolutePath = z
  .string()
  .min(1)
  .max(4096)
  .refine((p) => !p.includes('\0'), 'must not contain NUL')
  .refine((p) => path.isAbsolute(p), 'must be an absolute path (the daemon runs in another folder)');
const providerName = z.string().regex(/^[A-Za-z0-9_.-]{1,200}$/, 'provider names use letters, digits, _ . -');
// Inline audio is bounded by the line size; larger audio arrives as an `upload` file.
const base64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64');
const label = z.string().max(4096);
const audio = {
  path: optional(absolutePath),
  data: optional(base64),
  /** A file the client wrote into the runtime folder (audio too large for one line). */
  upload: optional(absolutePath),
  name: optional(label),
  provider: optional(providerName),
};
const oneSource = (a: { path?: string | undefined; data?: string | undefined; upload?: string | undefined }) =>
  [a.path, a.data, a.upload].filter((v) => v !== undefined).length === 1;
const sourceMessage = { message: 'needs exactly one of "path", "data" or "upload"' };
const none = z.object({});
const wait = z.object({ wait: optional(z.boolean()) });

export const ARGS = {
  ping: none,
  start: none,
  stop: wait,
  toggle: wait,
  cancel: none,
  status: none,
  reload: none,
  transcribe: z.object(audio).refine(oneSource, sourceMessage),
  run: z.object({ ...audio, correct: optional(z.boolean()) }).refine(oneSource, sourceMessage),
  correct: z.object({ text: optional(z.string()), provider: optional(providerName) }),
  retry: z.object({ id: z.string().min(1).max(200) }),
  rewrite: z.object({ template: z.string().min(1).max(200), text: optional(z.string()), id: optional(z.string().max(200)) }),
} as const satisfies Record<DaemonCommand, z.ZodType>;

export type DaemonArgs<C extends DaemonCommand> = z.infer<(typeof ARGS)[C]>;

/** Checks one command's args; unknown keys are dropped (a newer client may send more). */
export function parseArgs<C extends DaemonCommand>(cmd: C, args: unknown): DaemonArgs<C> {
  if (!isCommand(cmd)) throw unknownCommand(cmd);
  if (typeof args !== 'object' || args === null || Array.isArray(args)) throw controlError(`${cmd}: "args" must be an object, got ${kindOf(args)}`);
  if (Object.hasOwn(args, '__proto__')) throw controlError(`${cmd}: the key "__proto__" is not allowed`);
  const checked = ARGS[cmd].safeParse(args);
  if (!checked.success) {
    const issue = checked.error.issues[0];
    const where = issue?.path.length ? `args.${issue.path.join('.')}` : 'args';
    throw controlError(`${cmd}: ${where} ${issue?.message ?? 'is invalid'}`);
  }
  return checked.data as DaemonArgs<C>;
}

export function encodeRequest(id: number, cmd: DaemonCommand, args: Record<string, unknown>): string {
  return `${JSON.stringify({ id, cmd, args })}\n`;
}

/** Never throws: a result that cannot be serialised becomes an error reply. */
export function encodeResponse(response: DaemonResponse): string {
  try {
    return `${JSON.stringify(response)}\n`;
  } catch (err) {
    const error = kotoError('KOTO_ERR_INTERNAL', { detail: `the answer cannot be sent (${describe(err)})` });
    return `${JSON.stringify({ id: response.id, ok: false, error: { code: error.code, message: error.message, fix: error.fix, exitCode: error.exitCode } })}\n`;
  }
}
