// Browser end-to-end test of the panel's admin views (web/: Accounts, Doctor,
// the totals line), driven by their accessible names.
//
// One daemon (support.js), one chromium. A Unix user hve2e-PID is made for the
// test (useradd --create-home; removed with userdel --remove at the end, even
// on a failure or a signal), so the test needs root: it is skipped, saying so,
// otherwise. The admin signs in, opens Accounts and adds the account `shop`
// for that user with the domain shop.example.test; the token shown once in the
// notice is read (and copied with Copy) and signs in, in a new browser context,
// as a non-admin: no Accounts view, an empty instance list, 403 on the accounts
// API. Back as the admin: Edit refuses an ftp:// webhook beside the form and
// saves http://127.0.0.1:9/hook, which the row then shows; at a phone's width
// only the table scrolls; New token (confirmed) shows another token and the
// first stops working; Doctor lists "syscall filter" with its badge (and stays
// shown across a reload: the view is in the URL); Delete is refused (409) while
// the account has an instance (its row counts it, live from the events), and
// with the instance gone Delete (confirmed) removes the row. Along the way: the
// totals line counts instances and accounts, a view's labels never collide
// with another's (one "Name" on the Instances view), no page errors, no CSP
// violations. Screenshots: e2e-admin-*.png in HV_E2E_ARTIFACTS; on a failure,
// e2e-admin-failure.png and the daemon's stderr.
//
// Run (as root): ./setup.sh && HOSTVISOR_BIN=$PWD/../../build/hostvisor node --test admin.spec.js
// Env: as panel.spec.js (support.js), HOSTVISOR_WEB_DIR included.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const support = require('./support');

const { STEP_MS } = support;
const USER = `hve2e-${process.pid}`;
const ACCOUNT = 'shop';
const DOMAIN = 'shop.example.test';
const WEBHOOK = 'http://127.0.0.1:9/hook';

const skip = typeof process.getuid !== 'function' || process.getuid() !== 0
  ? 'needs root: the test adds a Unix user for the account (useradd)'
  : !fs.existsSync('/usr/sbin/useradd') && !fs.existsSync('/sbin/useradd') ? 'useradd not found' : false;

let userMade = false;

// Synchronous, idempotent: also run from the 'exit' event (after support.js's
// own cleanup, registered first, has stopped the daemon and its instances).
function removeUser() {
  if (!userMade) return;
  userMade = false;
  try {
    execFileSync('userdel', ['--remove', USER], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 20000 });
  } catch (e) {
    // 12: the home could not be removed entirely; the user is gone anyway.
    if (e.status !== 12) console.error(`userdel --remove ${USER}: ${e.message}`);
  }
}

before(support.checkPrerequisites);
after(async () => {
  await support.cleanup();
  removeUser();
});
process.on('exit', removeUser);

// Polls `predicate` every 100 ms until it is true, at most `ms`.
async function waitUntil(what, predicate, ms = STEP_MS) {
  for (const deadline = Date.now() + ms; !(await predicate());) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test('the admin adds, edits, rotates and deletes an account in the panel', { timeout: 150000, skip }, async () => {
  await support.runScenario('e2e-admin-failure.png', scenario);
});

// A new browser context (a person of its own) on the panel, watched for
// page errors and CSP violations.
async function openPanel(browser, api, problems) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  const response = await page.goto(`${api}/`);
  assert.equal(response.status(), 200, `GET ${api}/`);
  return { context, page };
}

async function signIn(page, token) {
  await page.getByLabel('Token', { exact: true }).fill(token);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('table', { name: 'Instances', exact: true }).waitFor();
}

async function scenario(problems, seen) {
  // 1. A daemon; a Unix user for the account, with a stopped program in its home.
  const info = await support.startDaemon();
  const api = `http://${info.api}`;
  execFileSync('useradd', ['--create-home', '--shell', '/usr/sbin/nologin', USER],
    { stdio: ['ignore', 'ignore', 'pipe'], timeout: 20000 });
  userMade = true;
  const home = execFileSync('getent', ['passwd', USER], { encoding: 'utf8' }).split(':')[5];
  const program = path.join(home, 'idle.sh');
  fs.writeFileSync(program, '#!/bin/sh\nexec sleep 600\n', { mode: 0o755 });
  const { uid, gid } = fs.statSync(home);
  fs.chownSync(program, uid, gid);

  // 2. The admin signs in: three views, the Instances one shown.
  const browser = await support.startBrowser();
  const { context, page } = await openPanel(browser, api, problems);
  seen.page = page;
  const adminToken = support.adminToken();
  await signIn(page, adminToken);
  const button = (name, scope = page) => scope.getByRole('button', { name, exact: true });
  for (const name of ['Instances', 'Accounts', 'Doctor']) await button(name).waitFor();
  assert.equal(await button('Instances').getAttribute('aria-current'), 'page');
  // One field named Name in the whole page (the create form's): the accounts
  // forms' labels are not tied to their fields while not in use.
  assert.equal(await page.getByLabel('Name', { exact: true }).count(), 1, 'fields named Name on Instances');
  assert.equal(await page.getByLabel('Domains', { exact: true }).count(), 0, 'Domains on Instances');
  assert.equal(await page.getByRole('table').count(), 1, 'tables visible on Instances');
  const totals = page.locator('#totals');
  await waitUntil('totals: 0 instances, 1 account', async () =>
    /^0 instances · 1 account$/.test(await totals.textContent()));

  // 3. Accounts: the embedded `default` is there; add `shop`.
  await button('Accounts').click();
  const accounts = page.getByRole('table', { name: 'Accounts', exact: true });
  await accounts.waitFor();
  assert.equal(await page.getByRole('table', { name: 'Instances', exact: true }).isVisible(), false);
  assert.equal(await button('Create an instance').count(), 0, 'Create an instance on Accounts');
  const accountRow = (name) => accounts.getByRole('row')
    .filter({ has: page.getByRole('rowheader', { name, exact: true }) });
  await accountRow('default').waitFor();
  await support.screenshot(page, 'e2e-admin-accounts.png');

  await button('Add an account').click();
  const addDialog = page.getByRole('dialog', { name: 'Add an account', exact: true });
  await addDialog.waitFor();
  assert.equal(await page.getByLabel('Name', { exact: true }).count(), 1, 'fields named Name with the add form open');
  await page.getByLabel('Name', { exact: true }).fill(ACCOUNT);
  await page.getByLabel('User', { exact: true }).fill(USER);
  await page.getByLabel('Domains', { exact: true }).fill(DOMAIN);
  await button('Add', addDialog).click();
  await addDialog.waitFor({ state: 'hidden' });

  // The token, once: in the notice, with Copy and the warning.
  const notice = page.getByRole('region', { name: 'New token', exact: true });
  await notice.waitFor();
  const token = (await page.locator('#account-token').textContent()).trim();
  assert.match(token, /^[0-9a-f]{32,}$/, `the token in the notice: ${await notice.textContent()}`);
  assert.match(await notice.textContent(), /shown only now/);
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: api });
  await button('Copy', notice).click();
  await waitUntil('Copy says Copied', async () => (await button('Copied', notice).count()) === 1);
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), token, 'the clipboard after Copy');
  const kept = await page.evaluate(() => [localStorage.length, sessionStorage.length, document.cookie]);
  assert.deepEqual(kept, [0, 0, ''], 'the page kept something');

  const shop = accountRow(ACCOUNT);
  await shop.getByText(USER, { exact: true }).waitFor();
  await shop.getByText(DOMAIN, { exact: true }).waitFor();
  await shop.getByText(home, { exact: true }).waitFor();
  await waitUntil('totals: 2 accounts', async () => /· 2 accounts$/.test(await totals.textContent()));
  await support.screenshot(page, 'e2e-admin-token.png');
  await button('Dismiss', notice).click();
  await notice.waitFor({ state: 'hidden' });
  assert.equal(await page.locator('#account-token').textContent(), '', 'the token stays in the page');

  // 4. The new token signs in, in a context of its own: not an admin.
  const tenant = await openPanel(browser, api, problems);
  await signIn(tenant.page, token);
  await tenant.page.locator('#who', { hasText: ACCOUNT }).waitFor();
  await tenant.page.getByText('No instances yet.', { exact: true }).waitFor();
  await button('Instances', tenant.page).waitFor();
  for (const name of ['Accounts', 'Doctor'])
    assert.equal(await button(name, tenant.page).count(), 0, `a non-admin sees ${name}`);
  const tenantRows = tenant.page.getByRole('table', { name: 'Instances' }).locator('tbody tr');
  assert.equal(await tenantRows.count(), 0, 'the new account has instances');
  await waitUntil('the account\'s totals: 0 instances', async () =>
    (await tenant.page.locator('#totals').textContent()) === '0 instances');
  const forbidden = await tenant.page.evaluate(async () => (await fetch('/api/v1/accounts')).status);
  assert.equal(forbidden, 403, 'GET /api/v1/accounts as the account');
  await support.screenshot(tenant.page, 'e2e-admin-tenant.png');
  await tenant.context.close();

  // 5. Edit: a refused webhook is said beside the form; a good one is saved.
  await button('Edit', shop).click();
  const editDialog = page.getByRole('dialog', { name: `Edit ${ACCOUNT}`, exact: true });
  await editDialog.waitFor();
  const webhook = page.getByLabel('Webhook URL', { exact: true });
  assert.equal(await page.getByLabel('Domains', { exact: true }).inputValue(), DOMAIN);
  await webhook.fill('ftp://127.0.0.1/hook');
  await button('Save', editDialog).click();
  const webhookError = page.locator('#e-webhook-error');
  await waitUntil('the webhook error', async () => /http/.test(await webhookError.textContent()));
  assert.equal(await webhook.getAttribute('aria-invalid'), 'true');
  await support.screenshot(page, 'e2e-admin-edit-error.png');
  await webhook.fill(WEBHOOK);
  await button('Save', editDialog).click();
  await editDialog.waitFor({ state: 'hidden' });
  await shop.getByText(WEBHOOK, { exact: true }).waitFor();
  const saved = await page.evaluate(async (n) => (await fetch(`/api/v1/accounts/${n}`)).json(), ACCOUNT);
  assert.equal(saved.webhook, WEBHOOK, 'the webhook the daemon has');

  // At a phone's width the accounts table scrolls sideways, the page does not.
  await page.setViewportSize({ width: 390, height: 844 });
  const widths = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  assert.ok(widths[0] <= widths[1], `the page scrolls sideways: ${widths}`);
  await support.screenshot(page, 'e2e-admin-phone.png');
  await page.setViewportSize({ width: 1280, height: 860 });

  // 6. New token (confirmed): another one is shown; the first no longer works.
  page.once('dialog', (dialog) => dialog.accept());
  await button('New token', shop).click();
  await notice.waitFor();
  await waitUntil('a new token in the notice', async () => {
    const text = (await page.locator('#account-token').textContent()).trim();
    return /^[0-9a-f]{32,}$/.test(text) && text !== token;
  });
  const old = await support.httpRequest(`${api}/api/v1/instances`, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(old.status, 401, `the first token after New token: ${old.body}`);

  // 7. Doctor: the mechanisms, "syscall filter" among them, with its badge.
  await button('Doctor').click();
  assert.equal(await notice.isVisible(), false, 'the token outlives its view');
  const doctor = page.getByRole('table', { name: 'Doctor', exact: true });
  const seccomp = doctor.getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'syscall filter', exact: true }) });
  await seccomp.waitFor();
  assert.match(await seccomp.textContent(), /ENFORCED|DEGRADED/);
  await support.screenshot(page, 'e2e-admin-doctor.png');
  await page.reload();   // the view is in the URL (#doctor)
  await seccomp.waitFor();

  // 8. Delete is refused while the account has an instance (its row counts it,
  // from the events); once the instance is gone, Delete (confirmed) works.
  const created = await support.httpRequest(`${api}/api/v1/instances`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${adminToken}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ name: 'idle', account: ACCOUNT, command: program, start: false }),
  });
  assert.equal(created.status, 201, `POST /api/v1/instances: ${created.body}`);
  await waitUntil('totals: 1 instance stopped', async () => /^1 instance: 1 stopped/.test(await totals.textContent()));
  await button('Accounts').click();
  const shopInstances = shop.getByRole('cell').nth(2);   // user, home, instances
  await waitUntil('the row counts 1 instance', async () => (await shopInstances.textContent()) === '1');
  page.once('dialog', (dialog) => dialog.accept());
  await button('Delete', shop).click();
  const flash = page.locator('#flash');
  await waitUntil('the 409 said', async () => /still has 1 instance/.test(await flash.textContent()));
  assert.equal(await flash.isVisible(), true);
  assert.equal(await shop.count(), 1, 'the row went on a refused delete');
  await support.screenshot(page, 'e2e-admin-delete-refused.png');

  const gone = await support.httpRequest(`${api}/api/v1/instances/idle`,
    { method: 'DELETE', headers: { Authorization: `Bearer ${adminToken}` } });
  assert.equal(gone.status, 200, `DELETE /api/v1/instances/idle: ${gone.body}`);
  await waitUntil('the row counts 0 instances', async () => (await shopInstances.textContent()) === '0');
  page.once('dialog', (dialog) => dialog.accept());
  await button('Delete', shop).click();
  await shop.waitFor({ state: 'detached' });
  await waitUntil('totals: 1 account', async () => /^0 instances · 1 account$/.test(await totals.textContent()));
  const listed = await page.evaluate(async () => (await (await fetch('/api/v1/accounts')).json()).map((a) => a.name));
  assert.deepEqual(listed, ['default'], 'the accounts the daemon has');
  await support.screenshot(page, 'e2e-admin-deleted.png');

  // 9. Back on Instances: one Name again, the accounts table gone from view.
  await button('Instances').click();
  await page.getByRole('table', { name: 'Instances', exact: true }).waitFor();
  assert.equal(await accounts.isVisible(), false);
  assert.equal(await page.getByLabel('Name', { exact: true }).count(), 1, 'fields named Name back on Instances');
}
