/**
 * Opens the evdev backend on the given files and prints the outcome as one JSON line. The
 * permission tests run it as another user (root reads a mode-000 file regardless), under Node's
 * type stripping; `koto-voice` resolves to the package itself (dist/).
 * Usage: node evdev-open-child.ts <keys> <device>...
 */
import { parseKeyCombo } from 'koto-voice';
import { HOTKEY_ERRORS } from '../../plugins/hotkey/error-codes.ts';
import { openEvdev } from '../../plugins/hotkey/evdev.ts';
import { registerPluginErrors } from '../../src/kernel/errors.ts';

// The kernel registers the plugin's codes when it loads the plugin; this child drives the backend without one.
registerPluginErrors('hotkey', HOTKEY_ERRORS);

const [keys = '', ...devices] = process.argv.slice(2);
const parsed = parseKeyCombo(keys);
if (!parsed.ok) throw new Error(parsed.problem);
const debug: string[] = [];
const log = { debug: (m: string) => debug.push(m), info: () => undefined, warn: () => undefined };
try {
  const grab = await openEvdev(parsed.combo, () => undefined, { env: process.env, log, devices, onError: () => undefined });
  process.stdout.write(`${JSON.stringify({ ok: true, where: grab.where, debug, uid: process.getuid?.() })}\n`);
  await grab.close();
} catch (err) {
  const e = err as { code?: string; message?: string; fix?: string };
  process.stdout.write(`${JSON.stringify({ ok: false, code: e.code, message: e.message, fix: e.fix, debug, uid: process.getuid?.() })}\n`);
}
