import { execFileSync } from 'node:child_process';
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { EV_KEY, EV_SYN, type RecordLayout, recordLayout } from '../../plugins/hotkey/evdev-records.ts';

/**
 * Test side of the evdev backend: input_event records built as the kernel lays them out, and a
 * real FIFO to push them through (no /dev/uinput, no root, no keyboard needed).
 */

export type Record3 = readonly [type: number, code: number, value: number];

export function encodeEvents(events: readonly Record3[], layout: RecordLayout = recordLayout()): Buffer {
  const out = Buffer.alloc(events.length * layout.size);
  const head = layout.size - 8;
  events.forEach(([type, code, value], i) => {
    const at = i * layout.size;
    // A plausible timestamp, so a decoder reading the wrong offsets sees garbage, not zeros.
    const sec = 1_700_000_000 + i;
    const usec = 123_456;
    if (layout.size === 24) {
      if (layout.littleEndian) {
        out.writeBigInt64LE(BigInt(sec), at);
        out.writeBigInt64LE(BigInt(usec), at + 8);
      } else {
        out.writeBigInt64BE(BigInt(sec), at);
        out.writeBigInt64BE(BigInt(usec), at + 8);
      }
    } else if (layout.littleEndian) {
      out.writeInt32LE(sec, at);
      out.writeInt32LE(usec, at + 4);
    } else {
      out.writeInt32BE(sec, at);
      out.writeInt32BE(usec, at + 4);
    }
    if (layout.littleEndian) {
      out.writeUInt16LE(type, at + head);
      out.writeUInt16LE(code, at + head + 2);
      out.writeInt32LE(value, at + head + 4);
    } else {
      out.writeUInt16BE(type, at + head);
      out.writeUInt16BE(code, at + head + 2);
      out.writeInt32BE(value, at + head + 4);
    }
  });
  return out;
}

/** A key event followed by SYN_REPORT, as a keyboard sends it (MSC_SCAN omitted). */
export function key(code: number, value: 0 | 1 | 2): Record3[] {
  return [
    [EV_KEY, code, value],
    [EV_SYN, 0, 0],
  ];
}

export const press = (code: number): Record3[] => key(code, 1);
export const release = (code: number): Record3[] => key(code, 0);
export const repeat = (code: number): Record3[] => key(code, 2);

/**
 * A FIFO standing in for /dev/input/eventN. The writer end is opened read-write first, so the
 * backend's non-blocking read-only open finds a writer (a FIFO without one reads as ended) and
 * neither open blocks. end() closes it: the backend then reads end-of-stream, as for an unplugged
 * keyboard.
 */
export class FeedFifo {
  readonly path: string;
  private fd: number | undefined;

  constructor(dir: string, name: string, mode = 0o600) {
    this.path = join(dir, name);
    execFileSync('mkfifo', ['-m', mode.toString(8), this.path]);
    this.fd = openSync(this.path, constants.O_RDWR | constants.O_NONBLOCK);
  }

  write(events: readonly Record3[] | Buffer): void {
    if (this.fd === undefined) throw new Error(`${this.path} is closed`);
    const bytes = Buffer.isBuffer(events) ? events : encodeEvents(events);
    let done = 0;
    while (done < bytes.length) done += writeSync(this.fd, bytes, done);
  }

  end(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
