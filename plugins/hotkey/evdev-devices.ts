import { promises as fsp } from 'node:fs';
import { basename, join } from 'node:path';
import { MODIFIER_EVDEV, type KeyCombo } from 'koto-voice';
import { EV_KEY, EV_REP, longBits } from './evdev-records.ts';

/**
 * Which /dev/input/event* files are keyboards. The kernel's own list (/proc/bus/input/devices)
 * says what each device can send; udev's by-path/by-id `*-event-kbd` links are the fallback
 * when /proc is not readable (some sandboxes).
 */

export interface ProcInputDevice {
  readonly name: string;
  readonly phys: string;
  readonly sysfs: string;
  /** `H: Handlers=`: `kbd`, `mouse0`, `event3`, `sysrq`, `leds`… */
  readonly handlers: readonly string[];
  /** The `eventN` handler, if the device has an event node. */
  readonly event: string | undefined;
  /** `B:` capability bitmaps (EV, KEY, REL, MSC, LED…) as numbers, bit n = code n. */
  readonly bitmaps: Readonly<Record<string, bigint>>;
}

/**
 * A `B: KEY=` value: C longs as hex, most significant first, separated by spaces; leading zero
 * words are omitted. The long is the reader's (a 32-bit reader on a 64-bit kernel is shown
 * 32-bit words), hence `wordBits` from our own architecture.
 */
export function parseBitmap(text: string, wordBits: number): bigint {
  const words = text.trim().split(/\s+/).filter(Boolean);
  let value = 0n;
  for (const word of words) {
    if (!/^[0-9a-f]+$/i.test(word)) return 0n;
    value = (value << BigInt(wordBits)) | BigInt(`0x${word}`);
  }
  return value;
}

export function hasBit(bitmap: bigint | undefined, bit: number): boolean {
  return bitmap !== undefined && ((bitmap >> BigInt(bit)) & 1n) === 1n;
}

/** Parses /proc/bus/input/devices. Pure; tolerates unknown lines and a missing trailing blank line. */
export function parseProcInputDevices(text: string, wordBits: number = longBits()): ProcInputDevice[] {
  const devices: ProcInputDevice[] = [];
  for (const block of text.split(/\n\s*\n/)) {
    let name = '';
    let phys = '';
    let sysfs = '';
    let handlers: string[] = [];
    const bitmaps: Record<string, bigint> = {};
    let seen = false;
    for (const raw of block.split('\n')) {
      const line = raw.trim();
      const match = /^([A-Z]): (.*)$/.exec(line);
      if (!match) continue;
      const [, kind, rest = ''] = match;
      const eq = rest.indexOf('=');
      const field = eq < 0 ? rest : rest.slice(0, eq);
      const value = eq < 0 ? '' : rest.slice(eq + 1);
      seen = true;
      if (kind === 'N' && field === 'Name') name = value.replace(/^"(.*)"$/, '$1');
      else if (kind === 'P' && field === 'Phys') phys = value;
      else if (kind === 'S' && field === 'Sysfs') sysfs = value;
      else if (kind === 'H' && field === 'Handlers') handlers = value.trim().split(/\s+/).filter(Boolean);
      else if (kind === 'B') bitmaps[field] = parseBitmap(value, wordBits);
    }
    if (!seen) continue;
    const event = handlers.find((h) => /^event\d+$/.test(h));
    devices.push(Object.freeze({ name, phys, sysfs, handlers: Object.freeze(handlers), event, bitmaps: Object.freeze(bitmaps) }));
  }
  return devices;
}

/** Every evdev code of the four modifiers, both sides. */
const MODIFIER_CODES: readonly number[] = Object.values(MODIFIER_EVDEV).flat();

/**
 * A keyboard for `combo`: the kernel's keyboard handler (`kbd`), an event node, key events with
 * auto-repeat (EV_KEY + EV_REP: real keyboards; power buttons, lid switches, "Video Bus" and
 * typing tools such as ydotoold's virtual device have no repeat), and the combo's key or any
 * modifier — a macro pad with only F13–F24 carries `f13` while the ctrl for `ctrl+f13` is on the
 * main keyboard, and every modifier is read so an extra one held can veto the combo.
 */
export function isKeyboardFor(device: ProcInputDevice, combo: KeyCombo): boolean {
  if (!device.handlers.includes('kbd') || device.event === undefined) return false;
  const ev = device.bitmaps.EV;
  if (!hasBit(ev, EV_KEY) || !hasBit(ev, EV_REP)) return false;
  const keys = device.bitmaps.KEY;
  return hasBit(keys, combo.key.evdev) || MODIFIER_CODES.some((code) => hasBit(keys, code));
}

export interface InputSources {
  /** /proc/bus/input/devices */
  readonly procDevices: string;
  /** /dev/input */
  readonly inputDir: string;
}

export const SYSTEM_INPUT: InputSources = Object.freeze({ procDevices: '/proc/bus/input/devices', inputDir: '/dev/input' });

export type Discovery =
  { readonly ok: true; readonly paths: readonly string[]; readonly how: string } | { readonly ok: false; readonly detail: string };

/** The keyboards to read for `combo`; never throws. */
export async function discoverKeyboards(combo: KeyCombo, sources: InputSources = SYSTEM_INPUT): Promise<Discovery> {
  const inputExists = await fsp.stat(sources.inputDir).then(
    (s) => s.isDirectory(),
    () => false,
  );
  if (!inputExists) {
    return {
      ok: false,
      detail: `${sources.inputDir} does not exist: no input devices are visible here (a container, a remote session, or not Linux)`,
    };
  }
  let procText: string | undefined;
  try {
    procText = await fsp.readFile(sources.procDevices, 'utf8');
  } catch {
    procText = undefined;
  }
  if (procText !== undefined) {
    const paths = parseProcInputDevices(procText)
      .filter((device) => isKeyboardFor(device, combo))
      .map((device) => join(sources.inputDir, device.event!));
    if (paths.length > 0) return { ok: true, paths, how: sources.procDevices };
  }
  const linked = await udevKeyboards(sources.inputDir);
  if (linked.length > 0) return { ok: true, paths: linked, how: `${sources.inputDir}/by-path, by-id` };
  return {
    ok: false,
    detail:
      procText === undefined
        ? `no keyboard found: ${sources.procDevices} is not readable and ${sources.inputDir}/by-path and by-id have no *-event-kbd links`
        : `no keyboard with the key "${combo.key.name}" found in ${sources.procDevices} (nor *-event-kbd links under ${sources.inputDir}/by-path, by-id)`,
  };
}

/** udev's `*-event-kbd` links, resolved and deduplicated (by-path and by-id name the same device). */
async function udevKeyboards(inputDir: string): Promise<string[]> {
  const found = new Set<string>();
  for (const sub of ['by-path', 'by-id']) {
    const dir = join(inputDir, sub);
    const names = await fsp.readdir(dir).catch(() => [] as string[]);
    for (const name of names.sort()) {
      if (!name.endsWith('-event-kbd')) continue;
      const real = await fsp.realpath(join(dir, name)).catch(() => undefined);
      if (real !== undefined && /^event\d+$/.test(basename(real))) found.add(real);
    }
  }
  return [...found];
}
