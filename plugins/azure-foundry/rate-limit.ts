/**
 * Azure's 429s: it says how long to wait in `retry-after-ms` (and `x-ms-retry-after-ms`), more
 * precisely than `Retry-After`. The wire code maps a 429 to KOTO_ERR_RATE_LIMITED but keeps only
 * `Retry-After`, so an interceptor composed onto the kernel's client notes the headers of each
 * answer; the plugin puts the wait into the error, and the kernel's retry honours it.
 */

import type { Dispatcher } from 'undici';
import { KotoError } from 'koto-voice';
import { retryAfterSeconds } from 'koto-voice/openai-wire';

/** What the interceptor noted about the last answer of one call. */
export interface ResponseNotes {
  status: number | undefined;
  /** Wait asked for by a 429, in ms. */
  retryAfterMs: number | undefined;
  /** Azure's request id (`apim-request-id` / `x-request-id`), for support tickets. */
  requestId: string | undefined;
}

export function responseNotes(): ResponseNotes {
  return { status: undefined, retryAfterMs: undefined, requestId: undefined };
}

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The wait a response asks for: `retry-after-ms`, `x-ms-retry-after-ms`, then `Retry-After`. */
export function retryAfterMs(headers: Record<string, string | string[] | undefined>): number | undefined {
  for (const name of ['retry-after-ms', 'x-ms-retry-after-ms']) {
    const value = header(headers, name)?.trim();
    if (value && /^\d+(\.\d+)?$/.test(value)) return Math.ceil(Number(value));
  }
  const seconds = retryAfterSeconds(header(headers, 'retry-after'));
  return seconds === undefined ? undefined : Math.ceil(seconds * 1000);
}

/**
 * An undici interceptor (`api.http.compose(noteResponses(notes))`): requests still go through
 * the kernel's client, unchanged; the response headers are read on the way back.
 */
export function noteResponses(notes: ResponseNotes): Dispatcher.DispatcherComposeInterceptor {
  return (dispatch) => (opts, handler) => {
    const observed: Dispatcher.DispatchHandler = {
      onRequestStart: (controller, context) => handler.onRequestStart?.(controller, context),
      onRequestUpgrade: (controller, statusCode, headers, socket) => handler.onRequestUpgrade?.(controller, statusCode, headers, socket),
      onResponseStart: (controller, statusCode, headers, statusMessage) => {
        notes.status = statusCode;
        notes.retryAfterMs = statusCode === 429 ? retryAfterMs(headers) : undefined;
        notes.requestId = header(headers, 'apim-request-id') ?? header(headers, 'x-request-id') ?? header(headers, 'x-ms-request-id');
        handler.onResponseStart?.(controller, statusCode, headers, statusMessage);
      },
      onResponseData: (controller, chunk) => handler.onResponseData?.(controller, chunk),
      onResponseEnd: (controller, trailers) => handler.onResponseEnd?.(controller, trailers),
      onResponseError: (controller, error) => handler.onResponseError?.(controller, error),
    };
    return dispatch(opts, observed);
  };
}

export function isRateLimit(err: unknown): err is KotoError {
  return KotoError.is(err) && err.code === 'KOTO_ERR_RATE_LIMITED' && err.details.status === 429;
}
