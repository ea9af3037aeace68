#!/usr/bin/env bash
# Run a wirehub cluster on one host: Redis, N `wirehub serve` nodes, nginx in front.
#
#   deploy/run-cluster.sh                       # 3 nodes, http://127.0.0.1:8765/
#   deploy/run-cluster.sh --nodes 4 --port 9000 -- --stocks-rate 500
#
# Everything runs in the foreground. Ctrl-C (or SIGTERM to this script) stops
# each process by its PID: the nodes first (they close their clients with 1001
# over --drain-period), then nginx, then Redis, and exits 0 (1 if one of them had
# to be killed after --stop-timeout). If any process dies on its own, the others
# are stopped too and the script exits 1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TEMPLATE="$ROOT/deploy/nginx.conf.template"

usage() {
  cat <<'EOF'
usage: deploy/run-cluster.sh [options] [-- wirehub serve options...]

  -n, --nodes N          number of wirehub nodes (default: 3)
  -p, --port P           port nginx listens on, on 127.0.0.1 (default: 8765)
  --listen ADDR:PORT     address nginx listens on (default: 127.0.0.1:PORT)
  --node-port P          port of node-1; node-i gets P+i-1 (default: 8701)
  --node-ports P1,P2,..  explicit node ports (overrides --nodes and --node-port)
  --redis-port P         port of the Redis started here (default: 6390)
  --redis-url URL        use this Redis instead of starting one
  --stop-timeout S       on Ctrl-C, SIGKILL a process still running after S s (default: 10)
  --print-nginx-conf     print the nginx.conf these options give, and exit
  -h, --help             this help

Options after `--` go to every `wirehub serve` (e.g. --drain-period 1).
Programs: $WIREHUB (default: .venv/bin/wirehub, else wirehub), $NGINX
(default: nginx, else /usr/sbin/nginx), $REDIS_SERVER (default: redis-server).
EOF
}

NODES=3
PORT=8765
LISTEN=""
NODE_PORT=8701
NODE_PORTS=""
REDIS_PORT=6390
REDIS_URL=""
STOP_TIMEOUT=10
PRINT_CONF=0
while [ $# -gt 0 ]; do
  case "$1" in
    -n|--nodes) NODES="$2"; shift 2 ;;
    -p|--port) PORT="$2"; shift 2 ;;
    --listen) LISTEN="$2"; shift 2 ;;
    --node-port) NODE_PORT="$2"; shift 2 ;;
    --node-ports) NODE_PORTS="$2"; shift 2 ;;
    --redis-port) REDIS_PORT="$2"; shift 2 ;;
    --redis-url) REDIS_URL="$2"; shift 2 ;;
    --stop-timeout) STOP_TIMEOUT="$2"; shift 2 ;;
    --print-nginx-conf) PRINT_CONF=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    *) echo "run-cluster.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
SERVE_ARGS=("$@")
LISTEN="${LISTEN:-127.0.0.1:$PORT}"

PORTS=()
if [ -n "$NODE_PORTS" ]; then
  IFS=, read -r -a PORTS <<<"$NODE_PORTS"
else
  for ((i = 0; i < NODES; i++)); do PORTS+=($((NODE_PORT + i))); done
fi
if [ "${#PORTS[@]}" -lt 1 ]; then
  echo "run-cluster.sh: at least one node is needed" >&2
  exit 2
fi

# deploy/nginx.conf.template with @LISTEN@ and one `server` line per node
# (tests/cluster/conftest.py renders it the same way)
render_nginx_conf() {
  local servers="" port
  for port in "${PORTS[@]}"; do
    servers+="server 127.0.0.1:$port max_fails=1 fail_timeout=5s;"$'\n'
  done
  awk -v listen="$LISTEN" -v servers="$servers" '
    /@UPSTREAM_SERVERS@/ {
      indent = $0; sub(/@UPSTREAM_SERVERS@.*/, "", indent)
      n = split(servers, lines, "\n")
      for (i = 1; i <= n; i++) if (lines[i] != "") print indent lines[i]
      next
    }
    { gsub(/@LISTEN@/, listen); print }
  ' "$TEMPLATE"
}

if [ "$PRINT_CONF" = 1 ]; then
  render_nginx_conf
  exit 0
fi

find_program() {  # find_program NAME candidates...: the first one that runs
  local name="$1" candidate
  shift
  for candidate in "$@"; do
    if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1; then
      command -v "$candidate"
      return
    fi
  done
  echo "run-cluster.sh: $name not found (tried: $*)" >&2
  exit 2
}
WIREHUB="$(find_program wirehub "${WIREHUB:-}" "$ROOT/.venv/bin/wirehub" wirehub)"
NGINX="$(find_program nginx "${NGINX:-}" nginx /usr/sbin/nginx)"
if [ -z "$REDIS_URL" ]; then
  REDIS_SERVER="$(find_program redis-server "${REDIS_SERVER:-}" redis-server)"
fi

# If whoever reads our output goes away, an echo fails (instead of SIGPIPE killing
# this script on the spot) and the EXIT trap stops every child.
trap '' PIPE
WORKDIR="$(mktemp -d "${TMPDIR:-/tmp}/wirehub-cluster.XXXXXX")"
NODE_PIDS=()
NGINX_PID=""
REDIS_PID=""

STOP_FAILED=0
stop_pids() {  # stop_pids SIGNAL PID...: signal each PID; SIGKILL what outlives --stop-timeout
  local sig="$1" pid tries=0
  shift
  for pid in "$@"; do kill -"$sig" "$pid" 2>/dev/null || true; done
  for pid in "$@"; do
    while kill -0 "$pid" 2>/dev/null && [ "$tries" -lt $((STOP_TIMEOUT * 10)) ]; do
      sleep 0.1
      tries=$((tries + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "run-cluster.sh: PID $pid did not stop within $STOP_TIMEOUT s: SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      STOP_FAILED=1
    fi
    wait "$pid" 2>/dev/null || true
  done
}

STOPPING=0
stop_all() {
  [ "$STOPPING" = 1 ] && return
  STOPPING=1
  set +e  # an echo to a reader that went away must not end this before the children
  echo "run-cluster.sh: stopping nodes (${NODE_PIDS[*]:-}), nginx (${NGINX_PID:-}), redis (${REDIS_PID:-})" >&2
  if [ "${#NODE_PIDS[@]}" -gt 0 ]; then stop_pids TERM "${NODE_PIDS[@]}"; fi
  if [ -n "$NGINX_PID" ]; then stop_pids TERM "$NGINX_PID"; fi
  if [ -n "$REDIS_PID" ]; then stop_pids TERM "$REDIS_PID"; fi
  rm -rf "$WORKDIR"
}
trap 'stop_all; exit "$STOP_FAILED"' INT TERM
trap 'stop_all' EXIT

# Each child gets its own session (setsid), so a Ctrl-C in the terminal reaches
# only this script, which then stops the children one by one, in order.
# Output is prefixed with the child's name; $! is the child itself.
start() {  # start NAME COMMAND...
  local name="$1"
  shift
  setsid "$@" > >(sed -u "s/^/[$name] /") 2>&1 &
}

wait_for_port() {  # wait_for_port NAME PID PORT: until PORT accepts, or PID died
  local name="$1" pid="$2" port="$3" tries=0
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "run-cluster.sh: $name exited before listening on port $port" >&2
      exit 1
    fi
    tries=$((tries + 1))
    if [ "$tries" -gt 300 ]; then
      echo "run-cluster.sh: $name is not listening on port $port after 30 s" >&2
      exit 1
    fi
    sleep 0.1
  done
}

if [ -z "$REDIS_URL" ]; then
  # no persistence: history and presence live as long as this Redis (see docs/scaling.md)
  start redis "$REDIS_SERVER" --port "$REDIS_PORT" --bind 127.0.0.1 --save "" \
    --appendonly no --daemonize no
  REDIS_PID=$!
  wait_for_port redis "$REDIS_PID" "$REDIS_PORT"
  REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
fi

for ((i = 0; i < ${#PORTS[@]}; i++)); do
  name="node-$((i + 1))"
  # behind nginx every client comes from nginx's address: the per-address limit is
  # nginx's limit_conn, not the node's --max-connections-per-ip
  start "$name" "$WIREHUB" serve --host 127.0.0.1 --port "${PORTS[$i]}" --node-name "$name" \
    --broker "$REDIS_URL" --max-connections-per-ip 100000 ${SERVE_ARGS[@]+"${SERVE_ARGS[@]}"}
  NODE_PIDS+=($!)
done
for ((i = 0; i < ${#PORTS[@]}; i++)); do
  wait_for_port "node-$((i + 1))" "${NODE_PIDS[$i]}" "${PORTS[$i]}"
done

render_nginx_conf >"$WORKDIR/nginx.conf"
start nginx "$NGINX" -p "$WORKDIR" -c "$WORKDIR/nginx.conf" -e stderr
NGINX_PID=$!
wait_for_port nginx "$NGINX_PID" "${LISTEN##*:}"

echo "run-cluster.sh: up: http://$LISTEN/ -> ${#PORTS[@]} nodes (ports ${PORTS[*]}), broker $REDIS_URL"
echo "run-cluster.sh: pids: redis=${REDIS_PID:-none} nodes=${NODE_PIDS[*]} nginx=$NGINX_PID"
echo "run-cluster.sh: Ctrl-C stops everything"

# Until a signal (its trap stops everything) or a child exits by itself.
set +e
wait -n "${NODE_PIDS[@]}" "$NGINX_PID" ${REDIS_PID:+"$REDIS_PID"}
status=$?
set -e
echo "run-cluster.sh: a process exited by itself (status $status); stopping the others" >&2
stop_all
exit 1
