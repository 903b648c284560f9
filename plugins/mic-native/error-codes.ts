import type { PluginErrorCode, PluginErrorSpec } from 'koto-voice';

/**
 * The microphone backend's own codes (`definePlugin({ errors })`): the sound server, the capture
 * programs and the WAV it writes are this plugin's. What any audio source may hit (no such
 * device, cannot open, lost mid-recording, a null device, silence) stays the kernel's contract.
 */
export const SERVER = {
  message: 'the audio server {server} is not reachable ({detail})',
  fix: 'start the sound server (PulseAudio or PipeWire: `systemctl --user start pipewire-pulse` or `pulseaudio --start`), or correct PULSE_SERVER',
} as const;
export const BACKEND = {
  message: 'no way to record from the microphone here ({detail})',
  fix: 'install pulseaudio-utils (parec) or alsa-utils (arecord); on macOS/Windows install sox or ffmpeg',
} as const;
export const WRITE = {
  message: 'cannot write the recording {path}: {detail}',
  fix: 'check free disk space and the permissions of the recordings folder',
} as const;

export const MIC_NATIVE_ERRORS = {
  MIC_NATIVE_ERR_SERVER: { ...SERVER, exit: 1 },
  MIC_NATIVE_ERR_BACKEND: { ...BACKEND, exit: 1 },
  MIC_NATIVE_ERR_WRITE: { ...WRITE, exit: 1 },
} as const satisfies Record<PluginErrorCode, PluginErrorSpec>;
