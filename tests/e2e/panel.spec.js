// Browser end-to-end test of the web control panel (web/, served by the daemon
// at / of the API's TCP listener), driven the way a person uses it: by the
// accessible names the product contract promises (Token, Sign in, Create an
// instance, Name, Command, Route, Create, Start, Stop, Delete, Logs, Sign out;
// and the Command picker's Browse… button and Files region).
//
// One daemon (support.js), one chromium. The test signs in (a wrong token
// first), creates the chat example as an instance with route /chat/ through the
// panel's form (its Command picked with Browse…: a 0644 script shows the chmod
// fix and fills nothing; the binary, in a directory entered by a click, fills
// Command), checks the assigned port is shown and the row says running, chats
// through the front proxy from two other browser contexts, stops and starts the
// instance from its row (the table follows by itself: no reload), watches the
// Logs region gain output live, checks that the daemon refuses a state-changing
// call without the CSRF header or from a foreign Origin, deletes the instance,
// signs out, and checks the old session cookie is dead.
// Along the way: no page errors and no CSP violations. Screenshots
// (e2e-panel-*.png) go to HV_E2E_ARTIFACTS; on a failure, the daemon's stderr
// is printed.
//
// Run: ./setup.sh && HOSTVISOR_BIN=build/hostvisor node --test panel.spec.js
// Env: as chat.spec.js (support.js); HOSTVISOR_WEB_DIR=/path/to/web makes the
// daemon serve the panel's files from there instead of the embedded ones.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const support = require('./support');

const { STEP_MS } = support;

before(support.checkPrerequisites);
after(support.cleanup);

// Polls `predicate` every 100 ms until it is true, at most `ms`.
async function waitUntil(what, predicate, ms = STEP_MS) {
  for (const deadline = Date.now() + ms; !(await predicate());) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test('the panel signs in, creates, stops, starts, follows and deletes an instance', { timeout: 150000 }, async () => {
  await support.runScenario('e2e-panel-failure.png', scenario);
});

async function scenario(problems, seen) {
  // 1. A daemon, its admin token, the chat example inside the temp home.
  const info = await support.startDaemon();
  const api = `http://${info.api}`;
  const token = support.adminToken();
  const copied = support.copyChatBinary();

  // 2. The panel; a wrong token first, then the admin's.
  const browser = await support.startBrowser();
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  seen.page = page;
  page.setDefaultTimeout(STEP_MS);
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) problems.push(`console: ${m.text()}`);
  });

  const response = await page.goto(`${api}/`);
  assert.equal(response.status(), 200, `GET ${api}/`);
  assert.match(response.headers()['content-security-policy'] || '', /script-src 'self'/);

  const tokenField = page.getByLabel('Token', { exact: true });
  const signIn = page.getByRole('button', { name: 'Sign in', exact: true });
  const table = page.getByRole('table');
  await tokenField.fill('not-the-token');
  await signIn.click();
  const tokenError = page.locator('#token-error');
  await waitUntil('an error under the Token field', async () => (await tokenError.textContent()).trim() !== '');
  const sessionCookie = async () => (await context.cookies(api)).find((c) => c.name === 'hv_session');
  assert.equal(await sessionCookie(), undefined, 'a wrong token got a session cookie');
  assert.equal(await table.isVisible(), false, 'the table shows without a session');

  await tokenField.fill(token);
  await signIn.click();
  await table.waitFor();
  assert.equal(await tokenField.inputValue(), '', 'the token field is cleared after sign-in');
  const cookie = await sessionCookie();
  assert.ok(cookie, 'no hv_session cookie after sign-in');
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Strict');
  const stored = await page.evaluate(() => [localStorage.length, sessionStorage.length, document.cookie]);
  assert.deepEqual(stored, [0, 0, ''], 'the page kept something of the session');

  // The cookie keeps the page signed in across a reload.
  await page.reload();
  await table.waitFor();
  await support.screenshot(page, 'e2e-panel-signed-in.png');

  // 3. Create the chat instance through the form, its Command picked by
  // browsing. The account's home is the temp home (the daemon's $HOME): the
  // chat binary goes in app/ there, next to a script left at mode 0644.
  const home = support.state.home;
  const chatBin = path.join(home, 'app', path.basename(copied));
  fs.mkdirSync(path.dirname(chatBin), { mode: 0o755 });
  fs.renameSync(copied, chatBin);
  const script = path.join(home, 'start.sh');
  fs.writeFileSync(script, '#!/bin/sh\nexec ./app/hostvisor-chat\n');
  fs.chmodSync(script, 0o644);

  await page.getByRole('button', { name: 'Create an instance', exact: true }).click();
  await page.getByLabel('Name', { exact: true }).fill('chat');
  const command = page.getByLabel('Command', { exact: true });
  await page.getByRole('button', { name: 'Browse…', exact: true }).click();
  const files = page.getByRole('region', { name: 'Files', exact: true });
  const button = (name) => page.getByRole('button', { name, exact: true });
  const entry = (name) => files.getByRole('button', { name, exact: true });
  const fileRow = (name) => files.getByRole('listitem').filter({ has: button(name) });
  const up = entry('Up');
  await files.getByText(home, { exact: true }).waitFor();   // it starts at the home
  await entry('app').waitFor();
  assert.equal(await up.count(), 0, 'an Up entry at the home');

  // The script: its hint (the fix: chmod), and Command stays empty.
  const scriptRow = fileRow('start.sh');
  await scriptRow.getByText('0644', { exact: true }).waitFor();
  await entry('start.sh').click();
  const status = files.getByRole('status');
  await waitUntil('the hint of start.sh', async () => /chmod/.test(await status.textContent()));
  assert.match(await status.textContent(), /not executable/);
  assert.equal(await command.inputValue(), '', 'a non-executable file filled Command');
  assert.equal(await files.isVisible(), true, 'the picker closed on a non-executable file');

  // Into app/ and back Up, into app/ again; the binary says it runs.
  await entry('app').click();
  await up.waitFor();
  await files.getByText(path.dirname(chatBin), { exact: true }).waitFor();
  await up.click();
  await entry('start.sh').waitFor();
  await entry('app').click();
  const binRow = fileRow(path.basename(chatBin));
  await binRow.getByText('runs', { exact: true }).waitFor();
  await binRow.getByText('0755', { exact: true }).waitFor();
  await support.screenshot(page, 'e2e-panel-browse.png');

  // The keyboard picks it: it has the focus (the directory's only file).
  const focused = await page.evaluate(() => document.activeElement?.textContent);
  assert.equal(focused, path.basename(chatBin), 'the focus after entering app/');
  await page.keyboard.press('Enter');
  await files.waitFor({ state: 'hidden' });
  assert.equal(await command.inputValue(), chatBin, 'Command after picking the chat binary');

  await page.getByLabel('Route', { exact: true }).fill('/chat/');
  await page.getByRole('button', { name: 'Create', exact: true }).click();

  const notice = page.locator('#notice');
  await notice.waitFor();
  const port = Number(await page.locator('#new-port').textContent());
  assert.ok(Number.isInteger(port) && port > 0, `the shown port: ${await notice.textContent()}`);
  assert.match(await notice.textContent(), /\$PORT/);
  const created = await page.evaluate(async () => (await fetch('/api/v1/instances/chat')).json());
  assert.equal(created.port, port, 'the port shown is not the instance\'s');

  const row = page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'chat', exact: true }) });
  await row.getByText('running', { exact: true }).waitFor();
  await row.getByRole('cell', { name: String(port), exact: true }).waitFor();

  // The new instance is selected: its output shows in the Logs region.
  const logs = page.getByRole('region', { name: 'Logs', exact: true });
  const listening = logs.getByText(/chat: listening on/);
  await listening.first().waitFor();
  await support.screenshot(page, 'e2e-panel-created.png');

  // 4. Two people chat through the front proxy.
  const { ann, bob } = await support.chatExchange(browser, info.proxy);
  await support.screenshot(bob, 'e2e-panel-chat-bob.png');
  const joinAnn = logs.getByText('join ann');
  await joinAnn.first().waitFor();
  await logs.getByText('join bob').first().waitFor();

  // 5. Stop from the row: the state follows without a reload.
  let navigations = 0;
  page.on('framenavigated', (frame) => { if (frame === page.mainFrame()) navigations++; });
  await page.evaluate(() => { window.hvNoReload = true; });
  await row.getByRole('button', { name: 'Stop', exact: true }).click();
  await row.getByText('stopped', { exact: true }).waitFor();
  assert.equal(navigations, 0, 'the page navigated');
  assert.equal(await page.evaluate(() => window.hvNoReload), true, 'the page was reloaded');
  await logs.getByText(/chat: SIGTERM/).first().waitFor();   // the log follow stays open
  // The selected instance's details follow too: why it stopped, and what its
  // network policy refused.
  const details = logs.getByRole('definition').filter({ hasText: 'stopped by request' });
  await details.waitFor();
  await logs.getByText(/^bind \d+ · connect \d+/).waitFor();
  await page.emulateMedia({ colorScheme: 'dark' });
  await support.screenshot(page, 'e2e-panel-stopped-dark.png');
  await page.emulateMedia({ colorScheme: 'light' });

  // 6. Start from the row: a new run, its output live in the Logs region.
  const listeningBefore = await listening.count();
  const joinsBefore = await joinAnn.count();
  await row.getByRole('button', { name: 'Start', exact: true }).click();
  await row.getByText('running', { exact: true }).waitFor();
  await waitUntil('a new "listening" line in Logs', async () => (await listening.count()) > listeningBefore);
  // The chat pages reconnect on their own (with backoff); 'online' hurries them.
  for (const p of [ann, bob]) await p.evaluate(() => window.dispatchEvent(new Event('online')));
  await waitUntil('a new "join ann" line in Logs', async () => (await joinAnn.count()) > joinsBefore);
  assert.equal(await page.evaluate(() => window.hvNoReload), true, 'the page was reloaded');
  await support.screenshot(page, 'e2e-panel-restarted.png');

  // 6b. Settings of the selected instance: an access rule set in the panel
  // holds at the front proxy (403), and taking it away serves the chat again.
  const proxyStatus = async () => (await support.httpRequest(`http://${info.proxy}/chat/`)).status;
  async function saveAccess(rules) {
    await page.getByRole('button', { name: 'Settings', exact: true }).click();
    const dialog = page.getByRole('dialog', { name: /Settings of chat/ });
    await dialog.getByLabel('Access rules', { exact: true }).fill(rules);
    await dialog.getByRole('button', { name: 'Save', exact: true }).click();
    await dialog.waitFor({ state: 'hidden' });
  }
  await saveAccess('deny all');
  await waitUntil('the proxy refuses /chat/ (403)', async () => (await proxyStatus()) === 403);
  await saveAccess('');
  await waitUntil('the proxy serves /chat/ again', async () => (await proxyStatus()) === 200);

  // 7. Refusals: no CSRF header, then a foreign Origin (with a valid cookie
  // and CSRF token, from node); the instance is left running by both.
  const noCsrf = await page.evaluate(async () => (await fetch('/api/v1/instances/chat/stop',
    { method: 'POST', headers: { 'Content-Type': 'application/json' } })).status);
  assert.equal(noCsrf, 403, 'a POST without X-CSRF-Token');
  const csrf = await page.evaluate(async () => (await (await fetch('/api/v1/session')).json()).csrf);
  assert.match(csrf || '', /^[0-9a-f]+$/, 'GET /api/v1/session has no csrf');
  const cookieHeader = `hv_session=${cookie.value}`;
  const control = await support.httpRequest(`${api}/api/v1/instances`, { headers: { Cookie: cookieHeader } });
  assert.equal(control.status, 200, `GET with the session cookie from node: ${control.body}`);
  const foreign = await support.httpRequest(`${api}/api/v1/instances/chat/stop`, {
    method: 'POST',
    headers: { Cookie: cookieHeader, 'X-CSRF-Token': csrf, 'Content-Type': 'application/json',
      Origin: 'http://evil.example' },
  });
  assert.equal(foreign.status, 403, `a POST from a foreign Origin: ${foreign.body}`);
  const after = await page.evaluate(async () => (await fetch('/api/v1/instances/chat')).json());
  assert.equal(after.state, 'running', 'a refused call stopped the instance');

  // Delete (confirmed): the row goes, the log follow says why it ended.
  page.once('dialog', (dialog) => dialog.accept());
  await row.getByRole('button', { name: 'Delete', exact: true }).click();
  await row.waitFor({ state: 'detached' });
  await logs.getByText('[the instance was deleted]').waitFor();
  // The totals follow, and the deleted instance's details and Settings go.
  await page.locator('#totals').getByText(/^0 instances/).waitFor();
  await page.getByRole('button', { name: 'Settings', exact: true }).waitFor({ state: 'hidden' });

  // A phone's width: the table scrolls sideways, the page does not.
  await page.setViewportSize({ width: 390, height: 844 });
  const widths = await page.evaluate(() => ({
    page: document.documentElement.scrollWidth, view: window.innerWidth,
    wrap: document.querySelector('.table-wrap').scrollWidth,
    wrapView: document.querySelector('.table-wrap').clientWidth,
  }));
  assert.ok(widths.page <= widths.view, `the page scrolls sideways: ${JSON.stringify(widths)}`);
  assert.ok(widths.wrap > widths.wrapView, `the table does not scroll: ${JSON.stringify(widths)}`);
  await support.screenshot(page, 'e2e-panel-phone.png');
  await page.setViewportSize({ width: 1280, height: 860 });

  // 8. Sign out: the form is back, and the old cookie opens nothing.
  await page.getByRole('button', { name: 'Sign out', exact: true }).click();
  await tokenField.waitFor();
  assert.equal(await table.isVisible(), false, 'the table shows after sign-out');
  const dead = await support.httpRequest(`${api}/api/v1/instances`, { headers: { Cookie: cookieHeader } });
  assert.equal(dead.status, 401, `GET with the old cookie after sign-out: ${dead.body}`);
  await support.screenshot(page, 'e2e-panel-signed-out.png');
}
