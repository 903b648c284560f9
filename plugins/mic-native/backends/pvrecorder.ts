import { createRequire } from 'node:module';
import { dependencyMissing, type KotoError } from 'koto-voice';
import type { Worker } from 'node:worker_threads';
import { isNullDeviceName, kindOfName, selectDevice, type BackendDevice } from '../devices.ts';
import { micError } from '../errors.ts';
import type { Backend, DeviceCapture, OpenRequest } from './types.ts';

type WorkerMessage =
  | { type: 'devices'; names: string[]; defaultName?: string }
  | { type: 'opened'; device: string }
  | { type: 'frame'; samples: Int16Array }
  | { type: 'error'; stage: 'load' | 'list' | 'open' | 'read'; message: string }
  | { type: 'stopped' };

/** Where the addon's package is, or undefined when it is not installed. */
export function pvrecorderModulePath(): string | undefined {
  try {
    return createRequire(import.meta.url).resolve(PVRECORDER);
  } catch {
    return undefined;
  }
}

export const PVRECORDER = '@picovoice/pvrecorder-node';

/** `backend: pvrecorder` without the addon (an optional dependency). `auto` just moves on to the next backend. */
export function pvrecorderMissing(): KotoError {
  return dependencyMissing({
    plugin: 'mic-native',
    package: PVRECORDER,
    feature: 'the microphone backend `pvrecorder` (`pluginOptions.mic-native.backend`)',
    alternative: 'set `pluginOptions.mic-native.backend` to `auto` to record with parec, arecord, ffmpeg or sox',
  });
}

// The worker is a sibling file: .ts when running from source (Node strips the types), .js when built.
const WORKER_URL = new URL(`./pvrecorder-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

export function pvrecorderDevices(names: readonly string[], defaultName: string | undefined): BackendDevice[] {
  return names.map((name, index) => ({ name, id: index, isDefault: name === defaultName, kind: kindOfName(name) }));
}

/**
 * PvRecorder asks PulseAudio for a tiny buffer; when the CPU is busy the server then drops audio
 * (measured: hundreds of ms lost per recording on 2 busy cores, none with 100 ms). libpulse reads
 * PULSE_LATENCY_MSEC when a stream connects, and the addon reads the process environment, so it
 * is set while the recorder opens and restored after. A value the user set is left alone.
 */
let latencyHolders = 0;
function withPulseLatency(latencyMs: number | undefined): () => void {
  if (!latencyMs || process.platform !== 'linux') return () => {};
  if (latencyHolders === 0) {
    if (process.env.PULSE_LATENCY_MSEC !== undefined) return () => {};
    process.env.PULSE_LATENCY_MSEC = String(latencyMs);
  }
  latencyHolders++;
  let restored = false;
  return () => {
    if (restored) return;
    restored = true;
    if (--latencyHolders === 0) delete process.env.PULSE_LATENCY_MSEC;
  };
}

function startWorker(mode: 'list' | 'record', frameLength: number): { worker: Worker; control: Int32Array } {
  const modulePath = pvrecorderModulePath();
  if (!modulePath)
    throw micError('open-failed', { device: '', backend: 'pvrecorder', detail: '@picovoice/pvrecorder-node is not installed' });
  const shared = new SharedArrayBuffer(8);
  // 64 frames of 512 samples ≈ 2 s of buffer inside the addon before it drops audio.
  // Loaded here: a daemon that never opens the addon never loads worker threads (~3 MiB resident).
  const { Worker } = process.getBuiltinModule('node:worker_threads');
  const worker = new Worker(WORKER_URL, {
    workerData: { modulePath, frameLength, bufferedFrames: 64, control: shared, mode },
    stdout: false,
    stderr: false,
  });
  return { worker, control: new Int32Array(shared) };
}

/** PvRecorder (miniaudio: PulseAudio/ALSA, CoreAudio, WASAPI) read in a worker thread. */
export class PvRecorderBackend implements Backend {
  readonly name = 'pvrecorder' as const;

  async available(): Promise<boolean> {
    return pvrecorderModulePath() !== undefined;
  }

  list(): Promise<BackendDevice[]> {
    return new Promise((resolve, reject) => {
      let worker: Worker;
      try {
        ({ worker } = startWorker('list', 512));
      } catch (err) {
        reject(err);
        return;
      }
      let settled = false;
      const timer = setTimeout(() => finish(new Error('PvRecorder did not list the devices within 5 s')), 5000);
      const finish = (err: unknown, devices?: BackendDevice[]) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        // Left to exit by itself (terminating a thread inside the addon can crash the process).
        worker.unref();
        if (err) reject(micError('open-failed', { device: '', backend: 'pvrecorder', detail: (err as Error).message }, err));
        else resolve(devices!);
      };
      worker.on('message', (msg: WorkerMessage) => {
        if (msg.type === 'devices') finish(undefined, pvrecorderDevices(msg.names, msg.defaultName));
        else if (msg.type === 'error') finish(new Error(`${msg.stage}: ${msg.message}`));
      });
      worker.on('error', (err) => finish(err));
      worker.on('exit', () => finish(new Error('the PvRecorder worker exited without an answer')));
    });
  }

  open(request: OpenRequest): Promise<DeviceCapture> {
    return new Promise<DeviceCapture>((resolve, reject) => {
      let worker: Worker;
      let control: Int32Array;
      try {
        ({ worker, control } = startWorker('record', request.frameLength));
      } catch (err) {
        reject(err);
        return;
      }
      let device = request.device;
      let opened = false; // first audio arrived
      let settled = false; // open resolved or rejected
      let ended = false; // no more messages expected
      let stopped!: () => void;
      const stoppedPromise = new Promise<void>((done) => (stopped = done));
      const timer = setTimeout(() => {
        rejectOpen(micError('open-failed', { device, backend: 'pvrecorder', detail: `no audio within ${request.openTimeoutMs} ms` }));
      }, request.openTimeoutMs);

      // Never terminate() a worker whose recorder is open: the addon's audio thread would outlive
      // the worker's heap and crash the process later. Ask the read loop to stop; it stops and
      // releases the recorder as soon as its current read returns (a dead server makes it fail).
      const abandon = () => {
        Atomics.store(control, 0, 1);
        worker.unref();
      };
      let restoreEnv = () => {};
      const rejectOpen = (err: unknown) => {
        restoreEnv();
        clearTimeout(timer);
        ended = true;
        abandon();
        stopped();
        if (!settled) {
          settled = true;
          reject(err);
        }
      };
      const capture: DeviceCapture = {
        backend: 'pvrecorder',
        get device() {
          return device;
        },
        progress: () => Atomics.load(control, 1),
        stop: async () => {
          Atomics.store(control, 0, 1);
          // The read loop notices within one frame; a stuck read is left behind after a second.
          const timeout = setTimeout(() => {
            abandon();
            stopped();
          }, 1000);
          await stoppedPromise;
          clearTimeout(timeout);
        },
        kill: () => {
          ended = true;
          abandon();
          stopped();
        },
      };

      worker.on('message', (msg: WorkerMessage) => {
        if (ended) return;
        switch (msg.type) {
          case 'devices': {
            let index = -1;
            try {
              const selection = selectDevice(pvrecorderDevices(msg.names, undefined), request.device);
              if (selection.kind === 'device') {
                index = selection.device.id as number;
                device = selection.device.name;
              }
            } catch (err) {
              worker.postMessage({ type: 'quit' });
              rejectOpen(err);
              return;
            }
            restoreEnv = withPulseLatency(request.latencyMs);
            worker.postMessage({ type: 'open', index });
            break;
          }
          case 'opened':
            restoreEnv();
            device = msg.device || device;
            if (isNullDeviceName(msg.device)) rejectOpen(micError('null-device', { device: msg.device }));
            break;
          case 'frame':
            if (!opened) {
              opened = true;
              settled = true;
              clearTimeout(timer);
              resolve(capture);
            }
            request.onData(msg.samples);
            break;
          case 'error':
            if (!opened) rejectOpen(micError('open-failed', { device, backend: 'pvrecorder', detail: `${msg.stage}: ${msg.message}` }));
            else if (!Atomics.load(control, 0)) {
              ended = true;
              request.onError(new Error(`PvRecorder ${msg.stage} failed: ${msg.message}`));
            }
            break;
          case 'stopped':
            ended = true;
            stopped();
            break;
        }
      });
      worker.on('error', (err) => {
        if (!opened) rejectOpen(micError('open-failed', { device, backend: 'pvrecorder', detail: err.message }, err));
        else if (!ended) {
          ended = true;
          request.onError(err);
        }
        stopped();
      });
      worker.on('exit', () => {
        if (!opened) rejectOpen(micError('open-failed', { device, backend: 'pvrecorder', detail: 'the worker exited before any audio' }));
        else if (!ended && !Atomics.load(control, 0)) {
          ended = true;
          request.onError(new Error('the PvRecorder worker exited'));
        }
        stopped();
      });
    });
  }
}
