import { mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describeOutputConformance, type OutputSink } from 'koto-voice/testing';
import outputs from '../../plugins/outputs/index.ts';

/**
 * Koto's own `file` and `stdout` outputs pass the suite third-party outputs run, loaded as any
 * plugin is (the `outputs` plugin's default export) and read back the way a user would.
 */

describeOutputConformance({
  plugin: outputs,
  output: 'file',
  sink: ({ dir }): OutputSink => {
    const target = path.join(dir, 'notes', 'dictation.txt');
    return {
      options: { path: target },
      // One line per dictation: the text, then the newline the output adds.
      read: async () => {
        const text = await readFile(target, 'utf8').catch(() => '');
        return text.endsWith('\n') ? text.slice(0, -1) : text;
      },
      // A folder where the file should be: every append fails (EISDIR) from now on.
      failNext: () => mkdirSync(target, { recursive: true }),
    };
  },
  invalidOptions: [
    { options: { path: 42 }, path: 'path' },
    { options: { path: 'notes.txt', format: 'xml' }, path: 'format' },
  ],
});

/**
 * process.stdout captured while a check runs: what the output wrote, a write that fails the way
 * a closed pipe does, and a pipe whose reader stopped reading (it asks writers to wait for a
 * 'drain' that never comes).
 */
function capturedStdout(): OutputSink {
  const original = process.stdout.write;
  let written = '';
  let failing: string | undefined;
  let hang = false;
  let held = 0;
  const write = (
    chunk: string | Uint8Array,
    encoding?: BufferEncoding | ((err?: Error | null) => void),
    callback?: (err?: Error | null) => void,
  ): boolean => {
    const done = typeof encoding === 'function' ? encoding : callback;
    if (failing !== undefined) {
      const err = Object.assign(new Error(`write EPIPE: ${failing}`), { code: 'EPIPE' });
      failing = undefined;
      queueMicrotask(() => done?.(err));
      return false;
    }
    written += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    queueMicrotask(() => done?.());
    return true;
  };
  process.stdout.write = write as typeof process.stdout.write;
  // Backed up from hangNext() on: the output must wait for 'drain', and a cancel must end that wait.
  Object.defineProperty(process.stdout, 'writableNeedDrain', {
    configurable: true,
    get: () => {
      if (hang) held++;
      return hang;
    },
  });
  return {
    options: {},
    read: () => (written.endsWith('\n') ? written.slice(0, -1) : written),
    failNext: (message) => (failing = message),
    hangNext: () => (hang = true),
    heldDeliveries: () => held,
    close: () => {
      process.stdout.write = original;
      // The prototype's getter again.
      delete (process.stdout as { writableNeedDrain?: boolean }).writableNeedDrain;
    },
  };
}

describeOutputConformance({
  plugin: outputs,
  output: 'stdout',
  sink: () => capturedStdout(),
  invalidOptions: [{ options: { raw: 'yes' }, path: 'raw' }],
});
