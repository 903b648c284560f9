import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { encodeWav } from '../../src/index.ts';
import type { HistoryEntry } from '../../src/history/store.ts';
import type { OpenAIServer } from '../support/index.ts';
import { BIN, koto, type CliResult } from '../cli/support.ts';

export const KEY = 'sk-nothing-lost-canary-5150';
export const ASR = '/audio/transcriptions';
export const wav = encodeWav(
  new Int16Array(8000).map((_, i) => Math.round(4000 * Math.sin(i / 5))),
  16000,
);

export { toneSource, toneStopped } from '../support/daemon.ts';

/**
 * Holds transcription requests on demand: `holdNext()` makes the next transcription wait until
 * the returned release is called (the server keeps the request open, like a slow upstream).
 */
export function transcriptionGate(text: string) {
  const holds: Promise<void>[] = [];
  const releases: (() => void)[] = [];
  return {
    holdNext(): () => void {
      let release!: () => void;
      holds.push(new Promise<void>((r) => (release = r)));
      releases.push(release);
      return release;
    },
    releaseAll(): void {
      for (const r of releases) r();
      holds.length = 0;
    },
    transcribe: async (): Promise<string> => {
      const hold = holds.shift();
      if (hold) await hold;
      return text;
    },
  };
}

export function configText(server: OpenAIServer, extra: string[] = []): string {
  return [
    'providers:',
    '  main:',
    '    use: openai-compatible',
    `    baseUrl: ${server.baseUrl}`,
    `    apiKey: ${KEY}`,
    'asr:',
    '  model: whisper-1',
    '  retries: 0',
    'correction:',
    '  enabled: false',
    'audio:',
    '  source: tone',
    'output:',
    '  - use: file',
    '    path: ./out.txt',
    'transport:',
    `  ca: ${JSON.stringify(server.ca)}`,
    ...extra,
    '',
  ].join('\n');
}

/** The environment of a user with only OPENAI_* set (standalone CLI runs). */
export function userEnv(server: OpenAIServer, home: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  writeFileSync(path.join(home, 'ca.pem'), server.ca);
  return {
    OPENAI_API_KEY: KEY,
    OPENAI_BASE_URL: server.baseUrl,
    NODE_EXTRA_CA_CERTS: path.join(home, 'ca.pem'),
    KOTO_HOME: path.join(home, 'koto'),
    ...extra,
  };
}

export async function historyRows(env: NodeJS.ProcessEnv, cwd: string): Promise<HistoryEntry[]> {
  const result = await koto(['history', '--json', '-n', '100'], { env, cwd });
  if (result.code !== 0) throw new Error(`koto history failed: ${result.stderr}`);
  return result.stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as HistoryEntry);
}

export function errorCode(result: CliResult): string | undefined {
  return /\((KOTO_ERR_[A-Z_]+)\)/.exec(result.stderr)?.[1];
}

/** A `koto` child process left running (a daemon, a run held by the server). */
export function spawnKoto(
  args: string[],
  env: NodeJS.ProcessEnv,
  cwd: string,
): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

export async function waitFor(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function socketIn(kotoHome: string): string {
  return path.join(kotoHome, 'run', 'koto.sock');
}

export { existsSync };
