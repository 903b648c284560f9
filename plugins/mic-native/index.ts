import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { definePlugin, type AudioDevice, type AudioSourceRequest, type KotoConfig, type Logger } from 'koto-voice';
import { isUserError, listDevices } from './backends/index.ts';
import { inputDevices } from './devices.ts';
import { MIC_NATIVE_ERRORS } from './error-codes.ts';
import { isMicError } from './errors.ts';
import { Microphone, type OpenOptions, type Recording } from './microphone.ts';
import { micOptions, type MicOptions } from './options.ts';
import { Standby } from './standby.ts';

/** How long a device opened at sessionStart (for pre-roll) waits for its recording to start. */
const PREOPEN_TTL_MS = 30_000;

/** A unique, sortable file name for a session's recording. */
export function recordingFileName(sessionId: string, now = new Date()): string {
  const stamp = now.toISOString().replace(/[:.]/g, '-').replace(/Z$/, '');
  const id = sessionId.replace(/[^A-Za-z0-9_-]/g, '').slice(0, 40) || 'session';
  return `${stamp}-${id}-${randomBytes(2).toString('hex')}.wav`;
}

/** The input devices the microphone can record from, as `koto devices` shows them. */
export async function listInputDevices(backend: MicOptions['backend'] = 'auto'): Promise<AudioDevice[]> {
  const listed = await listDevices(backend);
  return inputDevices(listed.devices).map((d) => ({
    name: d.name,
    description: d.description,
    isDefault: d.isDefault,
    backend: listed.backend,
  }));
}

export interface RecordToFileOptions extends OpenOptions {
  /** Record this long, then stop (or until `signal` aborts). */
  readonly durationMs?: number | undefined;
  readonly signal?: AbortSignal | undefined;
}

export interface RecordToFileResult {
  readonly path: string;
  readonly samples: number;
  readonly durationMs: number;
  readonly device: string;
  readonly backend: string;
  readonly firstAudioMs: number;
}

/**
 * Records the microphone into a WAV file for `durationMs` (or until `signal` aborts) and resolves
 * once the file is complete. A failing device rejects, after the audio so far was saved.
 */
export async function recordToFile(file: string, options: RecordToFileOptions = {}): Promise<RecordToFileResult> {
  const { durationMs, signal, ...open } = options;
  const recording = await Microphone.record({ ...open, file, maxDurationMs: durationMs, signal });
  // Drain the frames: ends at stop, or throws the device's error.
  try {
    for await (const _frame of recording.frames) {
      // the file is written as frames arrive
    }
  } finally {
    await recording.stop();
  }
  return {
    path: file,
    samples: recording.samples,
    durationMs: (recording.samples * 1000) / recording.sampleRate,
    device: recording.device,
    backend: recording.backend,
    firstAudioMs: recording.firstAudioMs,
  };
}

interface PreOpened {
  readonly device: string;
  readonly mic: Promise<Microphone | undefined>;
  readonly timer: NodeJS.Timeout;
}

/**
 * mic-native: the user's microphone as an audio source. 16 kHz mono 16-bit frames with RMS,
 * through PvRecorder in a worker thread or a recorder process (parec, arecord, sox, ffmpeg),
 * written to a WAV file under the recordings folder as they are captured.
 */
export default definePlugin({
  name: 'mic-native',
  audioSources: ['mic-native'],
  errors: MIC_NATIVE_ERRORS,
  options: micOptions,
  apply(api, options) {
    const log: Logger = api.log;
    const preopened = new Map<string, PreOpened>();
    let standby: Standby | undefined;
    const standbySettings = (config: KotoConfig) =>
      config.audio.preRollMs > 0 && config.audio.source === 'mic-native'
        ? { device: config.audio.device, preRollMs: config.audio.preRollMs }
        : undefined;

    // Only a long-running host keeps the microphone open (audio.preRollMs): a one-shot command
    // or a Node API kernel never calls the `daemon` hook.
    api.hooks.daemon.tapPromise('mic-native', async (host) => {
      standby = new Standby(
        (settings) => Microphone.open({ ...options, device: settings.device, preRollMs: settings.preRollMs, log }),
        log,
        (status) => host.report('mic-native', status ? { ...status } : undefined),
      );
      standby.configure(standbySettings(api.config()));
      host.signal.addEventListener('abort', () => void standby?.close(), { once: true });
    });
    api.hooks.configChanged.tap('mic-native', (change) => standby?.configure(standbySettings(change.config)));

    const discard = (id: string) => {
      const entry = preopened.get(id);
      if (!entry) return;
      preopened.delete(id);
      clearTimeout(entry.timer);
      void entry.mic.then((mic) => mic?.close());
    };

    // With a pre-roll, the device opens when the session starts, so the first word is not cut.
    api.hooks.sessionStart.tapPromise('mic-native', async (session) => {
      if (options.preRollMs <= 0 || session.config.audio.source !== 'mic-native') return;
      const device = session.config.audio.device;
      const mic = Microphone.open({ ...options, device, log }).catch((err: unknown) => {
        log.debug(`pre-opening the microphone failed: ${isMicError(err) ? err.message : String(err)}`);
        return undefined;
      });
      const timer = setTimeout(() => discard(session.id), PREOPEN_TTL_MS);
      timer.unref();
      preopened.set(session.id, { device, mic, timer });
    });

    const open = async (request: AudioSourceRequest): Promise<Recording> => {
      const config = request.session.config ?? api.config();
      const file = options.save ? path.join(api.paths.recordings, recordingFileName(request.session.id)) : undefined;
      const start = { file, retention: config.daemon.retention, maxDurationMs: config.daemon.maxRecordingMs, signal: request.signal };
      const kept = await standby?.take(request.device);
      if (kept) {
        try {
          const recording = await kept.start(start);
          standby?.released(recording);
          return recording;
        } catch (err) {
          if (isUserError(err) || (isMicError(err) && (err.details as { reason?: string }).reason === 'silence')) throw err;
          log.info(`the kept-open microphone failed (${isMicError(err) ? err.message : String(err)}); opening it again`);
          standby?.failedStart();
        }
      }
      const pre = preopened.get(request.session.id);
      if (pre) {
        preopened.delete(request.session.id);
        clearTimeout(pre.timer);
        const mic = await pre.mic;
        if (mic && pre.device === request.device) {
          try {
            return await mic.start(start);
          } catch (err) {
            if (isUserError(err) || (isMicError(err) && (err.details as { reason?: string }).reason === 'silence')) throw err;
            log.info(`the pre-opened microphone failed (${isMicError(err) ? err.message : String(err)}); opening it again`);
          }
        } else {
          await mic?.close();
        }
      }
      return Microphone.record({ ...options, device: request.device, log, ...start });
    };

    api.provide.audioSource('mic-native', { specificationVersion: 'v1', open, devices: () => listInputDevices(options.backend) });

    api.hooks.sessionEnd.tapPromise('mic-native', async (record) => discard(record.id));

    api.hooks.close.tapPromise('mic-native', async () => {
      for (const id of [...preopened.keys()]) discard(id);
    });
  },
});

export { Microphone, Recording } from './microphone.ts';
export type { OpenOptions, StartOptions } from './microphone.ts';
export { micOptions, BACKENDS, DEFAULT_OPTIONS } from './options.ts';
export type { MicOptions, BackendName } from './options.ts';
export { MIC_NATIVE_ERRORS } from './error-codes.ts';
export { MIC_ERRORS, micError, isMicError } from './errors.ts';
export type { MicErrorReason } from './errors.ts';
export { inputDevices, isNullDeviceName, kindOfName, selectDevice } from './devices.ts';
export type { BackendDevice, Selection } from './devices.ts';
export { rms, Framer, FrameQueue, S16Decoder } from './frames.ts';
export { SilenceDetector } from './silence.ts';
export { WavWriter, wavHeader } from './wav-writer.ts';
export { autoOrder, backendNamed, checkAudioServer, isUserError, listDevices, openDevice, SAMPLE_RATE } from './backends/index.ts';
export type { Backend, DeviceCapture, OpenRequest } from './backends/index.ts';
export { parseArecordList, parseFfmpegList } from './backends/process.ts';
export { pulseDevices, pulseServer, parsePactlShort } from './backends/pulse.ts';
export { pvrecorderDevices } from './backends/pvrecorder.ts';
