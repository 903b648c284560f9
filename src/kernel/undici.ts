/**
 * The only module that imports undici. Importing npm undici installs its own Agent as the
 * process-wide dispatcher of Node's built-in `fetch` (the legacy global slot), which would
 * silently change how the host application's fetch behaves. We remember the slot's value
 * before the import and put it back afterwards; an unset slot lets Node create its default
 * lazily again, as if undici had never been imported.
 */
const LEGACY_SLOT = Symbol.for('undici.globalDispatcher.1');
const slots = globalThis as unknown as Record<symbol, unknown>;
const before = slots[LEGACY_SLOT];

const undici = await import('undici');

if (slots[LEGACY_SLOT] !== before) {
  try {
    slots[LEGACY_SLOT] = before;
  } catch {
    // A frozen globalThis: nothing was installed there either.
  }
}

export const { Agent, Dispatcher, EnvHttpProxyAgent, ProxyAgent, WebSocket, buildConnector, FormData, errors } = undici;
export type { Dispatcher as DispatcherType } from 'undici';
export default undici;
