// ops.js — the Operators view (operator tokens only; GET /v1/queue answers
// 404 to others): unfinished jobs by type and status (queued split into
// runnable and scheduled), throughput (jobs finished in the last minute and
// hour), live workers, failed jobs with their error and a Retry button (POST
// /v1/jobs/{id}/retry), and running or queued jobs with a Cancel button
// (POST /v1/jobs/{id}/cancel). Refreshes every 5 seconds while on screen;
// jobs retried from here stay listed with their current status.
import { api } from './api.js';
import { el, clear, when, short, say, pause } from './ui.js';

const STATES = ['runnable', 'scheduled', 'running', 'waiting'];

function table(id, head, rows) {
  return el('table', { id },
    el('thead', {}, el('tr', {}, head.map((h) => el('th', { scope: 'col', text: h })))),
    el('tbody', {}, rows.length ? rows : el('tr', {}, el('td', { colspan: head.length, class: 'muted', text: 'none' }))));
}

export async function show(main, ctx) {
  const { signal } = ctx;
  const retried = new Map();   // job id -> its latest JSON
  const body = el('div', { id: 'ops' });
  main.append(el('h1', { text: 'Operators' }), el('p', { class: 'muted', text: 'Refreshes every 5 seconds.' }), body);

  async function act(path, id) {
    const job = await api('POST', path, undefined, signal);
    if (path.endsWith('/retry')) retried.set(id, job);
    say(`Job ${id}: ${job.status}.`);
    await refresh();
  }

  function jobRow(j, button) {
    return el('tr', { 'data-id': j.id },
      el('td', { text: j.id }), el('td', { text: j.type }), el('td', { class: 'status', text: j.status }),
      el('td', { text: `${j.attempts}/${j.max_attempts ?? '-'}` }),
      el('td', { class: 'error-text text', text: short(j.error || '', 300) }),
      el('td', { text: when(j.finished_at || j.started_at || j.run_at) }),
      el('td', {}, button || ''));
  }

  async function refresh() {
    const [q, failed, running, queued] = await Promise.all([
      api('GET', '/v1/queue', undefined, signal),
      api('GET', '/v1/jobs?status=failed&limit=50', undefined, signal),
      api('GET', '/v1/jobs?status=running&limit=20', undefined, signal),
      api('GET', '/v1/jobs?status=queued&limit=20', undefined, signal),
    ]);
    for (const id of retried.keys()) retried.set(id, await api('GET', `/v1/jobs/${id}`, undefined, signal));
    const byType = new Map();
    for (const r of q.jobs) {
      if (!byType.has(r.type)) byType.set(r.type, {});
      byType.get(r.type)[r.status] = r.count;
    }
    const depth = [...byType].map(([type, c]) => el('tr', {}, el('th', { scope: 'row', text: type }),
      STATES.map((s) => el('td', { text: c[s] || 0 }))));
    const done = q.finished.map((r) => el('tr', {}, el('td', { text: r.type }), el('td', { text: r.status }),
      el('td', { text: r.last_minute }), el('td', { text: r.last_hour })));
    const workers = q.workers.map((w) => el('tr', {}, el('td', { text: w.id }), el('td', { text: (w.queues || []).join(', ') }),
      el('td', { text: `${w.running}/${w.concurrency}` }), el('td', { text: w.jobs_done }), el('td', { text: when(w.last_heartbeat) })));
    const retryBtn = (j) => el('button', { type: 'button', class: 'retry', text: 'Retry', onclick: () => act(`/v1/jobs/${j.id}/retry`, j.id).catch((e) => say(e.message, true)) });
    const cancelBtn = (j) => el('button', { type: 'button', class: 'cancel danger', text: 'Cancel', onclick: () => act(`/v1/jobs/${j.id}/cancel`, j.id).catch((e) => say(e.message, true)) });
    clear(body).append(
      el('h2', { text: 'Queue' }), table('depth', ['type', ...STATES], depth),
      el('h2', { text: 'Finished (throughput)' }), table('throughput', ['type', 'status', 'last minute', 'last hour'], done),
      el('h2', { text: 'Live workers' }), table('workers', ['worker', 'queues', 'running', 'jobs done', 'heartbeat'], workers),
      el('h2', { text: 'Failed jobs' }), table('failed', ['id', 'type', 'status', 'attempts', 'error', 'when', ''], failed.items.map((j) => jobRow(j, retryBtn(j)))),
      el('h2', { text: 'Retried here' }), table('retried', ['id', 'type', 'status', 'attempts', 'error', 'when', ''], [...retried.values()].map((j) => jobRow(j))),
      el('h2', { text: 'Running and queued' }), table('active', ['id', 'type', 'status', 'attempts', 'error', 'when', ''], [...running.items, ...queued.items].map((j) => jobRow(j, cancelBtn(j)))));
  }

  await refresh();
  for (;;) {
    await pause(5000, signal);
    try { await refresh(); } catch (e) { if (e.name === 'AbortError') throw e; say(e.message, true); }
  }
}
