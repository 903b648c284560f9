/**
 * A minimal loopback TLS WebSocket server for the Realtime transcription protocol, for the
 * benches (the fuller one with fault modes lives in `test/realtime/server.ts`, which the benches
 * do not import). Push-to-talk only: it acknowledges the session update, takes every
 * `input_audio_buffer.append`, and answers each `input_audio_buffer.commit` with `committed`
 * then, at once (no think time: the server has heard the audio as it arrived), the final
 * `conversation.item.input_audio_transcription.completed` carrying `transcript`.
 */
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { getTestCertificate } from '../../src/testing/tls.ts';

export const REALTIME_RATE = 24_000;

export interface BenchRealtimeServer {
  readonly port: number;
  readonly ca: string;
  /** Sessions served (one WebSocket each). */
  readonly stats: { connections: number; commits: number; audioBytes: number; problems: string[] };
  close(): Promise<void>;
}

export async function startBenchRealtimeServer(options: { transcript: string }): Promise<BenchRealtimeServer> {
  const cert = await getTestCertificate();
  const server = https.createServer({ cert: cert.cert, key: cert.key });
  const wss = new WebSocketServer({ noServer: true });
  const sockets = new Set<Socket>();
  const stats = { connections: 0, commits: 0, audioBytes: 0, problems: [] as string[] };
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => serve(ws)));

  let seq = 0;
  function serve(ws: WebSocket): void {
    stats.connections += 1;
    let item = 0;
    let bytes = 0;
    const send = (event: Record<string, unknown>) => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ event_id: `event_${++seq}`, ...event }));
    };
    send({ type: 'session.created', session: { type: 'transcription', object: 'realtime.transcription_session', id: 'sess_bench' } });
    ws.on('message', (raw) => {
      let event: Record<string, unknown>;
      try {
        event = JSON.parse(String(raw)) as Record<string, unknown>;
      } catch {
        stats.problems.push('non-JSON message');
        return;
      }
      switch (event.type) {
        case 'session.update':
          send({
            type: 'session.updated',
            session: { ...(event.session as object), object: 'realtime.transcription_session', id: 'sess_bench' },
          });
          return;
        case 'input_audio_buffer.append': {
          const n = typeof event.audio === 'string' ? Buffer.from(event.audio, 'base64').length : 0;
          bytes += n;
          stats.audioBytes += n;
          return;
        }
        case 'input_audio_buffer.commit': {
          const id = `item_${++item}`;
          stats.commits += 1;
          send({ type: 'input_audio_buffer.committed', previous_item_id: null, item_id: id });
          send({
            type: 'conversation.item.input_audio_transcription.completed',
            item_id: id,
            content_index: 0,
            transcript: options.transcript,
            usage: { type: 'duration', seconds: bytes / 2 / REALTIME_RATE },
          });
          bytes = 0;
          return;
        }
        case 'input_audio_buffer.clear':
          bytes = 0;
          send({ type: 'input_audio_buffer.cleared' });
          return;
        default:
          stats.problems.push(`unexpected event ${String(event.type)}`);
      }
    });
    ws.on('error', () => undefined);
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    ca: cert.ca,
    stats,
    async close() {
      for (const client of wss.clients) client.terminate();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      wss.close();
    },
  };
}
