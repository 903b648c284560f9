import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { describe, KotoError, kotoError } from '../kernel/errors.ts';
import type { AudioData } from '../kernel/types.ts';
import { FfmpegError, findFfmpeg, runFfmpeg } from './ffmpeg.ts';
import { parseWav } from './wav.ts';

export interface AudioFormat {
  readonly name: string;
  readonly extension: string;
  readonly mimeType: string;
}

// Formats the OpenAI-style transcription APIs accept as they are; anything else goes through ffmpeg.
const FORMATS = {
  wav: { name: 'WAV', extension: 'wav', mimeType: 'audio/wav' },
  flac: { name: 'FLAC', extension: 'flac', mimeType: 'audio/flac' },
  mp3: { name: 'MP3', extension: 'mp3', mimeType: 'audio/mpeg' },
  ogg: { name: 'Ogg', extension: 'ogg', mimeType: 'audio/ogg' },
  webm: { name: 'WebM', extension: 'webm', mimeType: 'audio/webm' },
  m4a: { name: 'MP4 audio', extension: 'm4a', mimeType: 'audio/mp4' },
} satisfies Record<string, AudioFormat>;

/** Recognises a container by its first bytes (extensions lie, stdin has none). */
export function sniffFormat(bytes: Uint8Array): AudioFormat | undefined {
  const ascii = (start: number, end: number) => Buffer.from(bytes.subarray(start, end)).toString('latin1');
  if (bytes.length < 12) return undefined;
  if (ascii(0, 4) === 'RIFF' && ascii(8, 12) === 'WAVE') return FORMATS.wav;
  if (ascii(0, 4) === 'fLaC') return FORMATS.flac;
  if (ascii(0, 3) === 'ID3' || (bytes[0] === 0xff && ((bytes[1] ?? 0) & 0xe0) === 0xe0)) return FORMATS.mp3;
  if (ascii(0, 4) === 'OggS') return FORMATS.ogg;
  if (bytes[0] === 0x1a && bytes[1] === 0x45 && bytes[2] === 0xdf && bytes[3] === 0xa3) return FORMATS.webm;
  if (ascii(4, 8) === 'ftyp') return FORMATS.m4a;
  return undefined;
}

/** Converts anything ffmpeg reads into 16 kHz mono 16-bit WAV. */
async function convertWithFfmpeg(data: Uint8Array, label: string): Promise<Uint8Array> {
  try {
    return await runFfmpeg({
      input: data,
      label: path.basename(label),
      args: ['-ac', '1', '-ar', '16000', '-sample_fmt', 's16', '-f', 'wav'],
      outputExtension: 'wav',
    });
  } catch (err) {
    // ffmpeg's own reason ("Invalid data found when processing input", "moov atom not found") is what the user can act on.
    const reason = err instanceof FfmpegError ? err.reason : describe(err);
    throw kotoError('KOTO_ERR_AUDIO_INPUT', { input: label, detail: `ffmpeg could not convert it: ${reason}` }, { cause: err });
  }
}

/**
 * Turns bytes (a file's or stdin's) into audio a provider can take: supported containers pass
 * through untouched, WAV is checked and its PCM exposed, others are converted by ffmpeg.
 */
export async function audioFromBytes(data: Uint8Array, label: string, savedPath: string | undefined): Promise<AudioData> {
  if (data.length === 0) throw kotoError('KOTO_ERR_AUDIO_INPUT', { input: label, detail: 'it is empty' });
  let format = sniffFormat(data);
  if (!format) {
    if (!(await findFfmpeg())) {
      throw kotoError('KOTO_ERR_AUDIO_FORMAT', {
        input: label,
        format: 'not a format Koto reads natively (WAV, FLAC, MP3, Ogg, WebM, M4A)',
      });
    }
    data = await convertWithFfmpeg(data, label);
    format = FORMATS.wav;
  }
  let pcm: AudioData['pcm'];
  if (format === FORMATS.wav) {
    const parsed = parseWav(data);
    if (!parsed.ok) throw kotoError('KOTO_ERR_AUDIO_INPUT', { input: label, detail: parsed.reason });
    pcm = parsed.pcm;
  }
  const base = path.basename(label === '-' ? 'stdin' : label).replace(/\.[^.]*$/, '') || 'audio';
  return { data, filename: `${base}.${format.extension}`, mimeType: format.mimeType, path: savedPath, pcm };
}

export async function audioFromFile(file: string): Promise<AudioData> {
  let data: Uint8Array;
  try {
    // Non-blocking open, then a check on the opened file itself: a FIFO would block the open
    // forever and /dev/zero never ends; only a regular file is audio (no race between check and read).
    const handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      if (!(await handle.stat()).isFile()) {
        throw kotoError('KOTO_ERR_AUDIO_INPUT', { input: file, detail: 'it is not a regular file (a device, pipe or folder)' });
      }
      data = await handle.readFile();
    } finally {
      await handle.close();
    }
  } catch (err) {
    if (KotoError.is(err)) throw err;
    throw kotoError('KOTO_ERR_AUDIO_INPUT', { input: file, detail: describe(err).replace(/, open .*$/, '') });
  }
  return audioFromBytes(data, file, path.resolve(file));
}
