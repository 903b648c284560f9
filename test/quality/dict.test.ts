import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { dictAddCommand, dictSuggestCommand, type ConfirmPrompt } from '../../src/cli/commands/quality.ts';
import { CliContext } from '../../src/cli/context.ts';
import { correctionSpans, looksLikeTerm, suggestTerms, type Suggestion } from '../../src/quality/suggest.ts';
import { record, run, seedHistory, tempDir } from './helpers.ts';

/** A history with recurring corrections; newest last here (seedHistory writes them in order). */
const SESSIONS = [
  {
    id: '20260401-080000-000001',
    raw: 'i pushed the fix to get hub and ran cube control apply',
    text: 'I pushed the fix to GitHub and ran kubectl apply.',
  },
  { id: '20260401-081000-000002', raw: 'open get hub please', text: 'Open GitHub, please.' },
  {
    id: '20260401-082000-000003',
    raw: 'the cube control logs show an error on post gress',
    text: 'The kubectl logs show an error on Postgres.',
  },
  { id: '20260401-083000-000004', raw: 'um so we met with anna yesterday', text: 'So we met with Anna yesterday.' },
  // A retry of session 3: the same audio again, not a new session.
  {
    id: '20260401-084000-000005',
    raw: 'the cube control logs show an error on post gress',
    text: 'The kubectl logs show an error on Postgres.',
    retryOf: '20260401-082000-000003',
  },
  { id: '20260401-085000-000006', raw: 'monday we deploy', text: 'Monday, we deploy.' },
  { id: '20260401-086000-000007', raw: 'we use post gress and k eights', text: 'We use Postgres and k8s.' },
  // A fallback (raw delivered) and a failed session carry no correction.
  { id: '20260401-087000-000008', raw: 'get hub', text: 'get hub', fallback: true },
  { id: '20260401-088000-000009', raw: undefined, text: undefined },
];

const home = tempDir('koto-dict-');
const configFile = path.join(home.dir, 'koto.yaml');
const dictionaryFile = path.join(home.dir, 'words', 'dictionary.txt');

beforeAll(async () => {
  await seedHistory(
    home.dir,
    SESSIONS.map((s) => ({
      record: record(s.id, s.raw, s.text, { fallback: Boolean(s.fallback), ...(s.raw === undefined ? { state: 'failed' as const } : {}) }),
      retryOf: s.retryOf,
    })),
  );
  writeFileSync(configFile, 'dictionary: ./words/dictionary.txt\n');
});

beforeEach(() => {
  vi.stubEnv('KOTO_HOME', home.dir);
  mkdirSync(path.dirname(dictionaryFile), { recursive: true });
  writeFileSync(dictionaryFile, '# terms Koto should spell right\nkubectl\n');
});

afterEach(() => {
  vi.unstubAllEnvs();
});

afterAll(() => home.cleanup());

const ctx = () => new CliContext({ config: configFile });

function prompt(interactive: boolean, answer = ''): ConfirmPrompt & { asked: string[] } {
  const asked: string[] = [];
  return {
    interactive,
    asked,
    async ask(question) {
      asked.push(question);
      return answer;
    },
  };
}

describe('mining the history', () => {
  it('aligns raw and corrected words into replaced and re-cased stretches', () => {
    const spans = correctionSpans('so i ran cube control on new relic', 'So I ran kubectl on New Relic.');
    expect(spans.map((s) => [s.kind, s.raw.map((w) => w.core).join(' '), s.corrected.map((w) => w.core).join(' ')])).toEqual([
      ['case', 'so i', 'So I'],
      ['replace', 'cube control', 'kubectl'],
      ['case', 'new relic', 'New Relic'],
    ]);
  });

  it('knows what looks like a term', () => {
    const mid = (core: string) => looksLikeTerm({ core, sentenceStart: false });
    expect(['GitHub', 'k8s', 'AWS', 'iOS', 'node.js', 'Grafana', 'GPT-4o'].map(mid)).toEqual([true, true, true, true, true, true, true]);
    expect(['kubernetes', 'I', 'OK', 'Monday', 'the', '2024'].map(mid)).toEqual([false, false, false, false, false, false]);
    expect(looksLikeTerm({ core: 'Grafana', sentenceStart: true })).toBe(false);
    expect(looksLikeTerm({ core: 'GitHub', sentenceStart: true })).toBe(true);
  });

  it('counts recurring corrections per term and per session, with an example', () => {
    const entries = [...SESSIONS]
      .reverse()
      .map((s) => ({ id: s.id, raw: s.raw ?? null, text: s.text ?? null, fallback: Boolean(s.fallback), retryOf: s.retryOf ?? null }));
    const all = suggestTerms(entries, { minSessions: 1 });
    const byTerm = Object.fromEntries(all.map((s) => [s.term, s]));
    expect(Object.keys(byTerm).sort()).toEqual(['Anna', 'GitHub', 'Postgres', 'k8s', 'kubectl']);
    expect(byTerm.Postgres).toMatchObject({ sessions: 2, count: 3, heard: [{ raw: 'post gress', count: 3 }] });
    expect(byTerm.kubectl).toMatchObject({ sessions: 2, count: 3 });
    expect(byTerm.GitHub).toMatchObject({
      sessions: 2,
      count: 2,
      example: { raw: 'get hub', corrected: 'GitHub', id: '20260401-081000-000002' },
    });
    expect(byTerm.k8s).toMatchObject({ sessions: 1, example: { raw: 'k eights', corrected: 'k8s' } });

    // Words merely run together are a spacing fix, not a term.
    const spacing = [1, 2].map((n) => ({
      id: `s${n}`,
      raw: 'every one can do it',
      text: 'Everyone can do it.',
      fallback: false,
      retryOf: null,
    }));
    expect(suggestTerms(spacing, { minSessions: 1 })).toEqual([]);

    const recurring = suggestTerms(entries, { known: ['KUBECTL'] });
    expect(recurring.map((s) => s.term)).toEqual(['Postgres', 'GitHub']);
  });
});

describe('koto dict suggest', () => {
  it('shows terms seen in >= 2 sessions, skipping ones already in the dictionary', async () => {
    const result = await run(() => dictSuggestCommand(ctx(), {}));
    expect(result.code).toBe(0);
    expect(result.stdout.split('\n')).toEqual([
      'TERM      SESSIONS  COUNT  EXAMPLE',
      'Postgres         2      3  post gress → Postgres',
      'GitHub           2      2  get hub → GitHub',
      '',
    ]);
    expect(result.stderr).toBe('koto: add the ones you want with: koto dict add Postgres GitHub\n');
    // Suggesting never writes anything.
    expect(readFileSync(dictionaryFile, 'utf8')).toBe('# terms Koto should spell right\nkubectl\n');
  });

  it('--json prints one candidate per line; --min-sessions changes the threshold', async () => {
    const result = await run(() => dictSuggestCommand(ctx(), { json: true, minSessions: '1' }));
    expect(result.code).toBe(0);
    const lines = result.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Suggestion);
    expect(lines.map((s) => s.term)).toEqual(['Postgres', 'GitHub', 'Anna', 'k8s']);
    expect(lines[0]).toEqual({
      term: 'Postgres',
      sessions: 2,
      count: 3,
      example: { raw: 'post gress', corrected: 'Postgres', id: '20260401-086000-000007' },
      heard: [{ raw: 'post gress', count: 3 }],
    });
    const none = await run(() => dictSuggestCommand(ctx(), { minSessions: '5' }));
    expect(none).toMatchObject({ code: 0, stdout: '' });
    expect(none.stderr).toContain('no dictionary candidates');
    expect((await run(() => dictSuggestCommand(ctx(), { minSessions: '0' }))).code).toBe(2);
  });
});

describe('koto dict add', () => {
  it('--yes appends new terms, dedupes, keeps comments and ends with a newline', async () => {
    writeFileSync(dictionaryFile, '# terms Koto should spell right\nkubectl\n# databases\nPostgres');
    const result = await run(() =>
      dictAddCommand(ctx(), ['GitHub', 'kubectl', 'k8s', 'GitHub', ' Grafana '], { yes: true }, prompt(false)),
    );
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(`added 3 terms to ${dictionaryFile}: GitHub, k8s, Grafana\n`);
    expect(result.stderr).toBe('koto: already in the dictionary: kubectl\n');
    expect(readFileSync(dictionaryFile, 'utf8')).toBe(
      '# terms Koto should spell right\nkubectl\n# databases\nPostgres\nGitHub\nk8s\nGrafana\n',
    );

    const again = await run(() => dictAddCommand(ctx(), ['GitHub'], { yes: true }, prompt(false)));
    expect(again).toMatchObject({ code: 0, stdout: `nothing to add: ${dictionaryFile} has every term\n` });
    expect(readFileSync(dictionaryFile, 'utf8').match(/GitHub/g)).toHaveLength(1);
  });

  it('without --yes and without a terminal it refuses and writes nothing', async () => {
    const ask = prompt(false, 'y');
    const result = await run(() => dictAddCommand(ctx(), ['GitHub'], {}, ask));
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(
      /^koto: not changing .*dictionary\.txt without confirmation: there is no terminal to ask on\. Fix: .*--yes\. \(KOTO_ERR_CONFIRM_REQUIRED\)\n$/,
    );
    expect(ask.asked).toEqual([]);
    expect(readFileSync(dictionaryFile, 'utf8')).toBe('# terms Koto should spell right\nkubectl\n');
  });

  it('on a terminal it asks y/N: yes adds, anything else adds nothing', async () => {
    const no = prompt(true, '');
    const declined = await run(() => dictAddCommand(ctx(), ['GitHub', 'k8s'], {}, no));
    expect(declined).toMatchObject({ code: 1, stdout: '', stderr: 'koto: nothing added\n' });
    expect(no.asked).toEqual([`Add 2 terms to ${dictionaryFile}: GitHub, k8s? [y/N] `]);
    expect(readFileSync(dictionaryFile, 'utf8')).not.toContain('GitHub');

    const yes = prompt(true, 'y');
    const accepted = await run(() => dictAddCommand(ctx(), ['GitHub'], {}, yes));
    expect(accepted.code).toBe(0);
    expect(readFileSync(dictionaryFile, 'utf8')).toBe('# terms Koto should spell right\nkubectl\nGitHub\n');
  });

  it('creates a configured dictionary that does not exist yet', async () => {
    const cfg = path.join(home.dir, 'fresh.yaml');
    writeFileSync(cfg, 'dictionary: ./fresh/terms.txt\n');
    const result = await run(() => dictAddCommand(new CliContext({ config: cfg }), ['Grafana'], { yes: true }, prompt(false)));
    expect(result.code).toBe(0);
    expect(readFileSync(path.join(home.dir, 'fresh', 'terms.txt'), 'utf8')).toBe('Grafana\n');
  });

  it('with no dictionary configured it says how to configure one (exit 3) and creates nothing', async () => {
    const cfg = path.join(home.dir, 'plain.yaml');
    writeFileSync(cfg, 'asr: { language: en }\n');
    const result = await run(() => dictAddCommand(new CliContext({ config: cfg }), ['Grafana'], { yes: true }, prompt(false)));
    expect(result.code).toBe(3);
    expect(result.stderr).toBe(
      `koto: no dictionary file is configured in ${cfg}. Fix: add \`dictionary: ./dictionary.txt\` to ${cfg} (one term per line; the file is created on the first \`koto dict add\`). (KOTO_ERR_NO_DICTIONARY)\n`,
    );
    expect(existsSync(path.join(home.dir, 'dictionary.txt'))).toBe(false);
  });

  it('refuses terms the dictionary format cannot hold', async () => {
    for (const bad of [['#hashtag'], ['two\nlines'], ['  ']]) {
      const result = await run(() => dictAddCommand(ctx(), bad, { yes: true }, prompt(false)));
      expect(result.code).toBe(2);
    }
    expect(readFileSync(dictionaryFile, 'utf8')).toBe('# terms Koto should spell right\nkubectl\n');
  });
});
