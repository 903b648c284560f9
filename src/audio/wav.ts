import wavefile from 'wavefile';

export type ParsedWav =
  | { ok: true; pcm: { sampleRate: number; samples: Int16Array } | undefined; sampleRate: number; channels: number; bitDepth: string }
  | { ok: false; reason: string };

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Where a 16-bit PCM WAV's samples are: its format and the byte range of its `data` chunk. */
interface Pcm16Layout {
  readonly view: DataView;
  readonly channels: number;
  readonly sampleRate: number;
  /** `WAVE_FORMAT_EXTENSIBLE` with a PCM sub-format. */
  readonly extensible: boolean;
  readonly body: number;
  readonly frames: number;
}

/**
 * Walks the RIFF chunks of a 16-bit PCM WAV, bounds-checked throughout (a truncated or hostile
 * header is "not this format", never a RangeError). Undefined for any other encoding.
 */
function pcm16Layout(data: Uint8Array): Pcm16Layout | undefined {
  if (data.length < 44) return undefined;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const tag = (at: number) => String.fromCharCode(data[at]!, data[at + 1]!, data[at + 2]!, data[at + 3]!);
  if (tag(0) !== 'RIFF' || tag(8) !== 'WAVE') return undefined;
  let format: { channels: number; sampleRate: number; extensible: boolean } | undefined;
  for (let at = 12; at + 8 <= data.length;) {
    const id = tag(at);
    const size = view.getUint32(at + 4, true);
    const body = at + 8;
    if (id === 'fmt ') {
      if (size < 16 || body + 16 > data.length) return undefined;
      const code = view.getUint16(body, true);
      // EXTENSIBLE: the real format is the first two bytes of the sub-format GUID (offset 24).
      const extensible = code === 0xfffe && size >= 40 && body + 26 <= data.length && view.getUint16(body + 24, true) === 1;
      if ((code !== 1 && !extensible) || view.getUint16(body + 14, true) !== 16) return undefined;
      format = { channels: view.getUint16(body + 2, true), sampleRate: view.getUint32(body + 4, true), extensible };
    } else if (id === 'data') {
      if (!format || !format.channels || !format.sampleRate) return undefined;
      const end = Math.min(data.length, body + size);
      return { view, ...format, body, frames: Math.floor((end - body) / (2 * format.channels)) };
    }
    at = body + size + (size % 2);
  }
  return undefined;
}

/**
 * The common case, 16-bit PCM, read straight from the bytes (wavefile unpacks one sample at a
 * time: ~1 ms per second of audio, on the path between "stop speaking" and the upload).
 * Returns undefined for anything else, which goes to wavefile.
 */
function parsePcm16(data: Uint8Array): ParsedWav | undefined {
  const layout = littleEndian ? pcm16Layout(data) : undefined;
  // wavefile keeps handling EXTENSIBLE headers here, as before.
  if (!layout || layout.extensible) return undefined;
  const { view, channels, sampleRate, body, frames } = layout;
  let samples: Int16Array;
  if (channels === 1 && (data.byteOffset + body) % 2 === 0) {
    samples = new Int16Array(data.buffer, data.byteOffset + body, frames).slice();
  } else {
    samples = new Int16Array(frames);
    for (let i = 0; i < frames; i++) samples[i] = view.getInt16(body + i * 2 * channels, true);
  }
  return { ok: true, pcm: { sampleRate, samples }, sampleRate, channels, bitDepth: '16' };
}

/**
 * Checks a WAV file and, for 16-bit PCM, exposes mono samples (the first channel).
 * Other encodings pass through unchanged: the upstream service decodes them.
 */
export function parseWav(data: Uint8Array): ParsedWav {
  const fast = parsePcm16(data);
  if (fast) return fast;
  const wav = new wavefile.WaveFile();
  try {
    wav.fromBuffer(data);
  } catch (err) {
    return { ok: false, reason: `it is not a valid WAV file (${err instanceof Error ? err.message : String(err)})` };
  }
  const fmt = wav.fmt as { sampleRate: number; numChannels: number; audioFormat: number };
  const bitDepth = wav.bitDepth;
  if (!fmt.sampleRate || !fmt.numChannels) return { ok: false, reason: 'its WAV header has no sample rate or channels' };
  let pcm: { sampleRate: number; samples: Int16Array } | undefined;
  if (fmt.audioFormat === 1 && bitDepth === '16') {
    const interleaved = wav.getSamples(true, Int16Array) as unknown as Int16Array;
    const samples = new Int16Array(Math.floor(interleaved.length / fmt.numChannels));
    for (let i = 0; i < samples.length; i++) samples[i] = interleaved[i * fmt.numChannels] ?? 0;
    pcm = { sampleRate: fmt.sampleRate, samples };
  }
  return { ok: true, pcm, sampleRate: fmt.sampleRate, channels: fmt.numChannels, bitDepth };
}

/** Encodes 16-bit mono PCM as a WAV file (the canonical 44-byte header, then the samples). */
export function encodeWav(samples: Int16Array, sampleRate: number): Uint8Array {
  if (!littleEndian) {
    const wav = new wavefile.WaveFile();
    wav.fromScratch(1, sampleRate, '16', samples);
    return wav.toBuffer();
  }
  const bytes = samples.length * 2;
  const out = new Uint8Array(44 + bytes);
  const view = new DataView(out.buffer);
  const ascii = (at: number, text: string) => {
    for (let i = 0; i < text.length; i++) out[at + i] = text.charCodeAt(i);
  };
  ascii(0, 'RIFF');
  view.setUint32(4, 36 + bytes, true);
  ascii(8, 'WAVE');
  ascii(12, 'fmt ');
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, sampleRate * 2, true);
  view.setUint16(32, 2, true);
  view.setUint16(34, 16, true);
  ascii(36, 'data');
  view.setUint32(40, bytes, true);
  out.set(new Uint8Array(samples.buffer, samples.byteOffset, bytes), 44);
  return out;
}

/**
 * 16-bit PCM of a WAV file as one mono signal: every channel averaged (a meeting recorded in
 * stereo keeps both sides), `WAVE_FORMAT_EXTENSIBLE` with a PCM sub-format accepted. Undefined
 * for any other encoding. A mono file's samples are a view of `data`, not a copy. Used where the whole signal matters (splitting a long recording);
 * {@link parseWav} keeps the first channel, which is what a microphone capture has.
 */
export function pcm16Mono(data: Uint8Array): { sampleRate: number; samples: Int16Array } | undefined {
  const layout = pcm16Layout(data);
  if (!layout) return undefined;
  const { view, channels, sampleRate, body, frames } = layout;
  // Mono, aligned: a view of the file's bytes (a long recording is not held twice; callers only read it).
  if (channels === 1 && littleEndian && (data.byteOffset + body) % 2 === 0) {
    return { sampleRate, samples: new Int16Array(data.buffer, data.byteOffset + body, frames) };
  }
  const samples = new Int16Array(frames);
  if (channels === 1) {
    for (let i = 0; i < frames; i++) samples[i] = view.getInt16(body + i * 2, true);
  } else {
    for (let i = 0, at = body; i < frames; i++) {
      let sum = 0;
      for (let c = 0; c < channels; c++, at += 2) sum += view.getInt16(at, true);
      samples[i] = Math.round(sum / channels);
    }
  }
  return { sampleRate, samples };
}
