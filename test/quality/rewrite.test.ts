import { chmodSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { rewriteCommand } from '../../src/cli/commands/quality.ts';
import { CliContext } from '../../src/cli/context.ts';
import { lineParser } from '../../src/daemon/protocol.ts';
import { HistoryStore } from '../../src/history/store.ts';
import type { Kernel } from '../../src/index.ts';
import { REWRITE_OUTPUT_RULE, REWRITE_SYSTEM_PROMPT, rewritePrompts, rewriteRequest, rewriteText } from '../../src/quality/rewrite.ts';
import { startOpenAIServer, type OpenAIServer } from '../support/index.ts';
import { API_KEY, messagesOf, quietKernel, record, run, seedHistory, tempDir } from './helpers.ts';

const home = tempDir('koto-rewrite-');
let server: OpenAIServer;
let kernel: Kernel;
let ctx: CliContext;

const TEMPLATES = {
  email: { prompt: 'Polish this as a short, friendly email.' },
  english: { prompt: 'Translate into English:\n\n{{text}}\n\nKeep names as they are.', model: 'gpt-4o-mini', temperature: 0.3 },
};

beforeAll(async () => {
  server = await startOpenAIServer({
    apiKey: API_KEY,
    complete: (req) => {
      const messages = messagesOf(req.json);
      return `REWRITTEN(${messages.at(-1)?.content.split('\n')[0]})`;
    },
  });
  ({ kernel, ctx } = await quietKernel(server, home.dir, { rewrite: { templates: TEMPLATES } }));
  await seedHistory(home.dir, [
    { record: record('20260301-090000-aaaaaa', 'um first dictation', 'First dictation.') },
    { record: record('20260301-091500-bbbbbb', 'second one', 'Second one.') },
    {
      record: record('20260301-093000-cccccc', undefined, undefined, {
        state: 'failed',
        error: { code: 'KOTO_ERR_UPSTREAM', message: 'x' },
      }),
    },
  ]);
});

beforeEach(() => {
  vi.stubEnv('KOTO_HOME', home.dir);
  server.reset();
});

afterEach(() => {
  vi.unstubAllEnvs();
  server.clearFaults();
});

afterAll(async () => {
  await kernel?.close();
  await server?.close();
  home.cleanup();
});

function chat(index = 0) {
  const requests = server.requests.filter((r) => r.path.endsWith('/chat/completions'));
  const req = requests[index]!;
  return { body: req.json as Record<string, unknown>, messages: messagesOf(req.json) };
}

describe('rewrite prompts', () => {
  it('a prompt without {{text}} is the system message and the text the user message', () => {
    expect(rewritePrompts('Polish this.')).toEqual({ systemPrompt: `Polish this.\n\n${REWRITE_OUTPUT_RULE}`, userPrompt: '{{asr_text}}' });
  });

  it('a prompt with {{text}} is the user message, the text in its place, under a fixed system message', () => {
    expect(rewritePrompts('Translate:\n{{ text }}\nThanks')).toEqual({
      systemPrompt: REWRITE_SYSTEM_PROMPT,
      userPrompt: 'Translate:\n{{asr_text}}\nThanks',
    });
  });
});

describe('koto rewrite --template NAME', () => {
  it('applies a template to the given text: template prompt as system, the text as user message', async () => {
    const result = await run(() => rewriteCommand(ctx, ['hi', 'bob', 'the', 'build', 'is', 'green'], { template: 'email' }));
    expect(result).toEqual({ code: 0, stdout: 'REWRITTEN(hi bob the build is green)\n', stderr: '' });
    const { messages } = chat();
    expect(messages).toHaveLength(2);
    expect(messages[0]).toEqual({ role: 'system', content: `Polish this as a short, friendly email.\n\n${REWRITE_OUTPUT_RULE}` });
    expect(messages[1]).toEqual({ role: 'user', content: 'hi bob the build is green' });
  });

  it('puts the text where {{text}} stands, once and verbatim, with the template model and temperature', async () => {
    const text = 'hallo welt {{asr_text}} {{dictionary_entries}}';
    const result = await run(() => rewriteCommand(ctx, [text], { template: 'english', json: true }));
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({
      template: 'english',
      text: 'REWRITTEN(Translate into English:)',
      input: text,
      id: null,
      provider: 'openai',
      model: 'gpt-4o-mini',
    });
    const { body, messages } = chat();
    expect(body).toMatchObject({ model: 'gpt-4o-mini', temperature: 0.3 });
    expect(messages[0]).toEqual({ role: 'system', content: REWRITE_SYSTEM_PROMPT });
    expect(messages[1]?.content).toBe(`Translate into English:\n\n${text}\n\nKeep names as they are.`);
  });

  it('without an argument rewrites the last result: the newest history entry with text', async () => {
    const result = await run(() => rewriteCommand(ctx, [], { template: 'email' }));
    expect(result).toMatchObject({ code: 0, stdout: 'REWRITTEN(Second one.)\n' });
    expect(chat().messages[1]?.content).toBe('Second one.');
  });

  it('an argument that is a history id rewrites that session', async () => {
    const result = await run(() => rewriteCommand(ctx, ['20260301-090000-aaaaaa'], { template: 'email', json: true }));
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ id: '20260301-090000-aaaaaa', input: 'First dictation.' });
    expect(chat().messages[1]?.content).toBe('First dictation.');
  });

  it('an id that is not in the history is an error, not text to rewrite', async () => {
    const result = await run(() => rewriteCommand(ctx, ['20991231-235959-abcdef'], { template: 'email' }));
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/no session 20991231-235959-abcdef in the history.*\(KOTO_ERR_HISTORY_NOT_FOUND\)/);
    expect(server.requests).toHaveLength(0);
  });

  it('an unknown template: one line listing the known ones, exit 3, nothing sent', async () => {
    const result = await run(() => rewriteCommand(ctx, ['some text'], { template: 'haiku' }));
    expect(result.code).toBe(3);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(
      'koto: no rewrite template "haiku" (known: email, english). Fix: use one of the known templates, or add it under `rewrite.templates` in the config. (KOTO_ERR_TEMPLATE_UNKNOWN)\n',
    );
    expect(server.requests).toHaveLength(0);
  });

  it('a failed LLM call is an error (exit 1): the input is never printed as the rewrite', async () => {
    server.inject({ path: '/chat/completions', status: 500, times: Infinity });
    const result = await run(() => rewriteCommand(ctx, ['keep me raw'], { template: 'email' }));
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^koto: rewrite "email" failed: .*500.*\(KOTO_ERR_REWRITE_FAILED\)\n$/);
  });

  it('an empty answer is a failure too', async () => {
    server.inject({
      path: '/chat/completions',
      body: {
        id: 'x',
        object: 'chat.completion',
        created: 0,
        model: 'gpt-4.1-mini',
        choices: [{ index: 0, message: { role: 'assistant', content: '' }, finish_reason: 'stop' }],
      },
      times: Infinity,
    });
    await expect(rewriteText(kernel, 'email', 'text')).rejects.toMatchObject({ code: 'KOTO_ERR_REWRITE_FAILED', exitCode: 1 });
  });

  it('--template is required and empty text is a usage error', async () => {
    expect((await run(() => rewriteCommand(ctx, ['x'], {}))).code).toBe(2);
    const empty = await run(() => rewriteCommand(ctx, ['   '], { template: 'email' }));
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain('there is no text to rewrite');
  });

  it('with no history at all, "the last result" is a clear error', async () => {
    const other = tempDir('koto-rewrite-empty-');
    try {
      vi.stubEnv('KOTO_HOME', other.dir);
      const result = await run(() => rewriteCommand(ctx, [], { template: 'email' }));
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('(KOTO_ERR_NO_LAST_RESULT)');
    } finally {
      other.cleanup();
    }
  });
});

describe('the daemon side of rewrite', () => {
  it('rewriteRequest serves { template, text }, { template, id } and { template } from the daemon history', async () => {
    const store = new HistoryStore(path.join(home.dir, 'data', 'history.sqlite'));
    try {
      await expect(rewriteRequest(kernel, store, { template: 'email', text: 'given' })).resolves.toMatchObject({
        input: 'given',
        id: null,
      });
      await expect(rewriteRequest(kernel, store, { template: 'email', id: '20260301-090000-aaaaaa' })).resolves.toMatchObject({
        input: 'First dictation.',
      });
      await expect(rewriteRequest(kernel, store, { template: 'email' })).resolves.toMatchObject({
        input: 'Second one.',
        id: '20260301-091500-bbbbbb',
      });
      await expect(rewriteRequest(kernel, store, { template: 'email', id: '20260301-093000-cccccc' })).rejects.toMatchObject({
        code: 'KOTO_ERR_NO_TEXT',
      });
      await expect(rewriteRequest(kernel, store, { template: 'nope' })).rejects.toMatchObject({
        code: 'KOTO_ERR_TEMPLATE_UNKNOWN',
        exitCode: 3,
      });
    } finally {
      store.close();
    }
  });

  /** A stand-in daemon on $KOTO_HOME/run/koto.sock that answers ping and, optionally, rewrite. */
  async function fakeDaemon(dir: string, knowsRewrite: boolean) {
    const seen: { cmd: string; args: Record<string, unknown> }[] = [];
    // Private, as a real daemon makes them: the CLI refuses anything else (socket-guard.ts).
    mkdirSync(path.join(dir, 'run'), { recursive: true, mode: 0o700 });
    const socketPath = path.join(dir, 'run', 'koto.sock');
    const srv = net.createServer((socket) => {
      socket.on(
        'data',
        lineParser(
          (message) => {
            const { id, cmd, args } = message as { id: number; cmd: string; args: Record<string, unknown> };
            seen.push({ cmd, args });
            const reply =
              cmd === 'ping'
                ? { id, ok: true, result: { pid: 1 } }
                : cmd === 'rewrite' && knowsRewrite
                  ? {
                      id,
                      ok: true,
                      result: {
                        template: args.template,
                        text: `daemon: ${String(args.text ?? args.id ?? 'last')}`,
                        input: '',
                        id: null,
                        provider: 'openai',
                        model: null,
                        timings: {},
                      },
                    }
                  : {
                      id,
                      ok: false,
                      error: { code: 'KOTO_ERR_USAGE', message: `unknown daemon command "${cmd}"`, fix: 'see `koto --help`', exitCode: 2 },
                    };
            socket.write(`${JSON.stringify(reply)}\n`);
          },
          () => socket.destroy(),
        ),
      );
    });
    await new Promise<void>((resolve) => srv.listen(socketPath, resolve));
    chmodSync(socketPath, 0o600);
    return { seen, close: () => new Promise<void>((resolve) => srv.close(() => resolve())) };
  }

  it('the CLI hands the rewrite to a running daemon, and does it itself when the daemon predates rewrite', async () => {
    const dir = tempDir('koto-rw-d-');
    try {
      vi.stubEnv('KOTO_HOME', dir.dir);
      const withDaemon = new CliContext({});
      withDaemon.adopt(kernel);
      const daemon = await fakeDaemon(dir.dir, true);
      try {
        const text = await run(() => rewriteCommand(withDaemon, ['dictated', 'words'], { template: 'email' }));
        expect(text).toMatchObject({ code: 0, stdout: 'daemon: dictated words\n' });
        const last = await run(() => rewriteCommand(withDaemon, [], { template: 'email' }));
        expect(last.stdout).toBe('daemon: last\n');
        expect(daemon.seen.filter((s) => s.cmd === 'rewrite').map((s) => s.args)).toEqual([
          { template: 'email', text: 'dictated words' },
          { template: 'email' },
        ]);
        expect(server.requests).toHaveLength(0);
      } finally {
        await daemon.close();
      }
      const old = await fakeDaemon(dir.dir, false);
      try {
        const result = await run(() => rewriteCommand(withDaemon, ['from', 'an', 'old', 'daemon'], { template: 'email' }));
        expect(result).toMatchObject({ code: 0, stdout: 'REWRITTEN(from an old daemon)\n' });
        expect(old.seen.map((s) => s.cmd)).toEqual(['ping', 'rewrite']);
      } finally {
        await old.close();
      }
    } finally {
      dir.cleanup();
    }
  });
});
