import { afterEach, describe, expect, test } from 'vitest';
import { KotoError } from 'koto-voice';
import { DEFAULT_COMPLETION, DEFAULT_TRANSCRIPT } from './azure-server.ts';
import {
  API_KEY,
  audio,
  caught,
  everythingShown,
  harness,
  makeToken,
  sleep,
  tokenCommand,
  tokenNumber,
  until,
  type Harness,
  type TokenCommand,
} from './helpers.ts';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const bearerRequests = (harness: Harness) => harness.server.requests.filter((r) => r.headers.authorization !== undefined);

describe('api-key', () => {
  test('the key goes in the api-key header, only to the configured origin, never as a bearer token', async () => {
    h = await harness();
    await h.kernel.transcribe({ data: audio(), name: 'a.wav' });
    for (const req of h.server.requests) {
      expect(req.headers['api-key']).toBe(API_KEY);
      expect(req.headers.authorization).toBeUndefined();
    }
  });

  test('a wrong key: KOTO_ERR_AUTH naming the api-key mode and where to find the right key; the key is never shown', async () => {
    const wrong = 'wrongkey-abcdef0123456789-canary';
    h = await harness({}, { provider: { auth: { type: 'api-key', apiKey: wrong } } });
    const err = await caught(() => h!.kernel.transcribe({ data: audio(), name: 'a.wav' }));
    expect(KotoError.is(err)).toBe(true);
    const e = err as KotoError;
    expect(e.code).toBe('KOTO_ERR_AUTH');
    expect(e.plugin).toBe('azure-foundry');
    expect(e.message).toMatch(/rejected the credentials \(HTTP 401\); auth used: api-key header$/);
    expect(e.fix).toMatch(/Keys and Endpoint/);
    expect(e.fix).toContain('providers.az.auth.apiKey');
    expect(h.server.to('transcriptions')).toHaveLength(1); // a 401 is not retried
    expect(everythingShown(err)).not.toContain(wrong);
    expect(h.logText()).not.toContain(wrong);
    expect(h.kernel.scrub(`x ${wrong} y`)).not.toContain(wrong);
  });
});

describe('Microsoft Entra ID from a command', () => {
  test('the token is cached, refreshed before it expires, and concurrent refreshes run the command once', async () => {
    let cmd!: TokenCommand;
    h = await harness({}, async ({ home }) => {
      cmd = await tokenCommand(home, { ttlSeconds: 10, delayMs: 300 });
      return { provider: { auth: { type: 'entra', command: cmd.command } }, correction: { stream: false } };
    });
    // Three sessions at once (each with its pre-warm): every request waits for one command run.
    const results = await Promise.all([h.kernel.correct('one'), h.kernel.correct('two'), h.kernel.correct('three')]);
    for (const r of results) expect(r).toMatchObject({ text: DEFAULT_COMPLETION, fallback: false });
    expect(await cmd.invocations()).toBe(1);
    // Cached: the next session reuses it.
    await h.kernel.correct('four');
    expect(await cmd.invocations()).toBe(1);
    // The token lives 9–10 s (expires_on has whole seconds), so it is refreshed at half its
    // lifetime — at most 5 s after it was fetched, seconds before it expires. The sessions above
    // have 4.5 s to reuse it: ample on a loaded machine (a 4 s token left them 1.5 s).
    await sleep(5100);
    await h.kernel.correct('five');
    expect(await cmd.invocations()).toBe(2);
    const chats = h.server.to('chat');
    expect(chats.map((r) => tokenNumber(r.headers.authorization))).toEqual([1, 1, 1, 1, 2]);
    for (const req of h.server.requests) {
      expect(req.status).toBe(200);
      expect(req.headers['api-key']).toBeUndefined();
      expect(req.headers.authorization).toMatch(/^Bearer [\w-]+\.[\w-]+\.[\w-]+$/);
    }
    // Never in a log line, and known to the kernel's scrubber.
    const tokens = await cmd.tokens();
    for (const token of tokens) {
      expect(h.logText()).not.toContain(token);
      expect(h.kernel.scrub(token)).not.toContain(token);
    }
  });

  test('a slow token command does not hold a cancelled dictation', async () => {
    h = await harness({}, async ({ home }) => {
      const cmd = await tokenCommand(home, { ttlSeconds: 3600, delayMs: 60_000 });
      return { provider: { auth: { type: 'entra', command: cmd.command } } };
    });
    const children = () => process.getActiveResourcesInfo().filter((r) => r === 'ProcessWrap').length;
    const idle = children();
    const controller = new AbortController();
    const call = h.kernel.transcribe({ data: audio(), name: 'a.wav' }, { signal: controller.signal });
    // Cancel once the command is running (not after a guessed delay).
    await until(() => children() > idle, 'the token command to start');
    controller.abort();
    const err = (await caught(() => call)) as KotoError;
    expect(err.code).toBe('KOTO_ERR_ABORTED');
    expect(h.server.to('transcriptions')).toHaveLength(0);
    // The error came while the command (60 s) still runs — it did not wait for it; its token
    // would fill the cache. Closing the kernel stops it.
    const before = children();
    expect(before).toBeGreaterThan(idle);
    await h.kernel.close();
    await until(() => children() < before, 'the token command to be stopped');
  });

  test('a command that fails (signed out): a clear AZURE_FOUNDRY_ERR_TOKEN saying which source and to sign in', async () => {
    h = await harness({}, async ({ home }) => {
      const cmd = await tokenCommand(home, { ttlSeconds: 3600, fail: true });
      return { provider: { auth: { type: 'entra', command: cmd.command } } };
    });
    const err = (await caught(() => h!.kernel.transcribe({ data: audio(), name: 'a.wav' }))) as KotoError;
    expect(err.code).toBe('AZURE_FOUNDRY_ERR_TOKEN');
    expect(err.message).toMatch(/cannot get a Microsoft Entra ID token from command: .*: it failed \(exit 1\): ERROR: AADSTS700082/);
    expect(err.fix).toMatch(/az login/);
    expect(err.details).toMatchObject({ reason: 'token-failed', authMode: expect.stringMatching(/^entra \(command/) });
    expect([err.plugin, err.hook]).toEqual(['azure-foundry', 'asr:azure-foundry']);
    expect(h.server.to('transcriptions')).toHaveLength(0); // nothing was sent without credentials
  });

  test('a token the service refuses: 401 names the entra mode and the audience; the next request fetches a new token', async () => {
    let cmd!: TokenCommand;
    h = await harness({ token: (t) => (t.includes('.') ? 'invalid' : 'ok') }, async ({ home }) => {
      cmd = await tokenCommand(home, { ttlSeconds: 3600 });
      return { provider: { auth: { type: 'entra', command: cmd.command } } };
    });
    const err = (await caught(() => h!.kernel.transcribe({ data: audio(), name: 'a.wav' }))) as KotoError;
    expect(err.code).toBe('KOTO_ERR_AUTH');
    expect(err.message).toMatch(/\(HTTP 401\); auth used: entra \(command: /);
    expect(err.fix).toMatch(/https:\/\/cognitiveservices\.azure\.com/);
    const before = await cmd.invocations();
    await caught(() => h!.kernel.transcribe({ data: audio(), name: 'a.wav' }));
    expect(await cmd.invocations()).toBeGreaterThan(before);
    for (const token of await cmd.tokens()) expect(everythingShown(err)).not.toContain(token);
  });

  test('a valid token without the role: the fix names the Cognitive Services OpenAI User role', async () => {
    const token = makeToken(Math.floor(Date.now() / 1000) + 3600, 'no-role');
    h = await harness({}, { provider: { auth: { type: 'entra', token } } });
    const err = (await caught(() => h!.kernel.transcribe({ data: audio(), name: 'a.wav' }))) as KotoError;
    expect(err.code).toBe('KOTO_ERR_AUTH');
    expect(err.message).toMatch(/\(HTTP 401 PermissionDenied\); auth used: entra \(a fixed token\)$/);
    expect(err.fix).toMatch(/Cognitive Services OpenAI User/);
    expect(everythingShown(err)).not.toContain(token);
    expect(h.logText()).not.toContain(token);
  });
});

describe('Microsoft Entra ID from an environment variable', () => {
  const VAR = 'KOTO_TEST_AZURE_AD_TOKEN';
  afterEach(() => {
    delete process.env[VAR];
  });

  test('the bearer token is read from the variable at request time', async () => {
    const token = makeToken(Math.floor(Date.now() / 1000) + 3600, 'env');
    process.env[VAR] = token;
    h = await harness({}, { provider: { auth: { type: 'entra', env: VAR } } });
    expect(await h.kernel.transcribe({ data: audio(), name: 'a.wav' })).toMatchObject({ text: DEFAULT_TRANSCRIPT });
    expect(bearerRequests(h).length).toBe(h.server.requests.length);
    expect(h.server.to('transcriptions')[0]!.headers.authorization).toBe(`Bearer ${token}`);
    expect(h.logText()).not.toContain(token);
    expect(h.kernel.scrub(token)).not.toContain(token);
  });

  test('an expired token in the variable is reported before anything is sent', async () => {
    process.env[VAR] = makeToken(Math.floor(Date.now() / 1000) - 60, 'old');
    h = await harness({}, { provider: { auth: { type: 'entra', env: VAR } } });
    const err = (await caught(() => h!.kernel.transcribe({ data: audio(), name: 'a.wav' }))) as KotoError;
    expect(err.code).toBe('AZURE_FOUNDRY_ERR_TOKEN');
    expect(err.message).toMatch(new RegExp(`token in \\$${VAR}: the token expired at \\d{4}-`));
    expect(err.fix).toContain(`export ${VAR}=`);
    expect(h.server.to('transcriptions')).toHaveLength(0);
    expect(everythingShown(err)).not.toContain(process.env[VAR]);
  });

  test('an unset variable says so', async () => {
    h = await harness({}, { provider: { auth: { type: 'entra', env: VAR } } });
    const err = (await caught(() => h!.kernel.transcribe({ data: audio(), name: 'a.wav' }))) as KotoError;
    expect(err.message).toContain(`the environment variable ${VAR} is not set`);
  });
});

describe('Microsoft Entra ID from @azure/identity', () => {
  test('not installed: a clear error saying how to install it or use a command instead', async () => {
    h = await harness({}, { provider: { auth: { type: 'entra', credential: 'azure-cli' } } });
    const err = (await caught(() => h!.kernel.transcribe({ data: audio(), name: 'a.wav' }))) as KotoError;
    expect(err.code).toBe('AZURE_FOUNDRY_ERR_TOKEN');
    expect(err.message).toMatch(/from @azure\/identity AzureCliCredential: @azure\/identity is not installed/);
    expect(err.fix).toMatch(/npm install @azure\/identity/);
    expect(err.fix).toMatch(/az account get-access-token/);
  });

  test('correction with an unavailable token source falls back to the raw text with the reason', async () => {
    h = await harness({}, { provider: { auth: { type: 'entra' } } });
    const result = await h.kernel.correct('raw words');
    expect(result).toMatchObject({ text: 'raw words', fallback: true });
    expect(result.warnings.join('\n')).toMatch(/@azure\/identity is not installed/);
  });
});

test('correction and transcription with a command token, end to end over one connection', async () => {
  let cmd!: TokenCommand;
  h = await harness({}, async ({ home }) => {
    cmd = await tokenCommand(home, { ttlSeconds: 3600 });
    return { provider: { auth: { type: 'entra', command: cmd.command } }, correction: { stream: true } };
  });
  const result = await h.kernel.run({ data: audio(), name: 'a.wav' });
  expect(result).toMatchObject({ raw: DEFAULT_TRANSCRIPT, text: DEFAULT_COMPLETION, fallback: false });
  expect(h.server.stats.tlsHandshakes).toBe(1);
  expect(await cmd.invocations()).toBe(1);
});
