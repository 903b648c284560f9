import { z } from 'zod';
import type { FocusedWindow, Logger, OutputRequest } from 'koto-voice';
import { cancelled, giveUp, onClipboardOnly, wasCancelled } from './chain.ts';
import { copyText, PREVIOUS_TIMEOUT_MS, readText, type ClipboardRestores } from './clipboard.ts';
import { detectDesktop, DesktopError, findTool, sleep, warn, type Desktop } from './desktop.ts';
import { defaultPasteShortcut, parseShortcut, pressShortcut, shortcutSchema } from './keyboard.ts';
import { SHIFT_INSERT, terminalPasteShortcut, windowNames } from './terminals.ts';

export const pasteOptions = z.strictObject({
  /** Wait between setting the clipboard and pressing the shortcut, so the clipboard is served. */
  delayMs: z.number().int().min(0).max(10_000).default(50),
  /**
   * The paste key for applications that are not terminals (and when the focused window cannot be
   * identified). Default: Ctrl+V, Cmd+V on macOS. Terminals get theirs from the built-in list.
   */
  shortcut: shortcutSchema.optional(),
  /** More terminals (X11 WM_CLASS class or instance, or Wayland app id): they get Ctrl+Shift+V. */
  terminals: z.array(z.string().trim().min(1)).default([]),
  /**
   * A paste key per application (WM_CLASS class or instance, or app id, any case), e.g.
   * `{ Emacs: "ctrl+y" }`. Wins over everything else.
   */
  shortcuts: z
    .record(z.string().trim().min(1), shortcutSchema)
    .default({})
    .refine((map) => new Set(Object.keys(map).map((k) => k.toLowerCase())).size === Object.keys(map).length, {
      message: 'each application may appear once (names are compared without regard to case)',
    }),
  /**
   * Put the previous clipboard text back after pasting, if the clipboard still holds the
   * dictation then (only text can be restored). Not done when the paste could not be aimed (the
   * text is left for a manual paste) or failed. PRIMARY is not restored.
   */
  restoreClipboard: z.boolean().default(true),
  /** How long after the shortcut the previous clipboard is restored: an application reads the clipboard when it gets to the key. */
  restoreDelayMs: z.number().int().min(0).max(60_000).default(1000),
  /** Deadline for each helper program. */
  timeoutMs: z.number().int().min(100).max(60_000).default(5000),
});

export type PasteOptions = z.output<typeof pasteOptions>;

export interface PasteTarget {
  /** The key combination to press, e.g. "ctrl+shift+v". */
  readonly shortcut: string;
  /** Why this one, for the debug log. */
  readonly because: string;
}

/**
 * The paste key for the focused window, in this order: `shortcuts` for the application, the
 * terminal list (built in + `terminals`), `shortcut`, the platform's default.
 */
export function pasteTarget(
  window: FocusedWindow | undefined,
  options: Pick<PasteOptions, 'shortcut' | 'shortcuts' | 'terminals'>,
  desktop: Desktop,
): PasteTarget {
  if (window) {
    const byName = new Map(Object.entries(options.shortcuts).map(([name, combo]) => [name.toLowerCase(), { name, combo }]));
    for (const name of windowNames(window)) {
      const own = byName.get(name);
      if (own) return { shortcut: own.combo, because: `paste.shortcuts["${own.name}"]` };
    }
    const terminal = terminalPasteShortcut(window, options.terminals);
    if (terminal) return { shortcut: terminal, because: `${window.app} is a terminal` };
  }
  if (options.shortcut) return { shortcut: options.shortcut, because: 'paste.shortcut' };
  return { shortcut: defaultPasteShortcut(desktop), because: 'the default' };
}

/** "ctrl+shift+v" → "Ctrl+Shift+V", for messages. */
function keyLabel(shortcut: string): string {
  return shortcut
    .split('+')
    .map((part) => (part.length === 1 ? part.toUpperCase() : part[0]!.toUpperCase() + part.slice(1)))
    .join('+');
}

/** Why the focused window is unknown, in the words of this desktop. */
function unknownWindow(desktop: Desktop, env: NodeJS.ProcessEnv): string {
  if (desktop === 'x11') return `no focused window was found on display ${env.DISPLAY}`;
  if (env.SWAYSOCK)
    return findTool('swaymsg', env)
      ? 'sway names no focused window'
      : 'swaymsg (part of sway) is not on PATH to ask sway which window has the focus';
  if (env.HYPRLAND_INSTANCE_SIGNATURE)
    return findTool('hyprctl', env)
      ? 'Hyprland names no focused window'
      : 'hyprctl (part of Hyprland) is not on PATH to ask Hyprland which window has the focus';
  return 'this Wayland compositor does not tell which window has the focus (sway and Hyprland do)';
}

/**
 * The daemon's default output: clipboard (and PRIMARY), then the paste key of the focused
 * window. Paste fails → the text stays on the clipboard (a warning); the clipboard fails too →
 * a notification, and KOTO_ERR_OUTPUT with what to install. The focused window unknown → Ctrl+V
 * is pressed anyway, with a warning, and the text stays on the clipboard. Resolves true when the
 * paste key went to a known window (what a key pressed after it, `after`, may follow).
 */
export async function pasteText(
  req: OutputRequest,
  log: Logger,
  restores: ClipboardRestores,
  /** The kernel's `focusedWindow` hook (api.focusedWindow): never throws, undefined when unknown. */
  focusedWindow: (signal: AbortSignal) => Promise<FocusedWindow | undefined>,
): Promise<boolean> {
  const options = pasteOptions.parse(req.options);
  if (req.signal.aborted) throw cancelled(req);
  if (!req.text) return false;
  const desktop = detectDesktop();
  // Only X11 and Wayland have terminals that ignore the platform's paste key, and a PRIMARY selection.
  const aimed = desktop === 'x11' || desktop === 'wayland';

  const [window, previous] = await Promise.all([
    aimed ? focusedWindow(req.signal) : undefined,
    restores.begin(options.restoreClipboard ? () => readText(req.signal, desktop, 'clipboard', PREVIOUS_TIMEOUT_MS) : undefined),
  ]);
  if (req.signal.aborted) throw cancelled(req);
  const target = pasteTarget(window, options, desktop);
  if (window)
    log.debug(
      `paste: the focused window is ${window.app}${window.instance ? ` (${window.instance})` : ''} (${window.desktop}); ${keyLabel(target.shortcut)}, as ${target.because}`,
    );

  // Both selections, always: Shift+Insert (xterm, rxvt, st) and a middle click paste PRIMARY.
  const [clipboard, primary] = await Promise.allSettled([
    copyText(req.text, req.signal, desktop),
    aimed ? copyText(req.text, req.signal, desktop, 'primary') : Promise.resolve(),
  ]);
  if (clipboard.status === 'rejected') {
    const err: unknown = clipboard.reason;
    if (wasCancelled(err, req)) throw cancelled(req);
    // Pressing the shortcut now would paste whatever was on the clipboard before.
    return giveUp(req, log, desktop, [{ what: 'nothing was pasted: the clipboard could not be set', error: err }]);
  }
  if (primary.status === 'rejected') {
    const err: unknown = primary.reason;
    if (wasCancelled(err, req)) throw cancelled(req);
    if (target.shortcut === SHIFT_INSERT) {
      // Shift+Insert would paste the old PRIMARY into the terminal.
      onClipboardOnly(
        req,
        log,
        'paste',
        new DesktopError(`the PRIMARY selection could not be set for ${window?.app ?? 'the terminal'} (${(err as Error).message})`),
      );
      return false;
    }
    log.debug(`paste: the PRIMARY selection could not be set: ${(err as Error).message}`);
  }

  try {
    await sleep(options.delayMs, req.signal);
    const tool = await pressShortcut(desktop, parseShortcut(target.shortcut), { signal: req.signal, timeoutMs: options.timeoutMs });
    log.debug(`pasted ${[...req.text].length} characters with ${tool} (${keyLabel(target.shortcut)})`);
  } catch (err) {
    if (wasCancelled(err, req)) throw cancelled(req);
    onClipboardOnly(req, log, 'paste', err);
    return false;
  }
  if (aimed && !window) {
    // Not restored: if the key did nothing (a terminal), the text must still be there to paste by hand.
    warn(
      req,
      log,
      `the paste could not be aimed: ${unknownWindow(desktop, process.env)}, so ${keyLabel(target.shortcut)} was pressed without knowing where; the text stays on the clipboard (in a terminal, paste it with Ctrl+Shift+V, or Shift+Insert in xterm and rxvt)`,
    );
    return false;
  }
  if (previous !== undefined) restores.schedule(previous, req.text, options.restoreDelayMs, log, desktop);
  return true;
}
