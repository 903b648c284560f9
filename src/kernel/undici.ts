/**
 * The only module that loads undici, and only when it is first needed (the first request, a
 * WebSocket, a transport rebuild): an idle daemon or a command that sends nothing never pays for
 * the HTTP client (about 25 MiB of resident memory with the parts of Node it pulls in).
 *
 * Loading npm undici installs its own Agent as the process-wide dispatcher of Node's built-in
 * `fetch` (the legacy global slot), which would silently change how the host application's fetch
 * behaves. We remember the slot's value before the load and put it back afterwards; an unset slot
 * lets Node create its default lazily again, as if undici had never been loaded.
 */
import { createRequire } from 'node:module';
import type * as Undici from 'undici';

const LEGACY_SLOT = Symbol.for('undici.globalDispatcher.1');
let loaded: typeof Undici | undefined;

/** undici's exports, loaded synchronously on first call (undici is CommonJS). */
export function undici(): typeof Undici {
  if (loaded) return loaded;
  const slots = globalThis as unknown as Record<symbol, unknown>;
  const before = slots[LEGACY_SLOT];
  loaded = createRequire(import.meta.url)('undici') as typeof Undici;
  if (slots[LEGACY_SLOT] !== before) {
    try {
      slots[LEGACY_SLOT] = before;
    } catch {
      // A frozen globalThis: nothing was installed there either.
    }
  }
  return loaded;
}

export type { Dispatcher as DispatcherType } from 'undici';
