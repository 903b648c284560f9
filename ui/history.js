import { useEffect, useRef, useState } from '/vendor/hooks.mjs';
import { api, copy, html, STATE_LABEL, when, withKey } from '/api.js';

const PAGE = 50;

const STAGES = [
  ['recording', 'capture'],
  ['asr', 'upload + ASR'],
  ['transcript', 'transforms'],
  ['correction', 'correction'],
  ['output', 'output'],
];

/** Stages in the order they ran, each starting where the previous ended (they run one after another). */
export function Waterfall({ timings }) {
  let offset = 0;
  const rows = [];
  for (const [key, label] of STAGES) {
    const ms = timings?.[key];
    if (typeof ms !== 'number') continue;
    rows.push({ key, label, start: offset, ms, ttft: key === 'correction' ? timings.correctionFirstToken : undefined });
    offset += ms;
  }
  const total = Math.max(timings?.total ?? 0, offset, 1);
  if (rows.length === 0) return html`<p class="muted">No timings were recorded for this session.</p>`;
  const pct = (v) => `${((v / total) * 100).toFixed(2)}%`;
  return html`
    <div class="waterfall" data-testid="waterfall">
      ${rows.map(
        (r) => html`<div class="wf-row" data-stage=${r.key}>
          <span class="wf-label">${r.label}</span>
          <div class="wf-track">
            <div class=${`wf-bar wf-${r.key}`} style=${{ left: pct(r.start), width: pct(Math.max(r.ms, total / 400)) }}></div>
            ${r.ttft !== undefined && html`<div class="wf-ttft" title="first token" style=${{ left: pct(r.start + r.ttft) }}></div>`}
          </div>
          <span class="wf-ms">${r.ms} ms${r.ttft !== undefined ? html` <span class="muted">(first token ${r.ttft} ms)</span>` : ''}</span>
        </div>`,
      )}
      <div class="wf-row wf-total"><span class="wf-label">total</span><div class="wf-track"></div><span class="wf-ms">${timings.total ?? offset} ms</span></div>
    </div>
  `;
}

function Details({ entry, templates, onChanged }) {
  const [message, setMessage] = useState(undefined);
  const [busy, setBusy] = useState(false);
  const [template, setTemplate] = useState(templates[0] ?? '');
  const run = async (label, fn) => {
    setBusy(true);
    setMessage(undefined);
    try {
      const result = await fn();
      setMessage({ ok: true, text: `${label}: ${result?.text ?? result?.message ?? 'done'}` });
      onChanged();
    } catch (err) {
      setMessage({ ok: false, text: `${label} failed: ${err.message}${err.fix ? ` — ${err.fix}` : ''}` });
    } finally {
      setBusy(false);
    }
  };
  return html`
    <div class="details" data-testid="details">
      <div class="texts">
        <div><h4>Final</h4><p>${entry.text ?? html`<span class="muted">—</span>`}</p></div>
        <div><h4>Raw transcript</h4><p>${entry.raw ?? html`<span class="muted">—</span>`}</p></div>
      </div>
      <p class="meta">
        ${entry.asrProvider && html`<span>ASR <b>${entry.asrProvider}</b> ${entry.asrModel ?? ''}</span>`}
        ${entry.correctionProvider && html`<span>correction <b>${entry.correctionProvider}</b> ${entry.correctionModel ?? ''}</span>`}
        ${entry.retryOf && html`<span>retry of <code>${entry.retryOf}</code></span>`}
        <span class="muted">${entry.input}</span>
      </p>
      ${entry.errorMessage && html`<p class="error">${entry.errorCode}: ${entry.errorMessage}</p>`}
      ${entry.warnings?.length > 0 && html`<ul class="warnings">${entry.warnings.map((w) => html`<li>${w}</li>`)}</ul>`}
      <h4>Where the time went</h4>
      <${Waterfall} timings=${entry.timings} />
      ${entry.hasAudio && html`<audio controls preload="none" src=${withKey(`/api/history/${encodeURIComponent(entry.id)}/audio`)} data-testid="player"></audio>`}
      <div class="buttons">
        <button disabled=${busy || !entry.hasAudio} data-testid="retry" onClick=${() => run('retry', () => api(`/history/${encodeURIComponent(entry.id)}/retry`, { method: 'POST', body: {} }))}>Retry</button>
        <button disabled=${busy || !(entry.text ?? entry.raw)} onClick=${() => run('deliver', () => api(`/history/${encodeURIComponent(entry.id)}/deliver`, { method: 'POST', body: {} }))}>Paste again</button>
        <button disabled=${!(entry.text ?? entry.raw)} onClick=${() => copy(entry.text ?? entry.raw).then(() => setMessage({ ok: true, text: 'copied' }))}>Copy</button>
        ${
          templates.length > 0 &&
          html`<span class="group">
          <select value=${template} onChange=${(e) => setTemplate(e.target.value)} aria-label="rewrite template">
            ${templates.map((t) => html`<option value=${t}>${t}</option>`)}
          </select>
          <button disabled=${busy || !(entry.text ?? entry.raw)} onClick=${() => run(`rewrite (${template})`, () => api(`/history/${encodeURIComponent(entry.id)}/rewrite`, { method: 'POST', body: { template } }))}>Rewrite</button>
        </span>`
        }
        <button
          class="danger"
          data-testid="delete"
          disabled=${busy}
          onClick=${() => confirm('Delete this session and its recording?') && run('delete', () => api(`/history/${encodeURIComponent(entry.id)}`, { method: 'DELETE' }))}
        >Delete</button>
      </div>
      ${message && html`<p class=${message.ok ? 'ok' : 'error'} role="status">${message.text}</p>`}
    </div>
  `;
}

export function History({ live }) {
  const [query, setQuery] = useState('');
  const [filters, setFilters] = useState({ state: '', provider: '', from: '', to: '' });
  const [data, setData] = useState({ entries: [], total: 0, providers: [], fullText: true });
  const [open, setOpen] = useState(undefined);
  const [templates, setTemplates] = useState([]);
  const [error, setError] = useState(undefined);
  const [tick, setTick] = useState(0);
  const [limit, setLimit] = useState(PAGE);
  const timer = useRef();
  useEffect(() => {
    api('/templates').then(setTemplates, () => undefined);
  }, []);
  useEffect(() => {
    clearTimeout(timer.current);
    timer.current = setTimeout(() => {
      const q = new URLSearchParams();
      if (query.trim()) q.set('q', query.trim());
      if (filters.state) q.set('state', filters.state);
      if (filters.provider) q.set('provider', filters.provider);
      if (filters.from) q.set('from', new Date(`${filters.from}T00:00:00`).toISOString());
      if (filters.to) q.set('to', new Date(new Date(`${filters.to}T00:00:00`).getTime() + 86_400_000).toISOString());
      q.set('limit', String(limit));
      api(`/history?${q}`).then((d) => {
        setData(d);
        setError(undefined);
      }, setError);
    }, 150);
    return () => clearTimeout(timer.current);
    // A finished session (live.last) refreshes the table.
  }, [query, filters, tick, limit, live.last?.id]);
  // A new search starts from the first page again.
  useEffect(() => setLimit(PAGE), [query, filters]);
  const set = (key) => (e) => setFilters({ ...filters, [key]: e.target.value });
  return html`
    <section class="history">
      <div class="toolbar">
        <input type="search" placeholder=${data.fullText ? 'Search raw and final text…' : 'Search (substring)…'} value=${query} onInput=${(e) => setQuery(e.target.value)} data-testid="search" aria-label="search" />
        <select value=${filters.state} onChange=${set('state')} aria-label="state">
          <option value="">any state</option>
          ${['done', 'failed', 'cancelled', 'interrupted'].map((s) => html`<option value=${s}>${s}</option>`)}
        </select>
        <select value=${filters.provider} onChange=${set('provider')} aria-label="provider">
          <option value="">any provider</option>
          ${data.providers.map((p) => html`<option value=${p}>${p}</option>`)}
        </select>
        <label>from <input type="date" value=${filters.from} onChange=${set('from')} /></label>
        <label>to <input type="date" value=${filters.to} onChange=${set('to')} /></label>
        <span class="muted">${data.total} session${data.total === 1 ? '' : 's'}</span>
      </div>
      ${error && html`<p class="error">${error.message}</p>`}
      <table class="sessions" data-testid="sessions">
        <thead><tr><th>When</th><th>State</th><th>Text</th><th>Models</th><th class="num">Total</th></tr></thead>
        <tbody>
          ${data.entries.map(
            (e) => html`
              <tr class=${`row ${open === e.id ? 'open' : ''}`} data-id=${e.id} onClick=${() => setOpen(open === e.id ? undefined : e.id)}>
                <td class="when">${when(e.startedAt)}</td>
                <td><span class=${`state state-${e.state}`}>${STATE_LABEL[e.state] ?? e.state}</span>${e.fallback ? html` <span class="badge warn" title="correction failed: raw text">raw</span>` : ''}</td>
                <td class="text">${e.text ?? e.raw ?? html`<span class="muted">${e.errorMessage ?? '—'}</span>`}</td>
                <td class="muted">${[e.asrModel, e.correctionModel].filter(Boolean).join(' → ')}</td>
                <td class="num">${e.timings?.total !== undefined ? `${e.timings.total} ms` : ''}</td>
              </tr>
              ${open === e.id && html`<tr class="details-row"><td colspan="5"><${Details} entry=${e} templates=${templates} onChanged=${() => setTick((t) => t + 1)} /></td></tr>`}
            `,
          )}
        </tbody>
      </table>
      ${data.entries.length === 0 && html`<p class="muted">No sessions match.</p>`}
      ${
        data.entries.length < data.total &&
        html`<div class="buttons"><button data-testid="more" onClick=${() => setLimit(Math.min(limit + PAGE, 500))} disabled=${limit >= 500}>
        Show more (${data.total - data.entries.length} older)</button>${limit >= 500 ? html`<span class="muted">narrow the search to see older sessions</span>` : ''}</div>`
      }
    </section>
  `;
}
