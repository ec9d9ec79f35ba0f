#!/bin/sh
# run.sh — the browser tests' entry point (meson test --suite web): skips (77) when node or
# chromium is missing, installs playwright-core from package-lock.json when
# tests/web/node_modules is missing, then runs ui.test.mjs with node's test runner.
here=$(cd "$(dirname "$0")" && pwd)
chromium=${CHROMIUM:-/usr/bin/chromium}
if ! command -v node >/dev/null 2>&1; then
  echo "SKIP: node is not installed (Debian: apt-get install nodejs npm; scripts/install-deps.sh)"
  exit 77
fi
if [ ! -x "$chromium" ]; then
  echo "SKIP: no chromium at $chromium (Debian: apt-get install chromium; or set CHROMIUM)"
  exit 77
fi
if [ ! -d "$here/node_modules/playwright-core" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "SKIP: npm is not installed, and tests/web/node_modules is missing"
    exit 77
  fi
  echo "== npm ci --prefix $here (playwright-core, pinned by package-lock.json)"
  npm ci --prefix "$here" --no-audit --no-fund || {
    echo "npm ci failed: run 'npm ci --prefix tests/web' where npm's registry (or a cache) is reachable" >&2
    exit 1
  }
fi
export CHROMIUM="$chromium"
exec node --test --test-reporter=spec "$here/ui.test.mjs"
