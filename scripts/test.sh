#!/usr/bin/env bash
# The README's test command: installs the project with its test extra (and Debian's chromium,
# Node.js and redis-server when missing), the npm packages of the browser-SDK tests (tests/node,
# `npm ci`) and retell-sdk 2.0.8, then runs ruff and the whole test suite (the cluster tests start
# their own redis-server and S3-compatible server on free loopback ports).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >/dev/null
  else
    echo "scripts/test.sh: install ${missing[*]} first (Debian packages; needs root)" >&2
  fi
fi
(cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
"$PY" -m pip install -q -e '.[test]'
# retell-sdk 2.0.8 (module retellclient) beside the 3.x of the test extra: one distribution name,
# so it gets a folder of its own (its dependencies are in the test extra)
"$PY" -m pip install -q --no-deps --upgrade --target build/test-deps/retell-sdk-2 'retell-sdk==2.0.8'
"$PY" -m ruff check .
exec "$PY" -m pytest -n 2 "$@"
