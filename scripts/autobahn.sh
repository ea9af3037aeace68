#!/usr/bin/env bash
# Run the Autobahn|Testsuite WebSocket conformance suite (wstest -m fuzzingclient)
# against wirehub's /echo endpoint.
#
# Usage: scripts/autobahn.sh [ws://HOST:PORT/echo] [PROFILE] [OUTDIR]
#   URL      a running server to test. When omitted (or "" or "-"), the script
#            starts `.venv/bin/wirehub serve --host 127.0.0.1 --port 0
#            --echo-max-message-size 20971520` itself, waits for its
#            `wirehub listening on http://127.0.0.1:PORT` line, tests
#            ws://127.0.0.1:PORT/echo and stops it (by PID) afterwards.
#            A profile name as first argument also means "start the server".
#   PROFILE  nocomp (default) - cases 1.* to 10.*, no 12.*/13.* compression  ~20 s
#            quick            - like nocomp without 9.* (big messages)        ~11 s
#            ci               - nocomp + the small deflate cases 12/13.x.1-6  ~40 s
#            full             - all 517 cases                                  ~400 s
#            (there are no 8.* or 11.* cases in the suite)
#   OUTDIR   report directory, default autobahn-reports/PROFILE in the repo
#            (gitignored). OUTDIR/index.json is the machine-readable report,
#            OUTDIR/wstest.log the suite's output, OUTDIR/server.log the
#            server's output when the script started it.
#
# Environment:
#   WIREHUB_AUTOBAHN_PREFIX  where wstest is installed (default ~/.cache/wirehub/ab27)
#   WSTEST                   use this wstest executable instead of installing one
#   CASES / EXCLUDE          JSON lists of case patterns overriding the profile,
#                            e.g. CASES='["7.9.*"]' EXCLUDE='[]'
#   STRICT=1                 NON-STRICT / UNIMPLEMENTED also count as failures
#   WIREHUB_SERVE_CMD        server command line to start instead of the default
#                            (split on whitespace; must print the same ready line)
#   WIREHUB_TEST_TIMEOUT_SCALE  multiplies the timeouts (server start 30 s, suite 900 s)
#
# Exit codes: 0 no case FAILED; 1 some case FAILED; 2 usage error, server or
# suite did not run; 3 the suite could not be installed (prints "SKIPPED: ...").
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HERE=$ROOT/scripts/autobahn
SCALE=${WIREHUB_TEST_TIMEOUT_SCALE:-1}
# integer seconds, scaled (the scale may be fractional, e.g. 2.5)
scaled() { awk -v s="$SCALE" -v t="$1" 'BEGIN { v = int(s * t); print (v < 1 ? 1 : v) }'; }

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

# --- arguments ----------------------------------------------------------------
URL=""
case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  ws://*|wss://*) URL=$1; shift ;;
  ""|-) [ $# -gt 0 ] && shift ;;
  quick|nocomp|ci|full) ;;                      # profile given, no URL
  *:*) URL="ws://$1"; shift ;;                  # bare HOST:PORT[/path]
  *) echo "unknown argument '$1' (see $0 --help)" >&2; exit 2 ;;
esac
PROFILE=${1:-nocomp}
OUTDIR=${2:-$ROOT/autobahn-reports/$PROFILE}

case "$PROFILE" in
  full)   DEF_EXCL='[]' ;;
  quick)  DEF_EXCL='["9.*", "12.*", "13.*"]' ;;
  nocomp) DEF_EXCL='["12.*", "13.*"]' ;;
  ci)     # nocomp + the deflate cases with payloads <= 8 KiB (12.x.1-6, 13.x.1-6)
          DEF_EXCL=$(awk 'BEGIN { s = ""
            for (b = 1; b <= 5; b++) for (c = 7; c <= 18; c++) s = s sprintf("%s\"12.%d.%d\"", s == "" ? "" : ", ", b, c)
            for (b = 1; b <= 7; b++) for (c = 7; c <= 18; c++) s = s sprintf(", \"13.%d.%d\"", b, c)
            print "[" s "]" }') ;;
  *) echo "unknown profile '$PROFILE' (quick, nocomp, ci, full)" >&2; exit 2 ;;
esac
CASES=${CASES:-'["*"]'}
EXCLUDE=${EXCLUDE:-$DEF_EXCL}

mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
# results of a previous run must not be mistaken for this one
rm -f "$OUTDIR/index.json" "$OUTDIR"/*_case_*.json "$OUTDIR"/*_case_*.html

# A Python 3 for summarize.py: the project's venv, else python3 on PATH.
PY=$ROOT/.venv/bin/python
[ -x "$PY" ] || PY=python3

# --- 1. install (or find) wstest ---------------------------------------------------
if [ -n "${WSTEST:-}" ]; then
  [ -x "$WSTEST" ] || { echo "WSTEST=$WSTEST is not executable" >&2; exit 2; }
else
  PREFIX=${WIREHUB_AUTOBAHN_PREFIX:-$HOME/.cache/wirehub/ab27}
  WSTEST=$PREFIX/wstest
  if ! bash "$HERE/install_wstest.sh" "$PREFIX" > "$OUTDIR/install.log" 2>&1; then
    reason=$(grep '^ERROR: ' "$OUTDIR/install.log" | tail -1 | sed 's/^ERROR: //' || true)
    [ -n "$reason" ] || reason=$(tail -1 "$OUTDIR/install.log")
    echo "SKIPPED: Autobahn|Testsuite could not be installed: ${reason:-unknown error} (log: $OUTDIR/install.log)"
    exit 3
  fi
fi

# --- 2. start the server unless a URL was given -----------------------------------
SERVER_PID=""
WSTEST_PID=""
cleanup() {
  # Stop only the processes we started, by their PIDs: the suite (`timeout`
  # passes the TERM on to wstest), then the server: TERM, KILL after 5 s.
  if [ -n "$WSTEST_PID" ]; then
    kill -TERM "$WSTEST_PID" 2>/dev/null || true
    wait "$WSTEST_PID" 2>/dev/null || true
    WSTEST_PID=""
  fi
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -z "$URL" ]; then
  if [ -n "${WIREHUB_SERVE_CMD:-}" ]; then
    read -r -a SERVE <<< "$WIREHUB_SERVE_CMD"
  else
    SERVE=("$ROOT/.venv/bin/wirehub" serve --host 127.0.0.1 --port 0
           --echo-max-message-size 20971520)
    [ -x "${SERVE[0]}" ] || {
      echo "${SERVE[0]} not found: install the project first (make test / pip install -e .)" >&2
      exit 2; }
  fi
  LOG=$OUTDIR/server.log
  : > "$LOG"
  # unbuffered, so the ready line reaches the log file at once
  PYTHONUNBUFFERED=1 "${SERVE[@]}" > "$LOG" 2>&1 &
  SERVER_PID=$!
  # Wait for `wirehub listening on http://127.0.0.1:PORT`.
  deadline=$((SECONDS + $(scaled 30)))
  PORT=""
  while [ -z "$PORT" ]; do
    PORT=$(sed -n 's|.*wirehub listening on https\{0,1\}://[^ ]*:\([0-9][0-9]*\).*|\1|p' "$LOG" | head -1)
    [ -n "$PORT" ] && break
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "server exited before it was ready; $LOG:" >&2; tail -20 "$LOG" >&2; exit 2
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "server printed no 'wirehub listening on' line within $(scaled 30) s; $LOG:" >&2
      tail -20 "$LOG" >&2; exit 2
    fi
    sleep 0.1
  done
  URL="ws://127.0.0.1:$PORT/echo"
  echo "started server pid $SERVER_PID: ${SERVE[*]}"
fi

# --- 3. run the suite ---------------------------------------------------------------
SPEC=$OUTDIR/fuzzingclient.json
cat > "$SPEC" <<EOF
{
  "outdir": "$OUTDIR",
  "servers": [{"agent": "wirehub", "url": "$URL"}],
  "cases": $CASES,
  "exclude-cases": $EXCLUDE,
  "exclude-agent-cases": {}
}
EOF
echo "autobahn: $URL  profile: $PROFILE  reports: $OUTDIR"
START=$SECONDS
# wstest prints a line per case: keep it in a log. It exits by itself when done;
# `timeout` guards against a server that hangs the suite. It runs in the
# background and we `wait` for it, so that a TERM/INT sent to this script
# runs the cleanup at once instead of after the suite.
timeout "$(scaled 900)" "$WSTEST" -m fuzzingclient -s "$SPEC" > "$OUTDIR/wstest.log" 2>&1 &
WSTEST_PID=$!
wrc=0
wait "$WSTEST_PID" || wrc=$?
WSTEST_PID=""
if [ "$wrc" != 0 ]; then
  [ "$wrc" = 124 ] && echo "wstest timed out after $(scaled 900) s" >&2
  echo "wstest did not finish (exit code $wrc); tail of $OUTDIR/wstest.log:" >&2
  tail -20 "$OUTDIR/wstest.log" >&2
  exit 2
fi
echo "wall time: $((SECONDS - START)) s"
if [ -n "$SERVER_PID" ] && ! kill -0 "$SERVER_PID" 2>/dev/null; then
  echo "WARNING: the server died during the run; see $OUTDIR/server.log" >&2
fi
[ -s "$OUTDIR/index.json" ] || { echo "wstest wrote no $OUTDIR/index.json" >&2; exit 2; }

# --- 4. summarize: failing case ids and `N passed, N failed`; exit 1 on failures ----
ARGS=()
[ "${STRICT:-0}" = 1 ] && ARGS+=(--strict)
set +e
"$PY" "$HERE/summarize.py" "$OUTDIR/index.json" ${ARGS[@]+"${ARGS[@]}"}
rc=$?
set -e
[ "$rc" -le 1 ] || rc=2
exit "$rc"
