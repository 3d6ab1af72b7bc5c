// hostvisor's control panel: sign in with a token (a cookie session, the
// token itself never kept), the instances as a live table (a WebSocket of
// events, never polling), create / start / stop / restart / delete, and the
// selected instance's output as it is written; for the admin, Accounts and Doctor.
//
// The daemon serves this file under a strict CSP: no eval, no inline style,
// no markup built from strings (every text goes in through textContent).
// State-changing calls carry the session's CSRF token (X-CSRF-Token) and a
// JSON content type, or the daemon refuses them.

const API = '/api/v1';
const MAX_LOG_LINES = 2000;        // lines kept on screen; the oldest go first
const MAX_PENDING_LOG = 1 << 20;   // characters waiting for a frame (or a resume)
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15000;
const STATES = new Set(['stopped', 'starting', 'running', 'backoff', 'stopping', 'exited', 'fatal']);
const ACTION_LABELS = { start: 'Start', stop: 'Stop', restart: 'Restart' };

const $ = (id) => document.getElementById(id);

let session = null;                // { account, admin, csrf } while signed in
const instances = new Map();       // name → { data, row, cells, startedAt, startMs }
let selected = null;               // the instance whose output the Logs region shows
let snapshotSeen = false;          // the table holds the daemon's view
let uptimeTimer = 0;
let flashTimer = 0;
const events = { ws: null, attempts: 0, timer: 0 };
const logs = { ws: null, attempts: 0, timer: 0, view: null, ended: false };

// ---- small helpers ----------------------------------------------------------------

// An element with attributes and children (strings become text nodes).
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'className') el.className = value;
    else el.setAttribute(key, value);
  }
  el.append(...children);
  return el;
}

// Writes only when the text changed: no needless layout work on updates.
function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

function backoff(attempt) {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** attempt);
  return ceiling / 2 + Math.random() * ceiling / 2;   // jitter: not every tab at once
}

function wsUrl(path) {
  return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}${API}${path}`;
}

function fmtDuration(ms) {
  let s = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(s / 86400); s -= d * 86400;
  const hrs = Math.floor(s / 3600); s -= hrs * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d) return `${d}d ${hrs}h`;
  if (hrs) return `${hrs}h ${String(m).padStart(2, '0')}m`;
  if (m) return `${m}m ${String(s).padStart(2, '0')}s`;
  return `${s}s`;
}

function fmtBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i === 0 || n >= 100 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

function fmtCpu(seconds) {
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  return fmtDuration(seconds * 1000);
}

// An argument as a shell would need it, for display only.
function shellWord(arg) {
  return /^[\w@%+=:,./{}-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

function flash(message) {
  const el = $('flash');
  el.textContent = message;
  el.hidden = false;
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => { el.hidden = true; }, 10000);
}

// ---- the API ----------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// One call; resolves with the parsed JSON answer, rejects with an ApiError
// carrying the daemon's own message.
async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') {
    headers['Content-Type'] = 'application/json';
    if (session) headers['X-CSRF-Token'] = session.csrf;
  }
  let res;
  try {
    res = await fetch(API + path, {
      method, headers, credentials: 'same-origin', cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'network', 'The daemon cannot be reached; check your connection.');
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { /* not JSON: the status says it */ }
  if (!res.ok) {
    const err = data && data.error;
    throw new ApiError(res.status, err?.code || 'http', err?.message || `${res.status} ${res.statusText}`.trim());
  }
  return data;
}

// A call made while signed in: a 401 means the session is over.
async function call(method, path, body) {
  try {
    return await api(method, path, body);
  } catch (e) {
    if (e.status === 401 && session) endSession('Your session has ended. Sign in again.');
    throw e;
  }
}

// ---- session ----------------------------------------------------------------------

function showSignIn(message) {
  for (const id of ['app', 'who', 'conn', 'sign-out']) $(id).hidden = true;
  $('signin').hidden = false;
  $('token-error').textContent = message || '';
  $('token').setAttribute('aria-invalid', message ? 'true' : 'false');
  $('token').focus();
}

function signedIn(answer) {
  session = { account: answer.account, admin: !!answer.admin, csrf: answer.csrf };
  $('signin').hidden = true;
  $('token-error').textContent = '';
  $('who').textContent = session.admin ? `${session.account} (admin)` : session.account;
  for (const id of ['app', 'who', 'conn', 'sign-out']) $(id).hidden = false;
  snapshotSeen = false;
  renderEmpty();
  connectEvents();
  clearInterval(uptimeTimer);
  uptimeTimer = setInterval(tickUptime, 1000);
  for (const b of viewButtons()) b.hidden = b.dataset.view !== 'instances' && !session.admin;
  accounts.list = null;
  const view = session.admin && VIEWS.includes(location.hash.slice(1)) ? location.hash.slice(1) : 'instances';
  if (session.admin && view !== 'accounts') loadAccounts();   // the count in the totals
  showView(view, false);
  renderTotals();
  if (currentView === 'instances') $('create-open').focus();
}

async function onSignIn(ev) {
  ev.preventDefault();
  const input = $('token');
  const button = ev.submitter || $('signin-form').querySelector('button');
  const token = input.value.trim();
  if (!token) return showSignIn('Enter your API token.');
  button.disabled = true;
  try {
    const answer = await api('POST', '/session', { token });
    input.value = '';
    signedIn(answer);
  } catch (e) {
    // 401: a wrong token; 429: too many wrong ones; the daemon says which.
    showSignIn(e.message);
    input.select();
  } finally {
    button.disabled = false;
  }
}

async function onSignOut() {
  try {
    await api('DELETE', '/session');
  } catch { /* already gone: the same end */ }
  endSession('');
}

// Back to the sign-in form, with nothing of the session left behind.
function endSession(message) {
  session = null;
  clearTimeout(events.timer);
  if (events.ws) { const ws = events.ws; events.ws = null; ws.close(1000); }
  closeLogs();
  selected = null;
  clearInterval(uptimeTimer);
  instances.clear();
  $('rows').replaceChildren();
  $('notice').hidden = true;
  $('flash').hidden = true;
  if ($('create-dialog').open) $('create-dialog').close();
  resetLogsPanel();
  resetAdmin();
  showSignIn(message);
}

// ---- the events stream --------------------------------------------------------------

function setConn(state, text) {
  $('conn').dataset.state = state;
  $('conn').textContent = text;
}

function eventsLive() {
  return snapshotSeen && events.ws !== null && events.ws.readyState === WebSocket.OPEN;
}

// Changes are drawn once per frame, the newest of each instance only: 50
// restarts a second are ~150 events, and each drawn on its own made the
// browser lay the 1,000-row table out again and again.
const pendingUpserts = new Map();
let upsertFrame = 0;
function queueUpsert(inst) {
  pendingUpserts.set(inst.name, inst);
  if (upsertFrame) return;
  const flush = () => {
    upsertFrame = 0;
    const batch = [...pendingUpserts.values()];
    pendingUpserts.clear();
    for (const i of batch) upsert(i);
  };
  // A hidden tab gets no animation frames: a timer then, so nothing piles up.
  upsertFrame = document.hidden ? setTimeout(flush, 250) : requestAnimationFrame(flush);
}

function connectEvents() {
  const ws = new WebSocket(wsUrl('/events'));
  events.ws = ws;
  setConn('connecting', 'connecting…');
  ws.onopen = () => {
    if (events.ws !== ws) return;
    events.attempts = 0;
    setConn('live', 'live');
  };
  ws.onmessage = (ev) => {
    if (events.ws !== ws || typeof ev.data !== 'string') return;
    let msg;
    try { msg = JSON.parse(ev.data); } catch { return; }
    if (msg.type === 'snapshot') { pendingUpserts.clear(); applySnapshot(msg.instances || []); }
    else if (msg.type === 'instance' && msg.instance) queueUpsert(msg.instance);
    else if (msg.type === 'deleted') { pendingUpserts.delete(msg.name); removeInstance(msg.name); }
    else if (msg.type === 'alert' && msg.alert) showAlert(msg.alert);
  };
  ws.onclose = () => {
    if (events.ws !== ws) return;   // one we closed on purpose
    events.ws = null;
    if (!session) return;
    setConn('offline', 'reconnecting…');
    events.timer = setTimeout(reconnectEvents, backoff(events.attempts++));
  };
}

// A socket refused at its handshake looks like any other close: is the
// session still there? Meanwhile the table gets one fresh listing.
async function reconnectEvents() {
  if (!session || events.ws) return;
  try {
    const answer = await call('GET', '/session');
    if (answer && answer.csrf) session.csrf = answer.csrf;
    applySnapshot(await call('GET', '/instances'));
  } catch (e) {
    if (e.status === 401) return;   // endSession ran
  }
  if (session && !events.ws) connectEvents();
}

// ---- the instance table -------------------------------------------------------------

function applySnapshot(list) {
  const names = new Set(list.map((inst) => inst.name));
  for (const name of [...instances.keys()]) if (!names.has(name)) removeInstance(name);
  for (const inst of list) upsert(inst, true);
  const sorted = [...instances.keys()].sort().map((name) => instances.get(name).row);
  $('rows').replaceChildren(...sorted);
  snapshotSeen = true;
  renderEmpty();
}

function renderEmpty() {
  const empty = $('empty');
  empty.textContent = snapshotSeen ? 'No instances yet.' : 'Loading…';
  empty.hidden = instances.size > 0;
  scheduleTotals();
}

function createRow(name) {
  const cells = {
    name: h('button', { type: 'button', className: 'link', 'data-action': 'select' }, name),
    account: h('span', { className: 'sub' }),
    state: h('span', { className: 'state' }),
    reason: h('span', { className: 'reason' }),
    port: h('td', { className: 'num port' }),
    command: h('code'),
    uptime: h('td', { className: 'num uptime' }),
    restarts: h('td', { className: 'num restarts' }),
    cpu: h('td', { className: 'num cpu' }),
    memory: h('td', { className: 'num memory' }),
    route: h('code'),
    copy: h('button', { type: 'button', className: 'quiet', 'data-action': 'copy' }, 'Copy'),
    routeCell: null,
  };
  cells.routeCell = h('td', { className: 'route' }, cells.route, cells.copy);
  const row = h('tr', {},
    h('th', { scope: 'row' }, cells.name, cells.account),
    h('td', { className: 'state-cell' }, cells.state, cells.reason),
    cells.port,
    h('td', { className: 'cmd' }, cells.command),
    cells.uptime, cells.restarts, cells.cpu, cells.memory,
    cells.routeCell,
    h('td', { className: 'actions' },
      h('button', { type: 'button', 'data-action': 'start' }, 'Start'),
      h('button', { type: 'button', 'data-action': 'stop' }, 'Stop'),
      h('button', { type: 'button', 'data-action': 'restart' }, 'Restart'),
      h('button', { type: 'button', className: 'danger', 'data-action': 'delete' }, 'Delete')));
  row.dataset.name = name;
  return { data: null, row, cells, startedAt: null, startMs: null };
}

// Inserts or updates an instance's row. `bulk`: the caller orders the rows.
function upsert(inst, bulk = false) {
  if (!inst || typeof inst.name !== 'string') return;
  let entry = instances.get(inst.name);
  if (!entry) {
    entry = createRow(inst.name);
    instances.set(inst.name, entry);
    if (!bulk) {
      const next = [...$('rows').children].find((tr) => tr.dataset.name > inst.name);
      $('rows').insertBefore(entry.row, next || null);
      renderEmpty();
    }
    if (inst.name === selected) entry.row.classList.add('selected');
  }
  if (entry.data?.state !== inst.state || entry.data?.account !== inst.account) scheduleTotals();
  entry.data = inst;
  if (inst.name === selected) renderFacts(inst);
  const c = entry.cells;

  const state = STATES.has(inst.state) ? inst.state : 'unknown';
  c.state.className = `state ${state}`;
  setText(c.state, String(inst.state ?? 'unknown'));
  const reason = inst.reason || '';
  c.state.title = reason;
  setText(c.reason, ['backoff', 'exited', 'fatal'].includes(state) ? reason : '');
  setText(c.account, session && inst.account && inst.account !== session.account ? inst.account : '');

  setText(c.port, inst.port == null ? '—' : String(inst.port));
  const command = [inst.command || '', ...(inst.args || []).map(shellWord)].join(' ');
  setText(c.command, command);
  c.command.title = command;
  setText(c.restarts, String(inst.restarts ?? 0));
  setText(c.cpu, typeof inst.cpu_seconds === 'number' ? fmtCpu(inst.cpu_seconds) : '—');
  c.cpu.title = inst.cpu ? `CPU time of this run; limit ${inst.cpu}% of a core` : 'CPU time of this run';
  let memory = typeof inst.rss_bytes === 'number' ? fmtBytes(inst.rss_bytes) : '—';
  if (inst.memory) memory += ` / ${fmtBytes(inst.memory)}`;
  setText(c.memory, memory);
  setText(c.route, inst.route || '—');
  c.copy.hidden = !inst.route;
  c.routeCell.title = inst.route ? 'Served by the front proxy at this host and path' : '';

  // Uptime runs locally: from `uptime` as of this answer (no clock skew with
  // the daemon), else `started_at`; kept while the run is the same.
  if (inst.pid == null || !['running', 'starting', 'stopping'].includes(state)) {
    entry.startedAt = entry.startMs = null;
  } else if (entry.startMs === null || entry.startedAt !== inst.started_at) {
    entry.startedAt = inst.started_at;
    if (typeof inst.uptime === 'number') entry.startMs = Date.now() - inst.uptime * 1000;
    else if (typeof inst.started_at === 'number') entry.startMs = inst.started_at * 1000;
  }
  renderUptime(entry, Date.now());
}

function renderUptime(entry, now) {
  setText(entry.cells.uptime, entry.startMs === null ? '—' : fmtDuration(now - entry.startMs));
}

function tickUptime() {
  if (document.hidden) return;
  const now = Date.now();
  for (const entry of instances.values()) if (entry.startMs !== null) renderUptime(entry, now);
}

function removeInstance(name) {
  const entry = instances.get(name);
  if (!entry) return;
  entry.row.remove();
  instances.delete(name);
  renderEmpty();
  scheduleTotals();
  if (name === selected) {
    renderFacts(null);   // its details are gone with it; its log says it ended
    $('settings-open').hidden = true;
  }
  if ($('notice-name').textContent === name) $('notice').hidden = true;
  // Its log follow ends by itself ("instance deleted"); one that dropped
  // before that waits for no reconnect.
  if (name === selected && !logs.ws) logsEnded();
}

async function act(name, action) {
  const entry = instances.get(name);
  const path = `/instances/${encodeURIComponent(name)}`;
  if (action === 'delete' &&
      !window.confirm(`Delete the instance "${name}"? It is stopped first; this cannot be undone.`)) return;
  entry?.row.classList.add('busy');
  entry?.row.setAttribute('aria-busy', 'true');
  try {
    if (action === 'delete') {
      await call('DELETE', path);
      removeInstance(name);
    } else {
      const inst = await call('POST', `${path}/${action}`);
      // The events stream has the newest state; an answer may be older.
      if (!eventsLive()) upsert(inst);
    }
  } catch (e) {
    if (e.status !== 401) flash(`${ACTION_LABELS[action] || 'Delete'} ${name}: ${e.message}`);
  } finally {
    entry?.row.classList.remove('busy');
    entry?.row.removeAttribute('aria-busy');
  }
}

async function copyText(text, button, what = `the route is ${text}`) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // No clipboard API (a plain-http page on another host): the old way.
    const area = h('textarea', { className: 'visually-hidden', readonly: '' });
    area.value = text;
    document.body.append(area);
    area.select();
    const ok = document.execCommand('copy');
    area.remove();
    if (!ok) return flash(`Copy did not work; ${what}`);
  }
  button.textContent = 'Copied';
  setTimeout(() => { button.textContent = 'Copy'; }, 1500);
}

function onRowClick(ev) {
  const button = ev.target.closest('button[data-action]');
  const name = button?.closest('tr')?.dataset.name;
  if (!name) return;
  const action = button.dataset.action;
  if (action === 'select') selectInstance(name);
  else if (action === 'copy') copyText(instances.get(name)?.data?.route || '', button);
  else act(name, action);
}

// ---- create an instance ----------------------------------------------------------------

const FIELDS = ['name', 'command', 'args', 'env', 'route', 'restart'];

function fieldInput(field) { return $(`f-${field}`); }

function clearCreateErrors() {
  $('create-error').textContent = '';
  for (const field of FIELDS) {
    $(`f-${field}-error`).textContent = '';
    fieldInput(field).removeAttribute('aria-invalid');
  }
}

// The field a message is about: the first field name it mentions.
function fieldOf(message, code) {
  const m = /\b(name|command|route|arg(?:ument)?s?|env(?:ironment)?|restart)\b/i.exec(message);
  if (!m) return code === 'conflict' ? 'name' : null;
  const word = m[1].toLowerCase();
  return word.startsWith('arg') ? 'args' : word.startsWith('env') ? 'env' : word;
}

function showCreateError(message, field) {
  if (!field) {
    $('create-error').textContent = message;
    return;
  }
  $(`f-${field}-error`).textContent = message;
  fieldInput(field).setAttribute('aria-invalid', 'true');
  fieldInput(field).focus();
}

function openCreate() {
  clearCreateErrors();
  $('create-dialog').showModal();
  // While the dialog is up, the page behind it is inert; hiding its opener
  // too keeps "Create" the only button of that name anyone can find.
  $('create-open').hidden = true;
  fieldInput('name').focus();
}

function onCreateClosed() {
  closePicker(false);
  $('create-open').hidden = false;
  if (session) $('create-open').focus();
}

function lines(text) {
  return text.split('\n').map((line) => line.replace(/\r$/, ''));
}

async function onCreate(ev) {
  ev.preventDefault();
  clearCreateErrors();
  const body = {
    name: fieldInput('name').value.trim(),
    command: fieldInput('command').value.trim(),
    restart: fieldInput('restart').value,
    start: true,
  };
  const args = lines(fieldInput('args').value).filter((line) => line !== '');
  if (args.length) body.args = args;
  const env = {};
  const envLines = lines(fieldInput('env').value);
  for (let i = 0; i < envLines.length; i++) {
    if (envLines[i].trim() === '') continue;
    const eq = envLines[i].indexOf('=');
    if (eq <= 0) return showCreateError(`Line ${i + 1}: write KEY=VALUE.`, 'env');
    env[envLines[i].slice(0, eq).trim()] = envLines[i].slice(eq + 1);
  }
  if (Object.keys(env).length) body.env = env;
  const route = fieldInput('route').value.trim();
  if (route) body.route = route;

  const submit = $('create-submit');
  submit.disabled = true;
  try {
    const inst = await call('POST', '/instances', body);
    $('create-dialog').close();
    $('create-form').reset();
    showNotice(inst);
    // The stream may have brought it already, newer: then that one stays.
    if (!instances.has(inst.name) || !eventsLive()) upsert(inst);
    selectInstance(inst.name);
  } catch (e) {
    if (e.status !== 401) showCreateError(e.message, fieldOf(e.message, e.code));
  } finally {
    submit.disabled = false;
  }
}

// ---- the Command picker ----------------------------------------------------------------

// One directory of the account's home at a time, from GET /files. A runnable
// file (command_ok) fills Command and closes the picker; any other file says
// why not, with the fix the daemon gives. Directories are entered; a link the
// daemon cannot run is tried as a directory (it may point to one).
const picker = { dir: null, seq: 0, entries: [] };

function pickerOpen() { return !$('picker').hidden; }

function setPickerMsg(text, bad = false) {
  const el = $('picker-msg');
  el.classList.toggle('bad', bad);
  setText(el, text);
}

// "command /home/ann/x is not executable …": the path is in the row already.
function shortWhy(entry) {
  const why = entry.why || 'hostvisor cannot run this file';
  const prefix = `command ${entry.path} `;
  const text = why.startsWith(prefix) ? why.slice(prefix.length) : why;
  const cut = text.lastIndexOf('; run: ');
  return cut < 0 ? [text] : [text.slice(0, cut + 2), 'run: ', h('code', {}, text.slice(cut + 7))];
}

function entryRow(entry, i) {
  const isDir = entry.type === 'dir';
  const id = `pick-${i}`;
  const button = h('button', { type: 'button', className: 'pick', 'data-i': String(i),
    'aria-describedby': `${id}-meta` }, entry.name);
  if (isDir) button.append(h('span', { 'aria-hidden': 'true' }, '/'));
  if (entry.type === 'link') button.append(h('span', { className: 'muted', 'aria-hidden': 'true' }, ' →'));
  const meta = h('span', { id: `${id}-meta`, className: 'pick-meta' },
    h('span', { className: 'mono' }, entry.mode || ''), ' ', entry.owner || '');
  if (entry.type === 'file' && typeof entry.size === 'number') meta.append(` · ${fmtBytes(entry.size)}`);
  let note = null;
  if (!isDir) {
    if (entry.command_ok) meta.append(' · ', h('span', { className: 'badge ok' }, 'runs'));
    else note = h('span', { className: 'pick-why' }, ...shortWhy(entry));
  }
  const li = h('li', { className: `${isDir ? 'dir' : entry.command_ok ? 'runs' : 'norun'}` }, button, meta);
  if (note) {
    note.id = `${id}-why`;
    button.setAttribute('aria-describedby', `${id}-meta ${id}-why`);
    li.append(note);
  }
  return li;
}

// Lists DIR (the home when null); `focusName` is focused when it is there
// (the directory just left by Up), else the first entry.
async function browse(dir, focusName = null, fallback = true, note = '') {
  const seq = ++picker.seq;
  const list = $('picker-list');
  list.setAttribute('aria-busy', 'true');
  setPickerMsg('Loading…');
  let answer;
  try {
    answer = await call('GET', dir ? `/files?path=${encodeURIComponent(dir)}` : '/files');
  } catch (e) {
    if (seq !== picker.seq || !pickerOpen()) return;
    list.setAttribute('aria-busy', 'false');
    if (dir && fallback && e.status !== 401) return browse(null, null, false, `${e.message}; showing your home.`);
    setPickerMsg(e.message, true);
    return;
  }
  if (seq !== picker.seq || !pickerOpen()) return;
  picker.dir = answer;
  picker.entries = answer.entries || [];
  setText($('picker-path'), answer.path);
  $('picker-path').title = answer.path === answer.home ? 'your home' : `your home is ${answer.home}`;
  const rows = [];
  if (answer.parent) {
    rows.push(h('li', { className: 'dir up' },
      h('button', { type: 'button', className: 'pick', 'data-up': '' },
        h('span', { 'aria-hidden': 'true' }, '↑ '), 'Up'),
      h('span', { className: 'pick-meta' }, answer.parent)));
  }
  picker.entries.forEach((entry, i) => rows.push(entryRow(entry, i)));
  list.replaceChildren(...rows);
  list.setAttribute('aria-busy', 'false');
  const n = picker.entries.length;
  setPickerMsg(note || (answer.truncated ? `The first ${n} entries only: this directory has more.`
    : n === 0 ? 'This directory is empty.' : ''));
  const buttons = [...list.querySelectorAll('button.pick')];
  const target = (focusName !== null && buttons.find((b) => picker.entries[b.dataset.i]?.name === focusName)) ||
    buttons.find((b) => !('up' in b.dataset)) || buttons[0];
  if (target) target.focus();
  else $('picker-close').focus();
}

function openPicker() {
  $('picker').hidden = false;
  $('browse').setAttribute('aria-expanded', 'true');
  // Where the typed command is, when it is a path: else the home.
  const typed = fieldInput('command').value.trim();
  const slash = typed.lastIndexOf('/');
  browse(typed.startsWith('/') && slash > 0 ? typed.slice(0, slash) : null);
}

function closePicker(focus = true) {
  if (!pickerOpen()) return;
  picker.seq++;
  $('picker').hidden = true;
  $('browse').setAttribute('aria-expanded', 'false');
  $('picker-list').replaceChildren();
  setPickerMsg('');
  if (focus) $('browse').focus();
}

async function onPick(ev) {
  const button = ev.target.closest('button.pick');
  if (!button) return;
  if ('up' in button.dataset) {
    const from = picker.dir.path.slice(picker.dir.path.lastIndexOf('/') + 1);
    return browse(picker.dir.parent, from, false);
  }
  const entry = picker.entries[button.dataset.i];
  if (!entry) return;
  if (entry.type === 'dir') return browse(entry.path, null, false);
  if (entry.command_ok) {
    const input = fieldInput('command');
    input.value = entry.path;
    $('f-command-error').textContent = '';
    input.removeAttribute('aria-invalid');
    closePicker(false);
    input.focus();
    return;
  }
  if (entry.type === 'link') {
    // Maybe a link to a directory: the listing says (400 when it is not one).
    try {
      await call('GET', `/files?path=${encodeURIComponent(entry.path)}`);
      return browse(entry.path, null, false);
    } catch { /* not a directory: its hint below */ }
  }
  for (const li of $('picker-list').children) li.classList.remove('shown');
  button.closest('li').classList.add('shown');
  const why = entry.why || `command ${entry.path} cannot be run`;
  setPickerMsg(why[0].toUpperCase() + why.slice(1), true);
}

// Arrows, Home and End move between entries; Backspace goes up; Escape
// closes the picker, not the dialog around it.
function onPickerKey(ev) {
  if (ev.key === 'Escape') {
    ev.preventDefault();
    ev.stopPropagation();
    closePicker();
    return;
  }
  const buttons = [...$('picker-list').querySelectorAll('button.pick')];
  const at = buttons.indexOf(document.activeElement);
  if (at < 0) return;
  let to = -1;
  if (ev.key === 'ArrowDown') to = Math.min(at + 1, buttons.length - 1);
  else if (ev.key === 'ArrowUp') to = Math.max(at - 1, 0);
  else if (ev.key === 'Home') to = 0;
  else if (ev.key === 'End') to = buttons.length - 1;
  else if (ev.key === 'Backspace' && picker.dir?.parent) {
    ev.preventDefault();
    buttons[0].click();
    return;
  }
  if (to < 0) return;
  ev.preventDefault();
  buttons[to].focus();
}

function showNotice(inst) {
  $('notice-name').textContent = inst.name;
  $('new-port').textContent = inst.port == null ? 'none yet' : String(inst.port);
  $('notice').hidden = false;
}

// ---- live logs ---------------------------------------------------------------------

// The output of one instance as lines of coloured segments. Bytes arrive in
// any amount; they are parsed and put on screen once per animation frame, at
// most MAX_LOG_LINES lines are kept, a carriage return rewrites the current
// line, ANSI colours become classes and other escape sequences go.
class LogView {
  constructor(el) {
    this.el = el;
    this.paused = false;
    this.reset();
  }

  reset() {
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.pending = '';
    this.carry = '';      // an escape sequence cut at the end of the last chunk
    this.skipped = 0;     // characters dropped because they came too fast
    this.count = 0;       // finished lines on screen
    this.cur = [];        // the unfinished line: [[class, text], ...]
    this.cr = false;      // a carriage return came: the next text rewrites `cur`
    this.fg = -1;
    this.bold = false;
    this.curEl = h('div');
    this.curEl.hidden = true;
    this.el.replaceChildren(this.curEl);
  }

  push(text) {
    this.pending += text;
    if (this.pending.length > MAX_PENDING_LOG) {
      // More than can be shown: keep the newest half, from a line's start.
      let cut = this.pending.length - MAX_PENDING_LOG / 2;
      const nl = this.pending.indexOf('\n', cut);
      if (nl >= 0) cut = nl + 1;
      this.skipped += cut;
      this.pending = this.pending.slice(cut);
    }
    this.schedule();
  }

  schedule() {
    if (!this.frame && !this.paused && this.pending) {
      this.frame = requestAnimationFrame(() => { this.frame = 0; this.flush(); });
    }
  }

  setPaused(paused) {
    this.paused = paused;
    this.schedule();
  }

  // A line of the panel's own (reconnected, deleted), after what came so far.
  note(text) {
    this.flush();
    this.append([[['meta', text]]]);
  }

  flush() {
    let text = this.carry + this.pending;
    this.pending = this.carry = '';
    const open = /\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*\x1b?)?$/.exec(text);
    if (open && text.length - open.index < 4096) {
      this.carry = text.slice(open.index);
      text = text.slice(0, open.index);
    }
    const done = [];
    if (this.skipped) {
      if (this.cur.length) done.push(this.cur);
      this.cur = [];
      done.push([['meta', `[… ${fmtBytes(this.skipped)} of output skipped: it came faster than it can be shown]`]]);
      this.skipped = 0;
    }
    const re = /\x1b\[([0-?]*)[ -/]*([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-_]?|\r\n|\n|\r|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/g;
    let last = 0;
    for (let m; (m = re.exec(text));) {
      if (m.index > last) this.add(text.slice(last, m.index));
      last = re.lastIndex;
      const token = m[0];
      if (token === '\n' || token === '\r\n') {
        this.cr = false;
        done.push(this.cur);
        this.cur = [];
        if (done.length > 2 * MAX_LOG_LINES) done.splice(0, done.length - MAX_LOG_LINES);
      } else if (token === '\r') {
        this.cr = true;
      } else if (m[2] === 'm') {
        this.sgr(m[1]);
      }
      // Any other escape sequence or control character: dropped.
    }
    if (last < text.length) this.add(text.slice(last));
    this.append(done);
  }

  add(text) {
    if (this.cr) { this.cur = []; this.cr = false; }
    const cls = (this.fg >= 0 ? `c${this.fg}` : '') + (this.bold ? ' b' : '');
    const lastSeg = this.cur[this.cur.length - 1];
    if (lastSeg && lastSeg[0] === cls) lastSeg[1] += text;
    else this.cur.push([cls, text]);
  }

  // Select Graphic Rendition: the 16 basic colours and bold; the rest ignored.
  sgr(params) {
    const codes = params === '' ? [0] : params.split(';').map((p) => Number(p) || 0);
    for (let i = 0; i < codes.length; i++) {
      const n = codes[i];
      if (n === 0) { this.fg = -1; this.bold = false; }
      else if (n === 1) this.bold = true;
      else if (n === 22) this.bold = false;
      else if (n >= 30 && n <= 37) this.fg = n - 30;
      else if (n >= 90 && n <= 97) this.fg = n - 90 + 8;
      else if (n === 39) this.fg = -1;
      else if (n === 38 || n === 48) {
        // 256 colours (5;N) or true colour (2;R;G;B): the basic 16 kept.
        if (codes[i + 1] === 5) { if (n === 38) this.fg = codes[i + 2] < 16 ? codes[i + 2] : -1; i += 2; }
        else if (codes[i + 1] === 2) i += 4;
      }
    }
  }

  lineEl(segments, el = h('div')) {
    el.replaceChildren(...segments.map(([cls, text]) => (cls ? h('span', { className: cls }, text) : text)));
    if (segments.length === 1 && segments[0][0] === 'meta') el.className = 'meta';
    return el;
  }

  // Puts finished lines (and the unfinished one) on screen, oldest dropped.
  append(done) {
    const follow = this.el.scrollHeight - this.el.scrollTop - this.el.clientHeight < 32;
    const fresh = done.slice(-MAX_LOG_LINES);
    if (fresh.length) {
      const frag = document.createDocumentFragment();
      for (const segments of fresh) frag.append(this.lineEl(segments));
      this.el.insertBefore(frag, this.curEl);
      this.count += fresh.length;
      while (this.count > MAX_LOG_LINES) { this.el.firstChild.remove(); this.count--; }
    }
    this.lineEl(this.cur, this.curEl);
    this.curEl.hidden = this.cur.length === 0;
    if (follow) this.el.scrollTop = this.el.scrollHeight;
  }
}

function setLogsStatus(text) {
  setText($('logs-status'), text);
}

function resetLogsPanel() {
  logs.view.reset();
  setText($('logs-name'), '');
  setLogsStatus('');
  $('log-view').hidden = true;
  $('logs-hint').hidden = false;
}

// The selected instance is gone: its output stays, marked, and no reconnect.
function logsEnded() {
  clearTimeout(logs.timer);
  if (logs.ended) return;
  logs.ended = true;
  logs.view.note('[the instance was deleted]');
  setLogsStatus('ended');
}

function closeLogs() {
  clearTimeout(logs.timer);
  if (logs.ws) { const ws = logs.ws; logs.ws = null; ws.close(1000); }
}

function selectInstance(name) {
  if (selected === name && logs.ws) return;
  instances.get(selected)?.row.classList.remove('selected');
  selected = name;
  instances.get(name)?.row.classList.add('selected');
  setText($('logs-name'), `— ${name}`);
  $('log-view').hidden = false;
  $('logs-hint').hidden = true;
  logs.attempts = 0;
  logs.ended = false;
  logs.view.reset();
  openLogs(name);
  loadHistory(name);
  renderFacts(instances.get(name)?.data);
  $('settings-open').hidden = false;
}

// ---- an instance's settings: route, access rules, environment ------------------

const envText = (env) => Object.entries(env || {}).map(([k, v]) => `${k}=${v}`).join('\n');
const nonEmptyLines = (text) => text.split('\n').map((l) => l.trim()).filter(Boolean);

function openSettings() {
  const inst = instances.get(selected)?.data;
  if (!inst) return;
  $('settings-name').textContent = inst.name;
  $('s-error').textContent = '';
  $('s-route').value = inst.route || '';
  $('s-access').value = (inst.access || []).join('\n');
  $('s-env').value = envText(inst.env);
  tieLabels('create-form', false);  // "Route" is in both forms
  tieLabels('settings-form', true);
  $('settings-dialog').showModal();
  $('s-route').focus();
}

function onSettingsClosed() {
  tieLabels('settings-form', false);
  tieLabels('create-form', currentView === 'instances');
  $('settings-open').focus();
}

// Sends only what changed (PATCH): the daemon validates and says what is wrong.
async function onSaveSettings(ev) {
  ev.preventDefault();
  const inst = instances.get(selected)?.data;
  if (!inst) return $('settings-dialog').close();
  const body = {};
  const route = $('s-route').value.trim();
  if (route !== (inst.route || '')) body.route = route;
  const access = nonEmptyLines($('s-access').value);
  if (access.join('\n') !== (inst.access || []).join('\n')) body.access = access;
  const envLines = nonEmptyLines($('s-env').value);
  if (envLines.join('\n') !== envText(inst.env)) {
    const env = {};
    for (const line of envLines) {
      const eq = line.indexOf('=');
      if (eq <= 0) { $('s-error').textContent = `environment line "${line}": write KEY=VALUE`; return; }
      env[line.slice(0, eq)] = line.slice(eq + 1);
    }
    body.env = env;
  }
  if (!Object.keys(body).length) return $('settings-dialog').close();
  $('settings-submit').disabled = true;
  try {
    upsert(await call('PATCH', `/instances/${encodeURIComponent(inst.name)}`, body));
    $('settings-dialog').close();
  } catch (e) {
    if (e.status !== 401) $('s-error').textContent = e.message;
  } finally {
    $('settings-submit').disabled = false;
  }
}

// The selected instance's facts: restarts, last exit and why, what its
// network policy refused, and its last output when it exited or gave up.
function renderFacts(inst) {
  const facts = $('facts'), last = $('last-output');
  if (!inst) { facts.hidden = last.hidden = true; return; }
  const b = inst.blocked || {};
  const exit = inst.exit_signal ? `signal ${inst.exit_signal}` : inst.exit_code != null ? `code ${inst.exit_code}` : '—';
  const rows = [['Restarts', String(inst.restarts ?? 0)], ['Last exit', exit], ['Reason', inst.reason || '—'],
    ['Blocked', `bind ${b.bind ?? 0} · connect ${b.connect ?? 0} · send ${b.sendmsg ?? 0} · ingress ${b.ingress ?? 0}`]];
  facts.replaceChildren(...rows.flatMap(([k, v]) => {
    const dt = document.createElement('dt'); dt.textContent = k;
    const dd = document.createElement('dd'); dd.textContent = v;
    return [dt, dd];
  }));
  facts.hidden = false;
  last.textContent = inst.last_output || '';
  last.hidden = !inst.last_output || !['exited', 'fatal', 'backoff'].includes(inst.state);
}

// Sparklines of the selected instance: CPU (% of a core) and memory over the
// last 15 minutes (GET …/history: a sample every 30 s), refreshed with it.
let historyTimer = null;
const SVG = 'http://www.w3.org/2000/svg';
function sparkline(values, cls) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 60 16');
  svg.setAttribute('class', 'sparkline ' + cls);
  const max = Math.max(1e-9, ...values);
  const step = values.length > 1 ? 60 / (values.length - 1) : 0;
  const line = document.createElementNS(SVG, 'polyline');
  line.setAttribute('points', values.map((v, i) => `${(i * step).toFixed(1)},${(15 - (v / max) * 14).toFixed(1)}`).join(' '));
  svg.append(line);
  return svg;
}
async function loadHistory(name) {
  clearTimeout(historyTimer);
  const spark = $('spark');
  let h;
  try { h = await call('GET', `/instances/${encodeURIComponent(name)}/history`); } catch { spark.hidden = true; return; }
  if (selected !== name) return;
  historyTimer = setTimeout(() => { if (selected === name) loadHistory(name); }, (h.interval_s || 30) * 1000);
  if (!h.cpu_percent || h.cpu_percent.length < 2) { spark.hidden = true; return; }
  const cpu = h.cpu_percent, rss = h.rss_bytes;
  spark.replaceChildren('CPU ', sparkline(cpu, 'cpu'), ` ${cpu[cpu.length - 1].toFixed(1)} %  mem `,
    sparkline(rss, 'mem'), ` ${(rss[rss.length - 1] / 1048576).toFixed(1)} MiB`);
  spark.hidden = false;
}

// Follows NAME's log: the last 200 lines, then everything written. A
// reconnect starts over from the last 200 lines (no gap, no repeat), once
// it is through: until then what was shown stays.
function openLogs(name) {
  closeLogs();
  const ws = new WebSocket(wsUrl(`/instances/${encodeURIComponent(name)}/logs?n=200`));
  ws.binaryType = 'arraybuffer';
  const decoder = new TextDecoder();   // invalid UTF-8 becomes U+FFFD
  logs.ws = ws;
  setLogsStatus('connecting…');
  ws.onopen = () => {
    if (logs.ws !== ws) return;
    logs.attempts = 0;
    logs.view.reset();
    setLogsStatus(logs.view.paused ? 'paused' : 'live');
  };
  ws.onmessage = (ev) => {
    if (logs.ws !== ws) return;
    logs.view.push(typeof ev.data === 'string' ? ev.data : decoder.decode(ev.data, { stream: true }));
  };
  ws.onclose = (ev) => {
    if (logs.ws !== ws) return;   // replaced or closed on purpose
    logs.ws = null;
    logs.view.push(decoder.decode());
    if (!session || selected !== name) return;
    if (ev.reason === 'instance deleted' || (snapshotSeen && !instances.has(name))) return logsEnded();
    setLogsStatus('reconnecting…');
    logs.timer = setTimeout(() => {
      if (session && selected === name && !logs.ws) openLogs(name);
    }, backoff(logs.attempts++));
  };
}

function onPauseToggle() {
  const paused = !logs.view.paused;
  logs.view.setPaused(paused);
  const button = $('logs-pause');
  button.textContent = paused ? 'Follow' : 'Pause';
  button.setAttribute('aria-pressed', String(paused));
  if (logs.ws) setLogsStatus(paused ? 'paused' : 'live');
  if (!paused) $('log-view').scrollTop = $('log-view').scrollHeight;
}

// ---- views and totals ---------------------------------------------------------------

// One view at a time, the others `hidden`: no two visible controls share a name.
const VIEWS = ['instances', 'accounts', 'doctor'];
let currentView = 'instances';
let totalsTimer = 0;

function viewButtons() { return $('views').querySelectorAll('button[data-view]'); }

// A label names its field only while its form can be used: lookups by label
// (getByLabel) count hidden fields too, and Name, Domains… are in two forms.
function tieLabels(form, on) {
  for (const l of $(form).querySelectorAll('label')) {
    if (on && l.dataset.for) l.htmlFor = l.dataset.for;
    else if (!on && l.htmlFor) { l.dataset.for = l.htmlFor; l.removeAttribute('for'); }
  }
}

function showView(view, focus = true) {
  if (view !== 'instances' && !session?.admin) view = 'instances';
  currentView = view;
  for (const v of VIEWS) $(`view-${v}`).hidden = v !== view;
  tieLabels('create-form', view === 'instances');
  for (const b of viewButtons()) {
    if (b.dataset.view === view) b.setAttribute('aria-current', 'page');
    else b.removeAttribute('aria-current');
  }
  if (view !== 'accounts') {
    hideToken();
    for (const id of ['account-dialog', 'edit-dialog']) if ($(id).open) $(id).close();
  }
  history.replaceState(null, '', view === 'instances' ? location.pathname : `#${view}`);
  if (view === 'accounts') loadAccounts();
  else if (view === 'doctor') loadDoctor();
  if (focus) document.querySelector(`#views [data-view="${view}"]`)?.focus();
}

// A burst of events: the totals are counted once.
function scheduleTotals() {
  if (!totalsTimer) totalsTimer = setTimeout(renderTotals, 100);
}

// "3 instances: 2 running, 1 stopped · 2 accounts"; and each account row's
// instance count, live from the events (the admin's stream has them all).
function renderTotals() {
  clearTimeout(totalsTimer);
  totalsTimer = 0;
  if (!session) return setText($('totals'), '');
  const byState = new Map();
  const byAccount = new Map();
  for (const { data } of instances.values()) {
    byState.set(data.state, (byState.get(data.state) || 0) + 1);
    byAccount.set(data.account, (byAccount.get(data.account) || 0) + 1);
  }
  const count = (n, what) => `${n} ${what}${n === 1 ? '' : 's'}`;
  let text = !snapshotSeen ? 'Instances: loading…' : count(instances.size, 'instance') +
    (instances.size ? `: ${[...byState].sort((a, b) => b[1] - a[1]).map(([st, n]) => `${n} ${st}`).join(', ')}` : '');
  if (session.admin && accounts.list) text += ` · ${count(accounts.list.size, 'account')}`;
  setText($('totals'), text);
  if (!snapshotSeen || !accounts.list) return;
  for (const [name, entry] of accounts.list) setText(entry.cells.instances, String(byAccount.get(name) || 0));
}

// ---- accounts (admin) ---------------------------------------------------------------

const accounts = { list: null, seq: 0, editing: null };
const ACCOUNT_FIELDS = ['name', 'user', 'domains', 'max_instances', 'max_memory'];
const EDIT_FIELDS = ['domains', 'webhook', 'max_instances', 'max_memory', 'max_cpu', 'max_procs'];

// GET PATH for a view (its `empty` line says Loading… or why it failed): the
// answer, or undefined when it failed or a newer call overtook it.
async function load(path, holder, what) {
  const seq = ++holder.seq;
  const empty = $(`${what}-empty`);
  if (!$(`${what === 'doctor' ? 'doctor' : 'account'}-rows`).children.length) {
    empty.textContent = 'Loading…';
    empty.hidden = false;
  }
  try {
    const answer = await call('GET', path);
    if (seq === holder.seq && session) return answer || {};
  } catch (e) {
    if (seq !== holder.seq || e.status === 401) return;
    empty.textContent = `No answer: ${e.message}`;
    empty.hidden = false;
  }
}

async function loadAccounts() {
  const list = await load('/accounts', accounts, 'accounts');
  if (!list) return;
  accounts.list = new Map();
  for (const acc of Array.isArray(list) ? list : []) accounts.list.set(acc.name, accountRow(acc));
  sortAccounts();
}

function sortAccounts() {
  const names = [...accounts.list.keys()].sort();
  $('account-rows').replaceChildren(...names.map((n) => accounts.list.get(n).row));
  $('accounts-empty').textContent = 'No accounts.';
  $('accounts-empty').hidden = accounts.list.size > 0;
  renderTotals();
}

function fmtQuota(n, fmt = String) { return n ? fmt(n) : 'unlimited'; }

function accountRow(acc) {
  const cells = { instances: h('td', { className: 'num' }, String(acc.instances ?? 0)) };
  const domains = acc.domains || [];
  const row = h('tr', {},
    h('th', { scope: 'row' }, acc.name),
    h('td', { className: 'nw', title: `uid ${acc.uid}, gid ${acc.gid}` }, acc.user || ''),
    h('td', { className: 'nw' }, h('code', {}, acc.home || '')),
    cells.instances,
    h('td', { className: 'quotas' },
      h('span', {}, `instances ${fmtQuota(acc.max_instances)}`),
      h('span', {}, `memory ${fmtQuota(acc.max_memory, fmtBytes)}`),
      h('span', {}, `CPU ${fmtQuota(acc.max_cpu, (n) => `${n}%`)}`),
      h('span', {}, `procs ${fmtQuota(acc.max_procs)}`)),
    h('td', { className: 'domains' }, domains.length ? domains.join(', ') : '—'),
    h('td', { className: 'webhook' }, acc.webhook ? h('code', {}, acc.webhook) : '—'),
    h('td', { className: 'actions' },
      h('button', { type: 'button', 'data-action': 'edit' }, 'Edit'),
      h('button', { type: 'button', 'data-action': 'token' }, 'New token'),
      h('button', { type: 'button', className: 'danger', 'data-action': 'delete' }, 'Delete')));
  row.dataset.name = acc.name;
  return { data: acc, row, cells };
}

// An answer's account: its row replaced or added.
function putAccount(acc) {
  if (!accounts.list) accounts.list = new Map();
  const old = accounts.list.get(acc.name);
  const entry = accountRow(acc);
  accounts.list.set(acc.name, entry);
  if (old) { old.row.replaceWith(entry.row); renderTotals(); } else sortAccounts();
}

// The token, once: in the notice until dismissed, never anywhere else.
function showToken(name, token) {
  $('token-account').textContent = name;
  $('account-token').textContent = token;
  $('token-copy').textContent = 'Copy';
  $('token-notice').hidden = false;
  $('token-copy').focus();
}

function hideToken() {
  $('account-token').textContent = '';
  $('token-notice').hidden = true;
}

function splitDomains(text) { return text.split(/[\s,]+/).filter(Boolean); }

// A quota as typed: a whole number as a number, else as written (the daemon says why not).
function quota(text) {
  const t = text.trim();
  return /^\d+$/.test(t) ? Number(t) : t;
}

// An error beside the field it names (prefix a- or e-), else on top.
function formError(prefix, fields, message) {
  const m = /\b(max_\w+|webhook|domains?|user|size|account name|name)\b/i.exec(message);
  const word = m && m[1].toLowerCase();
  const field = word && ({ domain: 'domains', size: 'max_memory', 'account name': 'name' }[word] || word);
  if (!fields.includes(field)) { $(`${prefix}-error`).textContent = message; return; }
  $(`${prefix}-${field}-error`).textContent = message;
  $(`${prefix}-${field}`).setAttribute('aria-invalid', 'true');
  $(`${prefix}-${field}`).focus();
}

function clearFormErrors(prefix, fields) {
  $(`${prefix}-error`).textContent = '';
  for (const f of fields) {
    $(`${prefix}-${f}-error`).textContent = '';
    $(`${prefix}-${f}`).removeAttribute('aria-invalid');
  }
}

function openAddAccount() {
  clearFormErrors('a', ACCOUNT_FIELDS);
  tieLabels('account-form', true);
  $('account-dialog').showModal();
  $('account-open').hidden = true;   // "Add an account" stays a single name
  $('a-name').focus();
}

async function onAddAccount(ev) {
  ev.preventDefault();
  clearFormErrors('a', ACCOUNT_FIELDS);
  const body = { name: $('a-name').value.trim(), user: $('a-user').value.trim() };
  if (!body.name) return formError('a', ACCOUNT_FIELDS, 'Enter the account\'s name.');
  if (!body.user) return formError('a', ACCOUNT_FIELDS, 'Enter its Unix user.');
  const domains = splitDomains($('a-domains').value);
  if (domains.length) body.domains = domains;
  for (const f of ['max_instances', 'max_memory']) {
    const v = quota($(`a-${f}`).value);
    if (v !== '') body[f] = v;
  }
  const submit = $('account-submit');
  submit.disabled = true;
  try {
    const answer = await call('POST', '/accounts', body);
    $('account-dialog').close();
    $('account-form').reset();
    putAccount(answer.account);
    showToken(answer.account.name, answer.token);
  } catch (e) {
    if (e.status !== 401) formError('a', ACCOUNT_FIELDS, e.message);
  } finally {
    submit.disabled = false;
  }
}

// Max memory as set: 4G, not 4294967296.
function fmtSize(n) {
  if (!n) return '0';
  for (const [unit, size] of [['T', 2 ** 40], ['G', 2 ** 30], ['M', 2 ** 20], ['K', 2 ** 10]])
    if (n % size === 0) return `${n / size}${unit}`;
  return String(n);
}

function editValues(acc) {
  return {
    domains: (acc.domains || []).join(', '), webhook: acc.webhook || '',
    max_instances: String(acc.max_instances ?? ''), max_memory: fmtSize(acc.max_memory),
    max_cpu: String(acc.max_cpu ?? ''), max_procs: String(acc.max_procs ?? ''),
  };
}

function openEdit(name) {
  const acc = accounts.list?.get(name)?.data;
  if (!acc) return;
  accounts.editing = name;
  clearFormErrors('e', EDIT_FIELDS);
  $('edit-name').textContent = name;
  const values = editValues(acc);
  for (const f of EDIT_FIELDS) $(`e-${f}`).value = values[f];
  tieLabels('edit-form', true);
  $('edit-dialog').showModal();
  $('e-domains').focus();
}

function onEditClosed() {
  tieLabels('edit-form', false);
  const name = accounts.editing;
  accounts.editing = null;
  accounts.list?.get(name)?.row.querySelector('[data-action="edit"]')?.focus();
}

// Sends only what changed.
async function onEditAccount(ev) {
  ev.preventDefault();
  const name = accounts.editing;
  const acc = accounts.list?.get(name)?.data;
  if (!acc) return $('edit-dialog').close();
  clearFormErrors('e', EDIT_FIELDS);
  const before = editValues(acc);
  const body = {};
  for (const f of EDIT_FIELDS) {
    const text = $(`e-${f}`).value.trim();
    if (text === before[f]) continue;
    if (f === 'domains') body.domains = splitDomains(text);
    else if (f === 'webhook') body.webhook = text;
    else if (text === '') return formError('e', EDIT_FIELDS, `${f}: write a number (0: unlimited).`);
    else body[f] = quota(text);
  }
  if (!Object.keys(body).length) return $('edit-dialog').close();
  const submit = $('edit-submit');
  submit.disabled = true;
  try {
    const answer = await call('PATCH', `/accounts/${encodeURIComponent(name)}`, body);
    putAccount(answer);
    $('edit-dialog').close();
    setText($('accounts-status'), `Saved ${name}.`);
  } catch (e) {
    if (e.status !== 401) formError('e', EDIT_FIELDS, e.message);
  } finally {
    submit.disabled = false;
  }
}

async function newToken(name) {
  if (!window.confirm(`Make a new token for "${name}"? The old one stops working at once.`)) return;
  try {
    const answer = await call('POST', `/accounts/${encodeURIComponent(name)}/token`);
    showToken(answer.name || name, answer.token);
  } catch (e) {
    if (e.status !== 401) flash(`New token for ${name}: ${e.message}`);
  }
}

async function deleteAccount(name) {
  if (!window.confirm(`Delete the account "${name}"? Its Unix user and home stay.`)) return;
  const entry = accounts.list?.get(name);
  entry?.row.classList.add('busy');
  try {
    await call('DELETE', `/accounts/${encodeURIComponent(name)}`);
    entry?.row.remove();
    accounts.list?.delete(name);
    if ($('token-account').textContent === name) hideToken();
    sortAccounts();
    setText($('accounts-status'), `Deleted ${name}.`);
  } catch (e) {
    // 409: it still has instances (the daemon says how many).
    if (e.status !== 401) flash(`Delete ${name}: ${e.message}`);
  } finally {
    entry?.row.classList.remove('busy');
  }
}

function onAccountClick(ev) {
  const button = ev.target.closest('button[data-action]');
  const name = button?.closest('tr')?.dataset.name;
  if (!name) return;
  setText($('accounts-status'), '');
  ({ edit: openEdit, token: newToken, delete: deleteAccount })[button.dataset.action]?.(name);
}

// ---- doctor (admin) -------------------------------------------------------------------

const doctor = { seq: 0 };

async function loadDoctor() {
  const answer = await load('/doctor', doctor, 'doctor');
  if (!answer) return;
  const list = answer.mechanisms || [];
  const empty = $('doctor-empty');
  $('doctor-rows').replaceChildren(...list.map((m) => h('tr', { className: m.enforced ? '' : 'degraded' },
    h('th', { scope: 'row' }, m.name),
    h('td', {}, h('span', { className: `badge ${m.enforced ? 'ok' : 'bad'}` }, m.enforced ? 'ENFORCED' : 'DEGRADED')),
    h('td', { className: 'detail' }, m.detail || ''))));
  const ok = list.filter((m) => m.enforced).length;
  setText($('doctor-summary'), `${ok} of ${list.length} enforced`);
  empty.textContent = 'No mechanisms reported.';
  empty.hidden = list.length > 0;
}

// Signed out: nothing of the admin's views stays.
function resetAdmin() {
  accounts.seq++;
  doctor.seq++;
  accounts.list = null;
  hideToken();
  for (const id of ['account-dialog', 'edit-dialog']) if ($(id).open) $(id).close();
  $('account-rows').replaceChildren();
  $('doctor-rows').replaceChildren();
  setText($('doctor-summary'), '');
  setText($('accounts-status'), '');
  showView('instances', false);
  for (const b of viewButtons()) b.hidden = b.dataset.view !== 'instances';
  renderTotals();
}

// ---- start ----------------------------------------------------------------------------

async function boot() {
  logs.view = new LogView($('log-view'));
  resetLogsPanel();
  $('signin-form').addEventListener('submit', onSignIn);
  $('sign-out').addEventListener('click', onSignOut);
  $('create-open').addEventListener('click', openCreate);
  $('create-cancel').addEventListener('click', () => $('create-dialog').close());
  $('create-dialog').addEventListener('close', onCreateClosed);
  $('create-form').addEventListener('submit', onCreate);
  $('browse').addEventListener('click', () => (pickerOpen() ? closePicker() : openPicker()));
  $('picker-close').addEventListener('click', () => closePicker());
  $('picker-list').addEventListener('click', onPick);
  $('picker').addEventListener('keydown', onPickerKey);
  $('notice-close').addEventListener('click', () => { $('notice').hidden = true; });
  $('rows').addEventListener('click', onRowClick);
  $('logs-pause').addEventListener('click', onPauseToggle);
  $('logs-clear').addEventListener('click', () => { logs.view.reset(); });
  document.addEventListener('visibilitychange', tickUptime);
  $('views').addEventListener('click', (ev) => {
    const b = ev.target.closest('button[data-view]');
    if (b) showView(b.dataset.view);
  });
  $('account-open').addEventListener('click', openAddAccount);
  $('account-cancel').addEventListener('click', () => $('account-dialog').close());
  tieLabels('account-form', false);
  tieLabels('edit-form', false);
  $('account-dialog').addEventListener('close', () => {
    tieLabels('account-form', false);
    $('account-open').hidden = false;
    if (session) $('account-open').focus();
  });
  $('account-form').addEventListener('submit', onAddAccount);
  $('edit-cancel').addEventListener('click', () => $('edit-dialog').close());
  $('edit-dialog').addEventListener('close', onEditClosed);
  $('settings-open').addEventListener('click', openSettings);
  $('settings-form').addEventListener('submit', onSaveSettings);
  $('settings-cancel').addEventListener('click', () => $('settings-dialog').close());
  $('settings-dialog').addEventListener('close', onSettingsClosed);
  $('edit-form').addEventListener('submit', onEditAccount);
  $('account-rows').addEventListener('click', onAccountClick);
  $('token-copy').addEventListener('click', () =>
    copyText($('account-token').textContent, $('token-copy'), 'select the token and copy it by hand.'));
  $('token-close').addEventListener('click', hideToken);
  $('doctor-refresh').addEventListener('click', loadDoctor);

  // A valid session cookie (a reload, a new tab) signs in without the token.
  try {
    signedIn(await api('GET', '/session'));
  } catch (e) {
    showSignIn(e.status === 401 ? '' : e.message);
  }
}

boot();

// An alert from the daemon (alerts.h): shown until dismissed, newest first, at most 5.
const ALERT_TEXT = { fatal: 'gave up restarting', out_of_memory: 'was killed: out of memory', crash_loop: 'keeps crashing' };
function showAlert(alert) {
  const list = $('alerts');
  const item = document.createElement('li');
  item.className = 'alert-item kind-' + String(alert.kind).replace(/[^a-z_]/g, '');
  const text = document.createElement('span');
  text.textContent = `${alert.instance} ${ALERT_TEXT[alert.kind] || alert.kind}: ${alert.reason}`;
  const close = document.createElement('button');
  close.type = 'button';
  close.className = 'quiet';
  close.textContent = 'Dismiss';
  close.addEventListener('click', () => item.remove());
  item.append(text, close);
  list.prepend(item);
  while (list.children.length > 5) list.lastElementChild.remove();
}
