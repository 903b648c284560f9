import { useEffect, useState } from '/vendor/hooks.mjs';
import { api, html } from '/api.js';

/** Input devices (pick one: written to audio.device in the config), the doctor's checks, the daemon. */
export function Devices() {
  const [devices, setDevices] = useState(undefined);
  const [status, setStatus] = useState(undefined);
  const [doctor, setDoctor] = useState(undefined);
  const [running, setRunning] = useState(false);
  const [message, setMessage] = useState(undefined);
  const load = () => {
    api('/devices').then(setDevices, (err) => setDevices({ devices: [], error: err }));
    api('/status').then(setStatus, () => undefined);
  };
  useEffect(load, []);
  const pick = async (name) => {
    setMessage(undefined);
    try {
      const { hash } = await api('/settings');
      await api('/settings', { method: 'PUT', body: { hash, changes: [{ path: ['audio', 'device'], value: name }] } });
      setMessage({ ok: true, text: `audio.device set to ${name}; the daemon reloads the config and records from it next time` });
      setDevices({ ...devices, device: name });
    } catch (err) {
      setMessage({ ok: false, text: err.message });
    }
  };
  const runDoctor = async () => {
    setRunning(true);
    try {
      setDoctor(await api('/doctor', { method: 'POST', body: {} }));
    } catch (err) {
      setDoctor({ checks: [{ check: 'doctor', ok: false, detail: err.message }] });
    } finally {
      setRunning(false);
    }
  };
  const origins = Object.entries(status?.transport?.origins ?? {});
  return html`
    <section class="devices">
      <h3>Input devices ${devices && html`<span class="muted">(source ${devices.source})</span>`}</h3>
      ${!devices && html`<p class="muted">Loading…</p>`}
      ${devices?.error && html`<p class="error">${devices.error.message}${devices.error.fix ? ` — ${devices.error.fix}` : ''}</p>`}
      ${
        devices?.devices?.length > 0 &&
        html`<table data-testid="device-list"><thead><tr><th>device</th><th>backend</th><th></th></tr></thead><tbody>
        ${devices.devices.map(
          (d) => html`<tr>
            <td><b>${d.name}</b>${d.description ? html` <span class="muted">${d.description}</span>` : ''}${d.isDefault ? html` <span class="badge">system default</span>` : ''}</td>
            <td class="muted">${d.backend}</td>
            <td class="num">${devices.device === d.name ? html`<span class="badge ok">in use</span>` : html`<button class="small" onClick=${() => pick(d.name)}>Use</button>`}</td>
          </tr>`,
        )}
      </tbody></table>`
      }
      ${message && html`<p class=${message.ok ? 'ok' : 'error'} role="status">${message.text}</p>`}
      <h3>Doctor</h3>
      <div class="buttons"><button onClick=${runDoctor} disabled=${running} data-testid="doctor">${running ? 'Checking…' : 'Run the checks'}</button></div>
      ${
        doctor &&
        html`<ul class="checks" data-testid="checks">
        ${doctor.checks.map((c) => html`<li class=${c.ok ? 'ok' : 'error'}><b>${c.ok ? 'ok' : 'FAIL'}</b> ${c.check}: <span>${c.detail}</span></li>`)}
      </ul>`
      }
      ${
        status &&
        html`<h3>Daemon</h3>
        <dl>
          <dt>pid</dt><dd>${status.pid}</dd>
          <dt>config</dt><dd><code>${status.configFile ?? 'none'}</code> (generation ${status.configGeneration})</dd>
          ${status.lastConfigError && html`<dt>last reload</dt><dd class="error">${status.lastConfigError.message}</dd>`}
          <dt>pre-roll</dt><dd>${status.audio?.preRollMs ?? 0} ms</dd>
          ${Object.entries(status.plugins ?? {}).map(([name, r]) => html`<dt>${name}</dt><dd>${r.summary ?? JSON.stringify(r)}</dd>`)}
        </dl>
        <h3>Connections</h3>
        ${
          origins.length === 0
            ? html`<p class="muted">No provider contacted yet.</p>`
            : html`<table><thead><tr><th>origin</th><th>protocol</th><th class="num">TLS handshakes</th><th class="num">requests</th></tr></thead><tbody>
              ${origins.map(([o, s]) => html`<tr><td>${o}</td><td>${s.lastProtocol ?? '-'}</td><td class="num">${s.tlsHandshakes}</td><td class="num">${s.requests}</td></tr>`)}
            </tbody></table>`
        }`
      }
    </section>
  `;
}
