import { KotoError, type ErrorCode, type PluginErrorCode } from 'koto-voice';
import { BACKEND, SERVER, WRITE } from './error-codes.ts';

/**
 * The microphone's error cases: each a catalogue code or one of the plugin's own, with wording for the case
 * (`details.reason` tells the two device-not-found variants apart).
 */
export const MIC_ERRORS = {
  'device-not-found': {
    code: 'KOTO_ERR_AUDIO_DEVICE_NOT_FOUND',
    message: 'no input device matches "{device}" (available: {available})',
    fix: 'set `audio.device` to one of the available names, or to `default`; `koto devices` lists them',
  },
  'device-ambiguous': {
    code: 'KOTO_ERR_AUDIO_DEVICE_NOT_FOUND',
    message: 'input device "{device}" is ambiguous: it matches {matches}',
    fix: 'set `audio.device` to the full name of one of them',
  },
  'null-device': {
    code: 'KOTO_ERR_AUDIO_DEVICE_NULL',
    message: 'input device "{device}" is a null device: it discards sound and records only silence',
    fix: 'pick a real microphone in `audio.device` (or make one the system default); `koto devices` lists them',
  },
  silence: {
    code: 'KOTO_ERR_AUDIO_SILENCE',
    message: 'the microphone "{device}" delivers silence (only zero samples for {ms} ms)',
    fix: 'unmute the microphone and raise its input level in the system sound settings, or pick another device in `audio.device`',
  },
  'server-unreachable': { code: 'MIC_NATIVE_ERR_SERVER', ...SERVER },
  'device-lost': {
    code: 'KOTO_ERR_AUDIO_DEVICE_LOST',
    message: 'the microphone "{device}" stopped delivering audio after {atMs} ms ({detail})',
    fix: 'reconnect the microphone or check the sound server; the audio captured so far is kept in {path}',
  },
  'open-failed': {
    code: 'KOTO_ERR_AUDIO_DEVICE_OPEN',
    message: 'cannot open the microphone "{device}" with {backend}: {detail}',
    fix: 'check that the microphone is connected and not used exclusively by another program; `koto devices` lists the inputs',
  },
  'no-backend': { code: 'MIC_NATIVE_ERR_BACKEND', ...BACKEND },
  'write-failed': { code: 'MIC_NATIVE_ERR_WRITE', ...WRITE },
} as const satisfies Record<string, { code: ErrorCode | PluginErrorCode; message: string; fix: string }>;

export type MicErrorReason = keyof typeof MIC_ERRORS;

const fill = (template: string, params: Record<string, unknown>) =>
  template.replace(/\{(\w+)\}/g, (_, key: string) => (params[key] === undefined ? '' : String(params[key])));

/** A KotoError for one of the microphone's error cases, in the microphone's own words. */
export function micError(reason: MicErrorReason, params: Record<string, unknown>, cause?: unknown): KotoError {
  const spec = MIC_ERRORS[reason];
  return new KotoError(spec.code, {
    params,
    plugin: 'mic-native',
    details: { reason },
    message: fill(spec.message, params),
    fix: fill(spec.fix, params),
    ...(cause === undefined ? {} : { cause }),
  });
}

export function isMicError(err: unknown, reason?: MicErrorReason): err is KotoError {
  if (!KotoError.is(err)) return false;
  const r = (err.details as { reason?: unknown }).reason;
  return typeof r === 'string' && r in MIC_ERRORS && (reason === undefined || r === reason);
}
