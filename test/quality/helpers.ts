import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { vi } from 'vitest';
import { CliContext } from '../../src/cli/context.ts';
import { HistoryStore } from '../../src/history/store.ts';
import { createKernel, type Kernel } from '../../src/index.ts';
import type { SessionRecord } from '../../src/kernel/types.ts';
import type { OpenAIServer } from '../support/index.ts';

export const API_KEY = 'sk-quality-canary-0a1b2c3d4e';

export function tempDir(prefix = 'koto-quality-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface Captured {
  stdout(): string;
  stderr(): string;
  restore(): void;
}

/** Captures what a command writes to stdout and stderr (the write callbacks still fire). */
export function captureOutput(): Captured {
  const out: string[] = [];
  const err: string[] = [];
  const fake = (into: string[]) =>
    ((chunk: unknown, encoding?: unknown, callback?: unknown) => {
      into.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'));
      const cb = typeof encoding === 'function' ? encoding : callback;
      if (typeof cb === 'function') queueMicrotask(() => (cb as () => void)());
      return true;
    }) as typeof process.stdout.write;
  const o = vi.spyOn(process.stdout, 'write').mockImplementation(fake(out));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation(fake(err));
  return {
    stdout: () => out.join(''),
    stderr: () => err.join(''),
    restore() {
      o.mockRestore();
      e.mockRestore();
    },
  };
}

/** Runs a command function with its output captured. */
export async function run(fn: () => Promise<number>): Promise<{ code: number; stdout: string; stderr: string }> {
  const cap = captureOutput();
  try {
    const code = await fn();
    return { code, stdout: cap.stdout(), stderr: cap.stderr() };
  } finally {
    cap.restore();
  }
}

/** A kernel whose providers point at the loopback server, adopted by a CliContext (no daemon). */
export async function quietKernel(
  server: OpenAIServer,
  home: string,
  config: Record<string, unknown> = {},
): Promise<{ kernel: Kernel; ctx: CliContext }> {
  const { providers, ...rest } = config as { providers?: Record<string, unknown> };
  const kernel = await createKernel({
    search: false,
    builtins: ['openai-compatible'],
    env: { KOTO_HOME: home },
    logLevel: 'error',
    logSink: () => undefined,
    config: {
      providers: { openai: { use: 'openai-compatible', baseUrl: server.baseUrl, apiKey: API_KEY }, ...providers },
      transport: { ca: server.ca },
      ...rest,
    },
  });
  const ctx = new CliContext({ daemon: false });
  ctx.adopt(kernel);
  return { kernel, ctx };
}

export function record(id: string, raw: string | undefined, text: string | undefined, extra: Partial<SessionRecord> = {}): SessionRecord {
  return {
    id,
    state: 'done',
    input: 'microphone',
    raw,
    text,
    fallback: false,
    asrProvider: 'openai',
    asrModel: 'gpt-4o-mini-transcribe',
    correctionProvider: 'openai',
    correctionModel: 'gpt-4.1-mini',
    audioPath: undefined,
    timings: {},
    error: undefined,
    warnings: [],
    ...extra,
  };
}

/** Writes sessions into `$home/data/history.sqlite`, oldest first (a few ms apart, so the order is stable). */
export async function seedHistory(home: string, sessions: readonly { record: SessionRecord; retryOf?: string }[]): Promise<void> {
  const store = new HistoryStore(path.join(home, 'data', 'history.sqlite'));
  try {
    for (const s of sessions) {
      store.finish(s.record, s.retryOf);
      await new Promise((r) => setTimeout(r, 3));
    }
  } finally {
    store.close();
  }
}

/** The chat messages of a recorded /chat/completions request. */
export function messagesOf(json: unknown): { role: string; content: string }[] {
  return (json as { messages: { role: string; content: string }[] }).messages;
}
