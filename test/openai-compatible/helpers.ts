import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createKernel, type Kernel } from 'koto-voice';
import { encodeWav } from '../../src/audio/wav.ts';
import { startOpenAIServer, type OpenAIServer, type OpenAIServerOptions } from '../support/index.ts';

export const API_KEY = 'sk-test-canary-123456';

/** `seconds` of a 440 Hz sine at 16 kHz, as a WAV file. */
export function sineWav(seconds = 0.5, sampleRate = 16_000): Uint8Array {
  const samples = new Int16Array(Math.round(seconds * sampleRate));
  for (let i = 0; i < samples.length; i++) samples[i] = Math.round(Math.sin((2 * Math.PI * 440 * i) / sampleRate) * 12_000);
  return encodeWav(samples, sampleRate);
}

export interface LogLine {
  level: string;
  scope: string;
  message: string;
  fields?: Record<string, unknown> | undefined;
}

export interface Harness {
  server: OpenAIServer;
  kernel: Kernel;
  home: string;
  logs: LogLine[];
  close(): Promise<void>;
}

type Config = Record<string, unknown> & {
  provider?: Record<string, unknown>;
  asr?: Record<string, unknown>;
  correction?: Record<string, unknown>;
  transport?: Record<string, unknown>;
};

/** A real loopback HTTPS/H2 server and a kernel whose `main` provider points at it. */
export async function harness(
  serverOptions: OpenAIServerOptions = {},
  config: Config | ((ctx: { home: string; server: OpenAIServer }) => Config | Promise<Config>) = {},
): Promise<Harness> {
  const server = await startOpenAIServer({ apiKey: API_KEY, ...serverOptions });
  const home = await mkdtemp(path.join(os.tmpdir(), 'koto-openai-test-'));
  const logs: LogLine[] = [];
  let resolved: Config;
  try {
    resolved = typeof config === 'function' ? await config({ home, server }) : config;
  } catch (err) {
    await server.close();
    throw err;
  }
  const { provider, asr, correction, transport, ...rest } = resolved;
  let kernel: Kernel;
  try {
    kernel = await createKernel({
      search: false,
      builtins: ['openai-compatible'],
      env: { KOTO_HOME: home },
      logLevel: 'debug',
      logSink: (entry) => logs.push({ level: entry.level, scope: entry.scope, message: entry.message, fields: entry.fields }),
      config: {
        providers: { main: { use: 'openai-compatible', baseUrl: server.baseUrl, apiKey: API_KEY, ...provider } },
        // These tests check how one failed exchange is reported; the kernel's retries have their own tests.
        asr: { model: 'gpt-4o-mini-transcribe', retries: 0, ...asr },
        correction: { model: 'gpt-4.1-mini', retries: 0, ...correction },
        transport: { ca: server.ca, ...transport },
        ...rest,
      },
    });
  } catch (err) {
    await server.close();
    await rm(home, { recursive: true, force: true });
    throw err;
  }
  return {
    server,
    kernel,
    home,
    logs,
    async close() {
      await kernel.close();
      await server.close();
      await rm(home, { recursive: true, force: true });
    },
  };
}

/** The requests to one API path (`/audio/transcriptions`, …), GET /models pre-warms left out unless asked. */
export function requestsTo(server: OpenAIServer, suffix: string) {
  return server.requests.filter((r) => r.path.endsWith(suffix));
}

/** Runs `fn` and returns what it threw (fails the test if it did not throw). */
export async function caught(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to throw');
}

/** Writes a file into `dir` and returns its absolute path. */
export async function fileIn(dir: string, name: string, content: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, content);
  return file;
}

/** Everything a KotoError shows a user or a log: message, fix, one-line form and JSON. */
export function everythingShown(err: unknown): string {
  const e = err as { message?: string; fix?: string; toLine?: () => string; toJSON?: () => unknown; details?: unknown };
  return [e.message, e.fix, e.toLine?.(), JSON.stringify(e.toJSON?.() ?? null), JSON.stringify(e.details ?? null), String(err)].join('\n');
}
