import { constants, promises as fsp, readSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { describeError, kotoError, type KeyCombo, type KotoError } from 'koto-voice';
import { now, type BackendOptions, type HotkeyGrab, type KeyEvent, type OpenBackend } from './backend.ts';
import { ComboTracker } from './evdev-combo.ts';
import { discoverKeyboards, SYSTEM_INPUT, type InputSources } from './evdev-devices.ts';
import { EV_KEY, KEY_MAX, RecordDecoder, recordLayout } from './evdev-records.ts';

/**
 * The evdev hotkey backend: reads key events straight from the keyboards' /dev/input/event*
 * files, so it works on Wayland, on a console and over no display at all — for anyone in the
 * `input` group.
 *
 * It listens; it does not grab. Taking the keys away from other programs needs the EVIOCGRAB
 * ioctl, which Node cannot issue, and would take the whole keyboard anyway. So the focused
 * window also receives the combination: pick one that does nothing there (`rightctrl`, `f9`,
 * `super+…`).
 *
 * The files are opened non-blocking and polled every POLL_MS. Node has no event-driven stream
 * for character devices, and a blocking read would pin a libuv thread per keyboard until the next
 * key press — close() would wait for that press, and four keyboards would starve every other fs
 * call. A non-blocking read of an idle device is one syscall returning EAGAIN.
 *
 * A FIFO works too (tests feed events through one): its end-of-stream, like an unplugged
 * keyboard's ENODEV, drops it. A FIFO without a writer reads as ended, so open the writer first.
 * Erasable TypeScript only: a test runs this file under Node's type stripping as another user.
 */

/**
 * Poll period: the most a key-down waits (one audio frame), 50 wake-ups a second while idle.
 * Each wake-up costs one read syscall per keyboard; the timer itself is most of the cost.
 */
export const POLL_MS = 20;
/** Records read per syscall; evdev returns whole records, as many as are queued. */
const RECORDS_PER_READ = 64;
/** Bound on reads per device per tick, so one flooding device (a FIFO) cannot stall the loop. */
const READS_PER_TICK = 16;
/** Linux INPUT_MAJOR; minors below 64 are the joystick and legacy mouse interfaces. */
const INPUT_MAJOR = 13n;
const EVDEV_FIRST_MINOR = 64n;
/** How many unreadable files an error names before "and N more". */
const MAX_NAMED = 6;

const REMEDY =
  "set `hotkey.devices` to your keyboard's event file (`ls -l /dev/input/by-id/` lists them as *-event-kbd), " +
  'or use `hotkey.backend: x11` on X11, or bind `koto toggle` in your compositor (docs/daemon.md)';
const LOST_REMEDY =
  'reconnect the keyboard; if `koto status` does not show the hotkey back, restart the daemon, or set `hotkey.devices` to a keyboard that stays connected';

export const openEvdev: OpenBackend = createEvdevBackend();

/** The backend reading from other places than /proc and /dev/input (tests: a temp folder). */
export function createEvdevBackend(sources: InputSources = SYSTEM_INPUT, pollMs: number = POLL_MS): OpenBackend {
  return async (combo, onKey, options) => {
    const explicit = options.devices !== undefined && options.devices.length > 0;
    let paths: readonly string[];
    if (explicit) {
      paths = await distinct(options.devices!);
    } else {
      const found = await discoverKeyboards(combo, sources);
      if (!found.ok) throw unavailable(found.detail);
      options.log.debug(`hotkey: keyboards for "${combo.text}" from ${found.how}: ${found.paths.join(', ')}`);
      paths = found.paths;
    }
    const results = await Promise.all(paths.map(openDevice));
    const opened = results.filter((r): r is OpenedDevice => r.ok);
    const failed = results.filter((r): r is FailedDevice => !r.ok);
    if (opened.length === 0) {
      if (failed.some((f) => f.denied)) throw kotoError('HOTKEY_ERR_PERMISSION', { detail: await permissionDetail(failed) });
      const list = nameFailures(failed);
      throw unavailable(explicit ? `none of hotkey.devices can be read: ${list}` : `no keyboard could be opened: ${list}`);
    }
    for (const f of failed) options.log.debug(`hotkey: not reading ${f.path}: ${f.reason}`);
    return listen(combo, onKey, options, opened, pollMs);
  };
}

interface OpenedDevice {
  readonly ok: true;
  readonly path: string;
  readonly handle: FileHandle;
}

interface FailedDevice {
  readonly ok: false;
  readonly path: string;
  readonly reason: string;
  /** EACCES / EPERM: the fix is group membership, not another file. */
  readonly denied: boolean;
}

function listen(
  combo: KeyCombo,
  onKey: (event: KeyEvent) => void,
  options: BackendOptions,
  opened: readonly OpenedDevice[],
  pollMs: number,
): HotkeyGrab {
  const layout = recordLayout();
  const buffer = Buffer.alloc(layout.size * RECORDS_PER_READ);
  const live = new Map<string, { handle: FileHandle; decoder: RecordDecoder }>();
  for (const device of opened) live.set(device.path, { handle: device.handle, decoder: new RecordDecoder(layout) });
  const lost: string[] = [];
  let stopped = false;
  let closing: Promise<void> | undefined;

  const tracker = new ComboTracker(combo, (type) => {
    // Nothing after close(), even from the rest of a chunk whose first event led to it.
    if (stopped) return;
    try {
      onKey({ type, at: now() });
    } catch (err) {
      options.log.warn(`hotkey: the key handler failed: ${describeError(err)}`);
    }
  });

  const stop = (): Promise<void> => {
    stopped = true;
    clearInterval(timer);
    const handles = [...live.values()].map((d) => d.handle);
    live.clear();
    return Promise.all(handles.map((h) => h.close().catch(() => undefined))).then(() => undefined);
  };

  const drop = (path: string, reason: string): void => {
    const device = live.get(path);
    if (!device) return;
    live.delete(path);
    void device.handle.close().catch(() => undefined);
    lost.push(`${path}: ${reason}`);
    // The 'up' comes before onError: whoever records on 'down' stops before hearing of the loss.
    tracker.dropDevice(path);
    if (stopped) return;
    if (live.size > 0) {
      options.log.warn(`hotkey: stopped reading ${path} (${reason}); still reading ${[...live.keys()].join(', ')}`);
      return;
    }
    closing = stop();
    const err = unavailable(`every keyboard it read went away (${lost.join('; ')})`, LOST_REMEDY);
    try {
      options.onError(err);
    } catch (thrown) {
      options.log.warn(`hotkey: the error handler failed: ${describeError(thrown)}`);
    }
  };

  const poll = (): void => {
    for (const [path, device] of live) {
      for (let i = 0; i < READS_PER_TICK && !stopped; i += 1) {
        let n: number;
        try {
          n = readSync(device.handle.fd, buffer, 0, buffer.length, null);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code !== 'EAGAIN' && code !== 'EWOULDBLOCK' && code !== 'EINTR') drop(path, describeError(err));
          break;
        }
        if (n === 0) {
          drop(path, 'end of stream');
          break;
        }
        for (const event of device.decoder.push(buffer.subarray(0, n))) {
          if (stopped) return;
          if (event.type === EV_KEY && event.code <= KEY_MAX) tracker.handle(path, event.code, event.value);
        }
        if (n < buffer.length) break;
      }
      if (stopped) return;
    }
  };
  const timer = setInterval(poll, pollMs);

  return {
    backend: 'evdev',
    keys: combo.text,
    where: opened.map((d) => d.path).join(', '),
    close(): Promise<void> {
      closing ??= stop();
      return closing;
    },
  };
}

async function openDevice(path: string): Promise<OpenedDevice | FailedDevice> {
  let handle: FileHandle;
  try {
    handle = await fsp.open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { ok: false, path, reason: openFailure(code, err), denied: code === 'EACCES' || code === 'EPERM' };
  }
  const problem = await handle.stat({ bigint: true }).then(
    (stat) => {
      if (stat.isFIFO()) return undefined;
      if (!stat.isCharacterDevice()) return 'is not a device (hotkey.devices takes /dev/input/eventN files)';
      const major = ((stat.rdev >> 8n) & 0xfffn) | ((stat.rdev >> 32n) & ~0xfffn);
      const minor = (stat.rdev & 0xffn) | ((stat.rdev >> 12n) & ~0xffn);
      if (major !== INPUT_MAJOR)
        return `is not an input device (character device ${major}:${minor}; hotkey.devices takes /dev/input/eventN files)`;
      if (minor < EVDEV_FIRST_MINOR) return 'is a joystick or mouse interface, not an event device (use /dev/input/eventN)';
      return undefined;
    },
    (err: unknown) => `cannot be examined: ${describeError(err)}`,
  );
  if (problem !== undefined) {
    await handle.close().catch(() => undefined);
    return { ok: false, path, reason: problem, denied: false };
  }
  return { ok: true, path, handle };
}

function openFailure(code: string | undefined, err: unknown): string {
  switch (code) {
    case 'EACCES':
      return 'permission denied';
    case 'EPERM':
      return 'operation not permitted';
    case 'ENOENT':
      return 'does not exist';
    case 'ENODEV':
    case 'ENXIO':
      return 'no such device (unplugged?)';
    case 'EISDIR':
      return 'is a folder';
    default:
      return describeError(err);
  }
}

/** Same file named twice (a by-id link and its eventN): read once. */
async function distinct(paths: readonly string[]): Promise<string[]> {
  const seen = new Set<string>();
  const kept: string[] = [];
  for (const path of paths) {
    const real = await fsp.realpath(path).catch(() => path);
    if (seen.has(real)) continue;
    seen.add(real);
    kept.push(path);
  }
  return kept;
}

function nameFailures(failed: readonly FailedDevice[], describe: (f: FailedDevice) => string = (f) => `${f.path}: ${f.reason}`): string {
  const named = failed.slice(0, MAX_NAMED).map(describe);
  if (failed.length > MAX_NAMED) named.push(`and ${failed.length - MAX_NAMED} more`);
  return named.join('; ');
}

/**
 * Names each file with its owner and mode, and says what about the user's groups is wrong —
 * including the common trap: added to `input` by usermod, but this session predates it.
 */
async function permissionDetail(failed: readonly FailedDevice[]): Promise<string> {
  const [users, groups] = await Promise.all([readIdFile('/etc/passwd'), readIdFile('/etc/group')]);
  const stats = new Map<string, { uid: number; gid: number; mode: number }>();
  for (const f of failed.slice(0, MAX_NAMED)) {
    if (!f.denied) continue;
    const stat = await fsp.stat(f.path).catch(() => undefined);
    if (stat) stats.set(f.path, stat);
  }
  const files = nameFailures(failed, (f) => {
    const stat = stats.get(f.path);
    if (!stat) return `${f.path}: ${f.reason}`;
    const owner = `${users.get(stat.uid)?.name ?? stat.uid}:${groups.get(stat.gid)?.name ?? stat.gid}`;
    return `${f.path}: ${f.reason} (owner ${owner}, mode ${(stat.mode & 0o777).toString(8).padStart(3, '0')})`;
  });
  const gids = new Set(process.getgroups?.() ?? []);
  if (process.getegid) gids.add(process.getegid());
  const mine = [...gids].map((gid) => groups.get(gid)?.name ?? String(gid));
  const input = [...groups.values()].find((g) => g.name === 'input');
  let who: string;
  if (!mine.includes('input')) {
    const user = safeUserName();
    const listed = user !== undefined && input?.members.includes(user);
    who = listed
      ? `you were added to the input group after this session started (your groups now: ${mine.join(', ')}): log out and back in`
      : `you are not in the input group (your groups: ${mine.join(', ') || 'none'})`;
  } else {
    const other = [...new Set([...stats.values()].map((s) => groups.get(s.gid)?.name ?? String(s.gid)))].filter((g) => g !== 'input');
    who =
      other.length > 0
        ? `you are in the input group, but the files belong to group ${other.join(', ')}`
        : 'you are in the input group, yet access is denied';
  }
  return `${files}; ${who}`;
}

function safeUserName(): string | undefined {
  try {
    return userInfo().username;
  } catch {
    return undefined;
  }
}

/** /etc/passwd or /etc/group as id → name (and group members); empty when unreadable. */
async function readIdFile(path: string): Promise<Map<number, { name: string; members: string[] }>> {
  const map = new Map<number, { name: string; members: string[] }>();
  const text = await fsp.readFile(path, 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    const id = Number(fields[2]);
    if (!fields[0] || fields[2] === undefined || fields[2] === '' || !Number.isInteger(id) || map.has(id)) continue;
    map.set(id, { name: fields[0], members: (fields[3] ?? '').split(',').filter(Boolean) });
  }
  return map;
}

function unavailable(detail: string, remedy: string = REMEDY): KotoError {
  return kotoError('HOTKEY_ERR_UNAVAILABLE', { backend: 'evdev', detail, remedy });
}
