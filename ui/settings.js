import { useEffect, useState } from '/vendor/hooks.mjs';
import { api, html } from '/api.js';

const get = (obj, path) => path.reduce((o, k) => (o == null ? undefined : o[k]), obj);
const isSecret = (v) => v && typeof v === 'object' && '$hidden' in v;

/**
 * Edits the config file through the server: each changed field is sent as { path, value } and
 * applied to the YAML document there (comments and order kept), validated as a load would, and
 * written; the daemon's watcher reloads it. Secrets are write-only.
 */
export function Settings({ live }) {
  const [settings, setSettings] = useState(undefined);
  const [draft, setDraft] = useState({});
  const [files, setFiles] = useState({});
  const [errors, setErrors] = useState({});
  const [message, setMessage] = useState(undefined);
  const [saving, setSaving] = useState(false);
  const refresh = () => api('/settings').then(setSettings, (err) => setMessage({ ok: false, text: err.message }));
  // Edits made while a request is on its way are the user's newest: only what was discarded or
  // saved is dropped from the draft, never what was typed meanwhile.
  const discard = () => {
    setErrors({});
    setMessage(undefined);
    setDraft({});
    setFiles({});
    return refresh();
  };
  useEffect(() => void refresh(), []);
  if (!settings)
    return html`<section>${message ? html`<p class="error">${message.text}</p>` : html`<p class="muted">Loading…</p>`}</section>`;
  const values = settings.values ?? {};
  const key = (path) => path.join('.');
  const current = (path) => (key(path) in draft ? draft[key(path)].value : get(values, path));
  const change = (path, value) => setDraft({ ...draft, [key(path)]: { path, value } });
  const fieldError = (path) => errors[key(path)] && html`<span class="field-error" role="alert">${errors[key(path)]}</span>`;

  const text = (path, label, { placeholder = '', type = 'text', hint } = {}) => {
    const v = current(path);
    return html`<label class="field">
      <span>${label}</span>
      <input
        type=${type}
        name=${key(path)}
        value=${v ?? ''}
        placeholder=${hint && !placeholder ? '' : placeholder}
        onInput=${(e) => change(path, e.target.value === '' ? null : type === 'number' ? Number(e.target.value) : e.target.value)}
      />
      ${hint && html`<small class="muted">${hint}</small>`} ${fieldError(path)}
    </label>`;
  };
  const check = (path, label, fallback) => html`<label class="field check">
    <input type="checkbox" name=${key(path)} checked=${current(path) ?? fallback} onChange=${(e) => change(path, e.target.checked)} />
    <span>${label}</span> ${fieldError(path)}
  </label>`;
  const select = (path, label, options, fallbackLabel) => html`<label class="field">
    <span>${label}</span>
    <select name=${key(path)} value=${current(path) ?? ''} onChange=${(e) => change(path, e.target.value || null)}>
      <option value="">${fallbackLabel}</option>
      ${options.map((o) => html`<option value=${o}>${o}</option>`)}
    </select>
    ${fieldError(path)}
  </label>`;
  const secret = (path, label) => {
    const state = get(values, path)?.$hidden ?? 'not set';
    return html`<label class="field">
      <span>${label} <span class=${`badge ${state === 'set' ? 'ok' : ''}`}>${state}</span></span>
      <input type="password" autocomplete="off" name=${key(path)} placeholder=${state === 'set' ? 'enter a new value to replace it' : 'enter a value'} onInput=${(
        e,
      ) => {
        // Empty: leave the secret as it is (never a way to erase a key by accident).
        const { [key(path)]: _old, ...rest } = draft;
        setDraft(e.target.value ? { ...rest, [key(path)]: { path, value: e.target.value } } : rest);
      }} />
      ${fieldError(path)}
    </label>`;
  };
  const json = (path, label, hint) => {
    const k = key(path);
    const stored = get(values, path);
    const shown = k in draft ? draft[k].text : stored === undefined ? '' : JSON.stringify(stored, null, 2);
    return html`<label class="field">
      <span>${label}</span>
      <textarea
        name=${k}
        rows="5"
        class="code"
        value=${shown}
        onInput=${(e) => {
          let value;
          try {
            // Empty: the key is removed (its default applies).
            value = e.target.value.trim() === '' ? null : JSON.parse(e.target.value);
            setErrors({ ...errors, [k]: undefined });
          } catch {
            setErrors({ ...errors, [k]: 'not valid JSON' });
            value = undefined;
          }
          setDraft({ ...draft, [k]: { path, value, text: e.target.value, invalid: value === undefined } });
          // (value null = remove; undefined = not JSON yet)
        }}
      ></textarea>
      ${hint && html`<small class="muted">${hint}</small>`} ${fieldError(path)}
    </label>`;
  };
  const fileText = (name, label) => {
    const f = settings.files?.[name];
    if (!f) return html`<p class="muted">${label}: no file is set (${name} in the config names one).</p>`;
    return html`<label class="field">
      <span>${label} <code>${f.path}</code></span>
      <textarea name=${`file:${name}`} rows="6" class="code" value=${name in files ? files[name] : f.text} onInput=${(e) => setFiles({ ...files, [name]: e.target.value })}></textarea>
      ${fieldError([name])}
    </label>`;
  };

  const providers = Object.keys(values.providers ?? {});
  const dirty = Object.keys(draft).length > 0 || Object.keys(files).length > 0;
  const save = async (e) => {
    e.preventDefault();
    if (Object.values(draft).some((d) => d.invalid)) return setMessage({ ok: false, text: 'fix the fields marked first' });
    setSaving(true);
    setMessage(undefined);
    setErrors({});
    const sent = draft;
    const sentFiles = files;
    try {
      const changes = Object.values(sent).map(({ path, value }) => ({ path, value: value ?? null }));
      const result = await api('/settings', { method: 'PUT', body: { hash: settings.hash, changes, files: sentFiles } });
      setMessage({
        ok: true,
        text: result.changed || Object.keys(sentFiles).length ? 'Saved to the config file; the daemon reloads it.' : 'Nothing changed.',
      });
      await refresh();
      setDraft((now) => Object.fromEntries(Object.entries(now).filter(([k, v]) => sent[k] !== v)));
      setFiles((now) => Object.fromEntries(Object.entries(now).filter(([k, v]) => sentFiles[k] !== v)));
    } catch (err) {
      const fields = {};
      for (const f of err.fields ?? []) fields[f.path] = f.message;
      setErrors(fields);
      setMessage({ ok: false, text: err.message });
    } finally {
      setSaving(false);
    }
  };

  return html`
    <form class="settings" onSubmit=${save} data-testid="settings">
      <p class="muted">Editing <code>${settings.file}</code> · config generation <b data-testid="generation">${live.generation ?? settings.generation}</b>
        ${settings.lastError && html` · <span class="error">last reload failed: ${settings.lastError}</span>`}</p>
      <fieldset>
        <legend>Correction</legend>
        ${check(['correction', 'enabled'], 'correct the transcript with an LLM', true)}
        ${select(['correction', 'provider'], 'provider', providers, 'default')}
        ${text(['correction', 'model'], 'model', { placeholder: 'the provider default' })}
        ${text(['correction', 'temperature'], 'temperature', { type: 'number' })}
        ${fileText('correction.systemPrompt', 'system prompt')}
        ${fileText('correction.userPrompt', 'user prompt')}
      </fieldset>
      <fieldset>
        <legend>Transcription</legend>
        ${select(['asr', 'provider'], 'provider', providers, 'default')}
        ${text(['asr', 'model'], 'model', { placeholder: 'the provider default' })}
        ${text(['asr', 'language'], 'language', { placeholder: 'auto', hint: 'ISO code, e.g. en, de, ja' })}
        ${text(['asr', 'prompt'], 'prompt')}
      </fieldset>
      <fieldset>
        <legend>Dictionary</legend>
        ${fileText('dictionary', 'terms, one per line')}
      </fieldset>
      <fieldset>
        <legend>Hotkey</legend>
        ${text(['hotkey', 'keys'], 'keys', { placeholder: 'e.g. ctrl+alt+space' })}
        ${select(['hotkey', 'mode'], 'mode', ['hold', 'toggle'], 'hold (default)')}
      </fieldset>
      <fieldset>
        <legend>Outputs and rewrite templates</legend>
        ${json(['output'], 'outputs', 'a list: "paste", "clipboard", "type", "stdout" or { "use": "file", "path": "…" }')}
        ${json(['rewrite', 'templates'], 'rewrite templates', '{ "email": { "prompt": "Rewrite as an email: {{text}}" } }')}
      </fieldset>
      ${providers.map(
        (name) => html`<fieldset>
          <legend>Provider <code>${name}</code> <span class="muted">(${values.providers[name].use})</span></legend>
          ${Object.entries(values.providers[name])
            .filter(([k]) => k !== 'use')
            .map(([k, v]) =>
              isSecret(v)
                ? secret(['providers', name, k], k)
                : typeof v === 'boolean'
                  ? check(['providers', name, k], k, v)
                  : v !== null && typeof v === 'object'
                    ? json(['providers', name, k], k)
                    : text(['providers', name, k], k, { type: typeof v === 'number' ? 'number' : 'text' }),
            )}
        </fieldset>`,
      )}
      <div class="buttons sticky">
        <button class="primary" type="submit" disabled=${saving || !dirty} data-testid="save">Save</button>
        <button type="button" disabled=${saving || !dirty} onClick=${discard}>Discard</button>
        ${message && html`<span class=${message.ok ? 'ok' : 'error'} role="status" data-testid="settings-message">${message.text}</span>`}
      </div>
    </form>
  `;
}
