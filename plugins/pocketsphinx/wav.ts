/**
 * WAV encodings the kernel leaves to the plugin (8/24/32-bit integer, 32/64-bit float, A-law,
 * µ-law; mono or more channels, also as WAVE_FORMAT_EXTENSIBLE) to 16-bit mono, in one pass over
 * the bytes. The conversions are wavefile's (scaling by the old and new maxima, truncating),
 * without its per-sample arrays of numbers: ten minutes of 24-bit stereo took it about 50 s on
 * the event loop, and take a fraction of a second here. Other encodings return undefined.
 */

const PCM = 1;
const FLOAT = 3;
const ALAW = 6;
const MULAW = 7;
const EXTENSIBLE = 0xfffe;

/** G.711 A-law byte to a 16-bit sample (ITU-T G.711). */
function alaw(byte: number): number {
  const a = byte ^ 0x55;
  const exponent = (a & 0x70) >> 4;
  let magnitude = (a & 0x0f) << 4;
  magnitude = exponent === 0 ? magnitude + 8 : (magnitude + 0x108) << (exponent - 1);
  return a & 0x80 ? magnitude : -magnitude;
}

/** G.711 µ-law byte to a 16-bit sample (ITU-T G.711). */
function mulaw(byte: number): number {
  const u = ~byte & 0xff;
  const magnitude = ((((u & 0x0f) << 3) + 0x84) << ((u & 0x70) >> 4)) - 0x84;
  return u & 0x80 ? -magnitude : magnitude;
}

const trunc16 = (value: number) => (value > 32767 ? 32767 : value < -32768 ? -32768 : Math.trunc(value));

export interface DecodedWav {
  readonly samples: Int16Array;
  readonly sampleRate: number;
}

/** Undefined when the bytes are not a WAV of an encoding listed above. */
export function decodeWavFast(data: Uint8Array): DecodedWav | undefined {
  if (data.length < 12) return undefined;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const tag = (at: number) => String.fromCharCode(data[at]!, data[at + 1]!, data[at + 2]!, data[at + 3]!);
  if (tag(0) !== 'RIFF' || tag(8) !== 'WAVE') return undefined;
  let format: { code: number; channels: number; rate: number; bits: number } | undefined;
  let body: { start: number; length: number } | undefined;
  for (let at = 12; at + 8 <= data.length && !(format && body);) {
    const id = tag(at);
    const size = view.getUint32(at + 4, true);
    const start = at + 8;
    if (id === 'fmt ' && size >= 16 && start + 16 <= data.length) {
      let code = view.getUint16(start, true);
      // WAVE_FORMAT_EXTENSIBLE: the real format is the first two bytes of the sub-format GUID.
      if (code === EXTENSIBLE && size >= 40 && start + 26 <= data.length) code = view.getUint16(start + 24, true);
      format = {
        code,
        channels: view.getUint16(start + 2, true),
        rate: view.getUint32(start + 4, true),
        bits: view.getUint16(start + 14, true),
      };
    } else if (id === 'data') {
      // A streamed WAV may leave the size unset (0 or 0xFFFFFFFF): the data runs to the end.
      const left = data.length - start;
      body = { start, length: size === 0 || size > left ? left : size };
    }
    at = start + size + (size % 2);
  }
  if (!format || !body || format.channels < 1 || format.rate < 1) return undefined;
  const { code, channels, bits } = format;
  let read: ((at: number) => number) | undefined;
  if (code === PCM && bits === 8)
    read = (at) => trunc16(data[at]! - 128 > 0 ? ((data[at]! - 128) / 127) * 32767 : ((data[at]! - 128) / 128) * 32768);
  else if (code === PCM && bits === 16) read = (at) => view.getInt16(at, true);
  else if (code === PCM && bits === 24) {
    read = (at) => {
      const v = ((data[at]! | (data[at + 1]! << 8) | (data[at + 2]! << 16)) << 8) >> 8;
      return trunc16(v > 0 ? (v / 8388607) * 32767 : (v / 8388608) * 32768);
    };
  } else if (code === PCM && bits === 32) {
    read = (at) => {
      const v = view.getInt32(at, true);
      return trunc16(v > 0 ? (v / 2147483647) * 32767 : (v / 2147483648) * 32768);
    };
  } else if (code === FLOAT && bits === 32) {
    read = (at) => {
      const v = view.getFloat32(at, true);
      return trunc16(v > 0 ? v * 32767 : v * 32768);
    };
  } else if (code === FLOAT && bits === 64) {
    read = (at) => {
      const v = view.getFloat64(at, true);
      return trunc16(v > 0 ? v * 32767 : v * 32768);
    };
  } else if (code === ALAW && bits === 8) read = (at) => alaw(data[at]!);
  else if (code === MULAW && bits === 8) read = (at) => mulaw(data[at]!);
  if (!read) return undefined;
  const width = bits / 8;
  const frames = Math.floor(body.length / (width * channels));
  const samples = new Int16Array(frames);
  for (let i = 0, at = body.start; i < frames; i++) {
    let sum = 0;
    for (let c = 0; c < channels; c++, at += width) sum += read(at);
    samples[i] = Math.round(sum / channels);
  }
  return { samples, sampleRate: format.rate };
}
