import { Command, CommanderError, Option } from 'commander';
import { EXIT } from '../kernel/errors.ts';
import { KOTO_VERSION } from '../kernel/version.ts';
import { configCheckCommand, configPrintCommand, devicesCommand, doctorCommand, pluginsCommand } from './commands/inspect.ts';
import { correctCommand, runCommand, transcribeCommand, type PipelineFlags } from './commands/pipeline.ts';
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
  ).action(bind((ctx, inputs: string[], flags: PipelineFlags) => transcribeCommand(ctx, inputs, flags)));

  pipelineOptions(
    program
      .command('run')
      .description('the whole pipeline: ASR, correction, outputs; final text on stdout')
      .argument('<inputs...>', 'audio files, or - for stdin')
      .option('--no-correct', 'skip the correction step'),
  ).action(bind((ctx, inputs: string[], flags: PipelineFlags) => runCommand(ctx, inputs, flags)));

  program
    .command('correct')
    .description('correct text with the LLM (TEXT, or - / nothing for stdin)')
    .argument('[text...]', 'the text to correct')
    .option('--json', 'print a JSON object')
    .option('-p, --provider <name>', 'use this provider (a key of `providers`)')
    .action(bind((ctx, words: string[], flags: PipelineFlags) => correctCommand(ctx, words, flags)));

  const config = program.command('config').description('inspect the configuration');
  config
    .command('print')
    .description('the resolved config, secrets redacted')
    .option('--json', 'print JSON')
    .action(bind((ctx, flags: { json?: boolean }) => configPrintCommand(ctx, flags)));
  config
    .command('check')
    .description('validate the config (exit 3 if invalid)')
    .action(bind((ctx) => configCheckCommand(ctx)));

  program
    .command('plugins')
    .description('loaded plugins and what they tap')
    .option('--json', 'print JSON')
    .action(bind((ctx, flags: { json?: boolean }) => pluginsCommand(ctx, flags)));

  program
    .command('devices')
    .description('list input devices of the configured audio source')
    .option('--json', 'print JSON')
    .action(bind((ctx, flags: { json?: boolean }) => devicesCommand(ctx, flags)));

  program
    .command('doctor')
    .description('check Node, config, plugins, and that each provider is reachable with valid credentials')
    .option('--json', 'print JSON')
    .action(bind((ctx, flags: { json?: boolean }) => doctorCommand(ctx, flags)));

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
