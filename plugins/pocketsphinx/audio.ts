import { spawn } from 'node:child_process';
import os from 'node:os';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { kotoError, StreamingResampler, type AudioData } from 'koto-voice';
import wavefile from 'wavefile';
import { decodeWavFast } from './wav.ts';

/** What the engine hears: 16-bit mono samples at `rate`, and the rate the audio came in at. */
export interface EngineAudio {
  readonly samples: Int16Array;
  readonly sourceRate: number;
}

/**
 * Brings any audio the kernel accepts to 16-bit mono PCM at `rate`: PCM the kernel already
 * decoded is resampled; other WAV encodings (8/24/32-bit, float, A-law, µ-law) are decoded
 * here; compressed formats go through ffmpeg, which must then be installed.
 */
export async function toEngineAudio(audio: AudioData, rate: number, signal: AbortSignal): Promise<EngineAudio> {
  if (audio.pcm)
    return { samples: await resampleAsync(audio.pcm.samples, audio.pcm.sampleRate, rate, signal), sourceRate: audio.pcm.sampleRate };
  if (audio.mimeType === 'audio/wav') {
    const decoded = decodeWav(audio.data);
    if (decoded) return { samples: await resampleAsync(decoded.samples, decoded.sampleRate, rate, signal), sourceRate: decoded.sampleRate };
  }
  return { samples: await ffmpegDecode(audio, rate, signal), sourceRate: rate };
}

/**
 * Resampling costs about 100 multiply-adds per output sample: seconds of CPU for a long
 * recording at 44.1 kHz. It runs a second of audio at a time, letting the event loop turn (the
 * daemon keeps answering) and stopping when `signal` aborts. Same output as a one-shot conversion.
 */
export async function resampleAsync(samples: Int16Array, inRate: number, outRate: number, signal: AbortSignal): Promise<Int16Array> {
  if (inRate === outRate || samples.length === 0) return samples;
  const resampler = new StreamingResampler(inRate, outRate);
  const out = new Int16Array(StreamingResampler.outputLength(samples.length, inRate, outRate));
  let written = 0;
  const put = (part: Int16Array) => {
    out.set(part.subarray(0, out.length - written), written);
    written = Math.min(out.length, written + part.length);
  };
  for (let at = 0; at < samples.length; at += inRate) {
    if (at > 0) await nextTurn();
    if (signal.aborted) throw kotoError('KOTO_ERR_ABORTED', { what: 'transcription' });
    put(resampler.push(samples.subarray(at, Math.min(samples.length, at + inRate))));
  }
  put(resampler.flush());
  return written === out.length ? out : out.subarray(0, written);
}

/**
 * WAV encodings other than 16-bit PCM, to 16-bit with channels averaged: the common ones in one
 * pass (wav.ts), IMA ADPCM and the rest through wavefile. Undefined when neither can.
 */
export function decodeWav(data: Uint8Array): { samples: Int16Array; sampleRate: number } | undefined {
  return decodeWavFast(data) ?? decodeWavSlow(data);
}

/** wavefile's conversions: slow (arrays of numbers per sample), kept for the rare encodings. */
export function decodeWavSlow(data: Uint8Array): { samples: Int16Array; sampleRate: number } | undefined {
  try {
    const wav = new wavefile.WaveFile(data);
    // Read before converting: the conversions rebuild `fmt` in place.
    const fmt = { ...(wav.fmt as { audioFormat: number; numChannels: number; sampleRate: number }) };
    if (fmt.audioFormat === 7) wav.fromMuLaw();
    else if (fmt.audioFormat === 6) wav.fromALaw();
    else if (fmt.audioFormat === 17) wav.fromIMAADPCM();
    if (wav.bitDepth !== '16') wav.toBitDepth('16');
    const channels = Math.max(1, fmt.numChannels);
    const interleaved = wav.getSamples(true, Int16Array) as unknown as Int16Array;
    const frames = Math.floor(interleaved.length / channels);
    const samples = new Int16Array(frames);
    for (let i = 0; i < frames; i++) {
      let sum = 0;
      for (let c = 0; c < channels; c++) sum += interleaved[i * channels + c]!;
      samples[i] = Math.round(sum / channels);
    }
    return fmt.sampleRate > 0 ? { samples, sampleRate: fmt.sampleRate } : undefined;
  } catch {
    return undefined;
  }
}

const FORMAT_NAMES: Readonly<Record<string, string>> = {
  'audio/flac': 'FLAC',
  'audio/mpeg': 'MP3',
  'audio/ogg': 'Ogg',
  'audio/webm': 'WebM',
  'audio/mp4': 'MP4 audio',
  'audio/wav': 'a WAV encoding Koto cannot decode itself',
};

/** Decodes with ffmpeg to raw 16-bit mono PCM at `rate` (stdin → stdout, nothing on disk). */
export function ffmpegDecode(audio: AudioData, rate: number, signal: AbortSignal, ffmpeg = 'ffmpeg'): Promise<Int16Array> {
  const input = audio.path ?? audio.filename;
  return new Promise((resolve, reject) => {
    const child = spawn(
      ffmpeg,
      ['-hide_banner', '-loglevel', 'error', '-i', 'pipe:0', '-f', 's16le', '-ac', '1', '-ar', String(rate), 'pipe:1'],
      {
        stdio: ['pipe', 'pipe', 'pipe'],
        signal,
      },
    );
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-2000)));
    child.stdin.on('error', () => undefined); // ffmpeg may stop reading early; its exit code tells.
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') {
        reject(kotoError('KOTO_ERR_AUDIO_FORMAT', { input, format: FORMAT_NAMES[audio.mimeType] ?? audio.mimeType }));
      } else if (e.name === 'AbortError') {
        reject(kotoError('KOTO_ERR_ABORTED', { what: 'transcription' }));
      } else {
        reject(kotoError('KOTO_ERR_AUDIO_INPUT', { input, detail: `ffmpeg failed: ${e.message}` }));
      }
    });
    child.on('close', (code) => {
      if (code !== 0) {
        if (!signal.aborted)
          reject(
            kotoError('KOTO_ERR_AUDIO_INPUT', {
              input,
              detail: `ffmpeg could not decode it: ${err.trim().split('\n').pop() ?? `exit ${code}`}`,
            }),
          );
        return;
      }
      const bytes = Buffer.concat(out);
      resolve(int16FromLE(bytes));
    });
    child.stdin.end(audio.data);
  });
}

/** Little-endian 16-bit samples from bytes (a copy: Buffer memory may be pooled or unaligned). */
export function int16FromLE(bytes: Uint8Array): Int16Array {
  const count = Math.floor(bytes.length / 2);
  if (os.endianness() === 'LE') return new Int16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + count * 2));
  const view = new DataView(bytes.buffer, bytes.byteOffset, count * 2);
  const samples = new Int16Array(count);
  for (let i = 0; i < count; i++) samples[i] = view.getInt16(i * 2, true);
  return samples;
}

/** 16-bit samples as little-endian bytes (a view when the machine is little-endian). */
export function int16ToLE(samples: Int16Array): Buffer {
  if (os.endianness() === 'LE') return Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength);
  const bytes = Buffer.alloc(samples.length * 2);
  for (let i = 0; i < samples.length; i++) bytes.writeInt16LE(samples[i]!, i * 2);
  return bytes;
}
