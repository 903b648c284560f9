/**
 * Mistakes a user makes in the config or the environment, and audio ffmpeg cannot read: each
 * ends in one clear config error (exit 3) naming where the value came from and the fix, never
 * an internal error, a stack or a leaked credential.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createKernel, KotoError, type Kernel } from '../../src/index.ts';
import { ffmpegReason } from '../../src/audio/ffmpeg.ts';
import { koto } from '../cli/support.ts';
import { failure, startOpenAIServer, type OpenAIServer } from '../support/index.ts';
import { requireFfmpeg } from '../openai-compatible/upload-audio.ts';
import { toneWav } from '../../src/testing/fake-audio.ts';

let dir: string;
let server: OpenAIServer;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'koto-mistakes-'));
  server = await startOpenAIServer({ apiKey: 'sk-mistakes-canary-0001' });
});
afterAll(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

const home = () => path.join(dir, 'home');

function kernelWith(
  config: Record<string, unknown>,
  env: Record<string, string> = {},
  builtins = ['openai-compatible', 'azure-foundry'],
): Promise<Kernel> {
  return createKernel({ config, search: false, builtins, env: { KOTO_HOME: home(), ...env }, logLevel: 'silent' });
}

const GARBAGE: ReadonlyArray<readonly [string, RegExp]> = [
  ['not a url', /is not a URL \(no scheme such as https:\/\/\)/],
  ['ftp://x', /must be https:\/\/ or http:\/\/, not ftp:/],
  ['https://', /has no host name/],
  ['http://[::1', /an IPv6 address needs its closing "\]"/],
  ['https://user:pass@host/v1', /must not contain credentials/],
  ['https://api.example.com/my v1', /contains a space or line break/],
  ['https://exa mple.com/v1', /contains a space or line break/],
];

/** The error is a config error the user can act on: exit 3, the source named, the value's secret never shown. */
function expectConfigError(err: KotoError, where: RegExp, problem: RegExp): void {
  expect(err.code).toBe('KOTO_ERR_CONFIG_INVALID');
  expect(err.exitCode).toBe(3);
  expect(err.message).toMatch(where);
  expect(err.message).toMatch(problem);
  expect(err.toLine()).not.toContain('pass@');
  expect(err.toLine()).not.toMatch(/internal error|TypeError|Invalid URL$/);
}

describe('a garbage baseUrl', () => {
  for (const [value, problem] of GARBAGE) {
    test(`in the config: ${JSON.stringify(value)}`, async () => {
      const err = await failure(kernelWith({ providers: { main: { use: 'openai-compatible', baseUrl: value, apiKey: 'sk-x' } } }));
      expectConfigError(err, /providers\.main\.baseUrl/, problem);
    });

    test(`from OPENAI_BASE_URL: ${JSON.stringify(value)}`, async () => {
      const err = await failure(kernelWith({}, { OPENAI_API_KEY: 'sk-x', OPENAI_BASE_URL: value }));
      expectConfigError(err, /OPENAI_BASE_URL/, problem);
      expect(err.message).toContain('the environment');
      expect(err.fix).toContain('OPENAI_BASE_URL');
    });

    test(`as Azure's endpoint in the config and AZURE_OPENAI_ENDPOINT: ${JSON.stringify(value)}`, async () => {
      const inConfig = await failure(
        kernelWith({ providers: { az: { use: 'azure-foundry', endpoint: value, auth: { type: 'api-key', apiKey: 'k'.repeat(32) } } } }),
      );
      expectConfigError(inConfig, /providers\.az\.endpoint/, problem);
      const fromEnv = await failure(kernelWith({}, { AZURE_OPENAI_ENDPOINT: value, AZURE_OPENAI_API_KEY: 'k'.repeat(32) }));
      expectConfigError(fromEnv, /AZURE_OPENAI_ENDPOINT/, problem);
    });
  }

  test('the realtime socket URL gets the same checks, and plain ws:// to another host is refused when the config loads', async () => {
    const cases: Array<[string, RegExp]> = [
      ['wss://', /has no host name/],
      ['not a url', /no scheme such as wss:\/\//],
      ['wss://user:secret@api.example.com/v1/realtime', /must not contain credentials/],
      ['ws://api.example.com/v1/realtime', /must be wss:\/\/ \(plain ws:\/\/ only for a loopback host\)/],
    ];
    for (const [url, problem] of cases) {
      const err = await failure(kernelWith({ providers: { main: { use: 'openai-compatible', apiKey: 'sk-x', realtime: { url } } } }));
      expectConfigError(err, /providers\.main\.realtime\.url/, problem);
      expect(err.toLine()).not.toContain('secret@');
    }
  });

  test('surrounding whitespace (a pasted value, an env file) is forgiven', async () => {
    const kernel = await kernelWith({}, { OPENAI_API_KEY: 'sk-x', OPENAI_BASE_URL: ` ${server.baseUrl}\n` }, ['openai-compatible']);
    try {
      expect(kernel.config.resolved.providers.openai?.options.baseUrl).toBe(server.baseUrl);
    } finally {
      await kernel.close();
    }
  });

  test('plain http to another host from OPENAI_BASE_URL names the variable', async () => {
    const err = await failure(kernelWith({}, { OPENAI_API_KEY: 'sk-x', OPENAI_BASE_URL: 'http://api.example.com/v1' }));
    expectConfigError(err, /OPENAI_BASE_URL is plain http/, /unencrypted/);
  });

  test('the CLI: one line, exit 3, no stack — from the config file and from the environment', async () => {
    const configFile = path.join(dir, 'bad-url.yaml');
    await writeFile(configFile, 'providers:\n  main:\n    use: openai-compatible\n    baseUrl: "http://[::1"\n    apiKey: sk-x\n');
    const fromFile = await koto(['--config', configFile, 'config', 'check'], { env: { KOTO_HOME: home() }, cwd: dir });
    expect(fromFile.code).toBe(3);
    const line = fromFile.stderr.trim();
    expect(line.split('\n')).toHaveLength(1);
    expect(line).toMatch(
      /^koto: .*bad-url\.yaml: providers\.main\.baseUrl: is not a valid URL: an IPv6 address needs its closing "\]".*\(KOTO_ERR_CONFIG_INVALID\)$/,
    );

    const fromEnv = await koto(['config', 'check'], {
      env: { KOTO_HOME: home(), OPENAI_API_KEY: 'sk-x', OPENAI_BASE_URL: 'https://user:hunter2@api.example.com/v1' },
      cwd: dir,
    });
    expect(fromEnv.code).toBe(3);
    expect(fromEnv.stderr.trim().split('\n')).toHaveLength(1);
    expect(fromEnv.stderr).toMatch(/^koto: the environment: OPENAI_BASE_URL must not contain credentials.*Fix: correct OPENAI_BASE_URL/);
    expect(fromEnv.stderr + fromEnv.stdout).not.toContain('hunter2');
  });
});

describe('transport.ca', () => {
  const configWith = async (name: string, ca: string) => {
    const file = path.join(dir, name);
    await writeFile(
      file,
      `providers:\n  main:\n    use: openai-compatible\n    baseUrl: ${server.baseUrl}\n    apiKey: sk-mistakes-canary-0001\nasr:\n  model: whisper-1\ntransport:\n  ca: ${JSON.stringify(ca)}\n`,
    );
    return file;
  };
  const kernelFrom = (configPath: string) =>
    createKernel({ configPath, search: false, builtins: ['openai-compatible'], env: { KOTO_HOME: home() }, logLevel: 'silent' });

  test('a PEM file relative to the config file is trusted (the request goes through TLS to the test CA)', async () => {
    await writeFile(path.join(dir, 'company-ca.pem'), server.ca);
    const kernel = await kernelFrom(await configWith('ca-relative.yaml', './company-ca.pem'));
    try {
      expect((await kernel.transcribe({ data: toneWav({ seconds: 0.2 }), name: 'a.wav' })).text).toBe('hello world');
      expect(kernel.config.resolved.files).toContain(path.join(dir, 'company-ca.pem'));
    } finally {
      await kernel.close();
    }
  });

  test('an absolute path works, and inline PEM keeps working', async () => {
    await writeFile(path.join(dir, 'abs-ca.pem'), server.ca);
    for (const ca of [path.join(dir, 'abs-ca.pem'), server.ca]) {
      const kernel = await kernelFrom(await configWith('ca-other.yaml', ca));
      try {
        expect((await kernel.transcribe({ data: toneWav({ seconds: 0.2 }), name: 'a.wav' })).text).toBe('hello world');
      } finally {
        await kernel.close();
      }
    }
  });

  test('a missing file: KOTO_ERR_CONFIG_FILE_UNREADABLE naming transport.ca and the resolved path', async () => {
    const config = await configWith('ca-missing.yaml', './nowhere/ca.pem');
    const err = await failure(kernelFrom(config));
    expect(err.code).toBe('KOTO_ERR_CONFIG_FILE_UNREADABLE');
    expect(err.exitCode).toBe(3);
    expect(err.message).toBe(
      `${config}: transport.ca names ${path.join(dir, 'nowhere/ca.pem')}, which cannot be read (no such file or directory)`,
    );
    expect(err.fix).toContain('PEM file');
  });

  test('a file that is not PEM (text, a key, DER bytes): refused with what it holds', async () => {
    const cases: Array<[string, string | Buffer, RegExp]> = [
      ['notes.txt', 'just some notes\n', /holds no PEM certificate/],
      ['key.pem', '-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n', /holds a private key, not a certificate/],
      ['cert.der', Buffer.from([0x30, 0x82, 0x01, 0x0a, 0x02, 0x82]), /binary DER file\? convert it/],
      ['broken.pem', '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n', /certificate 1 of 1 in it is damaged/],
    ];
    for (const [name, content, reason] of cases) {
      await writeFile(path.join(dir, name), content);
      const err = await failure(kernelFrom(await configWith(`ca-${name}.yaml`, `./${name}`)));
      expect(err.code).toBe('KOTO_ERR_CONFIG_FILE_UNREADABLE');
      expect(err.message).toMatch(reason);
    }
  });

  test('inline text that claims to be PEM but is broken is a config error, not a TLS failure later', async () => {
    const err = await failure(
      kernelFrom(await configWith('ca-inline-bad.yaml', '-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----')),
    );
    expect(err.code).toBe('KOTO_ERR_CONFIG_INVALID');
    expect(err.message).toMatch(/transport\.ca: the inline PEM text is not usable: certificate 1 of 1 in it is damaged/);
  });
});

describe("ffmpeg's own reason", () => {
  test('the last meaningful stderr line, without temp paths or addresses, bounded', () => {
    const stderr = [
      '[mp3 @ 0x55b153c53900] Failed to read frame size: Could not seek to 6023.',
      '/tmp/koto-ffmpeg-AbC123/input: Invalid argument',
      '',
    ].join('\n');
    expect(ffmpegReason(stderr, [['/tmp/koto-ffmpeg-AbC123/input', 'clip.xyz']])).toBe(
      'Failed to read frame size: Could not seek to 6023. (Invalid argument)',
    );
    expect(ffmpegReason('Conversion failed!\n')).toBe('it exited with an error and printed no reason');
    const long = ffmpegReason(`${'x'.repeat(1000)}\n`);
    expect(long.length).toBeLessThanOrEqual(200);
    expect(ffmpegReason('Error while decoding /tmp/koto-ffmpeg-zz9/input stream #0:0\n')).not.toContain('koto-ffmpeg');
  });

  test("a file ffmpeg cannot convert: the user reads ffmpeg's reason, not a generic message", async () => {
    await requireFfmpeg();
    const kernel = await kernelWith(
      {
        providers: { main: { use: 'openai-compatible', baseUrl: server.baseUrl, apiKey: 'sk-mistakes-canary-0001' } },
        transport: { ca: server.ca },
      },
      {},
      ['openai-compatible'],
    );
    try {
      const file = path.join(dir, 'mystery.xyz');
      // Not a container Koto recognises, so it goes to ffmpeg, which cannot read it either.
      await writeFile(file, Buffer.from('this is not audio at all, only text pretending'.repeat(50)));
      const err = await failure(kernel.transcribe(file));
      expect(err.code).toBe('KOTO_ERR_AUDIO_INPUT');
      expect(err.message).toMatch(
        /^cannot read audio .*mystery\.xyz: ffmpeg could not convert it: .*Invalid data found when processing input/,
      );
      expect(err.message).not.toContain('koto-ffmpeg-');
      expect(err.message.length).toBeLessThan(400);
    } finally {
      await kernel.close();
    }
  });
});

describe('a provider name that is an Object.prototype key', () => {
  test('is unknown to the kernel (own keys only), for correct, transcribe and probe', async () => {
    const kernel = await kernelWith({
      providers: { main: { use: 'openai-compatible', baseUrl: server.url, apiKey: 'sk-mistakes-canary-0001' } },
    });
    try {
      for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
        const err = await kernel.correct('hello', { provider: name }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(KotoError.is(err) && err.code, name).toBe('KOTO_ERR_PROVIDER_UNKNOWN');
        const asr = await kernel.transcribe({ data: toneWav(), name: 'a.wav' }, { provider: name }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(KotoError.is(asr) && asr.code, name).toBe('KOTO_ERR_PROVIDER_UNKNOWN');
        expect((await kernel.probe(name)).ok).toBe(false);
      }
    } finally {
      await kernel.close();
    }
  });
});

describe('an input that is not a regular file', () => {
  test('a FIFO, /dev/zero and a folder: one clear line and a non-zero exit, never a hang', async () => {
    const { execFileSync } = await import('node:child_process');
    const fifo = path.join(dir, 'pipe.wav');
    execFileSync('mkfifo', [fifo]);
    for (const input of [fifo, '/dev/zero', dir]) {
      // A hang would end in the helper's kill (exit code null), not in this error.
      const r = await koto(['--no-daemon', 'transcribe', input], { env: { KOTO_HOME: home() } });
      expect(r.code, input).toBe(1);
      expect(r.stderr, input).toMatch(/not a regular file .*KOTO_ERR_AUDIO_INPUT/);
      expect(r.stderr.trim().split('\n'), input).toHaveLength(1);
    }
  });
});
