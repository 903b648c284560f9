/**
 * How control commands and `koto status` print their answers. Shared by the fast client
 * (fast.ts, which must load nothing heavy) and the full CLI, so both print the same lines.
 * Types only from the daemon: importing it at run time would load the whole kernel.
 */
import type { DaemonStatus } from '../daemon/daemon.ts';
import type { RunResult } from '../kernel/session.ts';

export type ControlAnswer = { message?: string; state?: string } & Partial<RunResult>;

/** The line a control command prints: the JSON answer, the text (--wait), or the daemon's message. */
export function controlLine(result: ControlAnswer, flags: { wait?: boolean | undefined; json?: boolean | undefined }): string {
  if (flags.json) return JSON.stringify(result);
  if (flags.wait && result.text !== undefined) return result.text ?? '';
  return result.message ?? result.state ?? 'ok';
}

/**
 * A `stop --wait` / `toggle --wait` whose session failed at the last mile carries its record: the
 * text goes to stdout all the same (JSON: the record), with a hint to deliver it again.
 */
export function undeliveredText(
  err: unknown,
  flags: { wait?: boolean | undefined; json?: boolean | undefined },
): { line: string; hint: string } | undefined {
  const record = (err as { record?: Partial<RunResult> } | undefined)?.record;
  if (!flags.wait || !record || typeof record.text !== 'string') return undefined;
  return {
    line: flags.json ? JSON.stringify(record) : record.text,
    hint: `the text is in the history; deliver it again with \`koto paste ${record.id}\``,
  };
}

export function statusLine(status: DaemonStatus): string {
  const origins = Object.entries(status.transport.origins)
    .map(([origin, s]) => `${origin} ${s.lastProtocol ?? '-'} (${s.tlsHandshakes} handshakes, ${s.requests} requests)`)
    .join('; ');
  const parts = [
    `${status.state}${status.recording ? ` ${status.recording.id}${status.recording.profile ? ` (profile ${status.recording.profile})` : ''}` : ''}`,
    `pending ${status.pending}`,
    `config generation ${status.configGeneration}${status.lastConfigError ? ` (last reload failed: ${status.lastConfigError.message})` : ''}`,
    `transport generation ${status.transportGeneration}`,
  ];
  if (status.restartNeeded?.length)
    parts.push(
      `restart needed: ${status.restartNeeded.join(' and ')} changed since start (restart the daemon to apply: e.g. systemctl --user restart koto)`,
    );
  const last = status.lastSession;
  // A delivery Koto could not verify (a paste aimed at no window) is said here, not only in the log.
  if (last) {
    const warned = last.warnings?.length ? `, warning: ${last.warnings.join(' / ')}` : '';
    parts.push(`last session ${last.id} ${last.state}${last.profile ? ` (profile ${last.profile})` : ''}${warned}`);
  }
  // What plugins serving the daemon report (the hotkey, a microphone kept open), one summary each.
  for (const report of Object.values(status.plugins ?? {})) {
    if (typeof report.summary === 'string' && report.summary) parts.push(report.summary);
  }
  if (status.ui?.url) parts.push(`panel ${status.ui.url} (koto ui)`);
  else if (status.ui?.error) parts.push(`panel off: ${status.ui.error}`);
  const start = status.audio?.lastStart;
  if (start) {
    const timing = [
      start.keyToStartMs === undefined ? '' : `recording ${start.keyToStartMs} ms after the trigger`,
      start.keyToAudioMs === undefined
        ? ''
        : start.keyToAudioMs <= 0
          ? `audio from ${-start.keyToAudioMs} ms before it`
          : `first audio ${start.keyToAudioMs} ms after it (speech before that is not recorded: see audio.preRollMs)`,
    ].filter(Boolean);
    parts.push(`last start (${start.source})${timing.length ? `: ${timing.join(', ')}` : ''}`);
  }
  if (origins) parts.push(origins);
  return parts.join('; ');
}
