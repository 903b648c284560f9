import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { badResponse, isRecord, MAX_RESPONSE_BYTES, transportError, type SentResponse, type WireTarget } from './client.ts';

export type { EventSourceMessage };

/** Largest single SSE event buffered while it is incomplete. */
const MAX_EVENT_BYTES = 1024 * 1024;

/**
 * The events of a `text/event-stream` body, in order. Chunks may split events, lines and
 * multi-byte characters anywhere: bytes are decoded as a UTF-8 stream and the parsing is
 * eventsource-parser's. The whole stream is capped at the target's response limit.
 */
export async function* sseEvents(
  target: WireTarget,
  response: Pick<SentResponse, 'url' | 'body'>,
  signal: AbortSignal,
  what: string,
): AsyncGenerator<EventSourceMessage> {
  const limit = target.maxResponseBytes ?? MAX_RESPONSE_BYTES;
  const pending: EventSourceMessage[] = [];
  let failure: Error | undefined;
  const parser = createParser({
    onEvent: (event) => pending.push(event),
    onError: (err) => {
      // Unknown fields are ignored, as the SSE spec says; an overlong event is not.
      if (err.type === 'max-buffer-size-exceeded') failure ??= badResponse(target, 'an SSE event exceeds 1 MB');
    },
    maxBufferSize: MAX_EVENT_BYTES,
  });
  const decoder = new TextDecoder('utf-8');
  let size = 0;
  try {
    const iterator = (response.body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    for (;;) {
      let next: IteratorResult<Buffer>;
      try {
        next = await iterator.next();
      } catch (err) {
        throw transportError(target, response.url, err, signal, what, 'response');
      }
      if (next.done) break;
      size += next.value.length;
      if (size > limit) throw badResponse(target, `the event stream is larger than ${Math.round(limit / (1024 * 1024))} MB`);
      parser.feed(decoder.decode(next.value, { stream: true }));
      if (failure) throw failure;
      while (pending.length > 0) yield pending.shift()!;
    }
    parser.feed(decoder.decode());
    if (failure) throw failure;
    while (pending.length > 0) yield pending.shift()!;
  } finally {
    // Stopped early (an error, `[DONE]` with bytes after it, an abort): release the stream.
    if (!response.body.destroyed) response.body.destroy();
  }
}

/** The JSON payload of an SSE event; anything else is a `KOTO_ERR_BAD_RESPONSE`. */
export function eventJson(target: WireTarget, event: EventSourceMessage): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(event.data) as unknown;
  } catch {
    throw badResponse(target, `an SSE event${event.event ? ` (${event.event})` : ''} whose data is not JSON`);
  }
  if (!isRecord(value)) throw badResponse(target, 'an SSE event whose data is not a JSON object');
  return value;
}

/** True when a response body is an event stream (servers may ignore `stream: true`). */
export function isEventStream(contentType: string): boolean {
  return contentType.startsWith('text/event-stream');
}
