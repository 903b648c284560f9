import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Daemon } from '../../src/daemon/daemon.ts';
import { toneSource } from '../daemon/nothing-lost-support.ts';
import { startOpenAIServer, tempHome } from '../support/index.ts';
import { CANARY, call, configText, login, request, startPanel, writeConfig, type Panel } from './support.ts';

let panel: Panel;

beforeEach(async () => {
  panel = await startPanel();
});
afterEach(async () => {
  await panel.close();
});

async function dictate(): Promise<{ id: string; text: string }> {
  await panel.daemon.command('start', { source: 'cli' });
  await new Promise((r) => setTimeout(r, 150));
  return (await panel.daemon.command('stop', { wait: true })) as { id: string; text: string };
}

describe('control panel: who may talk to it', () => {
  it('without the cookie every page and API answers 401; the login link sets an HttpOnly SameSite=Strict cookie and drops the token', async () => {
    for (const p of ['/', '/app.js', '/api/status', '/api/history', '/api/settings', '/api/events', '/vendor/preact.mjs']) {
      expect((await request(panel.port, p)).status, p).toBe(401);
    }
    expect((await request(panel.port, '/login?token=guess')).status).toBe(401);
    // A person's tab gets a page saying what to do, not JSON.
    const stale = await request(panel.port, '/login?token=guess', { headers: { accept: 'text/html,*/*' } });
    expect(stale.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(stale.body).toContain('run `koto ui` for a new one');
    const { url } = (await panel.daemon.command('ui', {})) as { url: string };
    expect(url).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:${panel.port}/login\\?token=[\\w-]{32}$`));
    const u = new URL(url);
    const reply = await request(panel.port, `${u.pathname}${u.search}`);
    expect(reply.status).toBe(200);
    // Only the holder of the token gets the page key; the page stores it (login.js) and moves on.
    expect(reply.body).toMatch(
      /<meta name="koto-key" content="[\w-]{43}"><title>Koto<\/title><script type="module" src="\/login.js"><\/script>/,
    );
    expect(reply.headers['cache-control']).toBe('no-store');
    const cookie = String(reply.headers['set-cookie']);
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    expect(cookie).not.toContain(u.searchParams.get('token'));
    // Single use: the link in the browser's history opens nothing for anyone else.
    expect((await request(panel.port, `${u.pathname}${u.search}`)).status).toBe(401);
    const page = await request(panel.port, '/', { headers: { cookie: cookie.split(';')[0]! } });
    expect(page.status).toBe(200);
    expect(page.body).toContain('<script type="module" src="/app.js">');
  });

  it('the cookie alone (what a server on another 127.0.0.1 port receives) opens no API: the page key is needed too', async () => {
    const session = await login(panel);
    const bare = { cookie: session.cookie, origin: `http://127.0.0.1:${panel.port}`, 'content-type': 'application/json' };
    expect((await request(panel.port, '/api/status', { headers: bare })).status).toBe(401);
    expect((await request(panel.port, '/api/settings', { headers: { ...bare, 'x-koto-key': 'wrong' } })).status).toBe(401);
    expect((await request(panel.port, '/api/control/start', { method: 'POST', headers: bare, body: '{}' })).status).toBe(401);
    expect(panel.daemon.status().state).toBe('idle');
    // The static page holds no key: fetching it with the cookie yields nothing to use.
    expect((await request(panel.port, '/', { headers: { cookie: session.cookie } })).body).not.toContain(session.key);
    expect((await request(panel.port, `/api/status?key=${session.key}`, { headers: bare })).status).toBe(200);
  });

  it('a wrong Host (DNS rebinding) is refused with 403, even with the cookie', async () => {
    const session = await login(panel);
    for (const host of [`evil.example:${panel.port}`, `127.0.0.1.nip.io:${panel.port}`, '127.0.0.1', `127.0.0.1:${panel.port + 1}`]) {
      const reply = await request(panel.port, '/api/status', { headers: { host, cookie: session.cookie, 'x-koto-key': session.key } });
      expect(reply.status, host).toBe(403);
      expect(reply.body).not.toContain('"pid"');
    }
    expect(
      (
        await request(panel.port, '/api/status', {
          headers: { host: `localhost:${panel.port}`, cookie: session.cookie, 'x-koto-key': session.key },
        })
      ).status,
    ).toBe(200);
  });

  it('a state-changing request from another origin (or with none) is refused with 403; the page own origin passes', async () => {
    const session = await login(panel);
    const post = (headers: Record<string, string>) =>
      request(panel.port, '/api/control/start', {
        method: 'POST',
        headers: { cookie: session.cookie, 'x-koto-key': session.key, 'content-type': 'application/json', ...headers },
        body: '{}',
      });
    expect((await post({ origin: 'https://evil.example' })).status).toBe(403);
    expect((await post({ origin: 'null' })).status).toBe(403);
    expect((await post({})).status).toBe(403);
    expect((await post({ origin: `http://127.0.0.1:${panel.port}`, 'sec-fetch-site': 'cross-site' })).status).toBe(403);
    expect(panel.daemon.status().state).toBe('idle');
    const ok = await post({ origin: `http://127.0.0.1:${panel.port}` });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toMatchObject({ state: 'recording' });
    await panel.daemon.command('cancel', {});
  });

  it('malformed requests get a clear 4xx and change nothing', async () => {
    const session = await login(panel);
    const headers = { cookie: session.cookie, 'x-koto-key': session.key, origin: `http://127.0.0.1:${panel.port}` };
    const big = await request(panel.port, '/api/settings', {
      method: 'PUT',
      headers: { ...headers, 'content-type': 'application/json' },
      body: `{"x":"${'a'.repeat(1024 * 1024 + 10)}"}`,
    });
    expect(big.status).toBe(413);
    expect(
      (
        await request(panel.port, '/api/control/start', {
          method: 'POST',
          headers: { ...headers, 'content-type': 'text/plain' },
          body: '{}',
        })
      ).status,
    ).toBe(415);
    expect(
      (
        await request(panel.port, '/api/settings', {
          method: 'PUT',
          headers: { ...headers, 'content-type': 'application/json' },
          body: '[1,2',
        })
      ).status,
    ).toBe(400);
    expect(
      (
        await request(panel.port, '/api/settings', {
          method: 'PUT',
          headers: { ...headers, 'content-type': 'application/json' },
          body: '{"changes":[{"path":["__proto__","x"],"value":1}]}',
        })
      ).status,
    ).toBe(400);
    expect((await request(panel.port, '/api/nothing', { headers })).status).toBe(404);
    expect((await request(panel.port, '/api/history/%E0%A4%A', { headers })).status).toBe(400);
    expect((await request(panel.port, '/etc/passwd', { headers })).status).toBe(404);
    expect((await request(panel.port, '/../package.json', { headers })).status).toBe(404);
    expect(panel.daemon.status().state).toBe('idle');
    expect((await request(panel.port, '/api/status', { headers })).status).toBe(200);
  });

  it('every answer carries a CSP without inline scripts, nosniff and no-framing', async () => {
    const session = await login(panel);
    for (const p of ['/', '/api/status']) {
      const { headers } = await request(panel.port, p, { headers: { cookie: session.cookie, 'x-koto-key': session.key } });
      expect(headers['content-security-policy']).toContain("script-src 'self'");
      expect(headers['content-security-policy']).not.toContain('unsafe-inline');
      expect(headers['content-security-policy']).toContain("frame-ancestors 'none'");
      expect(headers['x-content-type-options']).toBe('nosniff');
    }
    // No inline script in the page itself.
    const page = await request(panel.port, '/', { headers: { cookie: session.cookie } });
    expect(page.body.match(/<script\b[^>]*>/g)).toEqual(['<script type="module" src="/app.js">']);
  });

  it('a non-loopback daemon.ui.host is refused at start with a config error naming the key', async () => {
    const home = tempHome('koto-ui-host-');
    const server = await startOpenAIServer();
    try {
      const file = path.join(home.dir, 'koto.yaml');
      writeConfig(file, configText(server).replace('    port: 0 # any free port', '    host: 0.0.0.0\n    port: 0'));
      const started = Daemon.start({
        configPath: file,
        env: { KOTO_HOME: home.dir },
        builtins: ['openai-compatible', 'outputs'],
        plugins: [toneSource],
        logLevel: 'silent',
        watch: false,
      });
      await expect(started).rejects.toMatchObject({
        code: 'KOTO_ERR_CONFIG_INVALID',
        message: expect.stringMatching(/daemon\.ui\.host: must be a loopback address/),
      });
    } finally {
      await server.close();
      home.cleanup();
    }
  });

  // (::1 works the same way, but a container may have no IPv6 loopback: not tested here.)
  it('another loopback address (127.0.0.2) is served, named in the link and accepted as Host', async () => {
    for (const host of ['127.0.0.2']) {
      const home = tempHome('koto-ui-addr-');
      const server = await startOpenAIServer();
      try {
        const file = path.join(home.dir, 'koto.yaml');
        writeConfig(file, configText(server).replace('    port: 0 # any free port', `    host: "${host}"\n    port: 0`));
        const daemon = await Daemon.start({
          configPath: file,
          env: { KOTO_HOME: home.dir },
          builtins: ['openai-compatible', 'outputs'],
          plugins: [toneSource],
          logLevel: 'silent',
          watch: false,
        });
        try {
          const { url } = (await daemon.command('ui', {})) as { url: string };
          const link = new URL(url);
          expect(link.hostname).toBe(host === '::1' ? '[::1]' : host);
          const reply = await new Promise<number>((resolve, reject) => {
            http
              .get({ host, port: Number(link.port), path: `${link.pathname}${link.search}`, headers: { host: link.host } }, (res) =>
                resolve(res.statusCode ?? 0),
              )
              .on('error', reject);
          });
          expect(reply).toBe(200);
        } finally {
          await daemon.close();
        }
      } finally {
        await server.close();
        home.cleanup();
      }
    }
  });

  it('a port in use leaves the daemon running; status and `koto ui` say why there is no panel', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as net.AddressInfo).port;
    const home = tempHome('koto-ui-busy-');
    const server = await startOpenAIServer();
    try {
      const file = path.join(home.dir, 'koto.yaml');
      writeConfig(file, configText(server).replace('    port: 0 # any free port', `    port: ${port}`));
      const daemon = await Daemon.start({
        configPath: file,
        env: { KOTO_HOME: home.dir },
        builtins: ['openai-compatible', 'outputs'],
        plugins: [toneSource],
        logLevel: 'silent',
        watch: false,
      });
      try {
        expect(daemon.status().ui).toEqual({ url: undefined, error: expect.stringContaining(`port ${port} on 127.0.0.1 is in use`) });
        await expect(daemon.command('ui', {})).rejects.toMatchObject({ code: 'KOTO_ERR_UI_UNAVAILABLE' });
      } finally {
        await daemon.close();
      }
    } finally {
      blocker.close();
      await server.close();
      home.cleanup();
    }
  });
});

describe('control panel: API', () => {
  it('status shows the panel URL without a token', async () => {
    const status = panel.daemon.status();
    expect(status.ui.url).toBe(`http://127.0.0.1:${panel.port}/`);
    expect(JSON.stringify(status)).not.toContain('token');
  });

  it('history: full-text search over raw and final text, filters, the recording, delete', async () => {
    const session = await login(panel);
    const first = await dictate();
    const list = JSON.parse((await call(panel, session, 'GET', '/api/history?q=pan')).body) as {
      entries: { id: string; hasAudio: boolean }[];
      total: number;
      fullText: boolean;
    };
    expect(list.fullText).toBe(true);
    expect(list.entries.map((e) => e.id)).toEqual([first.id]);
    expect(JSON.parse((await call(panel, session, 'GET', '/api/history?q=nothing-like-this')).body).total).toBe(0);
    expect(JSON.parse((await call(panel, session, 'GET', '/api/history?state=failed')).body).total).toBe(0);
    expect(JSON.parse((await call(panel, session, 'GET', '/api/history?state=done&provider=main')).body).total).toBe(1);
    // FTS syntax in the query is taken as text, not as an operator.
    expect((await call(panel, session, 'GET', `/api/history?q=${encodeURIComponent('"hello" OR NEAR(')}`)).status).toBe(200);

    const audio = await call(panel, session, 'GET', `/api/history/${first.id}/audio`);
    expect(audio.status).toBe(200);
    expect(audio.headers['content-type']).toBe('audio/wav');
    const entry = panel.daemon.history.get(first.id)!;
    expect(Number(audio.headers['content-length'])).toBe(readFileSync(entry.audioPath!).length);
    const part = await request(panel.port, `/api/history/${first.id}/audio?key=${session.key}`, {
      headers: { cookie: session.cookie, range: 'bytes=0-3' },
    });
    expect(part.status).toBe(206);
    expect(part.body).toBe('RIFF');
    expect((await call(panel, session, 'GET', '/api/history/..%2F..%2Fetc%2Fpasswd/audio')).status).toBe(400);
    expect((await call(panel, session, 'GET', '/api/history/no-such-id/audio')).status).toBe(404);

    const removed = await call(panel, session, 'DELETE', `/api/history/${first.id}`);
    expect(JSON.parse(removed.body)).toEqual({ removed: true, audioDeleted: true });
    expect(existsSync(entry.audioPath!)).toBe(false);
    expect(panel.daemon.history.get(first.id)).toBeUndefined();
  });

  it('the recording of a session whose audio is the user own file is not served', async () => {
    const session = await login(panel);
    const own = path.join(panel.home.dir, 'meeting.wav');
    writeFileSync(own, readFileSync(panel.daemon.history.get((await dictate()).id)!.audioPath!));
    const run = (await panel.daemon.command('run', { path: own })) as { id: string };
    expect(panel.daemon.history.get(run.id)?.audioPath).toBe(own);
    expect((await call(panel, session, 'GET', `/api/history/${run.id}/audio`)).status).toBe(404);
    await call(panel, session, 'DELETE', `/api/history/${run.id}`);
    expect(existsSync(own)).toBe(true);
  });

  it('settings: secrets shown as set, never sent; an edit keeps comments, is validated on its field, and the watcher applies it', async () => {
    const session = await login(panel);
    const settings = JSON.parse((await call(panel, session, 'GET', '/api/settings')).body) as {
      hash: string;
      values: { providers: { main: { apiKey: unknown } } };
    };
    expect(settings.values.providers.main.apiKey).toEqual({ $hidden: 'set' });

    const bad = await call(panel, session, 'PUT', '/api/settings', {
      hash: settings.hash,
      changes: [{ path: ['correction', 'temperature'], value: 9 }],
    });
    expect(bad.status).toBe(422);
    expect(JSON.parse(bad.body).error.fields).toEqual([{ path: 'correction.temperature', message: expect.stringMatching(/2/) }]);
    // A key a plugin declares in `correction` is judged by that plugin's schema, on its field.
    const wire = await call(panel, session, 'PUT', '/api/settings', {
      hash: settings.hash,
      changes: [{ path: ['correction', 'protocol'], value: 'soap' }],
    });
    expect(wire.status).toBe(422);
    expect(JSON.parse(wire.body).error.fields[0].path).toBe('correction.protocol');
    const hotkey = await call(panel, session, 'PUT', '/api/settings', {
      hash: settings.hash,
      changes: [{ path: ['hotkey', 'keys'], value: 'ctrl+nosuchkey' }],
    });
    expect(hotkey.status).toBe(422);
    expect(JSON.parse(hotkey.body).error.fields[0].path).toBe('hotkey.keys');
    const forbidden = await call(panel, session, 'PUT', '/api/settings', {
      hash: settings.hash,
      changes: [{ path: ['providers', 'main', 'use'], value: './evil.mjs' }],
    });
    expect(forbidden.status).toBe(403);
    expect(
      (await call(panel, session, 'PUT', '/api/settings', { hash: settings.hash, changes: [{ path: ['plugins'], value: ['./evil.mjs'] }] }))
        .status,
    ).toBe(403);
    expect(
      (
        await call(panel, session, 'PUT', '/api/settings', {
          hash: settings.hash,
          changes: [{ path: ['daemon', 'ui', 'host'], value: '0.0.0.0' }],
        })
      ).status,
    ).toBe(403);

    const before = panel.daemon.kernel.configGeneration;
    const original = readFileSync(panel.configFile, 'utf8');
    const saved = await call(panel, session, 'PUT', '/api/settings', {
      hash: settings.hash,
      changes: [{ path: ['correction', 'model'], value: 'gpt-second' }],
    });
    expect(saved.status).toBe(200);
    const text = readFileSync(panel.configFile, 'utf8');
    // Only that value changed: long lines, escapes, spacing before comments are the user's.
    expect(text).toBe(original.replace('  model: gpt-first', '  model: gpt-second'));
    expect(text).toContain('# Koto test config: these comments must survive edits from the panel');
    expect(text).toContain('  # the model that cleans up the transcript\n  model: gpt-second');
    expect(text).toContain('model: whisper-1 # transcription model');
    // A stale page (the file changed since it loaded) is told, not allowed to overwrite.
    expect(
      (await call(panel, session, 'PUT', '/api/settings', { hash: settings.hash, changes: [{ path: ['asr', 'model'], value: 'x' }] }))
        .status,
    ).toBe(409);
    await expect.poll(() => panel.daemon.kernel.configGeneration, { timeout: 30_000 }).toBeGreaterThan(before);
    expect(panel.daemon.kernel.config.correction.model).toBe('gpt-second');
    const next = await dictate();
    expect(next.text).toBe('Hello from the panel (gpt-second).');
  });

  it('values that need quoting are quoted; new keys and lists keep the rest of the file as it was', async () => {
    const session = await login(panel);
    const original = readFileSync(panel.configFile, 'utf8');
    let hash = (JSON.parse((await call(panel, session, 'GET', '/api/settings')).body) as { hash: string }).hash;
    const put = async (changes: unknown[]) => {
      const reply = await call(panel, session, 'PUT', '/api/settings', { hash, changes });
      expect(reply.status, reply.body).toBe(200);
      hash = (JSON.parse(reply.body) as { hash: string }).hash;
    };
    await put([{ path: ['asr', 'model'], value: 'yes' }]);
    expect(readFileSync(panel.configFile, 'utf8')).toBe(original.replace('model: whisper-1 #', 'model: "yes" #'));
    await put([{ path: ['asr', 'model'], value: 'a: b # c' }]);
    expect(readFileSync(panel.configFile, 'utf8')).toBe(original.replace('model: whisper-1 #', 'model: "a: b # c" #'));
    await put([
      { path: ['asr', 'language'], value: 'de' },
      { path: ['rewrite', 'templates'], value: { mail: { prompt: 'As an email: {{text}}' } } },
    ]);
    const text = readFileSync(panel.configFile, 'utf8');
    expect(text).toContain('# Koto test config: these comments must survive edits from the panel\n');
    expect(text).toContain('  # the model that cleans up the transcript\n  model: gpt-first\n');
    expect(text).toContain(`  ca: ${JSON.stringify(panel.server.ca)}\n`);
    await expect.poll(() => panel.daemon.kernel.config.rewrite.templates.mail?.prompt, { timeout: 30_000 }).toBe('As an email: {{text}}');
    expect(panel.daemon.kernel.config.asr).toMatchObject({ model: 'a: b # c', language: 'de' });
  });

  it('the dictionary and prompt files named in the config are edited as text; the watcher applies them', async () => {
    const session = await login(panel);
    const settings = JSON.parse((await call(panel, session, 'GET', '/api/settings')).body) as {
      hash: string;
      files: Record<string, { path: string; text: string } | null>;
    };
    expect(settings.files).toEqual({
      dictionary: { path: './dictionary.txt', text: 'Koto\nPreact\n' },
      'correction.systemPrompt': { path: './system-prompt.txt', text: 'Fix the punctuation of the dictation. Keep the words.\n' },
      'correction.userPrompt': null,
    });
    const config = readFileSync(panel.configFile, 'utf8');
    const saved = await call(panel, session, 'PUT', '/api/settings', {
      hash: settings.hash,
      files: { dictionary: 'Koto\nPreact\nhtm\n', 'correction.systemPrompt': 'Only fix punctuation.\n' },
    });
    expect(saved.status).toBe(200);
    expect(readFileSync(panel.configFile, 'utf8')).toBe(config);
    expect(readFileSync(path.join(panel.home.dir, 'dictionary.txt'), 'utf8')).toBe('Koto\nPreact\nhtm\n');
    await expect.poll(() => panel.daemon.kernel.config.resolved.dictionary, { timeout: 30_000 }).toEqual(['Koto', 'Preact', 'htm']);
    await expect.poll(() => panel.daemon.kernel.config.resolved.systemPrompt, { timeout: 30_000 }).toBe('Only fix punctuation.\n');
    const refused = await call(panel, session, 'PUT', '/api/settings', { files: { 'transport.ca': 'x' } });
    expect(refused.status).toBe(403);
    await dictate();
    const chat = panel.server.requests.filter((r) => r.path.endsWith('/chat/completions')).at(-1);
    expect(JSON.stringify(chat?.json)).toContain('Only fix punctuation.');
  });

  it('two saves from pages loaded at the same time: the first lands, the second is told the file changed', async () => {
    const session = await login(panel);
    const { hash } = JSON.parse((await call(panel, session, 'GET', '/api/settings')).body) as { hash: string };
    const [a, b] = await Promise.all([
      call(panel, session, 'PUT', '/api/settings', { hash, changes: [{ path: ['asr', 'language'], value: 'de' }] }),
      call(panel, session, 'PUT', '/api/settings', { hash, changes: [{ path: ['asr', 'language'], value: 'fr' }] }),
    ]);
    expect([a.status, b.status].sort()).toEqual([200, 409]);
    expect(readFileSync(panel.configFile, 'utf8')).toMatch(a.status === 200 ? /language: de/ : /language: fr/);
  });

  it('a map sent back whole keeps the secrets inside it that the page only saw as masks', async () => {
    await panel.close();
    panel = await startPanel({ extra: [] });
    const text = readFileSync(panel.configFile, 'utf8').replace(
      '    apiKey: ',
      '    headers: { X-Team: koto, Authorization: "Bearer sk-ui-header-canary-55" }\n    apiKey: ',
    );
    writeFileSync(panel.configFile, text);
    await expect
      .poll(
        () => (panel.daemon.kernel.config.resolved.providers.main?.options as { headers?: Record<string, string> }).headers?.['X-Team'],
        { timeout: 30_000 },
      )
      .toBe('koto');
    const session = await login(panel);
    const settings = JSON.parse((await call(panel, session, 'GET', '/api/settings')).body) as {
      hash: string;
      values: { providers: { main: { headers: Record<string, unknown> } } };
    };
    expect(settings.values.providers.main.headers).toEqual({ 'X-Team': 'koto', Authorization: { $hidden: 'set' } });
    // The page's JSON editor sends the map back with the mask and one edit.
    const headers = { ...settings.values.providers.main.headers, 'X-Team': 'voice' };
    const saved = await call(panel, session, 'PUT', '/api/settings', {
      hash: settings.hash,
      changes: [{ path: ['providers', 'main', 'headers'], value: headers }],
    });
    expect(saved.status, saved.body).toBe(200);
    const after = readFileSync(panel.configFile, 'utf8');
    expect(after).toContain('Bearer sk-ui-header-canary-55');
    expect(after).toContain('X-Team: voice');
    expect(after).not.toContain('$hidden');
  });

  it('a new secret is accepted write-only: it lands in the file, never in an answer', async () => {
    const session = await login(panel);
    const settings = JSON.parse((await call(panel, session, 'GET', '/api/settings')).body) as { hash: string };
    const fresh = 'sk-ui-new-secret-0b9e41';
    const saved = await call(panel, session, 'PUT', '/api/settings', {
      hash: settings.hash,
      changes: [{ path: ['providers', 'main', 'apiKey'], value: fresh }],
    });
    expect(saved.status).toBe(200);
    expect(saved.body).not.toContain(fresh);
    expect(readFileSync(panel.configFile, 'utf8')).toContain(`apiKey: ${fresh} # the key: never shown by the panel`);
    const again = (await call(panel, session, 'GET', '/api/settings')).body;
    expect(again).not.toContain(fresh);
    expect(again).not.toContain(CANARY);
  });

  it('the canary key appears in no answer: page, status, history, settings, events, errors', async () => {
    const session = await login(panel);
    panel.server.inject({ path: '/audio/transcriptions', status: 401, times: 1, body: { error: { message: `bad key ${CANARY}` } } });
    await dictate().catch(() => undefined);
    await dictate();
    const bodies: string[] = [];
    for (const p of ['/', '/app.js', '/settings.js', '/api/status', '/api/history', '/api/settings', '/api/templates'])
      bodies.push((await call(panel, session, 'GET', p)).body);
    const id = panel.daemon.history.list(2)[1]!.id;
    bodies.push((await call(panel, session, 'GET', `/api/history/${id}`)).body);
    bodies.push((await call(panel, session, 'POST', '/api/history/nope/retry', {})).body);
    bodies.push((await request(panel.port, '/api/status')).body);
    const events = await new Promise<string>((resolve) => {
      let text = '';
      const req = net.connect(panel.port, '127.0.0.1', () =>
        req.write(`GET /api/events?key=${session.key} HTTP/1.1\r\nHost: 127.0.0.1:${panel.port}\r\nCookie: ${session.cookie}\r\n\r\n`),
      );
      req.on('data', (d: Buffer) => {
        text += d.toString();
        if (text.includes('event: snapshot')) {
          req.destroy();
          resolve(text);
        }
      });
    });
    bodies.push(events);
    // The answers are the real ones (not empty refusals): the failed session and its error are in them.
    expect(bodies.join('\n')).toContain('KOTO_ERR_AUTH');
    expect(events).toContain('Hello from the panel');
    for (const body of bodies) expect(body).not.toContain(CANARY);
  });
});

/** Reads the event stream until `until` returns true for an event; resolves with every event seen. */
function readEvents(
  port: number,
  session: { cookie: string; key: string },
  until: (event: string, data: Record<string, unknown>) => boolean,
): { ready: Promise<void>; events: Promise<{ event: string; data: Record<string, unknown> }[]> } {
  let markReady!: () => void;
  const ready = new Promise<void>((r) => (markReady = r));
  const events = new Promise<{ event: string; data: Record<string, unknown> }[]>((resolve, reject) => {
    const seen: { event: string; data: Record<string, unknown> }[] = [];
    let buffer = '';
    const socket = net.connect(port, '127.0.0.1', () =>
      socket.write(`GET /api/events?key=${session.key} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nCookie: ${session.cookie}\r\n\r\n`),
    );
    socket.on('error', reject);
    socket.on('data', (d: Buffer) => {
      buffer += d.toString();
      for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const name = /^event: (.+)$/m.exec(block)?.[1];
        const data = /^data: (.+)$/m.exec(block)?.[1];
        if (!name || !data) continue;
        const parsed = JSON.parse(data) as Record<string, unknown>;
        seen.push({ event: name, data: parsed });
        if (name === 'snapshot') markReady();
        if (until(name, parsed)) {
          socket.destroy();
          resolve(seen);
        }
      }
    });
  });
  return { ready, events };
}

describe('control panel: live feed', () => {
  it('pushes the states, the input level, the streamed correction and the final record with its first-token time', async () => {
    await panel.close();
    panel = await startPanel();
    writeFileSync(panel.configFile, readFileSync(panel.configFile, 'utf8').replace('  stream: false', '  stream: true'));
    await expect.poll(() => panel.daemon.kernel.config.correction.stream, { timeout: 30_000 }).toBe(true);
    const session = await login(panel);
    const feed = readEvents(panel.port, session, (event) => event === 'final');
    await feed.ready;
    const record = await dictate();
    const events = await feed.events;
    const mine = events.filter((e) => e.data.id === record.id);
    const states = mine.filter((e) => e.event === 'state').map((e) => e.data.state);
    expect(states).toEqual(['recording', 'transcribing', 'correcting', 'output', 'done']);
    expect(mine.some((e) => e.event === 'session' && e.data.state === 'recording')).toBe(true);
    expect(mine.filter((e) => e.event === 'recording').map((e) => e.data.state)).toEqual(['started', 'stopped']);
    expect(mine.some((e) => e.event === 'level' && Number(e.data.rms) > 0.1)).toBe(true);
    const interim = mine.filter((e) => e.event === 'interim');
    expect(interim.length).toBeGreaterThan(0);
    expect(interim.every((e) => e.data.stage === 'correction')).toBe(true);
    const final = mine.find((e) => e.event === 'final')!.data as { text: string; timings: Record<string, number> };
    expect(final.text).toBe('Hello from the panel (gpt-first).');
    expect(final.timings.correctionFirstToken).toBeGreaterThanOrEqual(0);
    expect(final.timings.correctionFirstToken).toBeLessThanOrEqual(final.timings.correction!);
    expect(panel.daemon.history.get(record.id)?.timings.correctionFirstToken).toBe(final.timings.correctionFirstToken);
  });

  it('rewrite with a template from a history row', async () => {
    await panel.close();
    panel = await startPanel({ extra: ['rewrite:', '  templates:', '    shout: { prompt: "Shout it: {{text}}" }'] });
    const session = await login(panel);
    const record = await dictate();
    expect(JSON.parse((await call(panel, session, 'GET', '/api/templates')).body)).toEqual(['shout']);
    const rewritten = await call(panel, session, 'POST', `/api/history/${record.id}/rewrite`, { template: 'shout' });
    expect(rewritten.status).toBe(200);
    expect(JSON.parse(rewritten.body).text).toMatch(/^Hello from the panel/);
    const chat = panel.server.requests.filter((r) => r.path.endsWith('/chat/completions')).at(-1);
    expect(JSON.stringify(chat?.json)).toContain('Shout it: Hello from the panel (gpt-first).');
    expect((await call(panel, session, 'POST', `/api/history/${record.id}/rewrite`, { template: 'nope' })).status).toBeGreaterThanOrEqual(
      400,
    );
  });
});
