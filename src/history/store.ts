import { closeSync, openSync } from 'node:fs';
import path from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import { sqlite } from './sqlite.ts';
import { describe, kotoError } from '../kernel/errors.ts';
import { ensurePrivateDir } from '../kernel/private-dir.ts';
import type { ProviderAttempt, SessionRecord, SessionState } from '../kernel/types.ts';

export interface HistoryEntry {
  readonly id: string;
  readonly startedAt: string;
  readonly endedAt: string | null;
  readonly state: SessionState | 'interrupted';
  readonly input: string;
  readonly raw: string | null;
  readonly text: string | null;
  readonly fallback: boolean;
  readonly asrProvider: string | null;
  readonly asrModel: string | null;
  readonly correctionProvider: string | null;
  readonly correctionModel: string | null;
  readonly audioPath: string | null;
  readonly timings: Record<string, number>;
  readonly errorCode: string | null;
  readonly errorMessage: string | null;
  readonly warnings: string[];
  /** Set on a retry: the session this one re-ran. */
  readonly retryOf: string | null;
  /** Provider calls (failover, hedging): who answered and why the others did not. */
  readonly attempts: ProviderAttempt[];
  /** Estimated cost (USD); null when unknown. */
  readonly cost: number | null;
  /** The profile the session used (`profiles[].name`), null for the base config. */
  readonly profile: string | null;
}

/** One priced provider call (`koto usage`). */
export interface UsageRow {
  readonly sessionId: string;
  readonly at: string;
  readonly stage: 'asr' | 'correction';
  readonly provider: string;
  readonly model: string | null;
  readonly outcome: ProviderAttempt['outcome'];
  readonly audioSeconds: number | null;
  readonly inputTokens: number | null;
  readonly outputTokens: number | null;
  /** USD; null when unknown. */
  readonly cost: number | null;
}

export interface HistoryFilter {
  readonly query?: string | undefined;
  readonly state?: string | undefined;
  readonly provider?: string | undefined;
  /** ISO timestamps: started at or after `from`, before `to`. */
  readonly from?: string | undefined;
  readonly to?: string | undefined;
  readonly limit?: number | undefined;
  readonly offset?: number | undefined;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS sessions (
  id TEXT PRIMARY KEY,
  started_at TEXT NOT NULL,
  ended_at TEXT,
  state TEXT NOT NULL,
  input TEXT NOT NULL,
  raw TEXT,
  text TEXT,
  fallback INTEGER NOT NULL DEFAULT 0,
  asr_provider TEXT,
  asr_model TEXT,
  correction_provider TEXT,
  correction_model TEXT,
  audio_path TEXT,
  timings TEXT NOT NULL DEFAULT '{}',
  error_code TEXT,
  error_message TEXT,
  warnings TEXT NOT NULL DEFAULT '[]',
  retry_of TEXT
);
CREATE INDEX IF NOT EXISTS sessions_started ON sessions (started_at);
CREATE TABLE IF NOT EXISTS usage (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  session_id TEXT NOT NULL,
  at TEXT NOT NULL,
  stage TEXT NOT NULL,
  provider TEXT NOT NULL,
  model TEXT,
  outcome TEXT NOT NULL,
  audio_seconds REAL,
  input_tokens INTEGER,
  output_tokens INTEGER,
  cost REAL
);
CREATE INDEX IF NOT EXISTS usage_at ON usage (at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`;

/** Columns added after the first release, in order: [name, definition]. */
const ADDED_COLUMNS: readonly (readonly [string, string])[] = [
  ['owner_pid', 'INTEGER'],
  ['attempts', "TEXT NOT NULL DEFAULT '[]'"],
  ['cost', 'REAL'],
  ['profile', 'TEXT'],
];

/** States of a session that has not ended yet. */
const UNFINISHED_STATES: ReadonlySet<string> = new Set(['idle', 'recording', 'transcribing', 'correcting', 'output']);
const UNFINISHED = `(${[...UNFINISHED_STATES].map((s) => `'${s}'`).join(', ')})`;

/**
 * A row whose owner is alive past this age is taken for an orphan whose pid was reused: no
 * session lasts that long (recordings and every stage have deadlines).
 */
const MAX_SESSION_MS = 24 * 3_600_000;

/** Sessions this process has begun and not finished, whichever store (connection) wrote them. */
const live = new Set<string>();

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, it is just not ours to signal.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Whether an unfinished row still belongs to a running session: begun by this process and not
 * ended, or by another live process (a standalone `koto run`, another Node program) recently.
 */
function inProgress(row: Row, now = Date.now()): boolean {
  const pid = typeof row.owner_pid === 'number' ? row.owner_pid : null;
  if (pid === null) return false;
  if (pid === process.pid) return live.has(String(row.id));
  return processAlive(pid) && now - Date.parse(String(row.started_at)) < MAX_SESSION_MS;
}

type Row = Record<string, string | number | null>;

function toEntry(row: Row): HistoryEntry {
  return {
    id: String(row.id),
    startedAt: String(row.started_at),
    endedAt: (row.ended_at as string | null) ?? null,
    state: row.state as HistoryEntry['state'],
    input: String(row.input),
    raw: (row.raw as string | null) ?? null,
    text: (row.text as string | null) ?? null,
    fallback: Boolean(row.fallback),
    asrProvider: (row.asr_provider as string | null) ?? null,
    asrModel: (row.asr_model as string | null) ?? null,
    correctionProvider: (row.correction_provider as string | null) ?? null,
    correctionModel: (row.correction_model as string | null) ?? null,
    audioPath: (row.audio_path as string | null) ?? null,
    timings: JSON.parse(String(row.timings ?? '{}')) as Record<string, number>,
    errorCode: (row.error_code as string | null) ?? null,
    errorMessage: (row.error_message as string | null) ?? null,
    warnings: JSON.parse(String(row.warnings ?? '[]')) as string[],
    retryOf: (row.retry_of as string | null) ?? null,
    attempts: JSON.parse(String(row.attempts ?? '[]')) as ProviderAttempt[],
    cost: typeof row.cost === 'number' ? row.cost : null,
    profile: (row.profile as string | null) ?? null,
  };
}

/**
 * Session history in SQLite (node:sqlite). A row is written when a session starts (so a process
 * killed mid-session leaves a row pointing at its recording) and completed when it ends.
 * Texts only — secrets never reach it: error messages are scrubbed before they are recorded.
 *
 * Several processes write the same file (the daemon, standalone `koto run`s, Node programs):
 * WAL lets readers and one writer work at once, and the busy timeout makes a writer wait for
 * another's short transaction instead of failing. Each row carries the pid that began it, so
 * a starting daemon marks `interrupted` only sessions whose process is gone.
 */
export class HistoryStore {
  readonly #db: DatabaseSync;
  #closed = false;
  /** Full-text search over raw and final text (FTS5); false: search falls back to LIKE. */
  #fts = false;

  constructor(file: string) {
    ensurePrivateDir(path.dirname(file), 'data', { tighten: true });
    let db: DatabaseSync | undefined;
    try {
      // Created 0600 before SQLite opens it, so it is never readable by others, not even briefly.
      closeSync(openSync(file, 'a', 0o600));
      db = new (sqlite().DatabaseSync)(file);
      // The timeout first: switching to WAL and creating the schema take locks a concurrent
      // process may hold at this very moment. NORMAL is durable under WAL (a power cut may lose
      // the last row, never corrupt the file) without an fsync per session.
      db.exec('PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;');
      db.exec(SCHEMA);
      this.#db = db;
      this.#migrate();
      this.#fts = this.#ensureSearchIndex();
    } catch (err) {
      db?.close();
      throw kotoError('KOTO_ERR_HISTORY_UNREADABLE', { file, detail: describe(err) }, { cause: err });
    }
  }

  /** Columns added after the first release, to files written by an older Koto. */
  #migrate(): void {
    const columns = (this.#db.prepare('PRAGMA table_info(sessions)').all() as Row[]).map((c) => String(c.name));
    for (const [name, definition] of ADDED_COLUMNS) {
      if (columns.includes(name)) continue;
      try {
        this.#db.exec(`ALTER TABLE sessions ADD COLUMN ${name} ${definition}`);
      } catch (err) {
        // Another process added it between our look and our change.
        if (!/duplicate column/i.test(String((err as Error).message))) throw err;
      }
    }
  }

  begin(entry: {
    id: string;
    input: string;
    audioPath?: string | undefined;
    state?: SessionState;
    retryOf?: string | undefined;
    profile?: string | undefined;
  }): void {
    this.#db
      .prepare(
        'INSERT OR REPLACE INTO sessions (id, started_at, state, input, audio_path, retry_of, owner_pid, profile) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      )
      .run(
        entry.id,
        new Date().toISOString(),
        entry.state ?? 'recording',
        entry.input,
        entry.audioPath ?? null,
        entry.retryOf ?? null,
        process.pid,
        entry.profile ?? null,
      );
    live.add(entry.id);
  }

  setState(id: string, state: SessionState, audioPath?: string): void {
    this.#db.prepare('UPDATE sessions SET state = ?, audio_path = COALESCE(?, audio_path) WHERE id = ?').run(state, audioPath ?? null, id);
  }

  finish(record: SessionRecord, retryOf?: string): void {
    try {
      const exists = this.#db.prepare('SELECT 1 FROM sessions WHERE id = ?').get(record.id);
      if (!exists)
        this.begin({
          id: record.id,
          input: record.input,
          audioPath: record.audioPath,
          state: record.state,
          retryOf,
          profile: record.profile,
        });
      this.#db
        .prepare(
          `UPDATE sessions SET ended_at = ?, state = ?, raw = ?, text = ?, fallback = ?, asr_provider = ?, asr_model = ?,
           correction_provider = ?, correction_model = ?, audio_path = COALESCE(?, audio_path), timings = ?, error_code = ?,
           error_message = ?, warnings = ?, attempts = ?, cost = ?, profile = COALESCE(?, profile) WHERE id = ?`,
        )
        .run(
          new Date().toISOString(),
          record.state,
          record.raw ?? null,
          record.text ?? null,
          record.fallback ? 1 : 0,
          record.asrProvider ?? null,
          record.asrModel ?? null,
          record.correctionProvider ?? null,
          record.correctionModel ?? null,
          record.audioPath ?? null,
          JSON.stringify(record.timings),
          record.error?.code ?? null,
          record.error?.message ?? null,
          JSON.stringify(record.warnings),
          JSON.stringify(record.attempts ?? []),
          record.cost ?? null,
          record.profile ?? null,
          record.id,
        );
    } finally {
      live.delete(record.id);
    }
  }

  /**
   * Sessions left mid-way by a process that died (a daemon, a standalone run): marked
   * interrupted, their recordings retryable. Sessions of live processes are left alone.
   */
  markInterrupted(): HistoryEntry[] {
    const now = new Date().toISOString();
    return this.#transaction(() => {
      const rows = (this.#db.prepare(`SELECT * FROM sessions WHERE state IN ${UNFINISHED}`).all() as Row[]).filter(
        (row) => !inProgress(row),
      );
      const mark = this.#db.prepare(`UPDATE sessions SET state = 'interrupted', ended_at = ? WHERE id = ?`);
      for (const row of rows) mark.run(now, String(row.id));
      return rows.map((row) => ({ ...toEntry(row), state: 'interrupted' as const }));
    });
  }

  /** One write transaction: what is read inside cannot change before the writes land. */
  #transaction<T>(fn: () => T): T {
    this.#db.exec('BEGIN IMMEDIATE');
    try {
      const result = fn();
      this.#db.exec('COMMIT');
      return result;
    } catch (err) {
      this.#db.exec('ROLLBACK');
      throw err;
    }
  }

  get(id: string): HistoryEntry | undefined {
    const row = this.#db.prepare('SELECT * FROM sessions WHERE id = ?').get(id) as Row | undefined;
    return row ? toEntry(row) : undefined;
  }

  /** Newest first. */
  list(limit = 20): HistoryEntry[] {
    return (this.#db.prepare('SELECT * FROM sessions ORDER BY started_at DESC, id DESC LIMIT ?').all(limit) as Row[]).map(toEntry);
  }

  /** Forget audio paths whose files were removed (retention), keeping the texts. */
  clearAudio(paths: readonly string[]): void {
    const stmt = this.#db.prepare('UPDATE sessions SET audio_path = NULL WHERE audio_path = ?');
    for (const p of paths) stmt.run(p);
  }

  /**
   * `koto history --clear`: remove every row (privacy) but those of sessions still in progress.
   * Returns the audio paths only the removed rows held. Which of them Koto may delete is the
   * caller's question (owned-files.ts): some are the user's own input files.
   */
  clear(): { removed: number; audioPaths: string[] } {
    return this.#transaction(() => {
      const rows = this.#db.prepare('SELECT * FROM sessions').all() as Row[];
      const keep = rows.filter((row) => UNFINISHED_STATES.has(String(row.state)) && inProgress(row));
      const kept = new Set(keep.map((row) => String(row.id)));
      const keptPaths = new Set(keep.map((row) => row.audio_path));
      const removed = rows.filter((row) => !kept.has(String(row.id)));
      const del = this.#db.prepare('DELETE FROM sessions WHERE id = ?');
      for (const row of removed) del.run(String(row.id));
      const audioPaths = new Set(
        removed.map((row) => row.audio_path).filter((p): p is string => typeof p === 'string' && !keptPaths.has(p)),
      );
      return { removed: removed.length, audioPaths: [...audioPaths] };
    });
  }

  /** Notes the priced provider calls of a session (every entry point: run, transcribe, correct, live). */
  addUsage(sessionId: string, attempts: readonly ProviderAttempt[], at = new Date()): void {
    if (attempts.length === 0) return;
    const stmt = this.#db.prepare(
      'INSERT INTO usage (session_id, at, stage, provider, model, outcome, audio_seconds, input_tokens, output_tokens, cost) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    this.#transaction(() => {
      for (const a of attempts) {
        stmt.run(
          sessionId,
          at.toISOString(),
          a.stage,
          a.provider,
          a.model ?? null,
          a.outcome,
          a.audioSeconds ?? null,
          a.usage?.inputTokens ?? null,
          a.usage?.outputTokens ?? null,
          a.cost ?? null,
        );
      }
    });
  }

  /** Usage rows since `since` (ISO time), oldest first. */
  usage(since?: string): UsageRow[] {
    const rows = (
      since
        ? this.#db.prepare('SELECT * FROM usage WHERE at >= ? ORDER BY at, id').all(since)
        : this.#db.prepare('SELECT * FROM usage ORDER BY at, id').all()
    ) as Row[];
    const num = (v: string | number | null | undefined) => (typeof v === 'number' ? v : null);
    return rows.map((row) => ({
      sessionId: String(row.session_id),
      at: String(row.at),
      stage: row.stage as UsageRow['stage'],
      provider: String(row.provider),
      model: (row.model as string | null) ?? null,
      outcome: row.outcome as UsageRow['outcome'],
      audioSeconds: num(row.audio_seconds),
      inputTokens: num(row.input_tokens),
      outputTokens: num(row.output_tokens),
      cost: num(row.cost),
    }));
  }

  /**
   * The known spend since `since` and whether a call of unknown price happened meanwhile.
   */
  spend(since: string): { cost: number; unknown: number } {
    const row = this.#db
      .prepare('SELECT COALESCE(SUM(cost), 0) AS cost, SUM(CASE WHEN cost IS NULL THEN 1 ELSE 0 END) AS unknown FROM usage WHERE at >= ?')
      .get(since) as Row;
    return { cost: Number(row.cost ?? 0), unknown: Number(row.unknown ?? 0) };
  }

  /**
   * Sets `key` to `value` unless it already holds it; true when this call changed it. One
   * transaction, so two processes crossing the budget together warn once between them.
   */
  claim(key: string, value: string): boolean {
    return this.#transaction(() => {
      const row = this.#db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as Row | undefined;
      if (row?.value === value) return false;
      this.#db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)').run(key, value);
      return true;
    });
  }

  /**
   * An FTS5 index of raw and final text, kept by triggers so every writer (daemon, standalone
   * runs, older Koto versions) updates it. Keyed by session id rather than rowid: `begin` uses
   * INSERT OR REPLACE, whose implicit delete fires no trigger, so each insert first drops its id.
   */
  #ensureSearchIndex(): boolean {
    try {
      return this.#transaction(() => {
        const exists = this.#db.prepare(`SELECT 1 FROM sqlite_master WHERE name = 'sessions_fts'`).get();
        if (exists) return true;
        this.#db.exec(`
          CREATE VIRTUAL TABLE sessions_fts USING fts5(id UNINDEXED, raw, text, tokenize = 'unicode61 remove_diacritics 2');
          CREATE TRIGGER sessions_fts_insert AFTER INSERT ON sessions BEGIN
            DELETE FROM sessions_fts WHERE id = new.id;
            INSERT INTO sessions_fts (id, raw, text) VALUES (new.id, new.raw, new.text);
          END;
          CREATE TRIGGER sessions_fts_update AFTER UPDATE OF raw, text ON sessions BEGIN
            DELETE FROM sessions_fts WHERE id = old.id;
            INSERT INTO sessions_fts (id, raw, text) VALUES (new.id, new.raw, new.text);
          END;
          CREATE TRIGGER sessions_fts_delete AFTER DELETE ON sessions BEGIN
            DELETE FROM sessions_fts WHERE id = old.id;
          END;
          INSERT INTO sessions_fts (id, raw, text) SELECT id, raw, text FROM sessions;
        `);
        return true;
      });
    } catch {
      return false; // an SQLite without FTS5: search uses LIKE
    }
  }

  /** Whether search uses the full-text index (FTS5) rather than LIKE. */
  get fullText(): boolean {
    return this.#fts;
  }

  /**
   * Newest first, filtered. `query` matches words of the raw or final text (prefixes: "hel"
   * finds "hello"); every word must match. Filters combine with AND.
   */
  search(filter: HistoryFilter = {}): { entries: HistoryEntry[]; total: number } {
    const where: string[] = [];
    const params: (string | number)[] = [];
    const words = (filter.query ?? '').split(/\s+/).filter(Boolean).slice(0, 20);
    if (words.length && this.#fts) {
      // Each word quoted (no FTS syntax from the user), as a prefix.
      where.push('id IN (SELECT id FROM sessions_fts WHERE sessions_fts MATCH ?)');
      params.push(words.map((w) => `"${w.replace(/"/g, '""')}"*`).join(' '));
    } else {
      for (const word of words) {
        where.push(`(raw LIKE ? ESCAPE '\\' OR text LIKE ? ESCAPE '\\')`);
        const like = `%${word.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
        params.push(like, like);
      }
    }
    if (filter.state) {
      where.push('state = ?');
      params.push(filter.state);
    }
    if (filter.provider) {
      where.push('(asr_provider = ? OR correction_provider = ?)');
      params.push(filter.provider, filter.provider);
    }
    if (filter.from) {
      where.push('started_at >= ?');
      params.push(filter.from);
    }
    if (filter.to) {
      where.push('started_at < ?');
      params.push(filter.to);
    }
    const clause = where.length ? `WHERE ${where.join(' AND ')}` : '';
    const limit = Math.min(Math.max(filter.limit ?? 50, 1), 500);
    const offset = Math.max(filter.offset ?? 0, 0);
    const total = Number((this.#db.prepare(`SELECT COUNT(*) AS n FROM sessions ${clause}`).get(...params) as Row).n);
    const rows = this.#db
      .prepare(`SELECT * FROM sessions ${clause} ORDER BY started_at DESC, id DESC LIMIT ? OFFSET ?`)
      .all(...params, limit, offset) as Row[];
    return { entries: rows.map(toEntry), total };
  }

  /** Providers that appear in the history (for filters). */
  providers(): string[] {
    const rows = this.#db
      .prepare(
        'SELECT DISTINCT asr_provider AS p FROM sessions WHERE asr_provider IS NOT NULL UNION SELECT DISTINCT correction_provider FROM sessions WHERE correction_provider IS NOT NULL',
      )
      .all() as Row[];
    return rows.map((r) => String(r.p)).sort();
  }

  /**
   * Removes one row. Returns its audio path when no other row (a retry of it, the session it
   * retried) still points at it: only then may the caller delete the file (if Koto owns it).
   */
  delete(id: string): { removed: boolean; audioPath: string | null } {
    return this.#transaction(() => {
      const row = this.#db.prepare('SELECT audio_path FROM sessions WHERE id = ?').get(id) as Row | undefined;
      if (!row) return { removed: false, audioPath: null };
      this.#db.prepare('DELETE FROM sessions WHERE id = ?').run(id);
      const audio = typeof row.audio_path === 'string' ? row.audio_path : null;
      const shared = audio !== null && this.#db.prepare('SELECT 1 FROM sessions WHERE audio_path = ?').get(audio) !== undefined;
      return { removed: true, audioPath: shared ? null : audio };
    });
  }

  /** Idempotent: the kernel and the daemon may both close it. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }
}
