import { spawn } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
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
 * in the default browser; `--print` prints it instead (another browser, an SSH tunnel).
 *
 * The link never goes on a command line: any local user can read another's process arguments
 * (/proc/PID/cmdline), and could redeem the token before the browser does. The opener gets a
 * 0600 file in the private runtime folder that forwards the browser to the link.
 */
export async function uiCommand(ctx: CliContext, flags: UiFlags): Promise<number> {
  const paths = kotoPaths(process.env);
  const { url, panel } = (await sendCommand(paths.socket, 'ui', {})) as { url: string; panel: string };
  if (flags.print) {
    await printLine(url);
    return 0;
  }
  // sendCommand checked the runtime folder: ours, 0700, not a symlink.
  const page = path.join(paths.runtimeDir, 'ui-open.html');
  const safe = url.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
  await rm(page, { force: true });
  await writeFile(
    page,
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=${safe}"><title>Koto</title></head>` +
      `<body><a href="${safe}">Open the Koto control panel</a></body></html>\n`,
    { mode: 0o600, flag: 'wx' },
  );
  const opener = process.platform === 'darwin' ? 'open' : 'xdg-open';
  const opened = await new Promise<boolean>((resolve) => {
    const child = spawn(opener, [pathToFileURL(page).href], { stdio: 'ignore', detached: true });
    child.once('error', () => resolve(false));
    child.once('spawn', () => {
      child.unref();
      resolve(true);
    });
  });
  if (!opened) {
    await rm(page, { force: true });
    warn(`no browser could be opened (${opener} not found); open this single-use link yourself:`, ctx);
    await printLine(url);
    return 0;
  }
  await printLine(`opened the control panel (${panel}) in your browser`);
  return 0;
}
