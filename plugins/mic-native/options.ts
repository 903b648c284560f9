import { z } from 'koto-voice';

export const BACKENDS = ['pvrecorder', 'parec', 'arecord', 'sox', 'ffmpeg'] as const;
export type BackendName = (typeof BACKENDS)[number];

/** Options of the mic-native plugin (`pluginOptions.mic-native`). Every field has a default. */
export const micOptions = z.strictObject({
  /**
   * Capture backend. `auto`: the PvRecorder addon (in a worker thread), and when it cannot load
   * or open the device, a recorder process: parec, then arecord (sox/ffmpeg on macOS/Windows).
   */
  backend: z.enum(['auto', ...BACKENDS]).default('auto'),
  /** Samples per frame (at 16 kHz, 512 = 32 ms). */
  frameLength: z.number().int().min(128).max(8192).default(512),
  /**
   * Audio kept from before `start` when the device was opened ahead of time (at `sessionStart`),
   * so the first word is not cut. 0 disables it (and the device is opened only on demand).
   */
  preRollMs: z.number().int().min(0).max(10_000).default(0),
  /** All-zero audio for this long from the first frame → "microphone delivers silence". 0 disables. */
  silenceMs: z.number().int().min(0).default(2000),
  /**
   * No audio for this long once frames flowed, and the sound server does not answer → "the
   * microphone stopped delivering audio". While the server answers, 2.5 s more are allowed.
   */
  stallMs: z.number().int().min(100).default(700),
  /** How long opening a device may take until its first audio arrives. */
  openTimeoutMs: z.number().int().min(100).default(3000),
  /**
   * Latency asked of PulseAudio/PipeWire for the capture stream (PvRecorder gets it through
   * PULSE_LATENCY_MSEC while its stream opens, parec through --latency-msec). PvRecorder's own
   * request is so small that a busy CPU makes the server drop audio; 100 ms does not. 0: leave it.
   */
  latencyMs: z.number().int().min(0).max(2000).default(100),
  /** The WAV header is rewritten after every this much audio, so a crash leaves a playable file. */
  headerIntervalMs: z.number().int().min(100).default(1000),
  /** Write the recording to `recordings` (WAV) as it is captured. */
  save: z.boolean().default(true),
});

export type MicOptions = z.output<typeof micOptions>;

export const DEFAULT_OPTIONS: MicOptions = Object.freeze(micOptions.parse({}));
