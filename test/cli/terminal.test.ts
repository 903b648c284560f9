import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { escapeLine, escapeText, forStdout } from '../../src/cli/terminal.ts';
import { tempHome } from '../support/index.ts';
import { BIN, koto } from './support.ts';

const home = tempHome('koto-terminal-');
afterAll(() => home.cleanup());
const env = { KOTO_HOME: home.dir };

const ESC = '\u001b';
const BEL = '\u0007';
// A window-title change and an OSC 52 clipboard write: what a hostile file name or transcript would carry.
const TITLE = `${ESC}]0;pwned${BEL}`;
const OSC52 = `${ESC}]52;c;ZWNobyBwd25lZA==${BEL}`;

/** Runs the real bin with stdout on a pseudo-terminal (util-linux `script`), so isTTY is true. */
function kotoOnTerminal(args: string[]): Promise<{ code: number | null; out: string }> {
  const command = [process.execPath, BIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qec', command, '/dev/null'], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env, TERM: 'dumb' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

describe('control characters never reach a terminal raw', () => {
  it('escapes C0, DEL, C1 and bidi overrides; keeps text line breaks only where asked', () => {
    expect(escapeLine(`a${TITLE}b\nc\td`)).toBe('a\\x1B]0;pwned\\x07b\\nc\\td');
    expect(escapeText(`line 1\nline 2\t${ESC}[2J\u009b\u007f`)).toBe('line 1\nline 2\t\\x1B[2J\\x9B\\x7F');
    expect(escapeLine('invoice\u202Egpj.wav')).toBe('invoice\\u202Egpj.wav');
    expect(escapeText('café — naïve 日本語 😀')).toBe('café — naïve 日本語 😀');
    expect(forStdout(`x${ESC}y`, { isTTY: false })).toBe(`x${ESC}y`);
    expect(forStdout(`x${ESC}y`, { isTTY: true })).toBe('x\\x1By');
  });

  it('an error naming a hostile file name is one escaped line on stderr', async () => {
    const name = path.join(home.dir, `missing${TITLE}\n${ESC}[31mred.wav`);
    const result = await koto(['transcribe', name], { env });
    expect(result.code).not.toBe(0);
    expect(result.stderr).not.toContain(ESC);
    expect(result.stderr).not.toContain(BEL);
    expect(result.stderr).toContain('missing\\x1B]0;pwned\\x07\\n\\x1B[31mred.wav');
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('dictated text is exact in a pipe and escaped on a terminal', async () => {
    const text = `hello ${OSC52} world`;
    const piped = await koto(['correct', '-'], { env, input: text });
    expect(piped.code).toBe(0);
    expect(piped.stdout).toContain(OSC52.slice(1)); // the provider may touch casing/spacing, not the bytes of the sequence
    expect(piped.stdout).toContain(ESC);

    const tty = await kotoOnTerminal(['correct', text]);
    expect(tty.code).toBe(0);
    expect(tty.out).not.toContain(ESC);
    expect(tty.out).toContain('\\x1B]52;c;ZWNobyBwd25lZA==\\x07');
  });

  it('a config error quoting a hostile value is escaped too', async () => {
    writeFileSync(path.join(home.dir, 'bad.yaml'), `transport:\n  connectTimeoutMs: "soon${ESC}[2J"\n`);
    const result = await koto(['config', 'check', '--config', 'bad.yaml'], { env, cwd: home.dir });
    expect(result.code).toBe(3);
    expect(result.stderr).not.toContain(ESC);
  });
});
