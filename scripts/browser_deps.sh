#!/usr/bin/env bash
# Make sure the browser tests (tests/web/) can run: Debian's Chromium at
# /usr/bin/chromium and the Python `playwright` package in the project venv.
#
# Usage: scripts/browser_deps.sh
#   - installs `chromium` with `apt-get install -y chromium` when
#     /usr/bin/chromium is missing (needs root, or sudo without a password;
#     runs `apt-get update` first when the package lists are missing or stale);
#   - pip-installs `playwright` into .venv (or $VENV) when it cannot be imported.
# It NEVER runs `playwright install`: the tests drive the system Chromium with
# executable_path="/usr/bin/chromium", so no browser build is downloaded.
# Idempotent and quick when everything is already there.
# Exit code: 0 ready, 1 something could not be installed (message on stderr).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
CHROMIUM=/usr/bin/chromium

die() { echo "browser_deps: $*" >&2; exit 1; }

# --- 1. Chromium from Debian ---------------------------------------------------------
if [ ! -x "$CHROMIUM" ]; then
  command -v apt-get >/dev/null 2>&1 || die "$CHROMIUM missing and no apt-get: install Chromium"
  SUDO=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null \
      || die "$CHROMIUM missing; run as root or install it: apt-get install -y chromium"
    SUDO=(sudo -n)
  fi
  echo "browser_deps: installing chromium with apt-get ..."
  export DEBIAN_FRONTEND=noninteractive
  # The package lists may be missing (fresh container): update them once if needed.
  "${SUDO[@]}" apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || {
    "${SUDO[@]}" apt-get update -q >/dev/null \
      && "${SUDO[@]}" apt-get install -y -q --no-install-recommends chromium >/dev/null; } \
    || die "apt-get install chromium failed"
  [ -x "$CHROMIUM" ] || die "chromium installed but $CHROMIUM is not there"
fi

# --- 2. the Python playwright package ----------------------------------------------
PY=$VENV/bin/python
[ -x "$PY" ] || die "no Python at $PY: create the venv first (python3 -m venv .venv)"
if ! "$PY" -c "import playwright.async_api" >/dev/null 2>&1; then
  echo "browser_deps: pip install playwright into $VENV ..."
  "$PY" -m pip install -q playwright || die "pip install playwright failed"
fi

echo "browser_deps: $("$CHROMIUM" --version 2>/dev/null || echo chromium), playwright $(
  "$PY" -c 'from importlib.metadata import version; print(version("playwright"))')"
