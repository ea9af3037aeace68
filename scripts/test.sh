#!/usr/bin/env bash
# `make test`: install what the suite needs, then run all of it.
# - Python test dependencies: already installed into .venv by the Makefile.
# - Node.js + the `ws` npm package (interop tests): scripts/node_deps.sh, apt-get/npm when missing.
# - Autobahn|Testsuite: installed by scripts/autobahn.sh on first use (tests/test_autobahn.py).
# Every server a test needs is started by the test itself on 127.0.0.1, port 0,
# and stopped by PID when the test ends.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

echo "== lint (ruff)"
.venv/bin/ruff check src tests examples

echo "== system packages"
# redis-server and nginx: the scale-out tests start private instances on free ports
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} with apt-get"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
fi
bash scripts/node_deps.sh
bash scripts/browser_deps.sh

echo "== test suite"
# pytest's exit code 5 (no tests collected) must fail CI like any other failure.
"$PY" -m pytest "$@"

echo "== test suite again, every server on aiohttp's WebSocket transport (transport = aiohttp)"
WIREHUB_TEST_TRANSPORT=aiohttp "$PY" -m pytest -p no:cacheprovider "$@"
