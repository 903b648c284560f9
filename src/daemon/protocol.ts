/**
 * The control socket speaks newline-delimited JSON: one request per line, one response per
 * request (matched by id). Small on purpose: `koto start` must answer in milliseconds.
 */
export type DaemonCommand =
  | 'ping'
  | 'start'
  | 'stop'
  | 'toggle'
  | 'cancel'
  | 'status'
  | 'reload'
  | 'transcribe'
  | 'run'
  | 'correct'
  | 'retry'
  | 'rewrite';

export interface DaemonRequest {
  readonly id: number;
  readonly cmd: DaemonCommand;
  readonly args?: Record<string, unknown>;
}

export type DaemonResponse =
  | { readonly id: number; readonly ok: true; readonly result: unknown }
  | { readonly id: number; readonly ok: false; readonly error: { code: string; message: string; fix: string; exitCode: number } };

/** Splits a byte stream into lines and parses each as JSON. */
export function lineParser(onMessage: (value: unknown) => void, onError: (err: Error) => void): (chunk: Buffer) => void {
  let buffer = '';
  return (chunk) => {
    buffer += chunk.toString('utf8');
    let newline: number;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, newline).trim();
      buffer = buffer.slice(newline + 1);
      if (!line) continue;
      try {
        onMessage(JSON.parse(line));
      } catch (err) {
        onError(err as Error);
      }
    }
    // A client that never sends a newline must not grow the buffer without bound.
    if (buffer.length > 64 * 1024 * 1024) {
      buffer = '';
      onError(new Error('control message too large'));
    }
  };
}
