/**
 * macOS: the frontmost application through System Events (osascript). Its name is always
 * answered; the front window's title needs the Accessibility permission for the calling
 * terminal or app, and is empty without it.
 */
import type { FocusedWindow } from 'koto-voice';
import { ask, findTool } from './tools.ts';

// One line per field: the name, the pid, then the title (which may hold anything but a newline).
const SCRIPT = `tell application "System Events"
  set p to first application process whose frontmost is true
  set t to ""
  try
    set t to name of front window of p
  end try
  return (name of p) & linefeed & (unix id of p) & linefeed & t
end tell`;

export function parseOsascript(out: string): FocusedWindow | undefined {
  const [app = '', pid = '', ...title] = out.replace(/\n$/, '').split('\n');
  if (!app.trim()) return undefined;
  const n = Number.parseInt(pid, 10);
  return { app: app.trim(), title: title.join(' '), pid: Number.isInteger(n) && n > 0 ? n : undefined, desktop: 'macos' };
}

export async function viaOsascript(env: Readonly<NodeJS.ProcessEnv>, signal: AbortSignal): Promise<FocusedWindow | undefined> {
  const osascript = findTool('osascript', env) ?? '/usr/bin/osascript';
  return parseOsascript(await ask(osascript, ['-e', SCRIPT], env, signal));
}
