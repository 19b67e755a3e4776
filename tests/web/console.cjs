// console.cjs — the web console in a real browser (Debian's chromium, driven
// by puppeteer-core from .tmp/node; no browser download), against the API,
// worker and fake model tests/t_web.c started. One browser for every case:
//   without a token every view shows the sign-in and no API call succeeds;
//   a refused token's message; sign in; chat reply appears; reload keeps the
//   session list; approvals approve → continued reply, reject → refusal;
//   inbox mark read; a schedule with a time zone whose preview matches
//   `agentq cron next`; operators: a failed job with its error, retry → runs;
//   an XSS title in a message, a notification, a schedule name and a task renders
//   as text (no dialog, DOM text equal); no CSP violation anywhere.
// Screenshots of each view go to AQ_WEB_SHOTS. Prints "ok - ..." per step;
// on the first failure prints "FAIL ..." and exits 1.
'use strict';
const { execFileSync } = require('child_process');
const path = require('path');
const fs = require('fs');

const env = (k) => {
  if (!process.env[k]) { console.log(`FAIL setup: ${k} is not set`); process.exit(1); }
  return process.env[k];
};
const puppeteer = require(path.resolve(env('AQ_WEB_PUPPETEER')));
const BASE = env('AQ_WEB_URL');          // http://127.0.0.1:PORT/
const USER = env('AQ_WEB_TOKEN');
const OPERATOR = env('AQ_WEB_OPERATOR_TOKEN');
const FAILED = env('AQ_WEB_FAILED_JOB');
const TASK1 = env('AQ_WEB_TASK1');
const SHOTS = env('AQ_WEB_SHOTS');
const CLI = env('AQ_WEB_CLI');
const XSS = '<img src=x onerror=alert(1)>';
const T = 30000;

const dialogs = [];
const cspErrors = [];
let step = 'launch';

function ok(what) { console.log(`ok - ${what}`); }
function check(cond, what) { if (!cond) throw new Error(what); }
async function shot(page, name) { await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true }); }

function watch(page) {
  page.on('dialog', async (d) => { dialogs.push(d.message()); await d.dismiss(); });
  page.on('console', (m) => { if (/Content Security Policy|Refused to/i.test(m.text())) cspErrors.push(m.text()); });
  page.on('pageerror', (e) => cspErrors.push(`page error: ${e.message}`));
}

async function text(page, sel) { return page.$eval(sel, (e) => e.textContent); }
async function waitText(page, sel, want) {
  await page.waitForFunction((s, w) => [...document.querySelectorAll(s)].some((e) => e.textContent.includes(w)),
    { timeout: T }, sel, want);
}
async function go(page, hash) {
  await page.evaluate((h) => { location.hash = h; }, hash);
}
async function signIn(page, tok) {
  await page.waitForSelector('#signin #token', { visible: true, timeout: T });
  await page.type('#token', tok);
  await page.click('#signin button[type=submit]');
  await page.waitForSelector('#nav:not(.hidden)', { timeout: T });
}
async function send(page, message) {
  await page.waitForSelector('#message', { timeout: T });
  await page.type('#message', message);
  await page.keyboard.press('Enter');
}

async function noToken(browser) {
  step = 'without a token';
  const ctx = await browser.createBrowserContext();
  const page = await ctx.newPage();
  watch(page);
  const answered = [];
  page.on('response', (r) => { if (new URL(r.url()).pathname.startsWith('/v1/')) answered.push([r.url(), r.status()]); });
  for (const view of ['chat', 'inbox', 'approvals', 'schedules', 'tasks', 'ops', 'chat/6f1c1b7e-0000-4000-8000-000000000001']) {
    await page.goto(`${BASE}#/${view}`, { waitUntil: 'load' });
    await page.waitForSelector('#signin #token', { visible: true, timeout: T });
    check(await page.$eval('#nav', (e) => e.classList.contains('hidden')), `#/${view}: the navigation is hidden`);
    check(!(await page.$('#messages, #notifications, #actions, #schedules, #tasks, #ops')), `#/${view}: no view content`);
  }
  // the API itself refuses a request without (or with a wrong) token
  const statuses = await page.evaluate(async () => Promise.all(['/v1/sessions', '/v1/jobs', '/v1/notifications']
    .map(async (p) => (await fetch(p)).status)));
  check(statuses.every((s) => s === 401), `the API answers 401 without a token: ${statuses}`);
  check(answered.every(([, s]) => s >= 400), `no API call succeeded: ${JSON.stringify(answered)}`);
  ok(`without a token every view shows the sign-in; ${answered.length} API calls, none succeeded`);
  await shot(page, 'signin');
  step = 'a refused token';
  await page.type('#token', 'not-a-token');
  await page.click('#signin button[type=submit]');
  await page.waitForSelector('#signin-error', { visible: true, timeout: T });
  check((await text(page, '#signin-error')).includes('401'), 'the sign-in says the token was refused (401)');
  check(!(await page.evaluate(() => sessionStorage.getItem('agentq.token'))), 'a refused token is forgotten');
  ok('a refused token: a clear message, the token forgotten');
  await ctx.close();
}

async function chat(page) {
  step = 'sign in';
  await page.goto(BASE, { waitUntil: 'load' });
  await signIn(page, USER);
  check(await page.$eval('#nav-ops', (e) => e.classList.contains('hidden')), 'no Operators view for a user');
  check(await page.evaluate(() => !document.cookie && !location.href.includes('token')), 'the token is in no URL or cookie');
  ok('signed in; no Operators view for a user');

  step = 'chat';
  await page.waitForSelector('#composer', { timeout: T });
  await send(page, XSS);
  await waitText(page, '#messages .msg.assistant', 'Hello from the fake model.');
  const user = await page.$$eval('#messages .msg.user .text', (es) => es.map((e) => e.textContent));
  check(user.includes(XSS), `the message shows as its text: ${JSON.stringify(user)}`);
  ok('a chat message; the reply appears');
  await page.waitForFunction((x) => [...document.querySelectorAll('#sessions .title')].some((e) => e.textContent === x),
    { timeout: T }, XSS);
  step = 'reload';
  await page.reload({ waitUntil: 'load' });
  await page.waitForFunction((x) => [...document.querySelectorAll('#sessions .title')].some((e) => e.textContent === x),
    { timeout: T }, XSS);
  await waitText(page, '#messages .msg.assistant', 'Hello from the fake model.');
  check(!(await page.$('main img')), 'no <img> element in the page');
  ok('a reload keeps the session list and the conversation; the XSS title is text');
  await shot(page, 'chat');
  await page.setViewport({ width: 390, height: 844 });
  await shot(page, 'chat-phone');
  await page.setViewport({ width: 1200, height: 900 });
}

// A new conversation whose turn asks for an approval; decide it in the
// Approvals view; the reply shows there and in the chat.
async function approval(page, message, decision, reply, newChat) {
  step = `approval ${decision}`;
  if (newChat) await go(page, '#/chat/');
  await page.waitForSelector('#composer', { timeout: T });
  await send(page, message);
  await waitText(page, '#turn-note', 'approval');
  const chatHash = await page.evaluate(() => location.hash);
  await go(page, '#/approvals');
  await page.waitForSelector('#actions li.action', { timeout: T });
  check((await text(page, '#actions li.action .tool-name')) === 'delete_task', 'the tool is named');
  const args = await text(page, '#actions li.action .args');
  if (decision === 'approve') check(args.includes(`"id": ${TASK1}`), `the arguments are shown: ${args}`);
  if (decision === 'approve') await shot(page, 'approvals');
  await page.click(`#actions li.action .${decision}`);
  await waitText(page, '#actions li.action .reply', reply);
  ok(`${decision}: the continued turn's reply shows in Approvals`);
  await go(page, chatHash);
  await waitText(page, '#messages .msg.assistant', reply);
  if (decision === 'reject') await waitText(page, '#messages .msg.tool', 'declined');   // the refusal the model was given
  ok(`${decision}: the chat shows the continued reply`);
}

async function inbox(page) {
  step = 'inbox';
  await go(page, '#/inbox');
  await page.waitForSelector('#notifications li.card', { timeout: T });
  const bodies = await page.$$eval('#notifications .body', (es) => es.map((e) => e.textContent));
  check(bodies.includes(XSS), `the notification's body is its text: ${JSON.stringify(bodies)}`);
  check(!(await page.$('main img')), 'no <img> element in the inbox');
  await page.waitForSelector('#unread:not(.hidden)', { timeout: T });
  await shot(page, 'inbox');
  await page.$$eval('#notifications li.unread', (lis, x) => {
    const li = lis.find((l) => l.querySelector('.body').textContent === x);
    li.querySelector('.mark-read').click();
  }, XSS);
  await page.waitForFunction((x) => [...document.querySelectorAll('#notifications li.read .body')]
    .some((e) => e.textContent === x), { timeout: T }, XSS);
  // the badge counts what the server holds unread (other notices may still be arriving: it refreshes)
  const unread = await page.waitForFunction(async () => {
    const r = await fetch('/v1/notifications?unread=1&limit=200',
      { headers: { Authorization: `Bearer ${sessionStorage.getItem('agentq.token')}` } });
    const n = (await r.json()).items.length;
    const b = document.getElementById('unread');
    const shown = b.classList.contains('hidden') ? 0 : Number(b.textContent);
    return shown === n ? String(n) : false;
  }, { timeout: T, polling: 500 });
  ok(`inbox: the XSS notification is text; marked read; the badge shows ${await unread.jsonValue()} unread`);
}

function cliNext(cron, zone) {
  return execFileSync(CLI, ['cron', 'next', cron, '--tz', zone, '--count', '5'], { encoding: 'utf8' }).trim().split('\n');
}

async function schedules(page) {
  step = 'schedules';
  const cron = '30 9 * * 1-5', zone = 'America/New_York';
  await go(page, '#/schedules');
  await page.waitForSelector('#schedule-form', { timeout: T });
  await page.type('#s-name', XSS);
  await page.$eval('#s-cron', (e) => { e.value = ''; });
  await page.type('#s-cron', cron);
  await page.$eval('#s-zone', (e) => { e.value = ''; });
  const before = cliNext(cron, zone);
  await page.type('#s-zone', zone);
  await page.type('#s-prompt', 'Summarise my open tasks for the stand-up.');
  await page.waitForFunction((first) => document.querySelector('#preview time')?.getAttribute('datetime') === first &&
    document.querySelectorAll('#preview time').length === 5, { timeout: T }, before[0]);
  const shown = await page.$$eval('#preview time', (es) => es.map((e) => e.getAttribute('datetime')));
  const after = cliNext(cron, zone);
  check(JSON.stringify(shown) === JSON.stringify(before) || JSON.stringify(shown) === JSON.stringify(after),
    `the preview ${JSON.stringify(shown)} is agentq cron next's ${JSON.stringify(before)}`);
  ok(`the preview matches agentq cron next: ${shown.join(' ')}`);
  await page.click('#schedule-form button[type=submit]');
  await page.waitForFunction((x) => [...document.querySelectorAll('#schedules .name')].some((e) => e.textContent === x),
    { timeout: T }, XSS);
  check(!(await page.$('main img')), 'no <img> element in the schedules');
  await page.click('#schedules li.schedule .toggle');
  await waitText(page, '#schedules li.schedule .state', 'disabled');
  ok('a schedule with a time zone created (its XSS name is text) and disabled');
  await shot(page, 'schedules');
}

async function tasks(page) {
  step = 'tasks';
  await go(page, '#/tasks');
  await page.waitForFunction((x) => [...document.querySelectorAll('#tasks li.task .title')].some((e) => e.textContent === x),
    { timeout: T }, XSS);
  check(!(await page.$('main img')), 'no <img> element in the tasks');
  const source = await page.$$eval('#tasks li.task', (lis, x) => {
    const li = lis.find((l) => l.querySelector('.title').textContent === x);
    return li.querySelector('.source') ? li.querySelector('.source').textContent : '';
  }, XSS);
  check(source.includes('boss@example.com') && source.includes('Quarterly numbers'), `the message it came from: ${source}`);
  await shot(page, 'tasks');
  await page.$$eval('#tasks li.task', (lis, x) => {
    lis.find((l) => l.querySelector('.title').textContent === x).querySelector('.accept').click();
  }, XSS);
  await page.waitForFunction((x) => [...document.querySelectorAll('#tasks li.task')].some((l) =>
    l.querySelector('.title').textContent === x && l.textContent.includes('suggested: accepted') && !l.querySelector('.accept')),
  { timeout: T }, XSS);
  ok('tasks: the suggested task from mail (its XSS title is text) shows its message and is accepted');
}

async function operator(page) {
  step = 'operators';
  await page.click('#signout');
  await signIn(page, OPERATOR);
  await page.waitForSelector('#nav-ops:not(.hidden)', { timeout: T });
  await go(page, '#/ops');
  await page.waitForSelector(`#failed tr[data-id="${FAILED}"]`, { timeout: T });
  const err = await page.$eval(`#failed tr[data-id="${FAILED}"] .error-text`, (e) => e.textContent);
  check(err === 'disk on fire', `the failed job shows its error: ${err}`);
  await page.waitForSelector('#workers tbody tr td', { timeout: T });
  ok('operators: the failed job with its error');
  await shot(page, 'ops');
  await page.click(`#failed tr[data-id="${FAILED}"] button.retry`);
  await page.waitForFunction((id) => document.querySelector(`#retried tr[data-id="${id}"] .status`)?.textContent === 'succeeded',
    { timeout: T }, FAILED);
  ok('retry: the job ran again and succeeded');
}

(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  const browser = await puppeteer.launch({
    executablePath: process.env.AQ_WEB_CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
    defaultViewport: { width: 1200, height: 900 },
  });
  let failed = false;
  try {
    await noToken(browser);
    const ctx = await browser.createBrowserContext();
    const page = await ctx.newPage();
    watch(page);
    await chat(page);
    await approval(page, 'delete the old report', 'approve', 'Deleted it.', true);
    await approval(page, 'delete keep me', 'reject', 'Fine, I kept it.', false);
    await inbox(page);
    await schedules(page);
    await tasks(page);
    await operator(page);
    step = 'the end';
    check(dialogs.length === 0, `no dialog opened: ${JSON.stringify(dialogs)}`);
    check(cspErrors.length === 0, `no CSP violation or page error: ${JSON.stringify(cspErrors)}`);
    ok('no dialog opened, no CSP violation');
  } catch (e) {
    failed = true;
    console.log(`FAIL ${step}: ${e.message}`);
    try {
      const pages = await browser.pages();
      for (const p of pages) console.log(`  page ${p.url()}: ${(await p.evaluate(() => document.body.innerText)).slice(0, 1500)}`);
    } catch { /* nothing more to show */ }
  } finally {
    await browser.close();
  }
  process.exit(failed ? 1 : 0);
})();
