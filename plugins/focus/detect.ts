/**
 * Which desktop this is, and how to ask it for the focused window:
 *
 *   macOS                        osascript (System Events)
 *   Wayland: sway                swaymsg (SWAYSOCK)
 *   Wayland: Hyprland            hyprctl (HYPRLAND_INSTANCE_SIGNATURE)
 *   Wayland: KDE Plasma          kdotool, when installed
 *   Wayland: GNOME and others    no way for a client to ask: unknown
 *   X11                          the X protocol (x11.ts)
 *
 * Every failure (a tool missing or failing, a window gone meanwhile, no answer) is "unknown"
 * (undefined), never an error: the kernel's caller decides what an unknown window means.
 */
import type { FocusedWindow } from 'koto-voice';
import { viaHyprland, viaKdotool, viaSway } from './compositors.ts';
import { viaOsascript } from './macos.ts';
import { viaX11 } from './x11.ts';

export type FocusSource = 'x11' | 'sway' | 'hyprland' | 'kde' | 'macos' | 'none';

/** How the focused window would be asked on this desktop; `none` when it cannot be. */
export function focusSource(env: Readonly<NodeJS.ProcessEnv>, platform: NodeJS.Platform = process.platform): FocusSource {
  if (platform === 'darwin') return 'macos';
  if (platform === 'win32') return 'none';
  if (env.WAYLAND_DISPLAY) {
    if (env.SWAYSOCK) return 'sway';
    if (env.HYPRLAND_INSTANCE_SIGNATURE) return 'hyprland';
    if (/kde/i.test(env.XDG_CURRENT_DESKTOP ?? '') || env.KDE_FULL_SESSION) return 'kde';
    // GNOME (and other compositors) give clients no way to ask; XWayland's _NET_ACTIVE_WINDOW
    // would name only X11 windows, so a native window would be mistaken for a stale X11 one.
    return 'none';
  }
  return env.DISPLAY?.trim() ? 'x11' : 'none';
}

/** The focused window, or undefined. Never throws. `signal` ends whatever is still running. */
export async function detectFocusedWindow(
  env: Readonly<NodeJS.ProcessEnv>,
  signal: AbortSignal,
  platform: NodeJS.Platform = process.platform,
): Promise<FocusedWindow | undefined> {
  if (signal.aborted) return undefined;
  try {
    switch (focusSource(env, platform)) {
      case 'x11':
        return await viaX11(env.DISPLAY!.trim(), signal);
      case 'sway':
        return await viaSway(env, signal);
      case 'hyprland':
        return await viaHyprland(env, signal);
      case 'kde':
        return await viaKdotool(env, signal);
      case 'macos':
        return await viaOsascript(env, signal);
      default:
        return undefined;
    }
  } catch {
    return undefined;
  }
}
