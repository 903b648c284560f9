import { spawn } from 'node:child_process';
import { sendCommand } from '../../daemon/client.ts';
import { kotoPaths } from '../../kernel/paths.ts';
import type { CliContext } from '../context.ts';
import { printLine } from '../io.ts';
import { warn } from '../report.ts';

export interface UiFlags {
  print?: boolean;
}

/**
 * `koto ui`: asks the daemon (over its private socket) for a single-use login link and opens it
 * in the default browser; `--print` prints it instead (another browser, another machine's SSH
 * tunnel). The link is the only way in: the panel sets a cookie and drops the token from the URL.
 */
export async function uiCommand(ctx: CliContext, flags: UiFlags): Promise<number> {
  const { url, panel } = (await sendCommand(kotoPaths(process.env).socket, 'ui', {})) as { url: string; panel: string };
  if (flags.print) {
    await printLine(url);
    return 0;
  }
  const opener = process.platform === 'darwin' ? 'open' : 'xdg-open';
  const opened = await new Promise<boolean>((resolve) => {
    const child = spawn(opener, [url], { stdio: 'ignore', detached: true });
    child.once('error', () => resolve(false));
    child.once('spawn', () => {
      child.unref();
      resolve(true);
    });
  });
  if (!opened) {
    warn(`no browser could be opened (${opener} not found); open this single-use link yourself:`, ctx);
    await printLine(url);
    return 0;
  }
  await printLine(`opened the control panel (${panel}) in your browser`);
  return 0;
}
