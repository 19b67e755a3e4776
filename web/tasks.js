// tasks.js — the Tasks view: the person's tasks, newest first (GET
// /v1/tasks, 50 a page), those the agent made and those suggested from mail
// (is_ai_suggested, with the message they came from); a pending suggestion
// has Accept and Dismiss (POST /v1/tasks/{id}/accept|dismiss). A filter shows
// only suggestions. Every text is set as text (ui.js el), never as HTML.
import { api } from './api.js';
import { el, clear, when } from './ui.js';

export async function show(main, ctx) {
  const { signal } = ctx;
  let suggestedOnly = false;
  let before = null;
  const list = el('ul', { class: 'items', id: 'tasks' });
  const more = el('button', { type: 'button', class: 'hidden', text: 'Older…', onclick: () => load(false) });
  const toggle = el('input', { type: 'checkbox', id: 'suggested-only',
    onchange: () => { suggestedOnly = toggle.checked; load(true); } });
  main.append(el('h1', { text: 'Tasks' }),
    el('p', {}, toggle, ' ', el('label', { for: 'suggested-only', text: 'Suggestions from mail only' })), list, more);

  function item(t) {
    const meta = el('p', { class: 'meta' }, el('span', { class: 'kind', text: t.status }),
      ' · ', el('span', { text: `priority ${t.priority}` }),
      t.due_at ? el('span', { text: ` · due ${when(t.due_at)}` }) : '',
      ' · ', el('span', { text: when(t.created_at) }));
    if (t.is_ai_suggested) meta.append(' ', el('span', { class: 'badge', text: `suggested: ${t.suggestion || ''}` }));
    const li = el('li', { class: 'card task', 'data-id': t.id }, el('p', { class: 'title text', text: t.title }), meta);
    if (t.notes) li.append(el('p', { class: 'body text', text: t.notes }));
    if (t.source) {
      li.append(el('p', { class: 'meta source' }, 'From mail: ', el('span', { class: 'text', text: t.source.from || '' }),
        ' — ', el('span', { class: 'text', text: t.source.subject || '' })));
    }
    if (t.suggestion === 'pending') {
      for (const [verb, label] of [['accept', 'Accept'], ['dismiss', 'Dismiss']]) {
        li.append(el('button', { type: 'button', class: verb, text: label, onclick: async (e) => {
          e.target.disabled = true;
          const r = await api('POST', `/v1/tasks/${t.id}/${verb}`, undefined, signal);
          li.replaceWith(item(r));
        } }), ' ');
      }
    }
    return li;
  }

  async function load(reset) {
    if (reset) { before = null; clear(list); }
    const q = `/v1/tasks?limit=50${suggestedOnly ? '&suggested=true' : ''}${before ? `&before=${before}` : ''}`;
    const r = await api('GET', q, undefined, signal);
    for (const t of r.items) list.append(item(t));
    if (!list.firstChild) list.append(el('li', { class: 'muted', text: 'No tasks.' }));
    before = r.next;
    more.classList.toggle('hidden', !before);
  }
  await load(true);
}
