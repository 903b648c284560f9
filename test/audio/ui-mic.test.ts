/**
 * The control panel with a real microphone: a `koto daemon` process recording from the virtual
 * microphone (test/support/virtual-mic.sh) through mic-native, driven from Debian's chromium
 * (playwright-core, system binary): Start from the button while speech plays into the
 * microphone, the recording state and the live input level, Stop, the final text.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { koto } from '../cli/support.ts';
import { playIntoMic, startVirtualMic } from '../support/virtual-mic.ts';
import { startOpenAIServer, tempHome, type OpenAIServer } from '../support/index.ts';

const BIN = fileURLToPath(new URL('../../bin/koto.js', import.meta.url));
const WAIT = { timeout: 60_000 };

// Browser globals the page functions use (this project is type-checked without the DOM lib).
declare const document: { querySelector(selector: string): { textContent: string | null; style: { width: string } } | null };

const home = tempHome('koto-ui-mic-');
let server: OpenAIServer;
let env: NodeJS.ProcessEnv;
let daemon: ChildProcess | undefined;
let browser: Browser | undefined;
let speech: string;

beforeAll(async () => {
  const pulse = startVirtualMic();
  server = await startOpenAIServer({
    transcribe: () => 'hello from the panel microphone',
    complete: () => 'Hello from the panel microphone.',
  });
  writeFileSync(path.join(home.dir, 'ca.pem'), server.ca);
  speech = path.join(home.dir, 'speech.wav');
  execFileSync('flite', ['-voice', 'kal16', '-t', 'hello from the panel microphone, this is a test of the control panel', '-o', speech]);
  writeFileSync(
    path.join(home.dir, 'config.yaml'),
    [
      'providers:',
      '  main:',
      '    use: openai-compatible',
      `    baseUrl: ${server.baseUrl}`,
      '    apiKey: sk-ui-mic-canary-0077',
      'asr: { model: whisper-1 }',
      'correction: { model: gpt-test, stream: false }',
      'audio: { source: mic-native, device: default }',
      'output:',
      '  - use: file',
      `    path: ${path.join(home.dir, 'dictations.txt')}`,
      'daemon:',
      '  ui: { port: 0 }',
      '',
    ].join('\n'),
  );
  env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    KOTO_HOME: home.dir,
    NODE_EXTRA_CA_CERTS: path.join(home.dir, 'ca.pem'),
    ...pulse,
  };
  daemon = spawn(process.execPath, [BIN, 'daemon'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  daemon.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  daemon.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const deadline = Date.now() + 30_000;
  while ((await koto(['status'], { env })).code !== 0) {
    if (daemon.exitCode !== null || Date.now() > deadline) throw new Error(`koto daemon did not start: ${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: process.getuid?.() === 0 ? ['--no-sandbox'] : [] });
});

afterAll(async () => {
  await browser?.close();
  if (daemon && daemon.exitCode === null) {
    const exited = new Promise((r) => daemon!.once('exit', r));
    daemon.kill('SIGTERM');
    await exited;
  }
  await server?.close();
  home.cleanup();
});

describe('control panel with the virtual microphone', () => {
  it('Start from the button while speech plays: recording with a live level, then Stop: the final text', async () => {
    const link = (await koto(['ui', '--print'], { env })).stdout.trim();
    expect(link).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/login\?token=/);
    const page = await browser!.newPage();
    await page.goto(link);
    await page.locator('[data-testid="start"]:not([disabled])').click(WAIT);
    await page.waitForFunction(() => document.querySelector('[data-testid="state"]')?.textContent === 'recording', null, WAIT);
    // Before any speech the meter is (near) still: the microphone plays silence.
    await page.waitForTimeout(400);
    expect(await page.evaluate(() => parseFloat(document.querySelector('[data-testid="level"]')?.style.width ?? '0'))).toBeLessThan(5);
    const speaking = playIntoMic(
      speech,
      Object.fromEntries(
        Object.entries(env)
          .filter(([k]) => k.startsWith('PULSE'))
          .map(([k, v]) => [k, String(v)]),
      ),
    );
    // The speech moves the meter (silence from the virtual microphone does not).
    await page.waitForFunction(() => parseFloat(document.querySelector('[data-testid="level"]')?.style.width ?? '0') > 5, null, WAIT);
    await speaking;
    await page.locator('[data-testid="stop"]:not([disabled])').click(WAIT);
    await page.waitForFunction(
      () => document.querySelector('[data-testid="final"]')?.textContent === 'Hello from the panel microphone.',
      null,
      WAIT,
    );
    expect(readFileSync(path.join(home.dir, 'dictations.txt'), 'utf8')).toBe('Hello from the panel microphone.\n');
    const upload = server.requests.filter((r) => r.path.endsWith('/audio/transcriptions')).at(-1);
    // What was uploaded is at least as long as the speech played into the microphone.
    expect(upload?.form?.files.file?.data.length).toBeGreaterThan(readFileSync(speech).length * 0.9);
    await page.close();
  });
});
