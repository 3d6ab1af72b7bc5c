#!/usr/bin/env bash
# Installs the e2e test's one npm package (playwright-core, pinned in
# package.json) into tests/e2e/node_modules. Idempotent: does nothing when
# the pinned version is already there. The browser is Debian's chromium
# (scripts/install-deps.sh), never one that playwright would download.
set -euo pipefail
cd "$(dirname "$0")"

want=$(node -p "require('./package.json').dependencies['playwright-core']")
have=$(node -p "try { require('./node_modules/playwright-core/package.json').version } catch { '' }")
[[ "$have" == "$want" ]] && exit 0

if ! command -v npm >/dev/null; then
  echo "e2e setup: npm not found (it comes with nodejs; see scripts/install-deps.sh)" >&2
  exit 1
fi
echo "e2e setup: installing playwright-core $want into $(pwd)/node_modules" >&2
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --no-package-lock \
  --loglevel=error >&2
have=$(node -p "require('./node_modules/playwright-core/package.json').version")
[[ "$have" == "$want" ]] || { echo "e2e setup: got playwright-core $have, wanted $want" >&2; exit 1; }
