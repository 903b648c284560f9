import path from 'node:path';
import { DAEMON_PING_MS, daemonAnswers, sendCommand } from '../../daemon/client.ts';
import { KotoError } from '../../kernel/errors.ts';
import { profileNamed } from '../../kernel/profiles.ts';
import { kotoPaths } from '../../kernel/paths.ts';
import type { AudioInput, CorrectResult, RunResult, TranscribeResult } from '../../kernel/session.ts';
import { runBatch } from '../batch.ts';
import type { CliContext } from '../context.ts';
import { OrderedPrinter, printErr, printLine, readStdin } from '../io.ts';
import { reportError, toKotoError, warn } from '../report.ts';

export interface PipelineFlags {
  json?: boolean;
  provider?: string;
  correct?: boolean;
  concurrency?: string;
  profile?: string;
}

function concurrencyOf(flags: PipelineFlags): number {
  const n = Number(flags.concurrency ?? 4);
  return Number.isInteger(n) && n > 0 ? n : 4;
}

/**
 * Scripts reuse a running daemon's warm connection: hand the work over when its socket answers,
 * unless `--no-daemon`, or `--config` asks for a specific config (the daemon uses its own).
 */
async function daemonSocket(ctx: CliContext): Promise<string | undefined> {
  if (ctx.options.daemon === false || ctx.options.config) return undefined;
  const socket = kotoPaths(process.env).socket;
  // An unsafe runtime folder (another user's, issue #17) is never used: say so, work standalone.
  return (await daemonAnswers(socket, DAEMON_PING_MS, (err) => warn(`not using the daemon: ${err.toLine()}`, ctx))) ? socket : undefined;
}

function delegatedArgs(input: AudioInput, flags: PipelineFlags): Record<string, unknown> {
  const base = { provider: flags.provider, correct: flags.correct, profile: flags.profile };
  if (typeof input === 'string') return { ...base, path: path.resolve(input) };
  if ('data' in input) return { ...base, data: Buffer.from(input.data).toString('base64'), name: 'name' in input ? input.name : '-' };
  return { ...base, path: path.resolve(input.path) };
}

/** `-` means stdin: read once, passed as bytes (the kernel saves them before sending). */
async function audioInputs(inputs: readonly string[]): Promise<Map<string, AudioInput>> {
  const out = new Map<string, AudioInput>();
  for (const input of inputs) {
    out.set(input, input === '-' ? { data: await readStdin(), name: '-' } : input);
  }
  return out;
}

type Outcome<T> = { ok: true; input: string; value: T } | { ok: false; input: string; error: KotoError; record?: RunResult };

/** `koto transcribe FILE... | -`: one line per input, or NDJSON. Exit 1 when any input produced no text. */
export async function transcribeCommand(ctx: CliContext, inputs: string[], flags: PipelineFlags): Promise<number> {
  const audio = await audioInputs(inputs);
  const socket = await daemonSocket(ctx);
  const transcribe = socket
    ? (input: AudioInput) => sendCommand(socket, 'transcribe', delegatedArgs(input, flags), 600_000) as Promise<TranscribeResult>
    : await ctx.kernel().then((kernel) => (input: AudioInput) => kernel.transcribe(input, { provider: flags.provider }));
  let failed = 0;
  const printer = new OrderedPrinter<Outcome<TranscribeResult>>(async (outcome) => {
    if (!outcome.ok) {
      failed += 1;
      if (flags.json) await printLine(JSON.stringify({ input: outcome.input, error: errorJson(outcome.error, ctx) }));
      printErr(`koto: ${ctx.scrub(`${outcome.input}: ${outcome.error.toLine()}`)}`);
      return;
    }
    const r = outcome.value;
    if (!r.text) failed += 1;
    // A daemon older than failover sends no warnings.
    for (const warning of r.warnings ?? []) warn(`${r.input}: ${warning}`, ctx);
    if (flags.json) {
      await printLine(
        JSON.stringify({
          input: r.input,
          id: r.id,
          text: r.text,
          provider: r.provider,
          model: r.model,
          audioPath: r.audioPath,
          timings: r.timings,
          cost: r.cost,
        }),
      );
    } else {
      if (!r.text) printErr(`koto: ${r.input}: the transcription is empty`);
      await printLine(r.text);
    }
  });
  await runBatch(inputs, concurrencyOf(flags), async (input, index) => {
    let outcome: Outcome<TranscribeResult>;
    try {
      outcome = { ok: true, input, value: await transcribe(audio.get(input)!) };
    } catch (err) {
      outcome = { ok: false, input, error: toKotoError(err) };
    }
    await printer.add(index, outcome);
  });
  return summarise(inputs.length, failed);
}

function errorJson(error: KotoError, ctx: CliContext) {
  return { code: error.code, message: ctx.scrub(error.message), fix: ctx.scrub(error.fix) };
}

function summarise(total: number, failed: number): number {
  if (total > 1) printErr(`koto: ${total - failed} of ${total} inputs done${failed ? `, ${failed} failed` : ''}`);
  return failed > 0 ? 1 : 0;
}

/** `koto run FILE... | -`: the whole pipeline; final text on stdout (configured outputs too). */
export async function runCommand(ctx: CliContext, inputs: string[], flags: PipelineFlags): Promise<number> {
  const audio = await audioInputs(inputs);
  const socket = await daemonSocket(ctx);
  const run = socket
    ? (input: AudioInput) => sendCommand(socket, 'run', delegatedArgs(input, flags), 600_000) as Promise<RunResult>
    : await ctx.kernel().then((kernel) => {
        // An unknown name is one error before any input is read, not one per input.
        if (flags.profile !== undefined) profileNamed(kernel.config, flags.profile);
        return (input: AudioInput) =>
          kernel.run(input, {
            provider: flags.provider,
            correct: flags.correct,
            profile: flags.profile,
            // The CLI prints results itself, in input order; other configured outputs still run.
            excludeOutputs: ['stdout'],
          });
      });
  let failed = 0;
  // A usage error the daemon found (an unknown --profile) exits like the standalone check: 2.
  let usage: number | undefined;
  const printer = new OrderedPrinter<Outcome<RunResult>>(async (outcome) => {
    const record = outcome.ok ? outcome.value : outcome.record;
    if (!outcome.ok && outcome.error.code === 'KOTO_ERR_PROFILE_UNKNOWN') usage = outcome.error.exitCode;
    for (const warning of record?.warnings ?? []) warn(`${outcome.input}: ${warning}`, ctx);
    if (!outcome.ok) {
      failed += 1;
      if (flags.json) await printLine(JSON.stringify(runJson(outcome.input, record, outcome.error, ctx)));
      // The last mile failed, the dictation did not: the text still goes to stdout (exit 1 says
      // the configured outputs did not take it), and `koto paste ID` delivers it again.
      else if (record?.text !== undefined) await printLine(record.text);
      printErr(`koto: ${ctx.scrub(`${outcome.input}: ${outcome.error.toLine()}`)}`);
      if (record?.text !== undefined && outcome.error.code === 'KOTO_ERR_OUTPUT') {
        printErr(`koto: the text is in the history; deliver it again with \`koto paste ${record.id}\``);
        return;
      }
      // The row is in the history (written by the kernel, or the daemon for a delegated run),
      // unless the data folder was refused: then nothing was written, nothing is to be retried.
      if (record?.audioPath && outcome.error.code !== 'KOTO_ERR_UNSAFE_FOLDER')
        printErr(`koto: the recording is kept at ${record.audioPath}; retry with \`koto retry ${record.id}\``);
      return;
    }
    if (flags.json) await printLine(JSON.stringify(runJson(outcome.input, outcome.value, undefined, ctx)));
    else await printLine(outcome.value.text ?? '');
  });
  await runBatch(inputs, concurrencyOf(flags), async (input, index) => {
    let outcome: Outcome<RunResult>;
    try {
      const value = await run(audio.get(input)!);
      outcome = { ok: true, input, value };
    } catch (err) {
      const record = (err as { record?: RunResult }).record;
      outcome = { ok: false, input, error: toKotoError(err), ...(record ? { record } : {}) };
    }
    await printer.add(index, outcome);
  });
  const code = summarise(inputs.length, failed);
  return usage ?? code;
}

/** The documented `--json` shape of `koto run` (docs/cli.md). */
function runJson(input: string, record: RunResult | undefined, error: KotoError | undefined, ctx: CliContext) {
  return {
    input,
    id: record?.id,
    raw: record?.raw ?? null,
    text: record?.text ?? null,
    fallback: record?.fallback ?? false,
    provider: record?.asrProvider,
    model: record?.asrModel,
    correctionProvider: record?.correctionProvider ?? null,
    correctionModel: record?.correctionModel ?? null,
    audioPath: record?.audioPath,
    timings: record?.timings ?? {},
    warnings: record?.warnings ?? [],
    attempts: record?.attempts ?? [],
    cost: record?.cost ?? null,
    profile: record?.profile ?? null,
    ...(error ? { error: errorJson(error, ctx) } : {}),
  };
}

/** `koto correct [TEXT | -]`: a correction failure still prints the text (exit 0, warning). */
export async function correctCommand(ctx: CliContext, words: string[], flags: PipelineFlags): Promise<number> {
  const fromStdin = words.length === 0 || (words.length === 1 && words[0] === '-');
  const text = fromStdin ? (await readStdin()).toString('utf8').trim() : words.join(' ');
  try {
    const socket = await daemonSocket(ctx);
    const result = socket
      ? ((await sendCommand(socket, 'correct', { text, provider: flags.provider }, 120_000)) as CorrectResult)
      : await (await ctx.kernel()).correct(text, { provider: flags.provider });
    for (const warning of result.warnings) warn(warning, ctx);
    if (flags.json) {
      await printLine(
        JSON.stringify({
          raw: result.raw,
          text: result.text,
          fallback: result.fallback,
          provider: result.provider ?? null,
          model: result.model ?? null,
          timings: result.timings,
        }),
      );
    } else {
      await printLine(result.text);
    }
    return 0;
  } catch (err) {
    return reportError(err, ctx);
  }
}
