import { useState } from '/vendor/hooks.mjs';
import { api, copy, html, STATE_LABEL } from '/api.js';
import { Waterfall } from '/history.js';

/** The session the live view follows: the one recording, else the newest still being finished. */
function current(sessions) {
  const all = Object.values(sessions);
  return all.find((s) => s.state === 'recording') ?? all.at(-1);
}

export function Live({ live }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(undefined);
  const session = current(live.sessions);
  const state = session?.state ?? 'idle';
  const recording = state === 'recording';
  const act = async (action) => {
    setBusy(true);
    setError(undefined);
    try {
      await api(`/control/${action}`, { method: 'POST', body: {} });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const level = recording ? Math.min(1, Math.sqrt(session.level ?? 0) * 1.6) : 0;
  const last = live.last;
  return html`
    <section class="live">
      <div class="state-row">
        <span class=${`state state-${state}`} data-testid="state">${STATE_LABEL[state] ?? state}</span>
        <div class="meter" title="input level" aria-label="input level"><div class="meter-bar" data-testid="level" style=${{ width: `${Math.round(level * 100)}%` }}></div></div>
      </div>
      <div class="buttons">
        <button class="primary" data-testid="start" disabled=${busy || recording} onClick=${() => act('start')}>Start</button>
        <button data-testid="stop" disabled=${busy || !recording} onClick=${() => act('stop')}>Stop</button>
        <button class="danger" data-testid="cancel" disabled=${busy || !session} onClick=${() => act('cancel')}>Cancel</button>
      </div>
      ${error && html`<p class="error" role="alert">${error.message}${error.fix ? html` — ${error.fix}` : ''}</p>`}
      ${
        Object.keys(live.sessions).length > 1 &&
        html`<p class="muted">${Object.keys(live.sessions).length - 1} more session(s) finishing, in order: ${Object.values(live.sessions)
          .filter((s) => s !== session)
          .map((s) => `${s.id} (${STATE_LABEL[s.state] ?? s.state})`)
          .join(', ')}</p>`
      }
      <h3>Hearing</h3>
      <p class="interim" data-testid="interim">${session?.interim || html`<span class="muted">${session ? '…' : 'Nothing yet: press Start or your hotkey.'}</span>`}</p>
      <h3>Last result</h3>
      ${
        last
          ? html`<div class="final">
            <p data-testid="final" class=${last.state === 'done' ? '' : 'muted'}>${last.text ?? last.raw ?? html`<em>${last.error?.message ?? last.state}</em>`}</p>
            <div class="meta">
              <span class=${`state state-${last.state}`}>${STATE_LABEL[last.state] ?? last.state}</span>
              ${last.fallback && html`<span class="badge warn">raw text (correction failed)</span>`}
              ${last.timings?.total !== undefined && html`<span class="muted">${last.timings.total} ms</span>`}
              ${last.text && html`<button class="small" onClick=${() => copy(last.text)}>Copy</button>`}
            </div>
            <${Waterfall} timings=${last.timings} />
          </div>`
          : html`<p class="muted">No dictation since the panel opened.</p>`
      }
      ${
        live.warnings.length > 0 &&
        html`<h3>Warnings</h3>
        <ul class="warnings" data-testid="warnings">
          ${live.warnings.map((w) => html`<li><code>${w.id}</code> ${w.text}</li>`)}
        </ul>`
      }
    </section>
  `;
}
