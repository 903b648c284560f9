// The page's only door to the daemon: same-origin JSON requests (the session cookie rides along)
// and one event stream. See docs/ui.md for the routes.
import { h, render } from '/vendor/preact.mjs';
import htm from '/vendor/htm.mjs';

export const html = htm.bind(h);
export { h, render };

// The page key (stored by /login.js) lives in this origin's localStorage: scoped by port, unlike the cookie.
export const key = () => localStorage.getItem('koto-ui-key') ?? '';
/** For URLs the browser fetches by itself (event stream, audio player), which cannot carry a header. */
export const withKey = (url) => `${url}${url.includes('?') ? '&' : '?'}key=${encodeURIComponent(key())}`;

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `HTTP ${status}`);
    this.status = status;
    this.fix = body?.error?.fix;
    this.code = body?.error?.code;
    this.fields = body?.error?.fields ?? [];
  }
}

export async function api(path, { method = 'GET', body } = {}) {
  const res = await fetch(`/api${path}`, {
    method,
    headers: { 'x-koto-key': key(), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

/** Server-sent events: `on(event, data)` for each; reconnects by itself (EventSource). */
export function subscribe(on, onOpen, onError) {
  const source = new EventSource(withKey('/api/events'));
  for (const name of ['snapshot', 'session', 'state', 'recording', 'level', 'interim', 'final', 'config']) {
    source.addEventListener(name, (e) => on(name, JSON.parse(e.data)));
  }
  source.onopen = () => onOpen?.();
  source.onerror = () => onError?.();
  return () => source.close();
}

export const STATE_LABEL = {
  idle: 'idle',
  recording: 'recording',
  transcribing: 'transcribing',
  correcting: 'correcting',
  output: 'delivering',
  done: 'done',
  failed: 'failed',
  cancelled: 'cancelled',
  interrupted: 'interrupted',
};

export function copy(text) {
  return navigator.clipboard.writeText(text ?? '');
}

export function when(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
}
