import { describe, expect, it } from 'vitest';
import { installAdvice } from '../../plugins/pocketsphinx/engine.ts';
import { resample } from '../../src/audio/resample.ts';
import { concat, Segmenter } from '../../plugins/pocketsphinx/segmenter.ts';
import { engineWords, fliteToModel, numberWords, pronounce, splitParts } from '../../plugins/pocketsphinx/words.ts';

function tone(freq: number, rate: number, seconds: number, amplitude = 10000): Int16Array {
  const out = new Int16Array(Math.round(rate * seconds));
  for (let i = 0; i < out.length; i++) out[i] = Math.round(amplitude * Math.sin((2 * Math.PI * freq * i) / rate));
  return out;
}

function rms(samples: Int16Array, skip = 0): number {
  let sum = 0;
  let n = 0;
  for (let i = skip; i < samples.length - skip; i++, n++) sum += samples[i]! * samples[i]!;
  return Math.sqrt(sum / n);
}

/** Amplitude of one frequency (single-bin DFT), edges skipped. */
function amplitudeAt(samples: Int16Array, rate: number, freq: number, skip = 200): number {
  let re = 0;
  let im = 0;
  let n = 0;
  for (let i = skip; i < samples.length - skip; i++, n++) {
    re += samples[i]! * Math.cos((2 * Math.PI * freq * i) / rate);
    im += samples[i]! * Math.sin((2 * Math.PI * freq * i) / rate);
  }
  return (2 * Math.hypot(re, im)) / n;
}

describe('resampler', () => {
  it('keeps a tone in the pass band, at its frequency and level', () => {
    for (const from of [8000, 22050, 44100, 48000]) {
      const out = resample(tone(1000, from, 0.5), from, 16000);
      expect(out.length).toBe(8000);
      expect(amplitudeAt(out, 16000, 1000) / 10000).toBeGreaterThan(0.97);
      expect(amplitudeAt(out, 16000, 1000) / 10000).toBeLessThan(1.03);
      expect(amplitudeAt(out, 16000, 1500)).toBeLessThan(100);
    }
  });

  it('filters out what the new rate cannot carry instead of aliasing it', () => {
    // 11 kHz at 44.1 kHz would fold to 5 kHz at 16 kHz; a real resampler removes it.
    const out = resample(tone(11000, 44100, 0.5), 44100, 16000);
    expect(rms(out, 100)).toBeLessThan(10000 * 0.01);
    expect(amplitudeAt(out, 16000, 5000)).toBeLessThan(100);
  });

  it('passes audio at the engine rate through untouched', () => {
    const input = tone(440, 16000, 0.1);
    expect(resample(input, 16000, 16000)).toBe(input);
    expect(() => resample(input, 0, 16000)).toThrow(RangeError);
  });
});

describe('segmenter', () => {
  const rate = 16000;
  const silence = (s: number) => new Int16Array(rate * s);
  const speechLike = (s: number) => tone(300, rate, s, 8000);

  it('cuts utterances at pauses, padded with a little silence', () => {
    const audio = concat([silence(0.5), speechLike(1), silence(1), speechLike(0.7), silence(0.3)]);
    const segmenter = new Segmenter();
    const segments: Int16Array[] = [];
    // Fed in uneven chunks, as a live source would.
    for (let i = 0; i < audio.length; i += 3001) segments.push(...segmenter.push(audio.subarray(i, i + 3001)));
    expect(segments).toHaveLength(1);
    segments.push(...segmenter.end());
    expect(segments).toHaveLength(2);
    expect(segments[0]!.length / rate).toBeCloseTo(1.5, 1);
    expect(segments[1]!.length / rate).toBeGreaterThan(0.8);
    expect(segments[1]!.length / rate).toBeLessThan(1.3);
  });

  it('ignores clicks, and hands back the whole audio when it finds no speech', () => {
    const click = new Int16Array(16).fill(20000);
    const audio = concat([silence(0.5), click, silence(0.5)]);
    const segmenter = new Segmenter();
    expect(segmenter.push(audio)).toEqual([]);
    const [whole] = segmenter.end();
    expect(whole?.length).toBe(audio.length);
  });
});

describe('custom word pronunciations', () => {
  const dict: Record<string, string> = {
    open: 'OW P AH N',
    script: 'S K R IH P T',
    type: 'T AY P',
    node: 'N OW D',
    plus: 'P L AH S',
    four: 'F AO R',
    nineteen: 'N AY N T IY N',
    ninety: 'N AY N T IY',
    nine: 'N AY N',
  };
  const lookup = (w: string) => dict[w];

  it('reads numbers as they are said', () => {
    expect(numberWords('4')).toEqual(['four']);
    expect(numberWords('42')).toEqual(['forty', 'two']);
    expect(numberWords('365')).toEqual(['three', 'hundred', 'sixty', 'five']);
    expect(numberWords('1999')).toEqual(['nineteen', 'ninety', 'nine']);
    expect(numberWords('1905')).toEqual(['nineteen', 'oh', 'five']);
    expect(numberWords('2023')).toEqual(['two', 'thousand', 'twenty', 'three']);
    expect(numberWords('007')).toEqual(['zero', 'zero', 'seven']);
  });

  it('splits words where their pronunciation changes', () => {
    expect(splitParts('TypeScript')).toEqual(['Type', 'Script']);
    expect(splitParts('OpenAI')).toEqual(['Open', 'AI']);
    expect(splitParts('GPT-4')).toEqual(['GPT', '4']);
    expect(splitParts('node.js')).toEqual(['node', 'js']);
    expect(splitParts('C++')).toEqual(['C', '+', '+']);
    expect(splitParts('iPhone')).toEqual(['i', 'Phone']);
  });

  it('composes known words, spelled letters and numbers, without flite', async () => {
    const options = { lookup, flite: false as const };
    expect(await pronounce('TypeScript', options)).toBe('T AY P S K R IH P T');
    expect(await pronounce('OpenAI', options)).toBe('OW P AH N EY AY');
    expect(await pronounce('GPT4', options)).toBe('JH IY P IY T IY F AO R');
    expect(await pronounce('node.js', options)).toBe('N OW D JH EY EH S');
    expect(await pronounce('C++', options)).toBe('S IY P L AH S P L AH S');
    // An unknown ordinary word needs flite's letter-to-sound rules: honest "no pronunciation".
    expect(await pronounce('Kubernetes', options)).toBeUndefined();
  });

  it('maps flite phones to the model phone set', () => {
    expect(fliteToModel('pau k ax b er n iy t s pau')).toBe('K AH B ER N IY T S');
    expect(fliteToModel('pau axr pau')).toBe('ER');
    expect(fliteToModel('pau q pau')).toBeUndefined();
    expect(fliteToModel('pau pau')).toBeUndefined();
  });

  it('turns dictionary terms into engine words, once each', () => {
    expect(engineWords(['Kubernetes', 'Visual Studio Code', 'Node.js', '(beta)', 'kubernetes', 'C++'])).toEqual([
      { word: 'kubernetes', original: 'Kubernetes' },
      { word: 'visual', original: 'Visual' },
      { word: 'studio', original: 'Studio' },
      { word: 'code', original: 'Code' },
      { word: 'node.js', original: 'Node.js' },
      { word: 'beta', original: 'beta' },
      { word: 'c++', original: 'C++' },
    ]);
  });
});

describe('install advice', () => {
  it('names the apt command on Linux and says the default is Linux-only elsewhere', () => {
    const linux = installAdvice('linux');
    expect(linux.text).toContain('apt-get install pocketsphinx pocketsphinx-en-us');
    const mac = installAdvice('darwin');
    expect(mac.command).toBeUndefined();
    expect(mac.text).toMatch(/Linux-only/);
    expect(mac.text).toContain('macOS');
    expect(mac.text).toContain('OPENAI_API_KEY');
  });
});
