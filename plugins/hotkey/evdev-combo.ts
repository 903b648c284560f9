import { MODIFIER_EVDEV, type KeyCombo } from 'koto-voice';

/**
 * Whether a combination is down, from raw key presses and releases of several devices (the ctrl
 * may be on the keyboard and the key on a macro pad).
 *
 * - Down: the key is pressed (value 1) while every required modifier is held on either side, on
 *   any device, and no other modifier is — `ctrl+alt+space` does not fire for
 *   `ctrl+alt+shift+space`, and `rightctrl` alone does not fire while leftctrl is held. Only the
 *   press counts, as with an X11 grab: holding the key and then adding the modifiers does nothing.
 * - Up: when the key is released (on every device that held it). Releasing a modifier first does
 *   not end it — people let go of chords in any order, and the key is what they hold to talk.
 * - A device that goes away while holding the key ends it too: a recording never outlives the
 *   keyboard that started it.
 * Auto-repeat (value 2) is ignored entirely.
 */
export class ComboTracker {
  private readonly key: number;
  private readonly required: readonly (readonly number[])[];
  /** Modifier codes that veto the combo: all of them but the required ones and the key itself. */
  private readonly forbidden: readonly number[];
  private readonly held = new Map<string, Set<number>>();
  private readonly emit: (type: 'down' | 'up') => void;
  private down = false;

  constructor(combo: KeyCombo, emit: (type: 'down' | 'up') => void) {
    this.key = combo.key.evdev;
    this.required = combo.modifiers.map((m) => MODIFIER_EVDEV[m]);
    const allowed = new Set([this.key, ...this.required.flat()]);
    this.forbidden = Object.values(MODIFIER_EVDEV)
      .flat()
      .filter((code) => !allowed.has(code));
    this.emit = emit;
  }

  get isDown(): boolean {
    return this.down;
  }

  /** One EV_KEY event from `device`. */
  handle(device: string, code: number, value: number): void {
    if (value === 2) return;
    let codes = this.held.get(device);
    if (!codes) {
      codes = new Set();
      this.held.set(device, codes);
    }
    if (value === 1) {
      codes.add(code);
      if (code === this.key && !this.down && this.modifiersMatch()) {
        this.down = true;
        this.emit('down');
      }
    } else if (value === 0) {
      codes.delete(code);
      if (code === this.key && this.down && !this.isHeld(this.key)) {
        this.down = false;
        this.emit('up');
      }
    }
  }

  /** `device` is gone: forget what it held; if it held the key of a down combo, that ends it. */
  dropDevice(device: string): void {
    const codes = this.held.get(device);
    this.held.delete(device);
    if (this.down && codes?.has(this.key)) {
      this.down = false;
      this.emit('up');
    }
  }

  private isHeld(code: number): boolean {
    for (const codes of this.held.values()) if (codes.has(code)) return true;
    return false;
  }

  private modifiersMatch(): boolean {
    return this.required.every((sides) => sides.some((code) => this.isHeld(code))) && !this.forbidden.some((code) => this.isHeld(code));
  }
}
