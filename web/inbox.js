// inbox.js — the Inbox view: the person's notifications, newest first (GET
// /v1/notifications, 50 a page), unread ones marked, each with "Mark read"
// (POST /v1/notifications/{id}/read); the header's badge counts the unread.
import { api } from './api.js';
import { el, clear, when } from './ui.js';

export async function show(main, ctx) {
  const { signal } = ctx;
  let unreadOnly = false;
  let before = null;
  const list = el('ul', { class: 'items', id: 'notifications' });
  const more = el('button', { type: 'button', class: 'hidden', text: 'Older…', onclick: () => load(false) });
  const toggle = el('input', { type: 'checkbox', id: 'unread-only', onchange: () => { unreadOnly = toggle.checked; load(true); } });
  main.append(el('h1', { text: 'Inbox' }),
    el('p', {}, toggle, ' ', el('label', { for: 'unread-only', text: 'Unread only' })), list, more);

  function item(n) {
    const li = el('li', { class: n.read_at ? 'card read' : 'card unread', 'data-id': n.id },
      el('p', { class: 'meta' }, el('span', { class: 'kind', text: n.kind }), ' · ', el('span', { text: when(n.created_at) }),
        n.read_at ? '' : el('span', { class: 'badge', text: 'unread' })),
      el('p', { class: 'body text', text: n.body }));
    if (n.session_id) li.append(el('a', { href: `#/chat/${n.session_id}`, text: 'Open the conversation' }), ' ');
    if (!n.read_at) {
      li.append(el('button', { type: 'button', class: 'mark-read', text: 'Mark read', onclick: async (e) => {
        e.target.disabled = true;
        const r = await api('POST', `/v1/notifications/${n.id}/read`, undefined, signal);
        li.replaceWith(item(r));
        ctx.refreshUnread();
      } }));
    }
    return li;
  }

  async function load(reset) {
    if (reset) { before = null; clear(list); }
    const q = `/v1/notifications?limit=50${unreadOnly ? '&unread=1' : ''}${before ? `&before=${before}` : ''}`;
    const r = await api('GET', q, undefined, signal);
    for (const n of r.items) list.append(item(n));
    if (!list.firstChild) list.append(el('li', { class: 'muted', text: 'Nothing here.' }));
    before = r.next;
    more.classList.toggle('hidden', !before);
  }
  await load(true);
}
