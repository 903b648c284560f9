import { Command, CommanderError, Option } from 'commander';
import { EXIT } from '../kernel/errors.ts';
import { KOTO_VERSION } from '../kernel/version.ts';
// Command modules are imported when their command runs: `--help` and the fast control commands
// must not load the kernel (issue #16). Type-only imports cost nothing at run time.
import type { PipelineFlags } from './commands/pipeline.ts';
import type { BenchFlags, DictAddFlags, DictSuggestFlags, RewriteFlags } from './commands/quality.ts';
import type { TrustFlags } from './commands/trust.ts';
import { CliContext, type GlobalOptions } from './context.ts';
import { reportError } from './report.ts';

type Action = (ctx: CliContext, ...args: never[]) => Promise<number>;

/** Builds the `koto` command tree. Commands are thin: parse, call the kernel, print. */
export function buildProgram(run: (action: Action, args: unknown[]) => Promise<void>): Command {
  const program = new Command('koto')
    .description('Koto: speak, and clean text lands where you need it.')
    .version(KOTO_VERSION, '-v, --version')
    .option('-c, --config <path>', 'use this config file instead of searching for one')
    .option('--debug', 'verbose logs and stack traces on stderr')
    .option('-q, --quiet', 'only errors on stderr')
    .option('--no-daemon', 'never hand work to a running daemon (standalone)')
    .showHelpAfterError('(see `koto --help`)')
    .exitOverride()
    .configureOutput({ writeErr: (text) => process.stderr.write(text) });

  const bind =
    (action: Action) =>
    (...args: unknown[]) =>
      run(action, args);

  const pipelineOptions = (cmd: Command) =>
    cmd
      .option('--json', 'print NDJSON: one object per input')
      .option('-p, --provider <name>', 'use this provider (a key of `providers`)')
      .addOption(new Option('-j, --concurrency <n>', 'files in flight at once over the shared connection').default('4'));

  pipelineOptions(
    program
      .command('transcribe')
      .description('speech to text (ASR only); FILE... or - for stdin')
      .argument('<inputs...>', 'audio files (WAV natively; others via ffmpeg), or - for stdin'),
  ).action(
    bind(async (ctx, inputs: string[], flags: PipelineFlags) =>
      (await import('./commands/pipeline.ts')).transcribeCommand(ctx, inputs, flags),
    ),
  );

  pipelineOptions(
    program
      .command('run')
      .description('the whole pipeline: ASR, correction, outputs; final text on stdout')
      .argument('<inputs...>', 'audio files, or - for stdin')
      .option('--no-correct', 'skip the correction step')
      .option('--profile <name>', 'use this profile (`profiles` in the config) for every input'),
  ).action(
    bind(async (ctx, inputs: string[], flags: PipelineFlags) => (await import('./commands/pipeline.ts')).runCommand(ctx, inputs, flags)),
  );

  program
    .command('correct')
    .description('correct text with the LLM (TEXT, or - / nothing for stdin)')
    .argument('[text...]', 'the text to correct')
    .option('--json', 'print a JSON object')
    .option('-p, --provider <name>', 'use this provider (a key of `providers`)')
    .action(
      bind(async (ctx, words: string[], flags: PipelineFlags) =>
        (await import('./commands/pipeline.ts')).correctCommand(ctx, words, flags),
      ),
    );

  const config = program.command('config').description('inspect the configuration');
  config
    .command('print')
    .description('the resolved config, secrets redacted')
    .option('--json', 'print JSON')
    .action(bind(async (ctx, flags: { json?: boolean }) => (await import('./commands/inspect.ts')).configPrintCommand(ctx, flags)));
  config
    .command('check')
    .description('validate the config (exit 3 if invalid)')
    .action(bind(async (ctx) => (await import('./commands/inspect.ts')).configCheckCommand(ctx)));

  program
    .command('trust')
    .description('allow a project config (found by searching from the working directory) to be used')
    .argument('[path]', 'the config file, or a folder to search from (default: the config found from here)')
    .option('--list', 'list trusted files, and whether they changed since')
    .option('--remove <path>', 'stop trusting a file')
    .option('--json', 'print NDJSON (with --list)')
    .action(
      bind(async (ctx, target: string | undefined, flags: TrustFlags) =>
        (await import('./commands/trust.ts')).trustCommand(ctx, target, flags),
      ),
    );

  program
    .command('plugins')
    .description('loaded plugins and what they tap')
    .option('--json', 'print JSON')
    .action(bind(async (ctx, flags: { json?: boolean }) => (await import('./commands/inspect.ts')).pluginsCommand(ctx, flags)));

  const profiles = program
    .command('profiles')
    .description('per-application profiles (`profiles` in the config), in the order they are tried')
    .option('--json', 'print JSON')
    .action(bind(async (ctx, flags: { json?: boolean }) => (await import('./commands/profiles.ts')).profilesListCommand(ctx, flags)));
  profiles
    .command('test')
    .description('the window focused now, and the profile a dictation started now would use')
    .option('--json', 'print JSON')
    // `--json` after `test` is taken by the parent command (its own option): read it from there too.
    .action(
      bind(async (ctx, flags: { json?: boolean }) =>
        (await import('./commands/profiles.ts')).profilesTestCommand(ctx, { json: flags.json ?? profiles.opts<{ json?: boolean }>().json }),
      ),
    );

  program
    .command('daemon')
    .description('run the dictation daemon in the foreground (control socket, hot config, history)')
    .action(bind(async (ctx) => (await import('./commands/daemon.ts')).daemonCommand(ctx)));
  for (const [name, text] of [
    ['start', 'start recording (no-op while recording)'],
    ['stop', 'stop recording; the session finishes in the background'],
    ['toggle', 'start or stop'],
    ['cancel', 'discard the current recording'],
  ] as const) {
    const command = program.command(name).description(text).option('--wait', 'wait for the session and print its text (stop/toggle)');
    // Only where it means something: `koto stop --vad` is a usage error, not silently ignored.
    if (name === 'start' || name === 'toggle') {
      command.option('--vad', 'hands-free: the recording ends after audio.silenceMs of silence');
    }
    command
      .option('--json', 'print JSON')
      .action(
        bind(async (ctx, flags: { wait?: boolean; json?: boolean; vad?: boolean }) =>
          (await import('./commands/daemon.ts')).controlCommand(ctx, name, flags),
        ),
      );
  }
  program
    .command('status')
    .description('daemon state, config and transport generations, connections')
    .option('--json', 'print JSON')
    .action(bind(async (ctx, flags: { json?: boolean }) => (await import('./commands/daemon.ts')).statusCommand(ctx, flags)));
  program
    .command('reload')
    .description('make the daemon re-read its config (exit 3 if the new config is invalid; the old one stays)')
    .action(bind(async () => (await import('./commands/daemon.ts')).reloadCommand()));
  program
    .command('ui')
    .description('open the control panel (live view, history, settings) in the browser')
    .option('--print', 'print the single-use login link instead of opening a browser')
    .action(bind(async (ctx, flags: { print?: boolean }) => (await import('./commands/ui.ts')).uiCommand(ctx, flags)));
  program
    .command('history')
    .description('past sessions, newest first')
    .option('--json', 'print NDJSON')
    .option('-n <count>', 'how many', '20')
    .option('--clear', 'delete the history and its recordings')
    .action(
      bind(async (ctx, flags: { json?: boolean; n?: string; clear?: boolean }) =>
        (await import('./commands/daemon.ts')).historyCommand(ctx, flags),
      ),
    );
  program
    .command('usage')
    .description('provider calls and their estimated cost: audio sent, tokens, $ (from `pricing`)')
    .option('--since <when>', 'a duration (7d, 24h, 2w) or a date (2026-12-01)', '30d')
    .option('--by <what>', 'group by provider, model or day', 'provider')
    .option('--json', 'print JSON')
    .action(
      bind(async (ctx, flags: { since?: string; by?: string; json?: boolean }) =>
        (await import('./commands/usage.ts')).usageCommand(ctx, flags),
      ),
    );
  program
    .command('retry')
    .description('re-run a kept recording through the pipeline')
    .argument('<id>', 'a session id from `koto history`')
    .option('--json', 'print JSON')
    .action(
      bind(async (ctx, id: string, flags: { json?: boolean }) => (await import('./commands/daemon.ts')).retryCommand(ctx, id, flags)),
    );

  program
    .command('paste')
    .description('deliver the text of a session again through the outputs (no new transcription)')
    .argument('<id>', 'a session id from `koto history`')
    .option('--json', 'print JSON')
    .action(
      bind(async (ctx, id: string, flags: { json?: boolean }) => (await import('./commands/daemon.ts')).pasteCommand(ctx, id, flags)),
    );

  program
    .command('devices')
    .description('list input devices of the configured audio source')
    .option('--json', 'print JSON')
    .action(bind(async (ctx, flags: { json?: boolean }) => (await import('./commands/inspect.ts')).devicesCommand(ctx, flags)));

  program
    .command('doctor')
    .description('check Node, config, plugins, and that each provider is reachable with valid credentials')
    .option('--json', 'print JSON')
    .action(bind(async (ctx, flags: { json?: boolean }) => (await import('./commands/inspect.ts')).doctorCommand(ctx, flags)));

  const bench = program.command('bench').description('measure dictation quality');
  bench
    .command('accuracy')
    .description('WER (CER for CJK) and latency over a corpus: audio files with sibling .txt reference transcripts')
    .argument('<dir>', 'the corpus folder (searched recursively)')
    .option('--providers <names>', 'ASR providers to compare, comma-separated (default: the configured one)')
    .option('--json', 'print NDJSON: one object per file, provider and mode, then a summary object')
    .option('--no-correct', 'measure raw transcripts only (default: raw and corrected)')
    .addOption(new Option('-j, --concurrency <n>', 'files in flight at once over the shared connection').default('4'))
    .action(
      bind(async (ctx, dir: string, flags: BenchFlags) => (await import('./commands/quality.ts')).benchAccuracyCommand(ctx, dir, flags)),
    );

  program
    .command('rewrite')
    .description('apply a rewrite template to a history session, the last result, or text; prints the result')
    .requiredOption('-t, --template <name>', 'a key of `rewrite.templates`')
    .argument('[input...]', 'a session id from `koto history`, the text, or - for stdin (default: the last result)')
    .option('--json', 'print a JSON object')
    .action(
      bind(async (ctx, input: string[], flags: RewriteFlags) => (await import('./commands/quality.ts')).rewriteCommand(ctx, input, flags)),
    );

  const dict = program.command('dict').description('the dictionary of names and terms (`dictionary` in the config)');
  dict
    .command('suggest')
    .description('terms the correction keeps fixing across the history, as dictionary candidates (adds nothing)')
    .option('--min-sessions <n>', 'only terms corrected in at least this many sessions', '2')
    .option('--json', 'print NDJSON: one candidate per line')
    .action(bind(async (ctx, flags: DictSuggestFlags) => (await import('./commands/quality.ts')).dictSuggestCommand(ctx, flags)));
  dict
    .command('add')
    .description('append terms to the dictionary file, after confirming')
    .argument('<terms...>', 'the terms, one argument each (quote terms with spaces)')
    .option('-y, --yes', 'add without asking (required when there is no terminal)')
    .action(
      bind(async (ctx, terms: string[], flags: DictAddFlags) => (await import('./commands/quality.ts')).dictAddCommand(ctx, terms, flags)),
    );

  return program;
}

export async function main(argv: string[]): Promise<void> {
  let ctx: CliContext | undefined;
  let exitCode: number = EXIT.OK;
  const program = buildProgram(async (action, args) => {
    // commander passes (…positionals, commandOptions, command); globals come from the root.
    const command = args.at(-1) as Command;
    const globals = command.optsWithGlobals() as GlobalOptions;
    ctx = new CliContext(globals);
    const params = args.slice(0, -1) as never[];
    exitCode = await action(ctx, ...params);
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version exit through here with code 0.
      exitCode = err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    } else {
      exitCode = reportError(err, ctx ?? new CliContext({}));
    }
  } finally {
    await ctx?.close().catch(() => undefined);
  }
  process.exitCode = exitCode;
}
