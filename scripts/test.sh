#!/usr/bin/env bash
# The README's test command: installs the project with its test extra (and Debian's chromium for
# the browser test when missing), then runs ruff and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
  else
    echo "scripts/test.sh: install Debian's chromium first (needs root)" >&2
  fi
fi
"$PY" -m pip install -q -e '.[test]'
"$PY" -m ruff check .
exec "$PY" -m pytest -n 2 "$@"
