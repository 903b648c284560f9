import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import type { SessionRecord, SessionState } from '../kernel/types.ts';

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
`;

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
  };
}

/**
 * Session history in SQLite (node:sqlite). A row is written when a session starts (so a daemon
 * killed mid-recording leaves a row pointing at its recording) and completed when it ends.
 * Texts only — secrets never reach it: error messages are scrubbed before they are recorded.
 */
export class HistoryStore {
  readonly #db: DatabaseSync;

  constructor(file: string) {
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const created = !existsSync(file);
    this.#db = new DatabaseSync(file);
    if (created) chmodSync(file, 0o600);
    this.#db.exec('PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 2000;');
    this.#db.exec(SCHEMA);
  }

  begin(entry: { id: string; input: string; audioPath?: string | undefined; state?: SessionState; retryOf?: string | undefined }): void {
    this.#db
      .prepare('INSERT OR REPLACE INTO sessions (id, started_at, state, input, audio_path, retry_of) VALUES (?, ?, ?, ?, ?, ?)')
      .run(entry.id, new Date().toISOString(), entry.state ?? 'recording', entry.input, entry.audioPath ?? null, entry.retryOf ?? null);
  }

  setState(id: string, state: SessionState, audioPath?: string): void {
    this.#db.prepare('UPDATE sessions SET state = ?, audio_path = COALESCE(?, audio_path) WHERE id = ?').run(state, audioPath ?? null, id);
  }

  finish(record: SessionRecord, retryOf?: string): void {
    const exists = this.#db.prepare('SELECT 1 FROM sessions WHERE id = ?').get(record.id);
    if (!exists) this.begin({ id: record.id, input: record.input, audioPath: record.audioPath, state: record.state, retryOf });
    this.#db
      .prepare(
        `UPDATE sessions SET ended_at = ?, state = ?, raw = ?, text = ?, fallback = ?, asr_provider = ?, asr_model = ?,
         correction_provider = ?, correction_model = ?, audio_path = COALESCE(?, audio_path), timings = ?, error_code = ?,
         error_message = ?, warnings = ? WHERE id = ?`,
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
        record.id,
      );
  }

  /** Sessions left mid-way by a daemon that died: marked interrupted, their recordings retryable. */
  markInterrupted(): HistoryEntry[] {
    const rows = this.#db
      .prepare("SELECT * FROM sessions WHERE state IN ('idle', 'recording', 'transcribing', 'correcting', 'output')")
      .all() as Row[];
    this.#db
      .prepare("UPDATE sessions SET state = 'interrupted', ended_at = ? WHERE state IN ('idle', 'recording', 'transcribing', 'correcting', 'output')")
      .run(new Date().toISOString());
    return rows.map((row) => ({ ...toEntry(row), state: 'interrupted' as const }));
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

  /** `koto history --clear`: remove every row (privacy). Returns the audio paths the rows held. */
  clear(): string[] {
    const paths = (this.#db.prepare('SELECT audio_path FROM sessions WHERE audio_path IS NOT NULL').all() as Row[]).map((r) =>
      String(r.audio_path),
    );
    this.#db.exec('DELETE FROM sessions');
    return paths;
  }

  close(): void {
    this.#db.close();
  }
}
