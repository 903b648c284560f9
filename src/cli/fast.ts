/**
 * The fast control client: `koto start | stop | toggle | cancel | status` bound to a key must
 * not pay for commander, zod, undici and every plugin at key-down AND key-up (issue #16). This
 * entry speaks the socket protocol with node:net and the error catalogue, nothing else; bin/koto.js
 * tries it first and falls back to the full CLI for anything it does not handle (`undefined`).
 * test/cli/fast-client.test.ts asserts the module list it loads.
 */
import { sendCommand } from '../daemon/client.ts';
import type { DaemonStatus } from '../daemon/daemon.ts';
import { escapeLine } from '../kernel/control-chars.ts';
import { describe, EXIT, KotoError, kotoError } from '../kernel/errors.ts';
import { kotoPaths } from '../kernel/paths.ts';
import { controlLine, statusLine, undeliveredText, type ControlAnswer } from './control-format.ts';
import { forStdout } from './terminal.ts';

const CONTROL = new Set(['start', 'stop', 'toggle', 'cancel', 'status']);
const FLAGS = new Set(['--wait', '--json', '-q', '--quiet', '--vad']);

export async function fastMain(argv: readonly string[]): Promise<number | undefined> {
  const [cmd, ...rest] = argv;
  if (!cmd || !CONTROL.has(cmd) || !rest.every((a) => FLAGS.has(a))) return undefined;
  const flags = { wait: rest.includes('--wait'), json: rest.includes('--json'), vad: rest.includes('--vad') };
  // `--vad` belongs to start and toggle: anywhere else the full CLI says it is unknown.
  if (flags.vad && cmd !== 'start' && cmd !== 'toggle') return undefined;
  // `status --wait` is a usage error: the full CLI says so.
  if (cmd === 'status' && flags.wait) return undefined;
  const socket = kotoPaths(process.env).socket;
  try {
    if (cmd === 'status') {
      const status = (await sendCommand(socket, 'status')) as DaemonStatus;
      await print(flags.json ? JSON.stringify(status) : statusLine(status));
      return EXIT.OK;
    }
    // When the key was pressed, as near as this process knows: its own start. The daemon measures
    // trigger → first captured sample from it (`koto status`).
    const args = { wait: flags.wait || undefined, source: 'cli', at: Math.round(performance.timeOrigin), vad: flags.vad || undefined };
    const result = (await sendCommand(socket, cmd as 'start', args, flags.wait ? 600_000 : 10_000)) as ControlAnswer;
    await print(controlLine(result, flags));
    for (const warning of result.warnings ?? []) process.stderr.write(`koto: warning: ${escapeLine(warning)}\n`);
    return EXIT.OK;
  } catch (err) {
    const kept = undeliveredText(err, flags);
    if (kept) await print(kept.line);
    const error = KotoError.is(err) ? err : kotoError('KOTO_ERR_INTERNAL', { detail: describe(err) });
    process.stderr.write(`koto: ${escapeLine(error.toLine())}\n`);
    if (kept) process.stderr.write(`koto: warning: ${escapeLine(kept.hint)}\n`);
    return error.exitCode;
  }
}

function print(line: string): Promise<void> {
  return new Promise((resolve) => {
    process.stdout.write(`${forStdout(line)}\n`, () => resolve());
  });
}
