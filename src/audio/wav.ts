import wavefile from 'wavefile';

export type ParsedWav =
  | { ok: true; pcm: { sampleRate: number; samples: Int16Array } | undefined; sampleRate: number; channels: number; bitDepth: string }
  | { ok: false; reason: string };

/**
 * Checks a WAV file and, for 16-bit PCM, exposes mono samples (the first channel).
 * Other encodings pass through unchanged: the upstream service decodes them.
 */
export function parseWav(data: Uint8Array): ParsedWav {
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

/** Encodes 16-bit mono PCM as a WAV file. */
export function encodeWav(samples: Int16Array, sampleRate: number): Uint8Array {
  const wav = new wavefile.WaveFile();
  wav.fromScratch(1, sampleRate, '16', samples);
  return wav.toBuffer();
}
