import { scrubSecrets } from './secrets.ts';
import { escapeLine } from './control-chars.ts';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 99 };

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  /** Warns once per key for the life of this logger (a misconfiguration seen on every request). */
  warnOnce(key: string, message: string): void;
  child(scope: string): Logger;
}

export interface LogSink {
  (entry: { level: LogLevel; scope: string; message: string; fields?: Record<string, unknown> | undefined; time: number }): void;
}

/** Writes `koto[scope] level: message` lines to stderr (stdout carries only results). */
export const stderrSink: LogSink = (entry) => {
  const fields = entry.fields && Object.keys(entry.fields).length > 0 ? ` ${JSON.stringify(entry.fields)}` : '';
  process.stderr.write(`koto${entry.scope ? `[${entry.scope}]` : ''} ${entry.level}: ${escapeLine(entry.message)}${fields}\n`);
};

/**
 * The kernel's scrubber: every registered secret, plus whatever looks like a credential by name
 * or shape (secrets.ts), is removed from every log line, error, warning and history row, so an
 * API key that ends up in an upstream error message or a URL still never reaches a user.
 */
export class SecretScrubber {
  // Rotating tokens (Entra, one an hour) would grow this forever in a daemon: keep the newest.
  static readonly MAX = 512;
  readonly #secrets = new Set<string>();
  add(value: string | undefined): void {
    if (!value || value.length < 4) return;
    this.#secrets.delete(value);
    this.#secrets.add(value);
    if (this.#secrets.size > SecretScrubber.MAX) this.#secrets.delete(this.#secrets.values().next().value as string);
  }
  list(): string[] {
    return [...this.#secrets];
  }
  text(value: string): string {
    return scrubSecrets(value, this.#secrets);
  }
}

function scrubFields(fields: Record<string, unknown>, scrubber: SecretScrubber): Record<string, unknown> {
  let text: string;
  try {
    text = scrubber.text(JSON.stringify(fields));
  } catch {
    return { fields: '[unprintable]' }; // cyclic or BigInt: never let a log call throw
  }
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return { fields: text }; // a replaced value broke the JSON: keep the scrubbed text
  }
}

export function createLogger(options: { level: LogLevel; sink: LogSink; scrubber: SecretScrubber; scope?: string }): Logger {
  const { level, sink, scrubber, scope = '' } = options;
  const emit = (entryLevel: LogLevel, message: string, fields?: Record<string, unknown>) => {
    if (ORDER[entryLevel] < ORDER[level]) return;
    const clean = fields ? scrubFields(fields, scrubber) : undefined;
    sink({ level: entryLevel, scope, message: scrubber.text(message), fields: clean, time: Date.now() });
  };
  const warned = new Set<string>();
  return {
    warnOnce: (key, m) => {
      if (warned.has(key)) return;
      warned.add(key);
      emit('warn', m);
    },
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (child) => createLogger({ level, sink, scrubber, scope: scope ? `${scope}:${child}` : child }),
  };
}
