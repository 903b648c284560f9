import { endianness } from 'node:os';

/**
 * Linux `struct input_event` as read from /dev/input/event*: a `struct timeval` (two C longs),
 * then u16 type, u16 code, s32 value, in the machine's byte order. The long is the reading
 * process's: a 32-bit Node on a 64-bit kernel gets the 16-byte compat layout, so `process.arch`
 * decides, not the kernel. 32-bit y2038-safe kernels kept the 16-byte size (__kernel_ulong_t).
 */

export const EV_SYN = 0;
export const EV_KEY = 1;
export const EV_REP = 0x14;
/** Highest key code the kernel defines (KEY_MAX): anything above is garbage, not a key. */
export const KEY_MAX = 0x2ff;

const ARCH_64 = new Set(['x64', 'arm64', 'ppc64', 's390x', 'riscv64', 'loong64', 'mips64', 'mips64el']);

/** Bits in a C long for this architecture: the record layout and the /proc bitmask word size. */
export function longBits(arch: string = process.arch): 32 | 64 {
  return ARCH_64.has(arch) ? 64 : 32;
}

export interface RecordLayout {
  readonly size: 16 | 24;
  readonly littleEndian: boolean;
}

export function recordLayout(arch: string = process.arch, byteOrder: 'LE' | 'BE' = endianness()): RecordLayout {
  return { size: longBits(arch) === 64 ? 24 : 16, littleEndian: byteOrder === 'LE' };
}

export interface InputEvent {
  readonly type: number;
  readonly code: number;
  readonly value: number;
}

/**
 * Turns a byte stream into input events. Real evdev reads return whole records, but a FIFO (or
 * a short read) may split one: the tail is kept until the rest arrives.
 */
export class RecordDecoder {
  private readonly layout: RecordLayout;
  private pending: Buffer = Buffer.alloc(0);

  // No parameter properties: the permission test runs this file under Node's type stripping.
  constructor(layout: RecordLayout) {
    this.layout = layout;
  }

  /** Bytes of an incomplete record waiting for the next chunk. */
  get buffered(): number {
    return this.pending.length;
  }

  push(chunk: Uint8Array): InputEvent[] {
    const data =
      this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const { size, littleEndian } = this.layout;
    const head = size - 8;
    const whole = data.length - (data.length % size);
    const events: InputEvent[] = [];
    for (let at = 0; at < whole; at += size) {
      events.push(
        littleEndian
          ? { type: data.readUInt16LE(at + head), code: data.readUInt16LE(at + head + 2), value: data.readInt32LE(at + head + 4) }
          : { type: data.readUInt16BE(at + head), code: data.readUInt16BE(at + head + 2), value: data.readInt32BE(at + head + 4) },
      );
    }
    // Copy the tail: `chunk` is the caller's read buffer and is overwritten by the next read.
    this.pending = Buffer.from(data.subarray(whole));
    return events;
  }
}
