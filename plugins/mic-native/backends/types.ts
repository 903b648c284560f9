import type { BackendDevice } from '../devices.ts';
import type { BackendName } from '../options.ts';

export const SAMPLE_RATE = 16_000;

export interface OpenRequest {
  /** The configured device name (`audio.device`); `default` is the system default. */
  readonly device: string;
  readonly frameLength: number;
  /** Opening fails when no audio arrives within this long. */
  readonly openTimeoutMs: number;
  /** Latency to ask PulseAudio/PipeWire for (its buffer for our stream); 0: the backend's default. */
  readonly latencyMs?: number | undefined;
  /** Samples as captured (16 kHz mono), in chunks of any length. */
  readonly onData: (samples: Int16Array) => void;
  /** The device failed after it was opened (process died, read error). Called at most once. */
  readonly onError: (err: unknown) => void;
}

/** An open device, delivering audio until stopped. */
export interface DeviceCapture {
  readonly backend: BackendName;
  /** The device actually opened, as the backend names it. */
  readonly device: string;
  /** Grows with every chunk the device delivers; the watchdog checks that it moves. */
  progress(): number;
  /** Stops capturing; resolves after the last audio went to onData and the device is closed. */
  stop(): Promise<void>;
  /** Abandons the device at once (it stopped answering). */
  kill(): void;
}

export interface Backend {
  readonly name: BackendName;
  /** Can this backend run here at all (addon loads, program on PATH)? */
  available(): Promise<boolean>;
  /** Capture devices, or undefined when the backend cannot list them (names then pass through). */
  list(): Promise<BackendDevice[] | undefined>;
  /** Opens the device and resolves once its first audio arrived. */
  open(request: OpenRequest): Promise<DeviceCapture>;
}
