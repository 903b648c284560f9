/**
 * Runs PvRecorder in a worker thread: its read() blocks until a frame is captured, which would
 * stall the event loop. Self-contained on purpose (Node runs it directly, no bundler): no imports
 * besides Node's. Protocol (see pvrecorder.ts):
 *   → { type: 'devices', names, defaultName? }   ← { type: 'open', index } | { type: 'quit' }
 *   → { type: 'opened', device }  → { type: 'frame', samples }…  → { type: 'stopped' }
 *   → { type: 'error', stage: 'load' | 'list' | 'open' | 'read', message }
 * control[0] = 1 asks the read loop to stop; control[1] counts frames read (for the watchdog).
 */
import { createRequire } from 'node:module';
import { parentPort, workerData } from 'node:worker_threads';

interface WorkerInput {
  readonly modulePath: string;
  readonly frameLength: number;
  readonly bufferedFrames: number;
  readonly control: SharedArrayBuffer;
  readonly mode: 'list' | 'record';
}

interface Recorder {
  start(): void;
  stop(): void;
  release(): void;
  readSync(): Int16Array;
  getSelectedDevice(): string;
}

interface RecorderClass {
  new (frameLength: number, deviceIndex?: number, bufferedFramesCount?: number): Recorder;
  getAvailableDevices(): string[];
}

const input = workerData as WorkerInput;
const port = parentPort!;
const control = new Int32Array(input.control);

function describe(err: unknown): string {
  if (err instanceof Error) return `${err.message}${err.constructor.name !== 'Error' ? ` (${err.constructor.name})` : ''}`;
  return String(err);
}

function fail(stage: string, err: unknown): void {
  port.postMessage({ type: 'error', stage, message: describe(err) });
}

function main(): void {
  let Recorder: RecorderClass;
  try {
    Recorder = (createRequire(import.meta.url)(input.modulePath) as { PvRecorder: RecorderClass }).PvRecorder;
  } catch (err) {
    fail('load', err);
    return;
  }
  let names: string[];
  try {
    names = Recorder.getAvailableDevices();
  } catch (err) {
    fail('list', err);
    return;
  }
  if (input.mode === 'list') {
    let defaultName: string | undefined;
    try {
      const probe = new Recorder(input.frameLength, -1, 4);
      defaultName = probe.getSelectedDevice();
      probe.release();
    } catch {
      // no default device: listed without one
    }
    port.postMessage({ type: 'devices', names, defaultName });
    port.close();
    return;
  }
  port.postMessage({ type: 'devices', names });
  port.once('message', (msg: { type: string; index?: number }) => {
    if (msg.type === 'open' && typeof msg.index === 'number') record(Recorder, msg.index);
    port.close();
  });
}

function record(Recorder: RecorderClass, index: number): void {
  let recorder: Recorder;
  try {
    recorder = new Recorder(input.frameLength, index, input.bufferedFrames);
    recorder.start();
  } catch (err) {
    fail('open', err);
    return;
  }
  let device = '';
  try {
    device = recorder.getSelectedDevice();
  } catch {
    // unnamed
  }
  port.postMessage({ type: 'opened', device });
  try {
    while (Atomics.load(control, 0) === 0) {
      const samples = recorder.readSync();
      Atomics.add(control, 1, 1);
      port.postMessage({ type: 'frame', samples }, [samples.buffer as ArrayBuffer]);
    }
  } catch (err) {
    fail('read', err);
  } finally {
    try {
      recorder.stop();
    } catch {
      // already stopped by the failure
    }
    recorder.release();
  }
  port.postMessage({ type: 'stopped' });
}

main();
