/**
 * A loopback TLS WebSocket server that speaks the subset of the Realtime transcription protocol
 * Koto uses: it records every client event, checks the session update, decodes the appended
 * audio, emits `conversation.item.input_audio_transcription.delta` while audio arrives and
 * `.completed` after each commit (the transcript names the number of 24 kHz samples it heard).
 * Fault modes: refuse the upgrade, drop the socket mid-session, answer `.failed`, answer
 * `error` to the session update. With `turn_detection: server_vad` it commits a segment every
 * `vadSegmentMs` of audio by itself, as a server VAD would at each pause.
 */
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { getTestCertificate } from '../support/index.ts';

export const RATE = 24_000;

export interface RealtimeServerOptions {
  /** Answer the upgrade with this HTTP status instead of switching protocols. */
  refuseStatus?: number | undefined;
  /** Terminate the TCP connection once this many audio bytes arrived (mid-session drop). */
  dropAfterBytes?: number | undefined;
  /** Answer each commit with `.failed` instead of a transcript. */
  failTranscription?: boolean | undefined;
  /** Acknowledge commits but never send the transcript. */
  neverComplete?: boolean | undefined;
  /** Answer the session update with an `error` event. */
  rejectSessionUpdate?: boolean | undefined;
  /** A delta per this much audio, ms (default 250). */
  deltaEveryMs?: number | undefined;
  /** Server VAD: commit a segment by itself every this much audio, ms (default 400). */
  vadSegmentMs?: number | undefined;
}

export interface ServerConnection {
  readonly path: string;
  readonly query: Record<string, string>;
  readonly headers: Record<string, string | string[] | undefined>;
  /** Every client event, parsed, in order. */
  readonly events: Record<string, unknown>[];
  /** Audio bytes per item (decoded from base64), in commit order. */
  readonly items: { id: string; bytes: Buffer }[];
  /** All audio bytes received. */
  audio(): Buffer;
  /** Base64 payloads that did not decode to whole 16-bit samples, and other protocol slips. */
  readonly problems: string[];
  /** Server events sent. */
  readonly sent: Record<string, unknown>[];
  closed: boolean;
  closeCode: number | undefined;
}

export interface RealtimeServer {
  /** `wss://127.0.0.1:{port}/v1/realtime`. */
  readonly url: string;
  readonly origin: string;
  readonly ca: string;
  readonly connections: ServerConnection[];
  close(): Promise<void>;
}

export async function startRealtimeServer(options: RealtimeServerOptions = {}): Promise<RealtimeServer> {
  const cert = await getTestCertificate();
  const server = https.createServer({ cert: cert.cert, key: cert.key });
  const wss = new WebSocketServer({ noServer: true });
  const connections: ServerConnection[] = [];
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('upgrade', (req, socket, head) => {
    if (options.refuseStatus) {
      socket.end(
        `HTTP/1.1 ${options.refuseStatus} Refused\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{"error":{"message":"refused"}}`,
      );
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const url = new URL(req.url ?? '/', 'https://localhost');
      serve(ws, {
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        headers: { ...req.headers },
      });
    });
  });

  let eventSeq = 0;
  let itemSeq = 0;
  function serve(ws: WebSocket, info: Pick<ServerConnection, 'path' | 'query' | 'headers'>): void {
    const chunks: Buffer[] = [];
    const connection: ServerConnection = {
      ...info,
      events: [],
      items: [],
      audio: () => Buffer.concat(chunks),
      problems: [],
      sent: [],
      closed: false,
      closeCode: undefined,
    };
    connections.push(connection);
    let vad = false;
    let received = 0;
    let current: Buffer[] = [];
    let currentBytes = 0;
    let currentId = `item_${++itemSeq}`;
    let previousId: string | null = null;
    let deltas = 0;
    const deltaBytes = ((options.deltaEveryMs ?? 250) * RATE * 2) / 1000;
    const segmentBytes = ((options.vadSegmentMs ?? 400) * RATE * 2) / 1000;

    const send = (event: Record<string, unknown>) => {
      const full = { event_id: `event_${++eventSeq}`, ...event };
      connection.sent.push(full);
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(full));
    };

    // The item the buffer holds so far becomes a committed user item; its transcript follows.
    const commit = () => {
      const bytes = Buffer.concat(current);
      const id = currentId;
      connection.items.push({ id, bytes });
      send({ type: 'input_audio_buffer.committed', previous_item_id: previousId, item_id: id });
      previousId = id;
      current = [];
      currentBytes = 0;
      currentId = `item_${++itemSeq}`;
      deltas = 0;
      setImmediate(() => {
        if (options.neverComplete) return;
        if (options.failTranscription) {
          send({
            type: 'conversation.item.input_audio_transcription.failed',
            item_id: id,
            content_index: 0,
            error: {
              type: 'transcription_error',
              code: 'audio_unintelligible',
              message: 'The audio could not be transcribed.',
              param: null,
            },
          });
          return;
        }
        send({ type: 'conversation.item.input_audio_transcription.delta', item_id: id, content_index: 0, delta: 'done' });
        send({
          type: 'conversation.item.input_audio_transcription.completed',
          item_id: id,
          content_index: 0,
          transcript: `heard ${bytes.length / 2} samples`,
          usage: { type: 'duration', seconds: bytes.length / 2 / RATE },
        });
      });
    };

    send({ type: 'session.created', session: { type: 'transcription', object: 'realtime.transcription_session', id: 'sess_test' } });

    ws.on('message', (raw) => {
      let event: Record<string, unknown>;
      try {
        event = JSON.parse(String(raw)) as Record<string, unknown>;
      } catch {
        connection.problems.push('a message that is not JSON');
        return;
      }
      connection.events.push(event);
      switch (event.type) {
        case 'session.update': {
          const session = event.session as Record<string, unknown> | undefined;
          if (options.rejectSessionUpdate || session?.type !== 'transcription') {
            send({
              type: 'error',
              error: {
                type: 'invalid_request_error',
                code: 'invalid_value',
                message: 'Invalid session configuration.',
                param: 'session',
                event_id: event.event_id ?? null,
              },
            });
            return;
          }
          const input = (session.audio as { input?: Record<string, unknown> } | undefined)?.input;
          vad = (input?.turn_detection as { type?: string } | null | undefined)?.type === 'server_vad';
          send({ type: 'session.updated', session: { ...session, object: 'realtime.transcription_session', id: 'sess_test' } });
          return;
        }
        case 'input_audio_buffer.append': {
          if (typeof event.audio !== 'string') {
            connection.problems.push('an append without audio');
            return;
          }
          const bytes = Buffer.from(event.audio, 'base64');
          if (bytes.length % 2 !== 0) connection.problems.push(`an append of ${bytes.length} bytes (not whole 16-bit samples)`);
          chunks.push(bytes);
          current.push(bytes);
          received += bytes.length;
          currentBytes += bytes.length;
          if (options.dropAfterBytes !== undefined && received >= options.dropAfterBytes) {
            ws.terminate();
            return;
          }
          // Deltas while the audio arrives (a live transcription model).
          while (currentBytes >= (deltas + 1) * deltaBytes) {
            deltas += 1;
            send({ type: 'conversation.item.input_audio_transcription.delta', item_id: currentId, content_index: 0, delta: `w${deltas} ` });
          }
          if (vad && currentBytes >= segmentBytes) {
            send({ type: 'input_audio_buffer.speech_stopped', audio_end_ms: Math.round((received / 2 / RATE) * 1000), item_id: currentId });
            commit();
          }
          return;
        }
        case 'input_audio_buffer.commit':
          if (currentBytes === 0) {
            send({
              type: 'error',
              error: {
                type: 'invalid_request_error',
                code: 'input_audio_buffer_commit_empty',
                message:
                  'Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, but buffer only has 0.00ms of audio.',
                param: null,
                event_id: event.event_id ?? null,
              },
            });
            return;
          }
          commit();
          return;
        case 'input_audio_buffer.clear':
          current = [];
          currentBytes = 0;
          send({ type: 'input_audio_buffer.cleared' });
          return;
        default:
          connection.problems.push(`an unexpected event ${String(event.type)}`);
      }
    });
    ws.on('close', (code) => {
      connection.closed = true;
      connection.closeCode = code;
    });
    ws.on('error', () => undefined);
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `wss://127.0.0.1:${port}/v1/realtime`,
    origin: `https://127.0.0.1:${port}`,
    ca: cert.ca,
    connections,
    async close() {
      for (const client of wss.clients) client.terminate();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      wss.close();
    },
  };
}
