import path from 'node:path';
import { z } from 'zod';
import { describe, type KotoError, kotoError } from '../kernel/errors.ts';
import { controlError, DAEMON_COMMANDS, type DaemonCommand, type DaemonRequest, type DaemonResponse } from './wire.ts';

// The framing and envelope live in wire.ts (no zod: the fast control client loads it); this file
// adds what only the daemon needs, the typed arguments of each command.
export * from './wire.ts';

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
/** Who triggered it and when (ms since the epoch): the daemon measures trigger → first audio. */
const trigger = {
  source: optional(z.string().regex(/^[a-z0-9-]{1,40}$/)),
  at: optional(z.number().finite().nonnegative()),
  vad: optional(z.boolean()),
};
const wait = z.object({ wait: optional(z.boolean()), ...trigger });

export const ARGS = {
  ping: none,
  start: z.object(trigger),
  stop: wait,
  toggle: wait,
  cancel: z.object(trigger),
  status: none,
  reload: none,
  transcribe: z.object(audio).refine(oneSource, sourceMessage),
  run: z.object({ ...audio, correct: optional(z.boolean()), profile: optional(providerName) }).refine(oneSource, sourceMessage),
  correct: z.object({ text: optional(z.string()), provider: optional(providerName) }),
  retry: z.object({ id: z.string().min(1).max(200) }),
  deliver: z.object({ id: z.string().min(1).max(200) }),
  ui: none,
  rewrite: z.object({ template: z.string().min(1).max(200), text: optional(z.string()), id: optional(z.string().max(200)) }),
} as const satisfies Record<DaemonCommand, z.ZodType>;

export type DaemonArgs<C extends DaemonCommand> = z.infer<(typeof ARGS)[C]>;

/** Checks one command's args; unknown keys are dropped (a newer client may send more). */
export function parseArgs<C extends DaemonCommand>(cmd: C, args: unknown): DaemonArgs<C> {
  if (!isCommand(cmd)) throw unknownCommand(cmd);
  if (typeof args !== 'object' || args === null || Array.isArray(args))
    throw controlError(`${cmd}: "args" must be an object, got ${kindOf(args)}`);
  if (Object.hasOwn(args, '__proto__')) throw controlError(`${cmd}: the key "__proto__" is not allowed`);
  const checked = ARGS[cmd].safeParse(args);
  if (!checked.success) {
    const issue = checked.error.issues[0];
    const where = issue?.path.length ? `args.${issue.path.join('.')}` : 'args';
    throw controlError(`${cmd}: ${where} ${issue?.message ?? 'is invalid'}`);
  }
  return checked.data as DaemonArgs<C>;
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
