#!/usr/bin/env bash
# Creates the project-local Python venv (.venv) with every test peer listed under
# tests/requirements/*.txt. Re-running is cheap: pip skips what is already satisfied.
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
