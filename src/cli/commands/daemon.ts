import { appendFileSync, existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { sendCommand } from '../../daemon/client.ts';
import type { DaemonStatus } from '../../daemon/daemon.ts';
import { controlLine, statusLine, undeliveredText, type ControlAnswer } from '../control-format.ts';
import { HistoryStore } from '../../history/store.ts';
import { retryProfile } from '../../kernel/profiles.ts';
import { kotoError } from '../../kernel/errors.ts';
import type { LogSink } from '../../kernel/logger.ts';
import { deleteIfOwned } from '../../kernel/owned-files.ts';
import { kotoPaths } from '../../kernel/paths.ts';
import type { RunResult } from '../../kernel/session.ts';
import type { CliContext } from '../context.ts';
import { printLine } from '../io.ts';
import { warn } from '../report.ts';
import { escapeLine } from '../../kernel/control-chars.ts';

function socketPath(): string {
  return kotoPaths(process.env).socket;
}

/** `koto daemon`: foreground; logs to stdout and to the log file. Exits 0 on a clean shutdown. */
export async function daemonCommand(ctx: CliContext): Promise<number> {
  const paths = kotoPaths(process.env);
  mkdirSync(path.dirname(paths.log), { recursive: true, mode: 0o700 });
  const sink: LogSink = (entry) => {
    const fields = entry.fields && Object.keys(entry.fields).length ? ` ${JSON.stringify(entry.fields)}` : '';
    // One entry, one line: a transcript or file name with line breaks or escapes cannot forge entries.
    const line = `${new Date(entry.time).toISOString()} ${entry.level}${entry.scope ? ` [${entry.scope}]` : ''} ${escapeLine(entry.message)}${fields}\n`;
    process.stdout.write(line);
    try {
      appendFileSync(paths.log, line, { mode: 0o600 });
    } catch {
      // the log file is a convenience; stdout has the line
    }
  };
  const { Daemon } = await import('../../daemon/daemon.ts');
  const daemon = await Daemon.start({
    configPath: ctx.options.config,
    signals: true,
    logLevel: ctx.options.debug ? 'debug' : 'info',
    logSink: sink,
  });
  ctx.adopt(daemon.kernel);
  // Runs until a signal closes it (Daemon's SIGINT/SIGTERM handler exits the process).
  await new Promise<never>(() => undefined);
  return 0;
}

/** start / stop / toggle / cancel: one status line; exit 4 when no daemon runs. (fast.ts answers these first.) */
export async function controlCommand(
  ctx: CliContext,
  cmd: 'start' | 'stop' | 'toggle' | 'cancel',
  flags: { wait?: boolean; json?: boolean; vad?: boolean },
): Promise<number> {
  const args = {
    wait: flags.wait,
    source: 'cli',
    at: Math.round(performance.timeOrigin),
    ...(flags.vad && (cmd === 'start' || cmd === 'toggle') ? { vad: true } : {}),
  };
  let result: ControlAnswer;
  try {
    result = (await sendCommand(socketPath(), cmd, args, flags.wait ? 600_000 : 10_000)) as ControlAnswer;
  } catch (err) {
    // The text of a session that failed only at the last mile still goes to stdout.
    const kept = undeliveredText(err, flags);
    if (kept) {
      await printLine(kept.line);
      warn(kept.hint, ctx);
    }
    throw err;
  }
  await printLine(controlLine(result, flags));
  for (const warning of result.warnings ?? []) warn(warning, ctx);
  return 0;
}

/** `koto paste ID`: the text of a session again through the outputs (no ASR), by the daemon if one runs. */
export async function pasteCommand(ctx: CliContext, id: string, flags: { json?: boolean }): Promise<number> {
  let record: RunResult;
  try {
    record = (await sendCommand(socketPath(), 'deliver', { id }, 120_000)) as RunResult;
  } catch (err) {
    if ((err as { code?: string }).code !== 'KOTO_ERR_NO_DAEMON') throw err;
    record = await (await ctx.kernel()).deliver(id, { defaultOutputs: ['paste'], excludeOutputs: ['stdout'] });
  }
  for (const warning of record.warnings) warn(warning, ctx);
  await printLine(flags.json ? JSON.stringify(record) : (record.text ?? ''));
  return 0;
}

export async function statusCommand(_ctx: CliContext, flags: { json?: boolean }): Promise<number> {
  const status = (await sendCommand(socketPath(), 'status')) as DaemonStatus;
  await printLine(flags.json ? JSON.stringify(status) : statusLine(status));
  return 0;
}

export async function reloadCommand(): Promise<number> {
  const outcome = (await sendCommand(socketPath(), 'reload')) as { changed: string[]; transportChanged: boolean; generation: number };
  await printLine(
    outcome.changed.length
      ? `reloaded (generation ${outcome.generation}): ${outcome.changed.join(', ')} changed${outcome.transportChanged ? '; HTTP client rebuilt' : ''}`
      : 'no change',
  );
  return 0;
}

const MAX_HISTORY_ROWS = 100_000;

/** `-n`: a whole number of rows, 1 to 100000; anything else is a usage error, not a silent default. */
function rowCount(value: string | undefined): number {
  if (value === undefined) return 20;
  const n = /^\d{1,7}$/.test(value.trim()) ? Number(value.trim()) : Number.NaN;
  if (!Number.isInteger(n) || n < 1 || n > MAX_HISTORY_ROWS) {
    throw kotoError('KOTO_ERR_USAGE', { detail: `-n must be a whole number from 1 to ${MAX_HISTORY_ROWS} (got "${value}")` });
  }
  return n;
}

export async function historyCommand(_ctx: CliContext, flags: { json?: boolean; n?: string; clear?: boolean }): Promise<number> {
  const limit = flags.clear ? 0 : rowCount(flags.n);
  const paths = kotoPaths(process.env);
  const store = new HistoryStore(paths.history);
  try {
    if (flags.clear) {
      const { removed, audioPaths } = store.clear();
      // Rows also point at the user's own inputs (`koto run ~/meeting.wav`): only files of the
      // recordings folder are Koto's to delete.
      let deleted = 0;
      for (const file of audioPaths) if (await deleteIfOwned(file, paths.recordings)) deleted += 1;
      await printLine(`history cleared (${removed} sessions, ${deleted} recordings removed)`);
      return 0;
    }
    const entries = store.list(limit);
    for (const e of entries) {
      if (flags.json) await printLine(JSON.stringify(e));
      else
        await printLine(
          `${e.id}  ${e.state.padEnd(11)} ${e.profile ? `[${e.profile}] ` : ''}${e.text ?? e.raw ?? e.errorMessage ?? ''}`.trimEnd(),
        );
    }
    return 0;
  } finally {
    store.close();
  }
}

/** `koto retry ID`: through the daemon when one runs (warm connection, outputs), else standalone. */
export async function retryCommand(ctx: CliContext, id: string, flags: { json?: boolean }): Promise<number> {
  let record: RunResult;
  try {
    record = (await sendCommand(socketPath(), 'retry', { id }, 600_000)) as RunResult;
  } catch (err) {
    if ((err as { code?: string }).code !== 'KOTO_ERR_NO_DAEMON') throw err;
    const store = new HistoryStore(kotoPaths(process.env).history);
    try {
      const entry = store.get(id);
      if (!entry) throw kotoError('KOTO_ERR_HISTORY_NOT_FOUND', { id });
      if (!entry.audioPath || !existsSync(entry.audioPath)) {
        throw kotoError('KOTO_ERR_NO_RECORDING', { id, reason: entry.audioPath ? ' (the file was removed)' : '' });
      }
      // The kernel writes the retry's own row (retry_of = id), failed or done.
      const kernel = await ctx.kernel();
      record = await kernel.run(entry.audioPath, {
        excludeOutputs: ['stdout'],
        retryOf: id,
        profile: retryProfile(kernel.config, entry.profile),
      });
    } finally {
      store.close();
    }
  }
  for (const warning of record.warnings) warn(warning, ctx);
  await printLine(flags.json ? JSON.stringify(record) : (record.text ?? ''));
  return 0;
}
