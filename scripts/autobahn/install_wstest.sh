#!/usr/bin/env bash
# Install Autobahn|Testsuite (`wstest`, the standard WebSocket conformance suite)
# into a private prefix, without touching the system.
#
# Usage: scripts/autobahn/install_wstest.sh [PREFIX]
#   PREFIX defaults to ${WIREHUB_AUTOBAHN_PREFIX:-$HOME/.cache/wirehub/ab27}.
# Result: $PREFIX/wstest, a wrapper script (`$PREFIX/wstest --help`).
# Idempotent: when $PREFIX/wstest already works it returns at once (exit 0).
# On failure it prints a line `ERROR: <reason>` on stderr and exits non-zero;
# scripts/autobahn.sh turns that into a SKIPPED message.
#
# Why it is done this way: autobahntestsuite on PyPI (25.10.1) is still
# Python 2.7 code (Twisted 19.10, autobahn 0.10.9); on Python 3 `pip install`
# "succeeds" but `wstest` cannot start. Debian 12 has no Python 2, Debian 11
# (bullseye) does, on the same Debian mirror. So we *download* bullseye's
# python2.7 .debs with a private apt configuration (system apt sources are not
# modified, nothing is dpkg-installed), unpack them into PREFIX, bootstrap
# pip 20.3.4 (the last one for Python 2) from PyPI and pip-install the suite
# there (C extensions are compiled with gcc). About 30 s and 140 MB.
#
# Needs: apt-get, dpkg-deb, gcc, a Python 3 with pip, network access to a
# Debian mirror and PyPI. Linux x86_64 only.
set -euo pipefail

die() { echo "ERROR: $*" >&2; exit 1; }

PREFIX=${1:-${WIREHUB_AUTOBAHN_PREFIX:-$HOME/.cache/wirehub/ab27}}
mkdir -p "$PREFIX" || die "cannot create $PREFIX"
PREFIX=$(cd "$PREFIX" && pwd)

# Fast path: already installed and working.
wstest_ok() { [ -x "$PREFIX/wstest" ] && "$PREFIX/wstest" --help >/dev/null 2>&1; }
if wstest_ok; then
  echo "already installed: $PREFIX/wstest"; exit 0
fi

# Serialize concurrent installers (e.g. `make autobahn` and pytest at once).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$PREFIX/.install.lock"
  flock 9
  if wstest_ok; then echo "already installed: $PREFIX/wstest"; exit 0; fi
fi

# --- 0. prerequisites -------------------------------------------------------
[ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] || die "needs Linux x86_64 (this is $(uname -sm))"
for tool in apt-get dpkg-deb gcc; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found (Debian/Ubuntu with gcc is required)"
done
[ -r /usr/share/keyrings/debian-archive-keyring.gpg ] \
  || die "/usr/share/keyrings/debian-archive-keyring.gpg missing (apt-get install debian-archive-keyring)"
# A Python 3 with pip, only used to *download* the Python 2 pip/setuptools wheels.
HOST_PY=""
HERE=$(cd "$(dirname "$0")" && pwd)
for cand in "${WIREHUB_PYTHON:-}" "$HERE/../../.venv/bin/python" python3; do
  [ -n "$cand" ] || continue
  if "$cand" -m pip --version >/dev/null 2>&1; then HOST_PY=$cand; break; fi
done
[ -n "$HOST_PY" ] || die "no Python 3 with pip found (set WIREHUB_PYTHON)"

cd "$PREFIX"
echo "installing Autobahn|Testsuite into $PREFIX (about 30 s) ..."

# --- 1. private apt state pointing at bullseye (Debian 11) main --------------
rm -rf root wstest            # start from a clean tree after a failed attempt
mkdir -p apt/lists/partial apt/cache/archives/partial debs root wheels
# The mirror this machine's apt uses: first `URIs:` of the deb822 sources,
# else the first `deb` line of sources.list, else deb.debian.org.
MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
[ -n "$MIRROR" ] || MIRROR=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
case "$MIRROR" in *debian*) ;; *) MIRROR=http://deb.debian.org/debian ;; esac
APTOPTS=(-o "Dir::Etc::sourcelist=$PREFIX/apt/sources.list" -o Dir::Etc::sourceparts=/dev/null
         -o "Dir::State::Lists=$PREFIX/apt/lists" -o "Dir::Cache=$PREFIX/apt/cache"
         -o APT::Sandbox::User=root -o Debug::NoLocking=1)
PKGS=(python2.7 python2.7-minimal libpython2.7-minimal libpython2.7-stdlib libpython2.7
      libpython2.7-dev python2.7-dev libssl1.1 libffi7)
fetched=""
# bullseye is on the regular mirror (LTS); once it is archived, try archive.debian.org.
for m in "$MIRROR" http://archive.debian.org/debian; do
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $m bullseye main" \
    > apt/sources.list
  rm -f debs/*.deb
  if apt-get "${APTOPTS[@]}" update -qq >/dev/null 2>apt/update.err \
     && (cd debs && apt-get "${APTOPTS[@]}" download -qq "${PKGS[@]}" 2>../apt/download.err); then
    fetched=$m; break
  fi
done
[ -n "$fetched" ] || die "could not download Debian 11 python2.7 packages from $MIRROR: $(cat apt/update.err apt/download.err 2>/dev/null | tail -2 | tr '\n' ' ')"

# --- 2. unpack (no dpkg -i: libssl1.1/libffi7 etc. would clash with bookworm) --
for d in debs/*.deb; do dpkg-deb -x "$d" root; done
R=$PREFIX/root
export LD_LIBRARY_PATH=$R/usr/lib/x86_64-linux-gnu
PY2=$R/usr/bin/python2.7
"$PY2" -c 'import ssl, zlib; print("python2.7 ok,", ssl.OPENSSL_VERSION)' \
  || die "the unpacked python2.7 does not run"

# --- 3. bootstrap pip for Python 2 from PyPI wheels ---------------------------
"$HOST_PY" -m pip download -q --disable-pip-version-check --only-binary=:all: \
   --python-version 2.7 --implementation cp --abi cp27mu --platform manylinux1_x86_64 \
   -d wheels "pip==20.3.4" "setuptools==44.1.1" "wheel==0.37.1" > pip-bootstrap.log 2>&1 \
  || die "could not download pip/setuptools wheels for Python 2.7 from PyPI: $(tail -1 pip-bootstrap.log)"
"$PY2" wheels/pip-20.3.4-py2.py3-none-any.whl/pip install -q --no-index --find-links wheels \
   --no-warn-script-location pip setuptools wheel >> pip-bootstrap.log 2>&1 \
  || die "could not bootstrap pip for Python 2.7: $(tail -1 pip-bootstrap.log)"

# --- 4. autobahntestsuite ------------------------------------------------------
# Debian's py2 sysconfig hardcodes -I/usr/include/python2.7: point the compiler
# at the unpacked headers instead (wsaccel, ujson, Twisted, cffi ...).
export CFLAGS="-I$R/usr/include -I$R/usr/include/python2.7"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONWARNINGS=ignore
"$PY2" -m pip install -q --no-warn-script-location "autobahntestsuite==25.10.1" \
  > pip-install.log 2>&1 \
  || die "pip install autobahntestsuite failed (see $PREFIX/pip-install.log): $(grep -i error pip-install.log | tail -1)"

# --- 5. wrapper -----------------------------------------------------------------
cat > "$PREFIX/wstest.tmp" <<EOF
#!/usr/bin/env bash
# wstest (Autobahn|Testsuite) on a private Python 2.7; made by install_wstest.sh
export LD_LIBRARY_PATH=$R/usr/lib/x86_64-linux-gnu\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}
exec $PY2 $R/usr/local/bin/wstest "\$@"
EOF
chmod +x "$PREFIX/wstest.tmp"
mv "$PREFIX/wstest.tmp" "$PREFIX/wstest"
wstest_ok || die "wstest was installed but does not start: $("$PREFIX/wstest" --help 2>&1 | tail -1)"
# The downloaded .debs and apt lists are no longer needed.
rm -rf apt debs
echo "installed: $PREFIX/wstest"
