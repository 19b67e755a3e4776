// chat.js — the Chat view: the person's sessions (GET /v1/sessions), one
// conversation (GET /v1/sessions/{id}/messages), and sending a message (POST
// /v1/chat). The reply appears when the turn's job settles (a ?wait=
// long-poll); a turn waiting for an approval is looked at again every few
// seconds until it goes on. The turn being waited for is remembered in
// sessionStorage, so it is picked up again after a reload or another view.
// A failed turn shows what the person was told: its apology, a message of
// the session like any other. Tool calls show as one compact line each.
import { api, settled } from './api.js';
import { el, clear, when, short, say, pause } from './ui.js';

const PENDING = 'agentq.pending.';

function uuid4() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function renderMessage(m) {
  if (m.role === 'system') return null;
  if (m.role === 'tool') {
    return el('details', { class: 'msg tool' },
      el('summary', { text: `result: ${short(m.content, 100)}` }),
      el('pre', { text: m.content ?? '' }));
  }
  const box = el('div', { class: `msg ${m.role}` },
    el('span', { class: 'who', text: m.role === 'user' ? 'You' : 'Agent' }));
  if (m.content) box.append(el('p', { class: 'text', text: m.content }));
  for (const call of m.tool_calls || []) {
    const f = call.function || {};
    box.append(el('p', { class: 'call', text: `tool ${f.name || '?'}(${short(f.arguments || '', 120)})` }));
  }
  box.append(el('span', { class: 'when', text: when(m.created_at) }));
  return box;
}

async function allMessages(sid, signal) {
  const items = [];
  let after = 0;
  for (;;) {
    const page = await api('GET', `/v1/sessions/${sid}/messages?limit=500&after=${after}`, undefined, signal);
    items.push(...page.items);
    if (!page.next) return items;
    after = page.next;
  }
}

export async function show(main, ctx) {
  const { signal } = ctx;
  let sid = ctx.arg;
  const list = el('ul', { class: 'sessions', id: 'sessions' });
  const log = el('div', { class: 'log', id: 'messages', 'aria-live': 'polite' });
  const note = el('p', { class: 'turn-note', id: 'turn-note' });
  const text = el('textarea', { id: 'message', name: 'message', rows: 3, required: true,
    placeholder: 'Write a message (Enter sends, Shift+Enter a new line)' });
  const send = el('button', { type: 'submit', id: 'send', text: 'Send' });
  const form = el('form', { class: 'composer', id: 'composer' },
    el('label', { for: 'message', class: 'sr-only', text: 'Message' }), text, send);
  main.append(el('div', { class: 'chat' },
    el('aside', { class: 'side', 'aria-label': 'Sessions' },
      el('a', { class: 'button', href: '#/chat/', id: 'new-chat', text: 'New chat' }), list),
    el('section', { class: 'conversation', 'aria-label': 'Conversation' }, log, note, form)));

  async function loadSessions() {
    const r = await api('GET', '/v1/sessions?limit=100', undefined, signal);
    clear(list);
    for (const s of r.items) {
      const a = el('a', { href: `#/chat/${s.id}`, class: 'session', 'data-id': s.id },
        el('span', { class: 'title', text: s.title || '(untitled)' }),
        el('span', { class: 'when', text: when(s.last_message_at) }));
      if (s.id === sid) a.setAttribute('aria-current', 'true');
      list.append(el('li', {}, a));
    }
    if (!r.items.length) list.append(el('li', { class: 'muted', text: 'No conversations yet.' }));
  }

  // Fetched first, then swapped in at once: the log never shows half a conversation.
  async function loadMessages() {
    if (!sid) { log.replaceChildren(el('p', { class: 'muted', text: 'Start a new conversation below.' })); return; }
    const items = await allMessages(sid, signal);
    log.replaceChildren(...items.map(renderMessage).filter(Boolean));
    log.scrollTop = log.scrollHeight;
  }

  // Wait for the session's remembered turn until it is done.
  async function follow() {
    const key = PENDING + sid;
    const jobId = sessionStorage.getItem(key);
    if (!jobId) return;
    send.disabled = true;
    try {
      for (;;) {
        note.textContent = 'The agent is working…';
        let job;
        try {
          job = await settled(jobId, signal);
        } catch (e) {
          if (e.status === 404) sessionStorage.removeItem(key);   /* gone (pruned): nothing to wait for */
          throw e;
        }
        if (job.status !== 'waiting') break;
        note.textContent = '';
        note.append('A tool call waits for your approval: ', el('a', { href: '#/approvals', text: 'open Approvals' }), '.');
        await loadMessages();
        await pause(3000, signal);
      }
      sessionStorage.removeItem(key);
      note.textContent = '';
      await loadMessages();
      await loadSessions();
    } finally {
      send.disabled = false;
    }
  }

  text.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); form.requestSubmit(); }
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const message = text.value.trim();
    if (!message || send.disabled) return;
    const fresh = !sid;
    if (fresh) sid = uuid4();
    send.disabled = true;
    try {
      const r = await api('POST', '/v1/chat', { message, session_id: sid }, signal);
      sessionStorage.setItem(PENDING + sid, String(r.job_id));
      text.value = '';
      if (fresh) { history.replaceState(null, '', `#/chat/${sid}`); await loadSessions(); }
      log.querySelector('.muted')?.remove();
      log.append(renderMessage({ role: 'user', content: message, created_at: new Date().toISOString() }));
      await follow();
    } catch (err) {
      if (fresh) sid = '';
      if (err.name !== 'AbortError') say(err.message, true);
    } finally {
      send.disabled = false;
    }
  });

  await loadSessions();
  await loadMessages();
  text.focus();
  await follow();
}
