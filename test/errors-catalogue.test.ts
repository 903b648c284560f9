import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERRORS, KotoError, kotoError } from '../src/index.ts';

const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');

describe('the error catalogue', () => {
  it('documents every code in docs/errors.md, with its current message, fix and exit code', () => {
    for (const [code, spec] of Object.entries(ERRORS)) {
      const row = doc.split('\n').find((line) => line.startsWith(`| \`${code}\` |`));
      expect(row, `${code} is missing from docs/errors.md (run: npx node scripts/errors-doc.ts)`).toBeDefined();
      expect(row).toContain(`| ${spec.exit} |`);
      expect(row).toContain(spec.message.replace(/\|/g, '\\|'));
      expect(row).toContain(spec.fix.replace(/\|/g, '\\|'));
    }
  });

  it('documents no code that does not exist', () => {
    const documented = [...doc.matchAll(/`(KOTO_ERR_[A-Z0-9_]+)`/g)].map((m) => m[1]!);
    for (const code of documented) expect(Object.keys(ERRORS)).toContain(code);
  });

  it('fills templates, carries exit codes and is recognised across package copies', () => {
    const err = kotoError('KOTO_ERR_AUTH', { provider: 'openai', status: 401 }, { plugin: 'openai-compatible', hook: 'asr' });
    expect(err.message).toBe('provider "openai" rejected the credentials (HTTP 401)');
    expect(err.fix).toContain('providers.openai.apiKey');
    expect(err.exitCode).toBe(1);
    expect(err.toLine()).toMatch(/^provider "openai" rejected .*\(KOTO_ERR_AUTH\) \[openai-compatible asr\]$/);
    const foreign = Object.assign(new Error('x'), { [Symbol.for('koto-voice.error')]: true });
    expect(KotoError.is(foreign)).toBe(true);
    expect(KotoError.is(new Error('plain'))).toBe(false);
  });
});
