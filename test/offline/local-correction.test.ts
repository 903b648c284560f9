import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { capitalize, correctText, finalPunctuation, looksLikeQuestion, termPattern } from '../../plugins/local-correction/correct.ts';
import { providerSchema, type CorrectionOptions } from '../../plugins/local-correction/options.ts';
import { offlineKernel, tempDir } from './support.ts';

const defaults = providerSchema.parse({});
const fix = (text: string, dictionary: readonly string[] = [], options: Partial<CorrectionOptions> = {}) =>
  correctText(text, dictionary, { ...defaults, ...options });

const tmp = tempDir();
afterAll(() => tmp.cleanup());

describe('local corrector: fillers', () => {
  it('removes hesitation words anywhere, with the comma that set them off', () => {
    expect(fix('um so i think we should uh go to the park')).toBe('So I think we should go to the park.');
    expect(fix('Um, so we go.')).toBe('So we go.');
    expect(fix('we erm need hmm more time')).toBe('We need more time.');
    expect(fix('UH the end')).toBe('The end.');
  });

  it('removes "you know" and "i mean" only when they are set off', () => {
    expect(fix('you know comma it works comma you know')).toBe('It works.');
    expect(fix('I mean, it is fine')).toBe('It is fine.');
    expect(fix('do you know the way')).toBe('Do you know the way?');
    expect(fix('that is what i mean')).toBe('That is what I mean.');
  });

  it('never removes a filler spelled as a dictionary term', () => {
    expect(fix('the er team is busy', ['ER'])).toBe('The ER team is busy.');
    expect(fix('the er team is busy')).toBe('The team is busy.');
  });

  it('takes its lists from the options, or leaves fillers alone', () => {
    expect(fix('um so like we go', [], { fillerWords: ['like', 'so'] })).toBe('Um we go.');
    expect(fix('um so we go', [], { fillers: false })).toBe('Um so we go.');
    expect(fix('sort of, it works', [], { fillerPhrases: ['sort of'] })).toBe('It works.');
  });
});

describe('local corrector: spoken punctuation', () => {
  it('turns spoken marks into punctuation with natural spacing', () => {
    expect(fix('hello comma this is a test period new line how are you question mark')).toBe('Hello, this is a test.\nHow are you?');
    expect(fix('wow exclamation mark that is great full stop')).toBe('Wow! That is great.');
    expect(fix('first item new paragraph second item')).toBe('First item\n\nSecond item.');
    expect(fix('note colon buy milk semicolon call mom')).toBe('Note: buy milk; call mom.');
    expect(fix('open quote hello close quote she said')).toBe('"Hello" she said.');
    expect(fix('call me open paren maybe close paren')).toBe('Call me (maybe).');
  });

  it('keeps a spoken form that is a noun, and "literal" keeps the word', () => {
    expect(fix('it was a period of great change')).toBe('It was a period of great change.');
    expect(fix('put the comma there')).toBe('Put the comma there.');
    expect(fix('literal comma is a word')).toBe('Comma is a word.');
  });

  it('does not double marks the transcript already has', () => {
    expect(fix('Hello comma world period.')).toBe('Hello, world.');
    expect(fix('Is it done question mark.')).toBe('Is it done?');
  });

  it('takes extra spoken forms from the options, switches one off, or all', () => {
    expect(fix('nice smiley', [], { punctuation: { smiley: ':)' } })).toBe('Nice:).');
    expect(fix('the end period', [], { punctuation: { period: '' } })).toBe('The end period.');
    expect(fix('hello comma world', [], { spokenPunctuation: false })).toBe('Hello comma world.');
  });
});

describe('local corrector: dictionary', () => {
  const terms = ['Kubernetes', 'Visual Studio Code', 'Visual Studio', 'Node.js', 'iPhone', 'JavaScript', 'C++', 'GPT-4'];

  it('spells and cases terms, multi-word terms included, longest first', () => {
    expect(fix('we deployed it on KUBERNETES with visual studio code and node js', terms)).toBe(
      'We deployed it on Kubernetes with Visual Studio Code and Node.js.',
    );
    expect(fix('i use visual studio daily', terms)).toBe('I use Visual Studio daily.');
    expect(fix('we use c++ and gpt 4 with nodejs', terms)).toBe('We use C++ and GPT-4 with Node.js.');
    expect(fix('the java script code', terms)).toBe('The JavaScript code.');
  });

  it('matches whole words only', () => {
    expect(fix('the kubernetesy cluster and visual studios', terms)).toBe('The kubernetesy cluster and visual studios.');
    expect(fix('can i phone you later', terms)).toBe('Can I phone you later?');
    expect(fix("kubernetes's scheduler", terms)).toBe("Kubernetes's scheduler.");
  });

  it('keeps a term that starts small at the start of a sentence', () => {
    expect(fix('iphone sales are up. iphone wins', terms)).toBe('iPhone sales are up. iPhone wins.');
  });

  it('is off when asked', () => {
    expect(fix('node js on kubernetes', terms, { dictionary: false })).toBe('Node js on kubernetes.');
  });

  it('builds flexible but anchored patterns', () => {
    const re = new RegExp(`^(?:${termPattern('Node.js')})$`, 'iu');
    for (const ok of ['node.js', 'node js', 'nodejs', 'Node-JS']) expect(re.test(ok), ok).toBe(true);
    expect(re.test('node jsx')).toBe(false);
  });
});

describe('local corrector: capitals and final punctuation', () => {
  it('capitalises sentence starts and the pronoun I, not abbreviations', () => {
    expect(capitalize("i think i'm right. and i'll go i.e. now")).toBe("I think I'm right. And I'll go i.e. now");
    expect(capitalize('see e.g. this one. then stop')).toBe('See e.g. this one. Then stop');
    expect(capitalize('one\ntwo')).toBe('One\nTwo');
  });

  it('ends with a full stop or, for a question, a question mark', () => {
    expect(finalPunctuation('the end', true)).toBe('the end.');
    expect(finalPunctuation('the end,', true)).toBe('the end.');
    expect(finalPunctuation('the end!', true)).toBe('the end!');
    expect(finalPunctuation('He said "hi"', true)).toBe('He said "hi".');
    expect(finalPunctuation('what time is it', true)).toBe('what time is it?');
    expect(finalPunctuation('what time is it', false)).toBe('what time is it.');
    expect(looksLikeQuestion('can you send me the file')).toBe(true);
    expect(looksLikeQuestion('when i get home i sleep')).toBe(false);
    expect(looksLikeQuestion('do the dishes')).toBe(false);
  });

  it('leaves capitals and the final mark alone when switched off', () => {
    expect(fix('hello there', [], { capitalize: false, finalPunctuation: false })).toBe('hello there');
    expect(fix('hello there', [], { capitalize: false })).toBe('hello there.');
  });

  it('keeps an already clean transcript as it is', () => {
    const clean = 'Hello, world. This is fine: really (mostly) — see example.com at 10:30, e.g. "now"!';
    expect(fix(clean)).toBe(clean);
  });

  it('does every rule off: only whitespace is tidied', () => {
    const off = { dictionary: false, fillers: false, spokenPunctuation: false, capitalize: false, finalPunctuation: false };
    expect(fix('um  hello comma world', ['World'], off)).toBe('um hello comma world');
  });
});

describe('local-correction plugin', () => {
  it('is the correction provider of kernel.correct, with its options and the dictionary', async () => {
    const dictionary = path.join(tmp.dir, 'dictionary.txt');
    writeFileSync(dictionary, 'Kubernetes\nVisual Studio Code\n');
    const kernel = await offlineKernel(tmp.dir, { dictionary, providers: { local: { use: 'local-correction' } } }, ['local-correction']);
    try {
      const result = await kernel.correct('um we run kubernetes comma and visual studio code');
      expect(result).toMatchObject({
        text: 'We run Kubernetes, and Visual Studio Code.',
        fallback: false,
        provider: 'local',
        model: 'local-rules',
      });
    } finally {
      await kernel.close();
    }
    const plain = await offlineKernel(
      tmp.dir,
      { providers: { local: { use: 'local-correction', fillers: false, finalPunctuation: false } } },
      ['local-correction'],
    );
    try {
      expect((await plain.correct('um we run')).text).toBe('Um we run');
    } finally {
      await plain.close();
    }
  });

  it('refuses unknown options', async () => {
    await expect(
      offlineKernel(tmp.dir, { providers: { local: { use: 'local-correction', filers: false } } }, ['local-correction']),
    ).rejects.toMatchObject({
      code: 'KOTO_ERR_CONFIG_INVALID',
    });
  });
});
