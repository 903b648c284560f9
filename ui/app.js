import { useEffect, useState } from '/vendor/hooks.mjs';
import { api, html, render, subscribe } from '/api.js';
import { Live } from '/live.js';
import { History } from '/history.js';
import { Settings } from '/settings.js';
import { Devices } from '/devices.js';

const TABS = [
  ['live', 'Live'],
  ['history', 'History'],
  ['settings', 'Settings'],
  ['devices', 'Devices'],
];

function tabOf(hash) {
  const name = hash.replace(/^#/, '');
  return TABS.some(([t]) => t === name) ? name : 'live';
}

/** Live state, fed by the event stream: sessions not ended yet, the last result, warnings. */
function useLive() {
  const [live, setLive] = useState({
    connected: false,
    sessions: {},
    level: 0,
    last: undefined,
    warnings: [],
    generation: undefined,
    status: undefined,
  });
  useEffect(
    () =>
      subscribe(
        (event, data) =>
          setLive((s) => {
            switch (event) {
              case 'snapshot': {
                const sessions = {};
                for (const x of data.sessions ?? []) sessions[x.id] = x;
                return { ...s, connected: true, sessions, last: data.last, status: data.status, generation: data.status?.configGeneration };
              }
              case 'session':
                return {
                  ...s,
                  sessions: { ...s.sessions, [data.id]: { id: data.id, mode: data.mode, state: data.state, level: 0, interim: '' } },
                };
              case 'state': {
                const current = s.sessions[data.id];
                if (!current || ['done', 'failed', 'cancelled'].includes(data.state)) return s;
                return { ...s, sessions: { ...s.sessions, [data.id]: { ...current, state: data.state } } };
              }
              case 'level': {
                const current = s.sessions[data.id];
                return current ? { ...s, level: data.rms, sessions: { ...s.sessions, [data.id]: { ...current, level: data.rms } } } : s;
              }
              case 'interim': {
                const current = s.sessions[data.id];
                return current
                  ? { ...s, sessions: { ...s.sessions, [data.id]: { ...current, interim: data.text, interimStage: data.stage } } }
                  : s;
              }
              case 'final': {
                const { [data.id]: _ended, ...rest } = s.sessions;
                const notes = [...(data.warnings ?? []), ...(data.error ? [data.error.message] : [])].map((text) => ({
                  id: data.id,
                  text,
                  at: Date.now(),
                }));
                return { ...s, sessions: rest, last: data, level: 0, warnings: [...notes, ...s.warnings].slice(0, 20) };
              }
              case 'config':
                return { ...s, generation: data.generation };
              default:
                return s;
            }
          }),
        () => setLive((s) => ({ ...s, connected: true, denied: undefined })),
        () => {
          setLive((s) => ({ ...s, connected: false }));
          // A stream that fails for want of a login (a restarted daemon, a tab opened without the link) says so.
          api('/status').catch((err) => err.status === 401 && setLive((s) => ({ ...s, denied: err.message })));
        },
      ),
    [],
  );
  return live;
}

function App() {
  const [tab, setTab] = useState(tabOf(location.hash));
  useEffect(() => {
    const on = () => setTab(tabOf(location.hash));
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  const live = useLive();
  return html`
    <header class="top">
      <span class="brand">koto</span>
      <nav class="tabs">
        ${TABS.map(([name, label]) => html`<a href=${`#${name}`} class=${tab === name ? 'active' : ''}>${label}</a>`)}
      </nav>
      <span class=${`link ${live.connected ? 'up' : 'down'}`} title="connection to the daemon">${live.connected ? 'connected' : 'reconnecting…'}</span>
    </header>
    ${live.denied && html`<p class="banner error" role="alert">${live.denied}</p>`}
    <main class="view">
      ${tab === 'live' && html`<${Live} live=${live} />`}
      ${tab === 'history' && html`<${History} live=${live} />`}
      ${tab === 'settings' && html`<${Settings} live=${live} />`}
      ${tab === 'devices' && html`<${Devices} />`}
    </main>
  `;
}

const root = document.getElementById('app');
root.textContent = '';
render(html`<${App} />`, root);
