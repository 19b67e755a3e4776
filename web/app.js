// app.js — the console's shell: sign-in, the hash router (#/chat, #/inbox,
// #/approvals, #/schedules, #/tasks, #/ops) and the header. Without a token every
// view shows the sign-in and nothing is asked of the server. Each view is a
// module exporting show(main, ctx); ctx.signal aborts when the person leaves
// the view (its long-polls and refresh timers stop).
import { api, token, setToken, forgetToken, whenUnauthorized, ApiError } from './api.js';
import { el, clear, say } from './ui.js';
import * as chat from './chat.js';
import * as inbox from './inbox.js';
import * as approvals from './approvals.js';
import * as schedules from './schedules.js';
import * as tasks from './tasks.js';
import * as ops from './ops.js';

const VIEWS = { chat, inbox, approvals, schedules, tasks, ops };
const main = document.getElementById('main');
let current = null;        // AbortController of the view on screen
let operator = false;
let signinNote = '';

function route() {
  const parts = location.hash.replace(/^#\/?/, '').split('/');
  const name = VIEWS[parts[0]] ? parts[0] : 'chat';
  return { name, arg: parts[1] ? decodeURIComponent(parts[1]) : '' };
}

function showSignin() {
  document.getElementById('nav').classList.add('hidden');
  document.getElementById('signout').classList.add('hidden');
  clear(main);
  const input = el('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', required: true,
    'aria-describedby': 'signin-help' });
  const form = el('form', { id: 'signin', class: 'card narrow', onsubmit: async (e) => {
    e.preventDefault();
    const t = input.value.trim();
    if (!t) return;
    setToken(t);
    signinNote = '';
    await start();
  } },
  el('h1', { text: 'Sign in' }),
  el('label', { for: 'token', text: 'API token' }), input,
  el('p', { id: 'signin-help', class: 'muted', text: 'The token `agentq users add` printed (make run prints the first one). It is kept in this tab only.' }),
  signinNote ? el('p', { class: 'error', id: 'signin-error', role: 'alert', text: signinNote }) : null,
  el('button', { type: 'submit', text: 'Sign in' }));
  main.append(form);
  input.focus();
}

async function render() {
  current?.abort();
  current = new AbortController();
  say('');
  if (!token()) { showSignin(); return; }
  const { name, arg } = route();
  if (name === 'ops' && !operator) { location.hash = '#/chat'; return; }
  for (const a of document.querySelectorAll('#nav a'))
    if (a.dataset.view === name) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  clear(main);
  const ctx = { signal: current.signal, arg, operator, refreshUnread };
  refreshUnread();
  try {
    await VIEWS[name].show(main, ctx);
  } catch (e) {
    if (e.name !== 'AbortError' && !(e instanceof ApiError && e.status === 401)) say(e.message, true);
  }
}

export async function refreshUnread() {
  if (!token()) return;
  try {
    const r = await api('GET', '/v1/notifications?unread=1&limit=200');
    const b = document.getElementById('unread');
    b.textContent = r.items.length >= 200 ? '200+' : String(r.items.length);
    b.classList.toggle('hidden', r.items.length === 0);
    b.setAttribute('aria-label', `${b.textContent} unread`);
  } catch { /* shown by the view */ }
}

// After sign-in or on load with a token: check it, learn whether it is an
// operator's (GET /v1/queue answers 404 to everyone else), show the views.
async function start() {
  if (!token()) { showSignin(); return; }
  try {
    await api('GET', '/v1/notifications?limit=1');
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) { signinNote = e.message; forgetToken(); showSignin(); }
    return;
  }
  try { await api('GET', '/v1/queue'); operator = true; } catch { operator = false; }
  document.getElementById('nav').classList.remove('hidden');
  document.getElementById('signout').classList.remove('hidden');
  document.getElementById('nav-ops').classList.toggle('hidden', !operator);
  await render();
}

// the unread badge follows new notifications while the console is open
setInterval(() => { if (token() && !document.hidden) refreshUnread(); }, 15000);

whenUnauthorized(() => {
  current?.abort();
  signinNote = 'The server refused this token (401 Unauthorized). Paste a valid token to sign in again.';
  showSignin();
});
document.getElementById('signout').addEventListener('click', () => {
  forgetToken();
  operator = false;
  signinNote = '';
  current?.abort();
  location.hash = '#/chat';
  showSignin();
});
window.addEventListener('hashchange', () => { if (token()) render(); else showSignin(); });
start();
