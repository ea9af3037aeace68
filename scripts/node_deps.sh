#!/usr/bin/env bash
# Make sure Node.js and npm exist and tests/interop/node_modules is installed
# (the `ws` client used by tests/test_interop_node.py).
#
# Usage: scripts/node_deps.sh
#   - installs node and npm with `apt-get install -y nodejs npm` when missing
#     (needs root, or sudo without a password, on Debian/Ubuntu);
#   - runs `npm install --no-audit --no-fund` in tests/interop when
#     node_modules is missing or package.json is newer than it.
# Idempotent and quick when everything is already there.
# Exit code: 0 ready, 1 something could not be installed (message on stderr).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=$ROOT/tests/interop

die() { echo "node_deps: $*" >&2; exit 1; }

# --- 1. node and npm -------------------------------------------------------------
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || die "node/npm missing and no apt-get: install Node.js >= 18"
  SUDO=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null \
      || die "node/npm missing; run as root or install them: apt-get install -y nodejs npm"
    SUDO=(sudo -n)
  fi
  echo "node_deps: installing nodejs and npm with apt-get ..."
  export DEBIAN_FRONTEND=noninteractive
  # The package lists may be missing (fresh container): update them once if needed.
  "${SUDO[@]}" apt-get install -y -q nodejs npm >/dev/null 2>&1 || {
    "${SUDO[@]}" apt-get update -q >/dev/null \
      && "${SUDO[@]}" apt-get install -y -q nodejs npm >/dev/null; } \
    || die "apt-get install nodejs npm failed"
fi
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' \
  || die "Node.js >= 18 is required, found $(node --version)"

# --- 2. the `ws` package ---------------------------------------------------------
# Reinstall when node_modules is missing, incomplete or older than package.json.
if [ ! -f "$DIR/node_modules/ws/package.json" ] || [ "$DIR/package.json" -nt "$DIR/node_modules" ]; then
  echo "node_deps: npm install in tests/interop ..."
  (cd "$DIR" && npm install --no-audit --no-fund --loglevel=error) \
    || die "npm install failed in $DIR"
  # npm does not always touch the directory itself: mark it as fresh.
  touch "$DIR/node_modules"
fi
echo "node_deps: node $(node --version), ws $(node -p "require('$DIR/node_modules/ws/package.json').version")"
