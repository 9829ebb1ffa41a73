#!/usr/bin/env bash
# Creates the project-local Python venv (.venv) with every test peer listed under
# tests/requirements/*.txt, and the browser test's Node packages (tests/browser/node_modules).
# Re-running is cheap: both are skipped while their stamps match the pinned lists.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
stamp=.venv/.requirements.sha
want=$(cat tests/requirements/*.txt 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  args=()
  for f in tests/requirements/*.txt; do args+=(-r "$f"); done
  .venv/bin/pip install -q --disable-pip-version-check "${args[@]}"
  echo "$want" > "$stamp"
fi

# The browser test's Node packages (tests/browser: playwright-core, axe-core), exactly as
# package-lock.json pins them. Chromium itself is Debian's (scripts/install-deps.sh); no browser
# is downloaded. Skipped while node_modules matches the lock file.
web=tests/browser
stamp=$web/node_modules/.package-lock.sha
want=$(sha256sum "$web/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  (cd "$web" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > "$stamp"
fi

# A real Home Assistant core for the discovery test (tests/bridge/test_homeassistant.py), in its
# own venv (.venv-ha): it pins its own dependency set, which must not meet the test peers'.
bash scripts/setup-ha.sh
