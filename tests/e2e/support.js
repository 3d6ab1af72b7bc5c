// Shared helpers of the browser end-to-end tests (chat.spec.js, panel.spec.js):
// a real hostvisor daemon, Debian's chromium driven by playwright-core over
// CDP, the chat example's two-person exchange, and the cleanup of it all.
//
// The daemon runs on a temp data dir, with the API and the proxy on port 0, a
// free port range, and a temp home inside $HOME (the embedded default's
// account `default` has $HOME as its home, and commands must live there).
// Its environment is the test's, HOME aside: HOSTVISOR_WEB_DIR (serve the
// panel's files from that directory instead of the embedded ones, for
// development) reaches it only when it is set for the test.
//
// Cleanup, whatever happened (a failure, the test's own timeout, SIGINT or
// SIGTERM): browser disconnected and chromium's process group killed,
// `hostvisor shutdown --stop-instances` (SIGKILL if the daemon is still there
// after 20 s), temp dirs removed. Requiring this module installs the last
// resort: it runs synchronously on the process's 'exit' event, so even a
// runner that calls process.exit() is covered. Specs add `after(cleanup)`.
//
// Env: HOSTVISOR_BIN, HV_CHAT_BIN (default: the build dir's binaries),
//      CHROMIUM (default /usr/bin/chromium), HV_E2E_ARTIFACTS (default: cwd).
'use strict';

const assert = require('node:assert/strict');
const { spawn, execFile, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { chromium } = require('playwright-core');

const ROOT = path.resolve(__dirname, '..', '..');
const BIN = process.env.HOSTVISOR_BIN || path.join(ROOT, 'build', 'hostvisor');
const CHAT_BIN = process.env.HV_CHAT_BIN || path.join(path.dirname(BIN), 'examples', 'hostvisor-chat');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = process.env.HV_E2E_ARTIFACTS || process.cwd();
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
  '--no-first-run', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--disable-breakpad', '--no-default-browser-check',
  '--remote-debugging-address=127.0.0.1', '--remote-debugging-port=0'];
const STEP_MS = 15000;   // every wait of the tests is bounded by this

// What cleanup has to undo; `stderr` is everything the daemon wrote there.
const state = {
  daemon: null, dataDir: null, home: null, stderr: '',
  chromium: null, profile: null, browser: null,
};

// ---- processes ----------------------------------------------------------------

function portIsFree(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ host: '127.0.0.1', port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

// Ten free ports in 30000-59999 (below the ephemeral range when it allows),
// starting at a pid-derived slot so parallel runs pick different ranges.
async function pickPortRange(size = 10) {
  let lo = 30000, hi = 59999;
  try {
    const ephLo = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').split(/\s+/)[0]);
    if (ephLo - 1 - lo >= 500) hi = ephLo - 1;
  } catch { /* keep the defaults */ }
  const slots = Math.floor((hi - lo + 1) / size);
  const start = (process.pid * 7919 + Date.now()) % slots;
  for (let i = 0; i < slots; i++) {
    const base = lo + ((start + i) % slots) * size;
    let free = true;
    for (let p = base; p < base + size && free; p++) free = await portIsFree(p);
    if (free) return [base, base + size - 1];
  }
  throw new Error('no free port range');
}

function cliEnv() {
  return { ...process.env, HOME: state.home };
}

function cli(...args) {
  return new Promise((resolve, reject) => {
    execFile(BIN, ['--data-dir', state.dataDir, ...args],
      { env: cliEnv(), cwd: state.home, timeout: 30000 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`hostvisor ${args.join(' ')}: ${err.message}\n${stdout}\n${stderr}`));
        else resolve(stdout);
      });
  });
}

function running(child) {
  return child && child.exitCode === null && child.signalCode === null;
}

function waitExit(child, ms) {
  if (!running(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => { clearTimeout(timer); resolve(true); });
  });
}

// Resolves with the first match of `re` in the child's stderr, within STEP_MS.
// `sink` (if any) keeps getting every chunk afterwards too.
function waitStderr(child, re, what, sink) {
  return new Promise((resolve, reject) => {
    let seen = '';
    let done = false;
    const timer = setTimeout(() => reject(new Error(`${what}: nothing within ${STEP_MS} ms:\n${seen}`)), STEP_MS);
    child.stderr.on('data', (chunk) => {
      if (sink) sink(chunk.toString());
      if (done) return;
      seen += chunk.toString();
      const m = seen.match(re);
      if (m) { done = true; clearTimeout(timer); resolve(m); }
    });
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`${what}: exited (${code ?? sig}) first:\n${seen}`));
    });
  });
}

// Starts `hostvisor serve`; resolves with DATA_DIR/daemon.json once it says `ready:`.
async function startDaemon() {
  state.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hv-e2e-data-'));
  state.home = fs.mkdtempSync(path.join(os.homedir(), 'hv-e2e-home-'));
  fs.chmodSync(state.home, 0o755);
  const [lo, hi] = await pickPortRange();
  state.daemon = spawn(BIN, ['serve', '--data-dir', state.dataDir, '--api-listen', '127.0.0.1:0',
    '--proxy-listen', '127.0.0.1:0', '--port-range', `${lo}-${hi}`],
  { env: cliEnv(), cwd: state.home, stdio: ['ignore', 'ignore', 'pipe'] });
  await waitStderr(state.daemon, /ready:/, 'hostvisor serve', (s) => { state.stderr += s; });
  return JSON.parse(fs.readFileSync(path.join(state.dataDir, 'daemon.json'), 'utf8'));
}

// The admin token the daemon wrote at its first start.
function adminToken() {
  return fs.readFileSync(path.join(state.dataDir, 'admin.token'), 'utf8').trim();
}

// A copy of the chat example inside the temp home (an instance's command must
// be there); returns its path.
function copyChatBinary() {
  const chat = path.join(state.home, 'hostvisor-chat');
  fs.copyFileSync(CHAT_BIN, chat);
  fs.chmodSync(chat, 0o755);
  return chat;
}

// Chromium as our own child, in its own process group (so its helpers go
// with it), on a fresh profile; playwright-core connects over CDP.
async function startBrowser() {
  state.profile = fs.mkdtempSync(path.join(os.tmpdir(), 'hv-e2e-chromium-'));
  state.chromium = spawn(CHROMIUM, [...CHROMIUM_FLAGS, `--user-data-dir=${state.profile}`, 'about:blank'],
    { stdio: ['ignore', 'ignore', 'pipe'], detached: true,
      env: { ...process.env, HOME: state.profile } });
  const [, endpoint] = await waitStderr(state.chromium, /DevTools listening on (ws:\/\/\S+)/, 'chromium');
  state.browser = await chromium.connectOverCDP(endpoint, { timeout: STEP_MS });
  return state.browser;
}

// ---- cleanup ------------------------------------------------------------------

function killChromium() {
  const child = state.chromium;
  if (!child) return;
  try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
}

// Synchronous: usable from the 'exit' event. Idempotent.
function cleanupSync() {
  killChromium();
  state.chromium = null;
  const daemon = state.daemon;
  if (running(daemon)) {
    try {
      execFileSync(BIN, ['--data-dir', state.dataDir, 'shutdown', '--stop-instances'],
        { env: cliEnv(), cwd: state.home, timeout: 20000, stdio: 'ignore' });
    } catch { /* fall through to SIGKILL */ }
    const deadline = Date.now() + 20000;
    const gone = () => {
      try { return /\) [ZX] /.test(fs.readFileSync(`/proc/${daemon.pid}/stat`, 'utf8')); } catch { return true; }
    };
    while (!gone() && Date.now() < deadline) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
    if (!gone()) try { daemon.kill('SIGKILL'); } catch { /* gone */ }
  }
  state.daemon = null;
  for (const dir of [state.dataDir, state.home, state.profile])
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  state.dataDir = state.home = state.profile = null;
}

async function cleanup() {
  if (state.browser) await state.browser.close().catch((e) => console.error(String(e)));
  state.browser = null;
  killChromium();
  if (state.chromium) await waitExit(state.chromium, 5000);
  state.chromium = null;
  if (running(state.daemon)) {
    try { await cli('shutdown', '--stop-instances'); } catch (e) { console.error(String(e)); }
    if (!(await waitExit(state.daemon, 20000))) state.daemon.kill('SIGKILL');
    await waitExit(state.daemon, 5000);
  }
  cleanupSync();
}

process.on('exit', cleanupSync);
for (const sig of ['SIGINT', 'SIGTERM'])
  process.once(sig, () => process.exit(128 + os.constants.signals[sig]));

// For a spec's `before`: the binaries and the browser are where we expect.
function checkPrerequisites() {
  for (const [what, file] of [['hostvisor', BIN], ['the chat example', CHAT_BIN], ['chromium', CHROMIUM]])
    assert.ok(fs.existsSync(file), `${what} not found at ${file}`);
}

// The daemon's stderr, the last `bytes` of it, for a failure report.
function daemonStderr(bytes = 8000) {
  return state.stderr.length > bytes ? `…${state.stderr.slice(-bytes)}` : state.stderr;
}

function screenshot(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  return page.screenshot({ path: path.join(ARTIFACTS, name) });
}

// ---- plain HTTP ---------------------------------------------------------------

// One request with exactly the headers given (node's fetch would add or refuse
// some, like Origin and Cookie): resolves with { status, headers, body }.
function httpRequest(url, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, timeout: STEP_MS }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { data += chunk; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: data }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: no answer within ${STEP_MS} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

// ---- the chat example in the browser --------------------------------------------

// A new isolated context (a person of their own) on the chat page at `url`.
// The daemon hands routes to the proxy a moment after the API says `running`:
// a 404/503 from the proxy itself is retried, bounded.
async function openChat(browser, url) {
  const context = await browser.newContext({ viewport: { width: 900, height: 600 } });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  let response;
  for (const deadline = Date.now() + STEP_MS; ;) {
    response = await page.goto(url);
    if (response.status() === 200 || Date.now() > deadline) break;
    await page.waitForTimeout(100);
  }
  assert.equal(response.status(), 200, `GET ${url}: ${await response.text()}`);
  return page;
}

async function joinChat(page, name) {
  await page.locator('#name-dialog').waitFor({ state: 'visible' });
  await page.fill('#name-input', name);
  await page.click('#name-form button[type=submit]');
  await page.locator('#status[data-state="online"]').waitFor();
  await page.locator('#me', { hasText: name }).waitFor();
}

// Two people on http://PROXY/chat/: `ann` and `bob` join, see each other
// online, and bob sees the message ann sends. Resolves with both pages (their
// contexts stay open: the pages keep their sockets, and reconnect when the
// instance comes back after a stop).
async function chatExchange(browser, proxy) {
  const url = `http://${proxy}/chat/`;
  const ann = await openChat(browser, url);
  const bob = await openChat(browser, url);
  await joinChat(ann, 'ann');
  await joinChat(bob, 'bob');

  // Both see each other online.
  await ann.locator('#users li', { hasText: 'bob' }).waitFor();
  await bob.locator('#users li', { hasText: 'ann' }).waitFor();

  const text = `hello bob, through the proxy ${Date.now()}`;
  await ann.fill('#input', text);
  await ann.click('#send');

  const got = bob.locator('#log li.msg', { hasText: text });
  await got.waitFor();
  assert.equal(await got.locator('.name').textContent(), 'ann');
  assert.equal(await got.locator('.text').textContent(), text);
  await ann.locator('#log li.msg.mine', { hasText: text }).waitFor();
  return { ann, bob };
}

// Runs a browser scenario `run(problems, seen)`; on failure saves a screenshot
// of `seen.page` as `failureShot` and prints the daemon's stderr and the page's
// problems; at the end no page error or CSP violation may have been seen.
async function runScenario(failureShot, run) {
  const problems = [];   // page errors and CSP violations: none expected
  const seen = { page: null };
  try {
    await run(problems, seen);
  } catch (e) {
    if (seen.page) await screenshot(seen.page, failureShot).catch(() => {});
    console.error(`--- daemon stderr ---\n${daemonStderr()}\n--- page problems ---\n${problems.join('\n')}`);
    throw e;
  }
  assert.deepEqual(problems, [], 'page errors or CSP violations');
}

module.exports = {
  runScenario,
  ROOT, BIN, CHAT_BIN, CHROMIUM, ARTIFACTS, STEP_MS, state,
  cli, startDaemon, adminToken, copyChatBinary, startBrowser,
  cleanup, cleanupSync, checkPrerequisites, daemonStderr, screenshot,
  httpRequest, openChat, joinChat, chatExchange,
};
