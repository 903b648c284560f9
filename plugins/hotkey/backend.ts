import type { KeyCombo } from 'koto-voice';

/**
 * What every hotkey backend (x11.ts, evdev.ts) provides: it watches one key combination and
 * reports real presses and releases of it. Auto-repeat is the backend's to filter: X11 repeats
 * arrive as release/press pairs with the same timestamp, evdev as value 2 — neither reaches here.
 */
export interface KeyEvent {
  readonly type: 'down' | 'up';
  /** When the event was received, ms since the epoch (performance.timeOrigin + performance.now()). */
  readonly at: number;
}

export interface BackendOptions {
  readonly env: Readonly<NodeJS.ProcessEnv>;
  readonly log: { debug(message: string): void; info(message: string): void; warn(message: string): void };
  /** evdev: the device files to read (default: every keyboard under /dev/input). */
  readonly devices?: readonly string[] | undefined;
  /**
   * The backend failed after it started (X connection lost, keyboard unplugged): it has
   * released what it held; the plugin reports the error in status and may open it again.
   */
  readonly onError: (err: Error) => void;
}

export interface HotkeyGrab {
  readonly backend: 'x11' | 'evdev';
  /** The combination as grabbed (canonical text). */
  readonly keys: string;
  /** What the backend listens on: the X display, or the device files. */
  readonly where: string;
  /** Ungrabs and closes; idempotent. */
  close(): Promise<void>;
}

/**
 * Grabs `combo` and calls `onKey` for each real press and release. Rejects with a KotoError:
 * HOTKEY_ERR_TAKEN (another client holds the combination), HOTKEY_ERR_PERMISSION
 * (evdev without read access), HOTKEY_ERR_UNAVAILABLE (no display, no keyboard).
 */
export type OpenBackend = (combo: KeyCombo, onKey: (event: KeyEvent) => void, options: BackendOptions) => Promise<HotkeyGrab>;

export function now(): number {
  return performance.timeOrigin + performance.now();
}
