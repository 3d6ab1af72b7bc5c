// Browser end-to-end test: the chat example as a hostvisor instance behind the
// front proxy, used from two real browser pages (Debian's chromium, driven by
// playwright-core over CDP).
//
// The test starts its own daemon (support.js: temp data dir, API and proxy on
// port 0, a free port range, a temp home inside $HOME holding a copy of the
// chat binary), creates the instance with `--route /chat/` through the CLI,
// starts chromium itself (headless, a fresh --user-data-dir, its own process
// group) and connects to it, opens http://PROXY/chat/ in two isolated browser
// contexts, joins as two names, sends a message from one and waits for the
// other to show it. A screenshot of each page goes to HV_E2E_ARTIFACTS (the
// build dir under ctest). Cleanup (whatever happened) is support.js's.
//
// Run: ./setup.sh && node --test chat.spec.js   (ctest runs `node --test chat.spec.js`)
// Env: HOSTVISOR_BIN, HV_CHAT_BIN (default: the build dir's binaries),
//      CHROMIUM (default /usr/bin/chromium), HV_E2E_ARTIFACTS (default: cwd).
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const support = require('./support');

before(support.checkPrerequisites);
after(support.cleanup);

test('two browsers chat through the hostvisor proxy', { timeout: 150000 }, async () => {
  const info = await support.startDaemon();
  assert.match(info.proxy, /^127\.0\.0\.1:\d+$/, `daemon.json: ${JSON.stringify(info)}`);

  const chat = support.copyChatBinary();
  const instance = JSON.parse(await support.cli('create', 'chat', '--command', chat, '--route', '/chat/', '--json'));
  assert.equal(instance.state, 'running', JSON.stringify(instance));
  assert.equal(instance.route, '/chat/');

  const browser = await support.startBrowser();
  const { ann, bob } = await support.chatExchange(browser, info.proxy);
  await support.screenshot(bob, 'e2e-chat-bob.png');
  await support.screenshot(ann, 'e2e-chat-ann.png');

  // The instance's log (through the CLI) names both joins.
  const logs = await support.cli('logs', 'chat', '-n', '50');
  assert.match(logs, /join ann/);
  assert.match(logs, /join bob/);
});
