import type { ServerResponse } from 'node:http';
import type { Kernel } from '../kernel/kernel.ts';
import type { SessionRecord, SessionState } from '../kernel/types.ts';
import { SECURITY_HEADERS } from './guard.ts';

/** What the live view shows of a session that has not ended. */
interface ActiveSession {
  id: string;
  mode: 'live' | 'file';
  state: SessionState;
  level: number;
  interim: string;
  interimStage: 'asr' | 'correction' | undefined;
}

/** Meter updates per second per session: smooth enough for a bar, cheap on the capture path. */
const LEVEL_INTERVAL_MS = 66;
const HEARTBEAT_MS = 15_000;
/** Browsers open a handful of tabs; a runaway script opening streams is bounded. */
const MAX_CLIENTS = 32;

/**
 * Pushes what the daemon is doing to every open panel (Server-Sent Events). It only taps the
 * kernel's public hooks (session lifecycle, `recording`, `audioFrame`, `interim`, `sessionState`,
 * `configChanged`); nothing here can slow a dictation down: each tap copies a few fields and
 * writes to sockets that buffer.
 */
export class LiveFeed {
  readonly #clients = new Set<ServerResponse>();
  readonly #active = new Map<string, ActiveSession>();
  readonly #lastLevelAt = new Map<string, number>();
  #last: Record<string, unknown> | undefined;
  readonly #scrub: (text: string) => string;
  readonly #heartbeat: NodeJS.Timeout;
  #closed = false;

  constructor(kernel: Kernel) {
    this.#scrub = (text) => kernel.scrub(text);
    const hooks = kernel.hooks;
    hooks.sessionBegin.tap('ui', (session) => {
      this.#active.set(session.id, {
        id: session.id,
        mode: session.mode,
        state: session.state,
        level: 0,
        interim: '',
        interimStage: undefined,
      });
      this.#send('session', { id: session.id, mode: session.mode, state: session.state });
    });
    hooks.sessionState.tap('ui', (session, state) => {
      const active = this.#active.get(session.id);
      if (active) active.state = state;
      this.#send('state', { id: session.id, state });
    });
    hooks.recording.tap('ui', (event) => {
      this.#send('recording', { id: event.session.id, state: event.state, preRollMs: event.preRollMs });
    });
    hooks.audioFrame.tap('ui', (session, frame) => {
      const active = this.#active.get(session.id);
      if (active) active.level = frame.rms;
      if (this.#clients.size === 0) return;
      const now = performance.now();
      if (now - (this.#lastLevelAt.get(session.id) ?? -Infinity) < LEVEL_INTERVAL_MS) return;
      this.#lastLevelAt.set(session.id, now);
      this.#send('level', { id: session.id, rms: Math.round(frame.rms * 1000) / 1000 });
    });
    hooks.interim.tap('ui', (event) => {
      const active = this.#active.get(event.session.id);
      if (active) {
        active.interim = event.text;
        active.interimStage = event.stage;
      }
      this.#send('interim', { id: event.session.id, stage: event.stage, text: event.text });
    });
    hooks.sessionEnd.tapPromise('ui', async (record) => {
      this.#active.delete(record.id);
      this.#lastLevelAt.delete(record.id);
      this.#last = summary(record);
      this.#send('final', this.#last);
    });
    hooks.configChanged.tap('ui', (change) => {
      this.#send('config', { generation: change.generation, sections: change.sections });
    });
    this.#heartbeat = setInterval(() => {
      for (const res of this.#clients) res.write(': keep-alive\n\n');
    }, HEARTBEAT_MS);
    this.#heartbeat.unref();
  }

  /** Opens an event stream: the current state first, then every change as it happens. */
  subscribe(res: ServerResponse, snapshot: Record<string, unknown>): void {
    if (this.#clients.size >= MAX_CLIENTS || this.#closed) {
      res.writeHead(503, { ...SECURITY_HEADERS, 'content-type': 'text/plain' }).end('too many open panels');
      return;
    }
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
    });
    res.write('retry: 2000\n\n');
    this.#clients.add(res);
    res.on('close', () => this.#clients.delete(res));
    this.#write(res, 'snapshot', { ...snapshot, sessions: [...this.#active.values()], last: this.#last });
  }

  #send(event: string, data: unknown): void {
    if (this.#clients.size === 0) return;
    for (const res of this.#clients) this.#write(res, event, data);
  }

  #write(res: ServerResponse, event: string, data: unknown): void {
    // JSON has no raw newlines, so one `data:` line per event; scrubbed like every daemon answer.
    res.write(`event: ${event}\ndata: ${this.#scrub(JSON.stringify(data))}\n\n`);
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#heartbeat);
    for (const res of this.#clients) res.end();
    this.#clients.clear();
  }
}

/** A finished session as the live view and the history table show it. */
export function summary(record: SessionRecord): Record<string, unknown> {
  return {
    id: record.id,
    state: record.state,
    raw: record.raw,
    text: record.text,
    fallback: record.fallback,
    asrProvider: record.asrProvider,
    asrModel: record.asrModel,
    correctionProvider: record.correctionProvider,
    correctionModel: record.correctionModel,
    timings: record.timings,
    error: record.error,
    warnings: record.warnings,
  };
}
