// approvals.js — the Approvals view: tool calls waiting for the person's
// decision (GET /v1/actions), each with its tool and arguments exactly as
// they will run, and Approve / Reject (POST /v1/actions/{id}/approve|reject).
// After a decision the waiting turn is followed to its end (?wait= on the
// job the answer names) and its reply shown here; the chat shows it too.
import { api, resumed } from './api.js';
import { el, clear, when } from './ui.js';

function pretty(args) {
  try { return JSON.stringify(typeof args === 'string' ? JSON.parse(args) : args, null, 2); } catch { return String(args); }
}

export async function show(main, ctx) {
  const { signal } = ctx;
  const list = el('ul', { class: 'items', id: 'actions' });
  main.append(el('h1', { text: 'Approvals' }), list);
  const r = await api('GET', '/v1/actions?status=pending', undefined, signal);
  clear(list);
  if (!r.items.length) list.append(el('li', { class: 'muted', id: 'no-actions', text: 'Nothing waits for your approval.' }));
  for (const a of r.items) {
    const outcome = el('div', { class: 'outcome', 'aria-live': 'polite' });
    const decide = async (decision, e) => {
      for (const b of li.querySelectorAll('button')) b.disabled = true;
      try {
        const d = await api('POST', `/v1/actions/${a.id}/${decision}`, undefined, signal);
        outcome.textContent = `${decision === 'approve' ? 'Approved' : 'Rejected'}; the turn continues…`;
        const job = await resumed(d.job_id, signal);
        clear(outcome);
        outcome.append(el('p', { class: 'status-line', text: `${decision === 'approve' ? 'Approved' : 'Rejected'}; the turn ${job.status}.` }));
        const reply = job.output?.reply;
        if (reply) outcome.append(el('p', { class: 'msg assistant reply text', text: reply }));
        if (a.session_id) outcome.append(el('a', { href: `#/chat/${a.session_id}`, text: 'Open the conversation' }));
      } catch (err) {
        if (err.name !== 'AbortError') { outcome.textContent = err.message; outcome.classList.add('error'); }
        for (const b of li.querySelectorAll('button')) b.disabled = false;
      }
    };
    const li = el('li', { class: 'card action', 'data-id': a.id },
      el('p', { class: 'meta' }, el('strong', { class: 'tool-name', text: a.tool }), ` · asked ${when(a.created_at)} · expires ${when(a.expires_at)}`),
      el('pre', { class: 'args', text: pretty(a.arguments) }),
      el('div', { class: 'actions' },
        el('button', { type: 'button', class: 'approve', text: 'Approve', onclick: (e) => decide('approve', e) }),
        el('button', { type: 'button', class: 'reject danger', text: 'Reject', onclick: (e) => decide('reject', e) })),
      outcome);
    list.append(li);
  }
}
