import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeWav } from 'koto-voice';
import { benchAccuracyCommand } from '../../src/cli/commands/quality.ts';
import type { Kernel } from '../../src/index.ts';
import type { BenchRow, BenchSummary } from '../../src/quality/bench.ts';
import { scanCorpus } from '../../src/quality/bench.ts';
import { startOpenAIServer, type OpenAIServer, type RecordedRequest } from '../support/index.ts';
import type { CliContext } from '../../src/cli/context.ts';
import { API_KEY, quietKernel, run, tempDir } from './helpers.ts';

/** What the "recogniser" hears per file (default model), and what the "corrector" makes of it. */
const HEARD: Record<string, string> = {
  'a.wav': 'the quick brown fox jumped over the dog', // ref 9 words: 1 substitution, 1 deletion
  'b.wav': 'hello there world', // ref 2 words: 1 insertion
  'c.wav': 'no reference for this one',
  'd.wav': '今天天汽很好', // ref 6 characters: 1 substitution
};
const CORRECTED: Record<string, string> = {
  'the quick brown fox jumped over the dog': 'The quick brown fox jumps over the lazy dog.',
  'hello there world': 'Hello world.',
  今天天汽很好: '今天天气很好。',
};
const REFERENCES: Record<string, string> = {
  'a.txt': 'The quick brown fox jumps over the lazy dog.\n',
  'b.txt': 'Hello, world!',
  'd.txt': '\uFEFF今天天气很好。\n',
};
/** The second provider ("whisper-1") hears everything right. */
const EXACT: Record<string, string> = {
  'a.wav': 'The quick brown fox jumps over the lazy dog',
  'b.wav': 'hello world',
  'd.wav': '今天天气很好',
};

const home = tempDir('koto-bench-');
const corpus = path.join(home.dir, 'corpus');
let server: OpenAIServer;
let kernel: Kernel;
let ctx: CliContext;

beforeAll(async () => {
  server = await startOpenAIServer({
    apiKey: API_KEY,
    transcribe: (req: RecordedRequest) => {
      const file = req.form?.files.file?.filename ?? '';
      const model = req.form?.fields.model?.[0];
      return (model === 'whisper-1' ? EXACT[file] : HEARD[file]) ?? 'unexpected';
    },
    complete: (req) => {
      const user = (req.json as { messages: { role: string; content: string }[] }).messages.at(-1)?.content ?? '';
      const transcript = /<transcript>\n([\s\S]*?)\n<\/transcript>/.exec(user)?.[1] ?? user;
      return CORRECTED[transcript.trim()] ?? transcript;
    },
  });
  const wav = encodeWav(
    new Int16Array(1600).map((_, i) => Math.round(5000 * Math.sin(i / 5))),
    16000,
  );
  mkdirSync(corpus, { recursive: true });
  for (const name of Object.keys(HEARD)) writeFileSync(path.join(corpus, name), wav);
  for (const [name, text] of Object.entries(REFERENCES)) writeFileSync(path.join(corpus, name), text);
  writeFileSync(path.join(corpus, 'notes.md'), 'not part of the corpus');
  ({ kernel, ctx } = await quietKernel(server, home.dir, {
    providers: { exact: { use: 'openai-compatible', baseUrl: server.baseUrl, apiKey: API_KEY, asrModel: 'whisper-1' } },
    asr: { provider: 'openai' },
  }));
});

afterAll(async () => {
  await kernel?.close();
  await server?.close();
  home.cleanup();
});

function ndjson(stdout: string): (BenchRow | BenchSummary)[] {
  return stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as BenchRow | BenchSummary);
}

describe('koto bench accuracy', () => {
  it('scans a corpus: audio with sibling .txt references, the rest reported missing', async () => {
    const scanned = await scanCorpus(corpus);
    expect(scanned.items.map((i) => i.name)).toEqual(['a.wav', 'b.wav', 'd.wav']);
    expect(scanned.missing).toEqual(['c.wav']);
    expect(scanned.items[2]?.reference).toBe('今天天气很好。');
  });

  it('--json: one object per file × provider × mode with exact WER/CER, then a summary', async () => {
    server.reset();
    const result = await run(() => benchAccuracyCommand(ctx, corpus, { json: true, providers: 'openai,exact', concurrency: '2' }));
    expect(result.code).toBe(0);
    expect(result.stderr).toContain('koto: warning: c.wav: no reference transcript (c.txt); skipped');
    const lines = ndjson(result.stdout);
    const rows = lines.filter((l): l is BenchRow => l.type === 'file');
    const summary = lines.at(-1) as BenchSummary;
    expect(rows).toHaveLength(3 * 2 * 2);
    expect(lines.filter((l) => l.type === 'summary')).toHaveLength(1);
    // Rows come in corpus order, provider order, raw before corrected.
    expect(rows.map((r) => `${r.file}/${r.provider}/${r.mode}`).slice(0, 4)).toEqual([
      'a.wav/openai/raw',
      'a.wav/openai/corrected',
      'a.wav/exact/raw',
      'a.wav/exact/corrected',
    ]);
    const row = (file: string, provider: string, mode: string) =>
      rows.find((r) => r.file === file && r.provider === provider && r.mode === mode)!;
    expect(row('a.wav', 'openai', 'raw')).toMatchObject({
      metric: 'wer',
      substitutions: 1,
      deletions: 1,
      insertions: 0,
      referenceTokens: 9,
      model: 'gpt-4o-mini-transcribe',
    });
    expect(row('a.wav', 'openai', 'raw').rate).toBeCloseTo(2 / 9, 10);
    expect(row('b.wav', 'openai', 'raw')).toMatchObject({ metric: 'wer', insertions: 1, rate: 0.5 });
    expect(row('d.wav', 'openai', 'raw')).toMatchObject({ metric: 'cer', substitutions: 1, referenceTokens: 6 });
    for (const file of ['a.wav', 'b.wav', 'd.wav']) {
      expect(row(file, 'openai', 'corrected')).toMatchObject({ rate: 0, fallback: false, correctionProvider: 'openai' });
      expect(row(file, 'exact', 'raw')).toMatchObject({ rate: 0, model: 'whisper-1' });
    }
    for (const r of rows) {
      expect(r.latencyMs).toBeTypeOf('number');
      if (r.mode === 'corrected') expect(r.latencyMs).toBe(r.timings.asr! + r.timings.correction!);
    }
    // Corpus totals: summed edits over summed reference tokens, per provider × mode × metric.
    const total = (provider: string, mode: string, metric: string) =>
      summary.totals.find((t) => t.provider === provider && t.mode === mode && t.metric === metric)!;
    expect(total('openai', 'raw', 'wer')).toMatchObject({ files: 2, edits: 3, referenceTokens: 11, failed: 0 });
    expect(total('openai', 'raw', 'wer').rate).toBeCloseTo(3 / 11, 10);
    expect(total('openai', 'raw', 'cer')).toMatchObject({ files: 1, edits: 1, referenceTokens: 6 });
    expect(total('openai', 'corrected', 'wer').rate).toBe(0);
    expect(total('exact', 'raw', 'wer').rate).toBe(0);
    expect(summary).toMatchObject({ files: 3, skipped: ['c.wav'], providers: ['openai', 'exact'], modes: ['raw', 'corrected'] });
    // One transcription per file and provider; the corrected mode re-uses it.
    expect(server.requests.filter((r) => r.path.endsWith('/audio/transcriptions'))).toHaveLength(6);
    expect(server.requests.filter((r) => r.path.endsWith('/chat/completions'))).toHaveLength(6);
  });

  it('prints a table with per-file lines and totals; --no-correct measures raw transcripts only', async () => {
    server.reset();
    const result = await run(() => benchAccuracyCommand(ctx, corpus, { correct: false }));
    expect(result.code).toBe(0);
    const lines = result.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^FILE\s+PROVIDER\s+MODE\s+METRIC\s+RATE\s+SUB\s+DEL\s+INS\s+REF\s+LATENCY$/);
    expect(lines.find((l) => l.startsWith('a.wav'))).toMatch(/^a\.wav\s+openai\s+raw\s+WER\s+22\.22%\s+1\s+1\s+0\s+9\s+\d+ ms$/);
    expect(lines.find((l) => l.startsWith('d.wav'))).toMatch(/CER\s+16\.67%/);
    expect(lines.find((l) => l.startsWith('TOTAL (2 files)'))).toMatch(/openai\s+raw\s+WER\s+27\.27%\s+1\s+1\s+1\s+11\s+\d+ ms median/);
    expect(lines.find((l) => l.startsWith('TOTAL (1 file)'))).toMatch(/CER\s+16\.67%/);
    expect(result.stdout).not.toContain('corrected');
    expect(server.requests.filter((r) => r.path.endsWith('/chat/completions'))).toHaveLength(0);
  });

  it('reports a file that cannot be transcribed, keeps measuring the others, and exits 1', async () => {
    const dir = path.join(home.dir, 'broken');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'b.wav'), encodeWav(new Int16Array(1600), 16000));
    writeFileSync(path.join(dir, 'b.txt'), 'hello world');
    writeFileSync(path.join(dir, 'bad.wav'), 'this is not audio at all, not even close');
    writeFileSync(path.join(dir, 'bad.txt'), 'whatever');
    const result = await run(() => benchAccuracyCommand(ctx, dir, { json: true, correct: false }));
    expect(result.code).toBe(1);
    const lines = ndjson(result.stdout);
    const bad = lines.find((l) => l.type === 'file' && l.file === 'bad.wav') as BenchRow;
    expect(bad.error?.code).toMatch(/^KOTO_ERR_AUDIO_/);
    expect(bad.rate).toBeNull();
    const summary = lines.at(-1) as BenchSummary;
    expect(summary.totals[0]).toMatchObject({ files: 1, failed: 1, insertions: 1, referenceTokens: 2 });
    expect(result.stderr).toMatch(/koto: bad\.wav \(openai\): .*\(KOTO_ERR_AUDIO_/);
  });

  it('an empty corpus is an error (exit 2), and so is a folder whose audio has no references', async () => {
    const empty = path.join(home.dir, 'empty');
    mkdirSync(empty, { recursive: true });
    writeFileSync(path.join(empty, 'only.txt'), 'a reference without audio');
    const none = await run(() => benchAccuracyCommand(ctx, empty, {}));
    expect(none.code).toBe(2);
    expect(none.stdout).toBe('');
    expect(none.stderr).toMatch(
      /^koto: no audio files with reference transcripts in .*empty \(no audio files at all\)\. Fix: .*\(KOTO_ERR_CORPUS_EMPTY\)\n$/,
    );

    const unreferenced = path.join(home.dir, 'unreferenced');
    mkdirSync(unreferenced, { recursive: true });
    writeFileSync(path.join(unreferenced, 'x.wav'), encodeWav(new Int16Array(160), 16000));
    const noRefs = await run(() => benchAccuracyCommand(ctx, unreferenced, {}));
    expect(noRefs.code).toBe(2);
    expect(noRefs.stderr).toContain('none with a .txt reference');

    const missing = await run(() => benchAccuracyCommand(ctx, path.join(home.dir, 'nope'), {}));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/is not a folder.*\(KOTO_ERR_USAGE\)/);
  });

  it('an unknown provider is a config error before anything is sent', async () => {
    server.reset();
    const result = await run(() => benchAccuracyCommand(ctx, corpus, { providers: 'openai,nosuch' }));
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/"nosuch".*known: openai, exact.*\(KOTO_ERR_PROVIDER_UNKNOWN\)/);
    expect(server.requests).toHaveLength(0);
  });
});
