/**
 * Desktop notifications when a dictation failed or delivered less than asked (raw text, an output
 * that failed): through notify-send (Linux) or osascript (macOS), as argv of a program started
 * without a shell. Error texts come from upstream servers, so every text is made one line,
 * scrubbed of secrets, and escaped for the one language that still reads it (AppleScript).
 */
import type { PluginApi, SessionRecord } from 'koto-voice';
import { findOnPath, ProcessSlot, reportOnce, type Launch } from './process.ts';

export interface Notice {
  /** A few words: "Dictation failed". */
  readonly title: string;
  /** One line: what happened and what to do. */
  readonly body: string;
  readonly urgency: 'normal' | 'critical';
}

const MAX_TEXT = 240;
/** A notification helper that has not returned by then is stopped (a D-Bus call that hangs). */
const MAX_NOTIFY_MS = 10_000;
const EXPIRE_MS: Readonly<Record<Notice['urgency'], number>> = { normal: 6_000, critical: 10_000 };

/**
 * Line breaks, control characters and bidi overrides become spaces: a notification is one line,
 * and an upstream error must not be able to reorder what the user reads.
 */
export function oneLine(text: string, max = MAX_TEXT): string {
  const flat = text
    .replace(/[\p{Cc}\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return flat.length > max ? `${flat.slice(0, max - 1).trimEnd()}…` : flat;
}

function sentence(text: string): string {
  return /[.!?…]$/.test(text) ? text : `${text}.`;
}

/** What to tell the user about a finished session, or nothing (done cleanly, cancelled). */
export function sessionNotice(record: SessionRecord, scrub: (text: string) => string): Notice | undefined {
  const clean = (text: string) => oneLine(scrub(text));
  if (record.state === 'failed') {
    const what = record.error ? clean(record.error.message) : '';
    const kept = record.audioPath ? ` The recording is kept: koto retry ${clean(record.id)}` : '';
    return {
      title: 'Dictation failed',
      body: oneLine(`${sentence(what || 'the session failed')}${kept}`, MAX_TEXT * 2),
      urgency: 'critical',
    };
  }
  if (record.state !== 'done' || (!record.fallback && record.warnings.length === 0)) return undefined;
  const first = record.warnings[0];
  const more = record.warnings.length > 1 ? ` (and ${record.warnings.length - 1} more: koto history)` : '';
  const body = first ? `${sentence(clean(first))}${more}` : 'Correction did not answer; the raw transcript was delivered.';
  return { title: record.fallback ? 'Raw text delivered' : 'Delivered with a warning', body, urgency: 'normal' };
}

/**
 * An AppleScript string literal holding `text` exactly: inside one only `\` and `"` are special
 * (AppleScript never interpolates), and line breaks would only end the statement early, so they
 * become spaces.
 */
export function appleScriptString(text: string): string {
  return `"${text.replace(/[\r\n\u2028\u2029]/g, ' ').replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** notify-send renders a subset of HTML in the body: a `<` in an error text must stay a `<`. */
export function escapeMarkup(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function notifySendArgs(notice: Notice): string[] {
  // `--`: a body beginning with "-" is text, never an option.
  return [
    '-a',
    'Koto',
    '-u',
    notice.urgency,
    '-t',
    String(EXPIRE_MS[notice.urgency]),
    '--',
    `Koto: ${notice.title}`,
    escapeMarkup(notice.body),
  ];
}

export function osascriptArgs(notice: Notice): string[] {
  return ['-e', `display notification ${appleScriptString(notice.body)} with title "Koto" subtitle ${appleScriptString(notice.title)}`];
}

type Tool = { readonly file: string; readonly kind: 'notify-send' | 'osascript' };

/**
 * One notification helper at a time; while one runs, only the latest waiting notice is kept, so
 * a burst of failures shows the first and the last, never a process per session.
 */
export class Notifier {
  readonly #api: PluginApi;
  readonly #report: (key: string, message: string) => void;
  readonly #slot: ProcessSlot;
  #tool: Promise<Tool | undefined> | undefined;
  #starting = false;
  #pending: Notice | undefined;

  constructor(api: PluginApi) {
    this.#api = api;
    this.#report = reportOnce(api.log);
    this.#slot = new ProcessSlot({
      maxMs: MAX_NOTIFY_MS,
      onFailure: (message, reason) => {
        if (reason === 'missing') this.#tool = undefined;
        this.#report(`failed:${reason}`, `a notification could not be shown: ${message}`);
      },
      onIdle: () => this.#next(),
    });
  }

  /** Shows the notice soon. Returns at once; never throws. */
  send(notice: Notice): void {
    this.#pending = notice;
    this.#next();
  }

  #next(): void {
    if (this.#starting || this.#slot.busy || !this.#pending) return;
    const notice = this.#pending;
    this.#pending = undefined;
    this.#starting = true;
    void this.#launch(notice)
      .catch((err: unknown) => this.#api.log.debug(`a notification could not be shown: ${String(err)}`))
      .finally(() => {
        this.#starting = false;
        // A notice that arrived while the helper was being looked up.
        this.#next();
      });
  }

  async #launch(notice: Notice): Promise<void> {
    const tool = await this.resolve();
    if (!tool) return;
    const launch: Launch = {
      file: tool.file,
      args: tool.kind === 'osascript' ? osascriptArgs(notice) : notifySendArgs(notice),
      env: this.#api.env,
    };
    this.#slot.start(launch);
  }

  /** The helper on PATH, the platform's own first. Looked up once (again if it disappears). */
  resolve(): Promise<Tool | undefined> {
    this.#tool ??= (async () => {
      const order = process.platform === 'darwin' ? (['osascript', 'notify-send'] as const) : (['notify-send', 'osascript'] as const);
      for (const kind of order) {
        const file = await findOnPath([kind], this.#api.env.PATH);
        if (file) return { file, kind };
      }
      this.#report(
        'missing',
        'no notification helper found on PATH (notify-send, osascript): feedback.notify shows nothing. Install one (e.g. apt install libnotify-bin) and restart Koto, or set feedback.notify: false',
      );
      return undefined;
    })();
    return this.#tool;
  }
}
