import { useEffect, useState } from '/vendor/hooks.mjs';
import { api, html } from '/api.js';

/** The daemon's own view: config, connections, plugins' reports. */
export function Devices() {
  const [status, setStatus] = useState(undefined);
  const [error, setError] = useState(undefined);
  useEffect(() => {
    api('/status').then(setStatus, setError);
  }, []);
  if (error) return html`<p class="error">${error.message}</p>`;
  if (!status) return html`<p class="muted">Loading…</p>`;
  const origins = Object.entries(status.transport?.origins ?? {});
  return html`
    <section class="devices">
      <h3>Daemon</h3>
      <dl>
        <dt>pid</dt><dd>${status.pid}</dd>
        <dt>config</dt><dd><code>${status.configFile ?? 'none'}</code> (generation ${status.configGeneration})</dd>
        ${status.lastConfigError && html`<dt>last reload</dt><dd class="error">${status.lastConfigError.message}</dd>`}
        <dt>pre-roll</dt><dd>${status.audio?.preRollMs ?? 0} ms</dd>
        ${Object.entries(status.plugins ?? {}).map(([name, r]) => html`<dt>${name}</dt><dd>${r.summary ?? JSON.stringify(r)}</dd>`)}
      </dl>
      <h3>Connections</h3>
      ${origins.length === 0
        ? html`<p class="muted">No provider contacted yet.</p>`
        : html`<table><thead><tr><th>origin</th><th>protocol</th><th class="num">TLS handshakes</th><th class="num">requests</th></tr></thead><tbody>
            ${origins.map(([o, s]) => html`<tr><td>${o}</td><td>${s.lastProtocol ?? '-'}</td><td class="num">${s.tlsHandshakes}</td><td class="num">${s.requests}</td></tr>`)}
          </tbody></table>`}
    </section>
  `;
}
