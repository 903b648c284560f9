import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { KotoError, parseKeyCombo, type KeyCombo } from 'koto-voice';
import type { BackendOptions, HotkeyGrab, KeyEvent } from '../../plugins/hotkey/backend.ts';
import { ComboTracker } from '../../plugins/hotkey/evdev-combo.ts';
import { discoverKeyboards, hasBit, isKeyboardFor, parseBitmap, parseProcInputDevices } from '../../plugins/hotkey/evdev-devices.ts';
import { EV_KEY, longBits, RecordDecoder, recordLayout } from '../../plugins/hotkey/evdev-records.ts';
import { HOTKEY_ERRORS } from '../../plugins/hotkey/error-codes.ts';
import { createEvdevBackend, openEvdev, POLL_MS } from '../../plugins/hotkey/evdev.ts';
import { registerPluginErrors } from '../../src/kernel/errors.ts';
import { encodeEvents, FeedFifo, press, release, repeat, type Record3 } from './evdev-feed.ts';

// Linux key codes (input-event-codes.h) used below.
const SPACE = 57;
const LEFTCTRL = 29;
const RIGHTCTRL = 97;
const LEFTALT = 56;
const RIGHTALT = 100;
const LEFTSHIFT = 42;
const F9 = 67;
const F13 = 183;

const FIXTURE = fileURLToPath(new URL('../fixtures/proc-bus-input-devices.txt', import.meta.url));
const CHILD = fileURLToPath(new URL('./evdev-open-child.ts', import.meta.url));

// The kernel registers the plugin's codes when it loads the plugin; these tests drive the backend without one.
beforeAll(() => registerPluginErrors('hotkey', HOTKEY_ERRORS));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function combo(text: string): KeyCombo {
  const parsed = parseKeyCombo(text);
  if (!parsed.ok) throw new Error(parsed.problem);
  return parsed.combo;
}

/** Key events as they arrive, and a wait for the n-th one (bounded: a hang guard, not a speed test). */
function recorder() {
  const events: KeyEvent[] = [];
  const errors: Error[] = [];
  const order: string[] = [];
  const logs: { level: string; message: string }[] = [];
  let wake: () => void = () => undefined;
  const onKey = (event: KeyEvent): void => {
    events.push(event);
    order.push(event.type);
    wake();
  };
  const options: BackendOptions = {
    env: {},
    log: {
      debug: (message) => logs.push({ level: 'debug', message }),
      info: (message) => logs.push({ level: 'info', message }),
      warn: (message) => logs.push({ level: 'warn', message }),
    },
    onError: (err) => {
      errors.push(err);
      order.push('error');
      wake();
    },
  };
  const until = async (done: () => boolean, what: string): Promise<void> => {
    const deadline = Date.now() + 30_000;
    while (!done()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; so far: ${order.join(', ') || 'nothing'}`);
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 50);
      });
    }
  };
  return {
    events,
    errors,
    order,
    logs,
    onKey,
    options,
    types: () => events.map((e) => e.type),
    waitKeys: (n: number) => until(() => events.length >= n, `${n} key events`),
    waitError: () => until(() => errors.length > 0, 'onError'),
  };
}

let dir: string;
const grabs: HotkeyGrab[] = [];
const fifos: FeedFifo[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'koto-evdev-'));
});

afterEach(async () => {
  for (const grab of grabs.splice(0)) await grab.close();
  for (const fifo of fifos.splice(0)) fifo.end();
  rmSync(dir, { recursive: true, force: true });
});

function fifo(name = 'event3', mode?: number): FeedFifo {
  const f = new FeedFifo(dir, name, mode);
  fifos.push(f);
  return f;
}

async function open(keys: string, devices: readonly FeedFifo[], rec = recorder()) {
  const grab = await openEvdev(combo(keys), rec.onKey, { ...rec.options, devices: devices.map((d) => d.path) });
  grabs.push(grab);
  return { grab, rec };
}

describe('input_event records', () => {
  it('are 24 bytes on 64-bit architectures and 16 on 32-bit ones', () => {
    for (const arch of ['x64', 'arm64', 'ppc64', 's390x', 'riscv64', 'loong64']) expect(recordLayout(arch).size, arch).toBe(24);
    for (const arch of ['ia32', 'arm']) expect(recordLayout(arch).size, arch).toBe(16);
    expect(longBits('x64')).toBe(64);
    expect(longBits('arm')).toBe(32);
    expect(recordLayout('x64', 'BE').littleEndian).toBe(false);
  });

  it('decode in both sizes and byte orders, skipping the timestamp', () => {
    const events: Record3[] = [
      [EV_KEY, SPACE, 1],
      [0, 0, 0],
      [EV_KEY, SPACE, 0],
      [4, 4, -458_796],
    ];
    for (const arch of ['x64', 'arm']) {
      for (const order of ['LE', 'BE'] as const) {
        const layout = recordLayout(arch, order);
        const decoded = new RecordDecoder(layout).push(encodeEvents(events, layout));
        expect(
          decoded.map((e) => [e.type, e.code, e.value]),
          `${arch} ${order}`,
        ).toEqual(events);
      }
    }
  });

  it('keep a record split across chunks until its rest arrives', () => {
    const layout = recordLayout('x64', 'LE');
    const bytes = encodeEvents(
      [
        [EV_KEY, F9, 1],
        [EV_KEY, F9, 0],
        [EV_KEY, F13, 2],
      ],
      layout,
    );
    const decoder = new RecordDecoder(layout);
    const seen: number[][] = [];
    // Cut at every awkward place: inside the timestamp, inside type/code/value, across records.
    for (const [from, to] of [
      [0, 5],
      [5, 17],
      [17, 22],
      [22, 23],
      [23, 30],
      [30, 72],
    ]) {
      for (const e of decoder.push(bytes.subarray(from, to))) seen.push([e.code, e.value]);
    }
    expect(seen).toEqual([
      [F9, 1],
      [F9, 0],
      [F13, 2],
    ]);
    expect(decoder.buffered).toBe(0);
    expect(decoder.push(bytes.subarray(0, 10))).toEqual([]);
    expect(decoder.buffered).toBe(10);
  });
});

describe('/proc/bus/input/devices', () => {
  const text = readFileSync(FIXTURE, 'utf8');

  it('parses every device of a recorded sample', () => {
    const devices = parseProcInputDevices(text, 64);
    expect(devices.map((d) => d.name)).toEqual([
      'Lid Switch',
      'Power Button',
      'Sleep Button',
      'AT Translated Set 2 keyboard',
      'Video Bus',
      'PC Speaker',
      'Logitech USB Optical Mouse',
      'Keychron Keychron K2',
      'Keychron Keychron K2 Consumer Control',
      'HID 1189:8890',
      'ydotoold virtual device',
    ]);
    const at = devices[3]!;
    expect(at.handlers).toEqual(['sysrq', 'kbd', 'leds', 'event3']);
    expect(at.event).toBe('event3');
    expect(at.phys).toBe('isa0060/serio0/input0');
    expect(at.bitmaps.EV).toBe(0x120013n);
    for (const code of [1, SPACE, LEFTCTRL, RIGHTCTRL, LEFTALT, RIGHTALT, LEFTSHIFT, F9, 125])
      expect(hasBit(at.bitmaps.KEY, code), `key ${code}`).toBe(true);
    // The power button has exactly KEY_POWER (116): one word above a zero word.
    expect(devices[1]!.bitmaps.KEY).toBe(1n << 116n);
    expect(devices[0]!.event).toBe('event0');
    expect(devices[6]!.handlers).toEqual(['mouse0', 'event6']);
  });

  it('picks keyboards: kbd handler, EV_KEY + EV_REP, and the key or a modifier', () => {
    const devices = parseProcInputDevices(text, 64);
    const picked = (keys: string) => devices.filter((d) => isKeyboardFor(d, combo(keys))).map((d) => d.event);
    // Not the power/sleep buttons, Video Bus, speaker, mouse, consumer control, nor ydotool's device.
    expect(picked('ctrl+alt+space')).toEqual(['event3', 'event7']);
    expect(picked('rightctrl')).toEqual(['event3', 'event7']);
    // The macro pad has only F13–F24: read for f13, where the ctrl may come from a keyboard.
    expect(picked('ctrl+f13')).toEqual(['event3', 'event7', 'event9']);
  });

  it('reads bitmaps in the word size of the reader', () => {
    expect(parseBitmap('1 0', 64)).toBe(1n << 64n);
    expect(parseBitmap('1 0', 32)).toBe(1n << 32n);
    expect(parseBitmap('0', 64)).toBe(0n);
    expect(parseBitmap('zz 1', 64)).toBe(0n);
    // The same keyboard as a 32-bit process sees it.
    const words64 = '402000000 3803078f800d001 feffffdfffefffff fffffffffffffffe';
    const words32 = '4 2000000 3803078 f800d001 feffffdf ffefffff ffffffff fffffffe';
    expect(parseBitmap(words32, 32)).toBe(parseBitmap(words64, 64));
    const devices = parseProcInputDevices(text.replace(words64, words32), 32);
    expect(devices[3]!.bitmaps.KEY).toBe(parseBitmap(words64, 64));
  });

  it('tolerates junk and a missing blank line at the end', () => {
    expect(parseProcInputDevices('')).toEqual([]);
    const [only] = parseProcInputDevices('garbage\nN: Name="x"\nH: Handlers=kbd event12', 64);
    expect(only).toMatchObject({ name: 'x', event: 'event12' });
  });
});

describe('combo state', () => {
  function track(keys: string) {
    const out: string[] = [];
    const tracker = new ComboTracker(combo(keys), (t) => out.push(t));
    return { out, tracker, ev: (device: string, code: number, value: number) => tracker.handle(device, code, value) };
  }

  it('ends when the key is released, even if a modifier went up first', () => {
    const { out, ev } = track('ctrl+space');
    ev('k', LEFTCTRL, 1);
    ev('k', SPACE, 1);
    ev('k', LEFTCTRL, 0);
    expect(out).toEqual(['down']);
    ev('k', SPACE, 0);
    expect(out).toEqual(['down', 'up']);
  });

  it('fires on the key press only: modifiers added while the key is held do nothing', () => {
    const { out, ev } = track('ctrl+space');
    ev('k', SPACE, 1);
    ev('k', LEFTCTRL, 1);
    ev('k', SPACE, 2);
    ev('k', SPACE, 0);
    expect(out).toEqual([]);
  });

  it('does not fire a lone side modifier while the other side is held', () => {
    const { out, ev } = track('rightctrl');
    ev('k', LEFTCTRL, 1);
    ev('k', RIGHTCTRL, 1);
    ev('k', RIGHTCTRL, 0);
    ev('k', LEFTCTRL, 0);
    ev('k', RIGHTCTRL, 1);
    expect(out).toEqual(['down']);
  });

  it('ends when the device holding the key goes away, not when another one does', () => {
    const { out, ev, tracker } = track('ctrl+space');
    ev('kbd', LEFTCTRL, 1);
    ev('pad', SPACE, 1);
    tracker.dropDevice('kbd');
    expect(out).toEqual(['down']);
    tracker.dropDevice('pad');
    expect(out).toEqual(['down', 'up']);
    expect(tracker.isDown).toBe(false);
  });
});

describe('openEvdev on FIFOs', () => {
  it('reports a press and a release of the combo, and describes the grab', async () => {
    const kbd = fifo();
    const { grab, rec } = await open('ctrl+alt+space', [kbd]);
    expect(grab).toMatchObject({ backend: 'evdev', keys: 'ctrl+alt+space', where: kbd.path });
    kbd.write([...press(LEFTCTRL), ...press(LEFTALT), ...press(SPACE)]);
    await rec.waitKeys(1);
    expect(rec.types()).toEqual(['down']);
    kbd.write([...release(SPACE), ...release(LEFTALT), ...release(LEFTCTRL)]);
    await rec.waitKeys(2);
    expect(rec.types()).toEqual(['down', 'up']);
    const [down, up] = rec.events;
    expect(down!.at).toBeGreaterThan(Date.now() - 600_000);
    expect(up!.at).toBeGreaterThanOrEqual(down!.at);
  });

  it('ignores auto-repeat: a repeat is not a press', async () => {
    const kbd = fifo();
    const { rec } = await open('ctrl+space', [kbd]);
    // Pressed with shift (vetoed); shift let go; the held key repeats: still no press.
    kbd.write([...press(LEFTCTRL), ...press(LEFTSHIFT), ...press(SPACE), ...release(LEFTSHIFT)]);
    kbd.write([...repeat(SPACE), ...repeat(SPACE), ...repeat(SPACE), ...release(SPACE)]);
    // Then a clean press with repeats while down: one down, one up.
    kbd.write([...press(SPACE), ...repeat(SPACE), ...repeat(SPACE), ...release(SPACE)]);
    await rec.waitKeys(2);
    kbd.write([...press(F9), ...release(F9), ...press(SPACE)]);
    await rec.waitKeys(3);
    expect(rec.types()).toEqual(['down', 'up', 'down']);
  });

  it('reassembles records split across writes', async () => {
    const kbd = fifo();
    const { rec } = await open('f9', [kbd]);
    const bytes = encodeEvents([...press(F9), ...release(F9)]);
    // Odd-sized pieces, each read on its own: a pause longer than the poll period lets the poll
    // timer (due first, and Node runs due timers in order) read the piece before the next is written.
    for (let at = 0; at < bytes.length; at += 7) {
      kbd.write(bytes.subarray(at, at + 7));
      await sleep(2 * POLL_MS);
    }
    await rec.waitKeys(2);
    expect(rec.types()).toEqual(['down', 'up']);
  });

  it('does not fire while an extra modifier is held', async () => {
    const kbd = fifo();
    const { rec } = await open('ctrl+alt+space', [kbd]);
    kbd.write([...press(LEFTCTRL), ...press(LEFTALT), ...press(LEFTSHIFT), ...press(SPACE), ...release(SPACE)]);
    kbd.write([...release(LEFTSHIFT), ...press(SPACE)]);
    await rec.waitKeys(1);
    expect(rec.types()).toEqual(['down']);
  });

  it('accepts either side of each modifier', async () => {
    const kbd = fifo();
    const { rec } = await open('ctrl+alt+space', [kbd]);
    kbd.write([...press(RIGHTCTRL), ...press(RIGHTALT), ...press(SPACE), ...release(SPACE), ...release(RIGHTALT), ...release(RIGHTCTRL)]);
    kbd.write([...press(LEFTCTRL), ...press(RIGHTALT), ...press(SPACE), ...release(SPACE)]);
    await rec.waitKeys(4);
    expect(rec.types()).toEqual(['down', 'up', 'down', 'up']);
  });

  it('serves a single key (f9) and a side modifier alone (rightctrl)', async () => {
    const kbd = fifo('event3');
    const pad = fifo('event4');
    const f9 = await open('f9', [kbd]);
    kbd.write([...press(LEFTCTRL), ...press(F9), ...release(F9), ...release(LEFTCTRL), ...press(F9), ...release(F9)]);
    await f9.rec.waitKeys(2);
    expect(f9.rec.types()).toEqual(['down', 'up']);

    const rctrl = await open('rightctrl', [pad]);
    // Left ctrl is not it; rightctrl as a modifier of a chord with shift is not it; alone it is.
    pad.write([
      ...press(LEFTCTRL),
      ...release(LEFTCTRL),
      ...press(LEFTSHIFT),
      ...press(RIGHTCTRL),
      ...release(RIGHTCTRL),
      ...release(LEFTSHIFT),
    ]);
    pad.write([...press(RIGHTCTRL), ...repeat(RIGHTCTRL), ...release(RIGHTCTRL)]);
    await rctrl.rec.waitKeys(2);
    expect(rctrl.rec.types()).toEqual(['down', 'up']);
  });

  it('combines devices: the modifier on a keyboard, the key on a macro pad', async () => {
    const kbd = fifo('event3');
    const pad = fifo('event9');
    const { grab, rec } = await open('ctrl+f13', [kbd, pad]);
    expect(grab.where).toBe(`${kbd.path}, ${pad.path}`);
    // Two files have no common order: pausing past a poll makes the keyboard's ctrl read first.
    kbd.write(press(LEFTCTRL));
    await sleep(2 * POLL_MS);
    pad.write(press(F13));
    await rec.waitKeys(1);
    kbd.write(release(LEFTCTRL));
    pad.write(release(F13));
    await rec.waitKeys(2);
    expect(rec.types()).toEqual(['down', 'up']);
    // A shift held on the keyboard vetoes the pad's key.
    kbd.write([...press(LEFTSHIFT), ...press(LEFTCTRL)]);
    await sleep(2 * POLL_MS);
    pad.write([...press(F13), ...release(F13)]);
    await sleep(2 * POLL_MS);
    kbd.write([...release(LEFTSHIFT)]);
    await sleep(2 * POLL_MS);
    pad.write([...press(F13)]);
    await rec.waitKeys(3);
    expect(rec.types()).toEqual(['down', 'up', 'down']);
  });

  it('ends a held combo when its keyboard goes away, then reports the error', async () => {
    const kbd = fifo();
    const { rec } = await open('ctrl+space', [kbd]);
    kbd.write([...press(LEFTCTRL), ...press(SPACE)]);
    await rec.waitKeys(1);
    kbd.end();
    await rec.waitError();
    expect(rec.order).toEqual(['down', 'up', 'error']);
    const err = rec.errors[0]!;
    expect(KotoError.is(err) && err.code).toBe('HOTKEY_ERR_UNAVAILABLE');
    expect(err.message).toContain(kbd.path);
    expect((err as KotoError).fix).toContain('reconnect the keyboard');
  });

  it('keeps reading the other keyboards when one goes away', async () => {
    const kbd = fifo('event3');
    const pad = fifo('event9');
    const { rec } = await open('f13', [kbd, pad]);
    pad.write(press(F13));
    await rec.waitKeys(1);
    kbd.end();
    await sleep(5 * POLL_MS);
    pad.write(release(F13));
    await rec.waitKeys(2);
    expect(rec.order).toEqual(['down', 'up']);
    expect(rec.logs.find((l) => l.level === 'warn')?.message).toContain(`stopped reading ${kbd.path}`);
    pad.end();
    await rec.waitError();
    expect(rec.order).toEqual(['down', 'up', 'error']);
    expect(rec.errors[0]!.message).toContain(kbd.path);
    expect(rec.errors[0]!.message).toContain(pad.path);
  });

  it('closes idempotently and reports nothing after close', async () => {
    const kbd = fifo();
    const { grab, rec } = await open('f9', [kbd]);
    await Promise.all([grab.close(), grab.close()]);
    await grab.close();
    kbd.write([...press(F9), ...release(F9)]);
    kbd.end();
    await sleep(5 * POLL_MS);
    expect(rec.order).toEqual([]);
  });

  it('delivers nothing more once a key handler closes the grab', async () => {
    const kbd = fifo();
    const rec = recorder();
    const grab: HotkeyGrab | undefined = await openEvdev(
      combo('f9'),
      (e) => {
        rec.onKey(e);
        void grab?.close();
      },
      { ...rec.options, devices: [kbd.path] },
    );
    grabs.push(grab);
    // One chunk: the release is read together with the press that closes the grab.
    kbd.write([...press(F9), ...release(F9), ...press(F9)]);
    await rec.waitKeys(1);
    kbd.end();
    await sleep(5 * POLL_MS);
    expect(rec.order).toEqual(['down']);
  });

  it('survives a key handler that throws', async () => {
    const kbd = fifo();
    const rec = recorder();
    let calls = 0;
    const grab = await openEvdev(
      combo('f9'),
      (e) => {
        calls += 1;
        rec.onKey(e);
        if (calls === 1) throw new Error('boom');
      },
      { ...rec.options, devices: [kbd.path] },
    );
    grabs.push(grab);
    kbd.write([...press(F9), ...release(F9)]);
    await rec.waitKeys(2);
    expect(rec.types()).toEqual(['down', 'up']);
    expect(rec.logs.some((l) => l.level === 'warn' && l.message.includes('boom'))).toBe(true);
  });

  it('rejects files that are not input devices', async () => {
    const file = join(dir, 'notes.txt');
    writeFileSync(file, 'x'.repeat(100));
    const rec = recorder();
    const err = await openEvdev(combo('f9'), rec.onKey, { ...rec.options, devices: [file, join(dir, 'missing'), dir] }).catch(
      (e: unknown) => e,
    );
    expect(KotoError.is(err) && err.code).toBe('HOTKEY_ERR_UNAVAILABLE');
    const message = (err as KotoError).message;
    expect(message).toContain(`${file}: is not a device`);
    expect(message).toContain(`${join(dir, 'missing')}: does not exist`);
    expect((err as KotoError).fix).toContain('hotkey.devices');
  });
});

describe('finding keyboards', () => {
  function sources(proc = 'proc-devices') {
    return { procDevices: join(dir, proc), inputDir: join(dir, 'input') };
  }

  it('opens the keyboards /proc lists, under the input folder', async () => {
    mkdirSync(join(dir, 'input'));
    writeFileSync(join(dir, 'proc-devices'), readFileSync(FIXTURE));
    const at = new FeedFifo(join(dir, 'input'), 'event3');
    const usb = new FeedFifo(join(dir, 'input'), 'event7');
    fifos.push(at, usb);
    const rec = recorder();
    const grab = await createEvdevBackend(sources())(combo('ctrl+alt+space'), rec.onKey, rec.options);
    grabs.push(grab);
    expect(grab.where).toBe(`${at.path}, ${usb.path}`);
    usb.write([...press(LEFTCTRL), ...press(LEFTALT), ...press(SPACE), ...release(SPACE)]);
    await rec.waitKeys(2);
    expect(rec.types()).toEqual(['down', 'up']);
  });

  it('falls back to udev *-event-kbd links when /proc is not readable', async () => {
    mkdirSync(join(dir, 'input', 'by-path'), { recursive: true });
    mkdirSync(join(dir, 'input', 'by-id'));
    const kbd = new FeedFifo(join(dir, 'input'), 'event5');
    fifos.push(kbd);
    symlinkSync('../event5', join(dir, 'input', 'by-path', 'platform-i8042-serio-0-event-kbd'));
    symlinkSync('../event5', join(dir, 'input', 'by-id', 'usb-Keychron_K2-event-kbd'));
    symlinkSync('../event5', join(dir, 'input', 'by-id', 'usb-Logitech_Mouse-event-mouse'));
    const found = await discoverKeyboards(combo('f9'), sources('absent'));
    expect(found).toEqual({ ok: true, paths: [kbd.path], how: expect.stringContaining('by-path') });
  });

  it('says so when there is no /dev/input at all', async () => {
    const rec = recorder();
    const err = await createEvdevBackend(sources())(combo('f9'), rec.onKey, rec.options).catch((e: unknown) => e);
    expect(KotoError.is(err) && err.code).toBe('HOTKEY_ERR_UNAVAILABLE');
    expect((err as KotoError).message).toContain(`${join(dir, 'input')} does not exist`);
    expect((err as KotoError).fix).toContain('hotkey.devices');
    expect((err as KotoError).fix).toContain('hotkey.backend: x11');
  });

  it('says so when /proc lists no keyboard and there are no links', async () => {
    mkdirSync(join(dir, 'input'));
    const text = readFileSync(FIXTURE, 'utf8');
    // Only the buttons and the mouse.
    writeFileSync(
      join(dir, 'proc-devices'),
      text
        .split('\n\n')
        .filter((b) => /Button|Mouse/.test(b))
        .join('\n\n'),
    );
    const rec = recorder();
    const err = await createEvdevBackend(sources())(combo('ctrl+space'), rec.onKey, { ...rec.options, devices: [] }).catch(
      (e: unknown) => e,
    );
    expect(KotoError.is(err) && err.code).toBe('HOTKEY_ERR_UNAVAILABLE');
    expect((err as KotoError).message).toContain('no keyboard with the key "space"');
  });
});

describe('permissions', () => {
  /**
   * Root reads a mode-000 file anyway, so as root the case runs in a child dropped to nobody
   * (spawn's uid/gid, which also clears supplementary groups).
   */
  async function openAs(keys: string, devices: string[], skip: (note: string) => void): Promise<Record<string, unknown>> {
    const asRoot = process.getuid?.() === 0;
    let child: ChildProcessByStdio<null, Readable, Readable>;
    try {
      child = spawn(process.execPath, [CHILD, keys, ...devices], {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
        stdio: ['ignore', 'pipe', 'pipe'],
        ...(asRoot ? { uid: 65534, gid: 65534 } : {}),
      });
    } catch (err) {
      // A container without CAP_SETUID: root cannot become nobody, and root reads mode 000.
      if (asRoot && (err as NodeJS.ErrnoException).code === 'EPERM')
        skip('runs as root without the right to switch users, and root reads a mode-000 file');
      throw err;
    }
    let out = '';
    let errText = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (errText += c.toString()));
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', resolve);
    });
    if (code !== 0 || !out.trim()) throw new Error(`child exited ${code}: ${errText}`);
    const result = JSON.parse(out.trim()) as Record<string, unknown>;
    expect(result.uid).not.toBe(0);
    return result;
  }

  beforeEach(() => {
    // The child may run as nobody: it must reach the files.
    chmodSync(dir, 0o755);
  });

  it('rejects with the files, the groups and the usermod fix when no keyboard is readable', async (ctx) => {
    const locked = join(dir, 'event3');
    writeFileSync(locked, '');
    chmodSync(locked, 0o000);
    const result = await openAs('ctrl+space', [locked], (note) => ctx.skip(note));
    expect(result.code).toBe('HOTKEY_ERR_PERMISSION');
    expect(result.message).toContain(`${locked}: permission denied`);
    expect(result.message).toContain('mode 000');
    expect(result.message).toContain('not in the input group');
    expect(result.fix).toContain('usermod -aG input');
  });

  it('reads the readable keyboards and logs the others', async (ctx) => {
    const locked = join(dir, 'event3');
    writeFileSync(locked, '');
    chmodSync(locked, 0o000);
    const open = fifo('event4', 0o644);
    const result = await openAs('ctrl+space', [locked, open.path], (note) => ctx.skip(note));
    expect(result).toMatchObject({ ok: true, where: open.path });
    expect(result.debug).toEqual([`hotkey: not reading ${locked}: permission denied`]);
  });
});
