/**
 * Feedback test support: stand-in programs (paplay, notify-send, osascript, …) that record how
 * they were called, and a small live audio source and ASR providers for real sessions.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { definePlugin, type AudioFrame } from '../../src/index.ts';

export interface StandIn {
  /** Exit code (default 0). */
  readonly exit?: number | undefined;
  /** Copy the file named by the last argument beside the call (a player: what it was given to play). */
  readonly copyLast?: boolean | undefined;
}

export interface Call {
  readonly seq: number;
  readonly name: string;
  readonly args: string[];
  /** The bytes of the file the stand-in was asked to play, as they were at that moment. */
  readonly played: Buffer | undefined;
}

/**
 * Writes stand-in executables into `<root>/bin`. Each call takes the next free number with an
 * atomic mkdir (so calls are ordered even across processes) and writes its argv, NUL-separated,
 * then renames it into place: a test sees only complete calls. Only absolute paths inside, as
 * the kernel's PATH holds nothing but this folder.
 */
export function standIns(root: string, programs: Readonly<Record<string, StandIn>>): { bin: string; callsDir: string } {
  const bin = path.join(root, 'bin');
  const callsDir = path.join(root, 'calls');
  mkdirSync(bin, { recursive: true });
  mkdirSync(callsDir, { recursive: true });
  for (const [name, spec] of Object.entries(programs)) {
    const file = path.join(bin, name);
    writeFileSync(
      file,
      [
        '#!/bin/sh',
        `d='${callsDir}'`,
        'n=0',
        'while ! /bin/mkdir "$d/$n" 2>/dev/null; do n=$((n+1)); done',
        `printf '%s\\0' "\${0##*/}" "$@" > "$d/$n/argv.tmp"`,
        spec.copyLast ? 'for a; do f=$a; done; [ -f "$f" ] && /bin/cp "$f" "$d/$n/played"' : '',
        '/bin/mv "$d/$n/argv.tmp" "$d/$n/argv"',
        `exit ${spec.exit ?? 0}`,
        '',
      ].join('\n'),
    );
    chmodSync(file, 0o755);
  }
  return { bin, callsDir };
}

/** The complete calls so far, in the order they were made. */
export function readCalls(callsDir: string): Call[] {
  if (!existsSync(callsDir)) return [];
  return readdirSync(callsDir)
    .map(Number)
    .filter((n) => Number.isInteger(n) && existsSync(path.join(callsDir, String(n), 'argv')))
    .sort((a, b) => a - b)
    .map((seq) => {
      const dir = path.join(callsDir, String(seq));
      const [name = '', ...args] = readFileSync(path.join(dir, 'argv'), 'utf8').split('\0').slice(0, -1);
      const played = existsSync(path.join(dir, 'played')) ? readFileSync(path.join(dir, 'played')) : undefined;
      return { seq, name, args, played };
    });
}

/** Every call started (complete or not): a numbered folder is taken before anything else. */
export function startedCalls(callsDir: string): number {
  return existsSync(callsDir) ? readdirSync(callsDir).length : 0;
}

/** A live source: 20 ms frames of a quiet ramp until stopped. */
export const liveSource = definePlugin({
  name: 'feedback-test-source',
  audioSources: ['test-src'],
  apply(api) {
    api.hooks.audioSource.for('test-src').tapPromise('feedback-test-source', async () => {
      let stopped = false;
      async function* frames(): AsyncGenerator<AudioFrame> {
        for (let n = 0; !stopped; n++) {
          yield { samples: new Int16Array(320).fill((n % 50) * 10), timestamp: n * 20, rms: 0.01 };
          await new Promise((r) => setTimeout(r, 5));
        }
      }
      return { frames: frames(), sampleRate: 16000, device: 'test', stop: async () => void (stopped = true) };
    });
  },
});

/** ASR that answers with a fixed text. */
export const echoAsr = definePlugin({
  name: 'feedback-test-asr',
  capabilities: ['asr'],
  provider: z.object({}),
  apply(api) {
    api.hooks.asr.for('feedback-test-asr').tapPromise('feedback-test-asr', async () => ({ text: 'hello there' }));
  },
});

/**
 * ASR that fails the way a careless upstream does: its error repeats the credential it was sent
 * (and, when asked, hostile characters), so the test can check what reaches the notification.
 */
export const failingAsr = definePlugin({
  name: 'feedback-test-failing',
  capabilities: ['asr'],
  provider: z.object({ apiKey: z.string(), say: z.string().default('') }),
  apply(api) {
    api.hooks.asr.for('feedback-test-failing').tapPromise('feedback-test-failing', async (req) => {
      const { apiKey, say } = req.provider.options as { apiKey: string; say: string };
      throw new Error(`upstream refused the key ${apiKey}${say}`);
    });
  },
});

/** An output that fails, so a session ends `done` with a warning. */
export const brokenOutput = definePlugin({
  name: 'feedback-test-output',
  outputs: { broken: z.object({}), fine: z.object({}) },
  apply(api) {
    api.hooks.output.for('broken').tapPromise('feedback-test-output', async () => {
      throw new Error('the window went away');
    });
    api.hooks.output.for('fine').tapPromise('feedback-test-output', async () => undefined);
  },
});
