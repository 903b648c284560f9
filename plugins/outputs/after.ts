/**
 * `after`: a key pressed once the text is in the window (Enter sends a coding agent's prompt, Tab
 * moves to the next field), through the same keystroke tools as the paste key. Only after a
 * delivery that reached a known window: a key pressed blind could send half a message anywhere.
 */
import type { KotoConfig, Logger, OutputRequest } from 'koto-voice';
import { cancelled, wasCancelled } from './chain.ts';
import { detectDesktop, sleep, warn } from './desktop.ts';
import { parseShortcut, pressShortcut } from './keyboard.ts';

export async function pressAfter(req: OutputRequest, log: Logger, via: 'paste' | 'type'): Promise<void> {
  // A hand-built session (a test, a host calling the hook itself) may carry no config.
  const after = (req.session.config as Partial<KotoConfig> | undefined)?.after;
  const key = after?.enter ? 'enter' : after?.tab ? 'tab' : undefined;
  if (!after || !key) return;
  try {
    // A paste lands when the application has fetched the clipboard; typed keys are already queued in order.
    if (via === 'paste') await sleep(after.delayMs, req.signal);
    const tool = await pressShortcut(detectDesktop(), parseShortcut(key), { signal: req.signal, timeoutMs: 5000 });
    log.debug(`after the ${via}: ${key} pressed with ${tool}`);
  } catch (err) {
    if (wasCancelled(err, req)) throw cancelled(req);
    warn(
      req,
      log,
      `the text was delivered, but ${key === 'enter' ? 'Enter' : 'Tab'} (\`after\`) could not be pressed: ${(err as Error).message}`,
    );
  }
}
