// api.js — the console's only way to the server: the documented /v1 API with
// the signed-in token. The token lives in sessionStorage (this tab only,
// gone when it closes; never in a URL or a cookie). Without a token no
// request is made at all; a 401 forgets the token and sends the person back
// to the sign-in.
import { pause } from './ui.js';

const KEY = 'agentq.token';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let onUnauthorized = () => {};
export function whenUnauthorized(fn) { onUnauthorized = fn; }

export function token() { return sessionStorage.getItem(KEY); }
export function setToken(t) { sessionStorage.setItem(KEY, t); }
export function forgetToken() { sessionStorage.removeItem(KEY); }

// api('GET', '/v1/jobs?status=failed') → the parsed JSON answer, or throws ApiError.
export async function api(method, path, body, signal) {
  const t = token();
  if (!t) throw new ApiError(401, 'unauthorized', 'Sign in first.');
  const headers = { Authorization: `Bearer ${t}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, {
    method, headers, signal, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await res.json(); } catch { data = null; }
  if (res.status === 401) {
    forgetToken();
    onUnauthorized();
    throw new ApiError(401, 'unauthorized', 'The server refused the token (401).');
  }
  if (!res.ok) {
    const e = data && data.error;
    throw new ApiError(res.status, e?.code || 'error', e?.message || `HTTP ${res.status}`);
  }
  return data;
}

// The job once it is no longer queued or running, waiting on the server
// (?wait=, a long-poll: no busy polling) as long as it takes.
// A wait answered at once (the server's cap on parked waits) is followed by
// a one-second pause, so even then the loop does not spin.
export async function settled(jobId, signal) {
  for (;;) {
    const started = Date.now();
    const job = await api('GET', `/v1/jobs/${jobId}?wait=25`, undefined, signal);
    if (job.status !== 'queued' && job.status !== 'running') return job;
    if (Date.now() - started < 1000) await pause(1000, signal);
  }
}

// A turn resumed by a decision: it stays 'waiting' until the decision job
// has run (a moment), then settles like any job. Looked at once a second
// while waiting; long-polled after that.
export async function resumed(jobId, signal) {
  for (;;) {
    const job = await settled(jobId, signal);
    if (job.status !== 'waiting') return job;
    await pause(1000, signal);
  }
}
