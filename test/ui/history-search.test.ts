import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterAll, describe, expect, it } from 'vitest';
import { HistoryStore } from '../../src/history/store.ts';
import type { SessionRecord } from '../../src/kernel/types.ts';
import { tempHome } from '../support/index.ts';

const home = tempHome('koto-history-search-');
afterAll(() => home.cleanup());

function record(id: string, raw: string, text: string, extra: Partial<SessionRecord> = {}): SessionRecord {
  return {
    id,
    state: 'done',
    input: 'microphone',
    raw,
    text,
    fallback: false,
    asrProvider: 'main',
    asrModel: 'm',
    correctionProvider: 'main',
    correctionModel: 'c',
    audioPath: undefined,
    timings: {},
    error: undefined,
    warnings: [],
    ...extra,
  };
}

describe('history search', () => {
  it('finds words and prefixes of raw and final text, every word must match; quotes and operators are text', () => {
    const store = new HistoryStore(path.join(home.dir, 'a', 'history.sqlite'));
    try {
      store.finish(record('s1', 'um the quarterly report', 'The quarterly report.'));
      store.finish(record('s2', 'café au lait', 'Café au lait.'));
      store.finish(
        record('s3', 'send it to Zoë', 'Send it to Zoë.', { state: 'failed', asrProvider: 'other', correctionProvider: undefined }),
      );
      expect(store.fullText).toBe(true);
      const ids = (query: string, more = {}) =>
        store
          .search({ query, ...more })
          .entries.map((e) => e.id)
          .sort();
      expect(ids('quart')).toEqual(['s1']);
      expect(ids('um')).toEqual(['s1']);
      expect(ids('report quarterly')).toEqual(['s1']);
      expect(ids('report lait')).toEqual([]);
      expect(ids('cafe')).toEqual(['s2']);
      expect(ids('zoe')).toEqual(['s3']);
      expect(ids('"report" OR NEAR(')).toEqual([]);
      expect(ids('', { state: 'failed' })).toEqual(['s3']);
      expect(ids('', { provider: 'other' })).toEqual(['s3']);
      expect(store.search({ limit: 1 })).toMatchObject({ total: 3, entries: [expect.anything()] });
      expect(store.providers()).toEqual(['main', 'other']);
    } finally {
      store.close();
    }
  });

  it('a history written before the index existed is indexed when opened', () => {
    const file = path.join(home.dir, 'b', 'history.sqlite');
    new HistoryStore(file).close();
    // As an older Koto left it: no index, no triggers, rows added since.
    const db = new DatabaseSync(file);
    db.exec(
      'DROP TRIGGER sessions_fts_insert; DROP TRIGGER sessions_fts_update; DROP TRIGGER sessions_fts_delete; DROP TABLE sessions_fts;',
    );
    db.prepare(
      "INSERT INTO sessions (id, started_at, state, input, raw, text) VALUES ('old', '2026-01-01T00:00:00Z', 'done', 'x', 'legacy words', 'Legacy words.')",
    ).run();
    db.close();
    const store = new HistoryStore(file);
    try {
      expect(store.search({ query: 'legacy' }).entries.map((e) => e.id)).toEqual(['old']);
      store.finish(record('new', 'fresh words', 'Fresh words.'));
      expect(store.search({ query: 'words' }).total).toBe(2);
      // Rewriting a row re-indexes it; the old words no longer find it.
      store.finish(record('new', 'changed', 'Changed.'));
      expect(store.search({ query: 'fresh' }).total).toBe(0);
      expect(store.search({ query: 'changed' }).total).toBe(1);
    } finally {
      store.close();
    }
  });

  it('delete hands back the recording only when no other row (a retry) still points at it', () => {
    const store = new HistoryStore(path.join(home.dir, 'c', 'history.sqlite'));
    const audio = path.join(home.dir, 'c', 'rec.wav');
    writeFileSync(audio, 'RIFF');
    try {
      store.finish(record('orig', 'a', 'A.', { audioPath: audio }));
      store.finish(record('retry', 'a', 'A.', { audioPath: audio }));
      expect(store.delete('orig')).toEqual({ removed: true, audioPath: null });
      expect(store.search({ query: 'a' }).entries.map((e) => e.id)).toEqual(['retry']);
      expect(store.delete('retry')).toEqual({ removed: true, audioPath: audio });
      expect(store.delete('retry')).toEqual({ removed: false, audioPath: null });
      expect(existsSync(audio)).toBe(true);
    } finally {
      store.close();
    }
  });
});
