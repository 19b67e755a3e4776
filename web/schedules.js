// schedules.js — the Schedules view: the person's schedules (GET
// /v1/schedules) with enable/disable (PATCH) and delete (DELETE, asked
// twice), and a form to create one (POST) whose "next 5 runs" preview
// follows the cron expression and time zone as they are typed (GET
// /v1/cron/next: the workers' own evaluator, so the preview is what will run).
import { api } from './api.js';
import { el, clear, when, say } from './ui.js';

function zones() {
  try { return Intl.supportedValuesOf('timeZone'); } catch { return ['UTC']; }
}

function localIn(iso, zone) {
  try {
    return new Date(iso).toLocaleString(undefined, { timeZone: zone, dateStyle: 'medium', timeStyle: 'short' });
  } catch { return iso; }
}

export async function show(main, ctx) {
  const { signal } = ctx;
  const list = el('ul', { class: 'items', id: 'schedules' });
  const here = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  const f = {
    name: el('input', { id: 's-name', name: 'name', required: true, maxlength: 200 }),
    cron: el('input', { id: 's-cron', name: 'cron', required: true, value: '0 9 * * *' }),
    zone: el('input', { id: 's-zone', name: 'timezone', required: true, value: here, list: 'zones' }),
    prompt: el('textarea', { id: 's-prompt', name: 'prompt', required: true, rows: 2 }),
    enabled: el('input', { id: 's-enabled', name: 'enabled', type: 'checkbox', checked: true }),
  };
  const preview = el('ol', { id: 'preview', class: 'preview', 'aria-live': 'polite' });
  const previewNote = el('p', { id: 'preview-error', class: 'error' });
  const form = el('form', { id: 'schedule-form', class: 'card' },
    el('h2', { text: 'New schedule' }),
    el('label', { for: 's-name', text: 'Name' }), f.name,
    el('label', { for: 's-cron', text: 'Cron expression (minute hour day month weekday)' }), f.cron,
    el('label', { for: 's-zone', text: 'Time zone' }), f.zone,
    el('datalist', { id: 'zones' }, zones().map((z) => el('option', { value: z }))),
    el('label', { for: 's-prompt', text: 'What the agent should do' }), f.prompt,
    el('p', {}, f.enabled, ' ', el('label', { for: 's-enabled', text: 'Enabled' })),
    el('h3', { text: 'Next 5 runs' }), preview, previewNote,
    el('button', { type: 'submit', text: 'Create schedule' }));
  main.append(el('h1', { text: 'Schedules' }), list, form);

  let seq = 0;
  let timer = null;
  async function updatePreview() {
    const mine = ++seq;
    const q = new URLSearchParams({ cron: f.cron.value.trim(), timezone: f.zone.value.trim(), count: '5' });
    try {
      const r = await api('GET', `/v1/cron/next?${q}`, undefined, signal);
      if (mine !== seq) return;
      clear(preview);
      previewNote.textContent = '';
      const zone = f.zone.value.trim();
      for (const t of r.times) preview.append(el('li', {}, el('time', { datetime: t, text: `${localIn(t, zone)} (${zone})` }), el('span', { class: 'utc muted', text: ` ${t}` })));
    } catch (e) {
      if (mine !== seq || e.name === 'AbortError') return;
      clear(preview);
      previewNote.textContent = e.message;
    }
  }
  const later = () => { clearTimeout(timer); timer = setTimeout(updatePreview, 250); };
  f.cron.addEventListener('input', later);
  f.zone.addEventListener('input', later);
  signal.addEventListener('abort', () => clearTimeout(timer));

  function item(s) {
    const del = el('button', { type: 'button', class: 'delete danger', text: 'Delete' });
    del.addEventListener('click', async () => {
      if (del.dataset.armed !== '1') { del.dataset.armed = '1'; del.textContent = 'Delete: sure?'; return; }
      await api('DELETE', `/v1/schedules/${s.id}`, undefined, signal);
      li.remove();
      say(`Deleted the schedule “${s.name}”.`);
    });
    const li = el('li', { class: 'card schedule', 'data-id': s.id },
      el('p', { class: 'meta' }, el('strong', { class: 'name text', text: s.name }), ' · ',
        el('code', { text: s.cron }), ` · ${s.timezone} · `, el('span', { class: 'state', text: s.enabled ? 'enabled' : 'disabled' })),
      el('p', { class: 'text prompt', text: s.prompt }),
      el('p', { class: 'muted', text: s.enabled ? `next run ${when(s.next_run_at)}` : 'not scheduled' }),
      s.last_error ? el('p', { class: 'error', text: `last error: ${s.last_error}` }) : null,
      el('div', { class: 'actions' },
        el('button', { type: 'button', class: 'toggle', text: s.enabled ? 'Disable' : 'Enable', onclick: async () => {
          const r = await api('PATCH', `/v1/schedules/${s.id}`, { enabled: !s.enabled }, signal);
          li.replaceWith(item(r));
        } }), del));
    return li;
  }

  async function load() {
    const r = await api('GET', '/v1/schedules?limit=100', undefined, signal);
    clear(list);
    for (const s of r.items) list.append(item(s));
    if (!r.items.length) list.append(el('li', { class: 'muted', text: 'No schedules yet.' }));
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await api('POST', '/v1/schedules', { name: f.name.value, cron: f.cron.value.trim(), timezone: f.zone.value.trim(),
        prompt: f.prompt.value, enabled: f.enabled.checked }, signal);
      say('Schedule created.');
      f.name.value = '';
      f.prompt.value = '';
      await load();
    } catch (err) {
      if (err.name !== 'AbortError') say(err.message, true);
    }
  });
  await load();
  await updatePreview();
}
