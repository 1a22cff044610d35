#!/usr/bin/env bash
# DynamoDB emulator for the load runs: dynalite (pinned in infra/dynalite/package-lock.json), in memory, on
# 127.0.0.1:${DYNALITE_PORT:-4567}, through infra/dynalite/serve.js (which adds TransactWriteItems, non-atomic).
# moto answers a Query by scanning the whole table; dynalite reads a key range, as DynamoDB does.
#
#   dynalite.sh install   npm ci into $C360_TOOLS_DIR/dynalite (idempotent: a stamp holds the lock file's hash)
#   dynalite.sh start     install, then start it in the background unless something already answers on the port
#   dynalite.sh status    exit 0 and say what answers if the port answers, else exit 1
#   dynalite.sh stop      stop the dynalite this script started (pidfile); never touches anything else
#   dynalite.sh check     run infra/dynalite/check.py against it: the store operations the service uses
#   dynalite.sh calls     print the calls served so far per operation (JSON), to count round trips per request
#
# Settings (environment; a value already set wins): DYNALITE_PORT (4567), DYNALITE_WAIT_SECONDS (30),
# C360_DEV_DIR (pidfile and log, default <repo>/.dev), C360_TOOLS_DIR (default <repo>/.tools).
# Point only DynamoDB at it: AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:4567 (the AWS SDKs read it).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PORT="${DYNALITE_PORT:-4567}"
WAIT="${DYNALITE_WAIT_SECONDS:-30}"
DEV_DIR="${C360_DEV_DIR:-$REPO/.dev}"
TOOLS_DIR="${C360_TOOLS_DIR:-$REPO/.tools}"
DIR="$TOOLS_DIR/dynalite"
PIDFILE="$DEV_DIR/dynalite.pid"
LOG="$DEV_DIR/dynalite.log"
BASE="http://127.0.0.1:$PORT"

# dynalite answers a GET with "healthy: dynamodb...".
is_dynalite() { curl -sf --max-time 2 "$BASE/" 2>/dev/null | grep -q '^healthy: dynamodb'; }
answers() { curl -s -o /dev/null --max-time 2 "$BASE/" 2>/dev/null; }

# A subshell, so the lock is released before the server starts (it would inherit the descriptor).
install() (
  command -v npm >/dev/null || { echo "[dynalite] npm not found: install Node.js 20+" >&2; exit 1; }
  mkdir -p "$DIR"
  exec 8>"$TOOLS_DIR/.dynalite.lock"
  if command -v flock >/dev/null; then flock 8; fi
  local want
  want="$(cat "$REPO/infra/dynalite/package.json" "$REPO/infra/dynalite/package-lock.json" <(node --version) | sha256sum | cut -d' ' -f1)"
  [ -f "$DIR/.stamp" ] && [ "$(cat "$DIR/.stamp")" = "$want" ] && exit 0
  echo "[dynalite] npm ci into $DIR"
  cp "$REPO/infra/dynalite/package.json" "$REPO/infra/dynalite/package-lock.json" "$DIR/"
  # No install scripts: classic-level (LevelDB, unused in memory) ships prebuilt binaries.
  (cd "$DIR" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error)
  echo "$want" > "$DIR/.stamp"
)

# The pid in the pidfile, if that process is alive and still our serve.js (guards against pid reuse).
our_pid() {
  [ -f "$PIDFILE" ] || return 1
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q 'infra/dynalite/serve.js' || return 1
  echo "$pid"
}

start() {
  if answers; then
    is_dynalite || { echo "[dynalite] $BASE answers but is not dynalite" >&2; return 1; }
    echo "[dynalite] reusing the dynalite already answering on $BASE"
    return 0
  fi
  install
  mkdir -p "$DEV_DIR"
  rm -f "$PIDFILE"
  local detach=()
  command -v setsid >/dev/null 2>&1 && detach=(setsid)
  # shellcheck disable=SC2016  # $$ and $1.. are expanded by the child shell
  DYNALITE_PORT="$PORT" NODE_PATH="$DIR/node_modules" "${detach[@]}" \
    bash -c 'echo $$ > "$1"; exec node "$2"' _ "$PIDFILE" "$REPO/infra/dynalite/serve.js" >"$LOG" 2>&1 < /dev/null &
  local deadline=$((SECONDS + WAIT)) pid=""
  while [ "$SECONDS" -lt "$deadline" ]; do
    pid="$(cat "$PIDFILE" 2>/dev/null || true)"
    is_dynalite && { echo "[dynalite] started on $BASE (pid $pid, log ${LOG#"$REPO"/})"; return 0; }
    [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null && break
    sleep 0.2
  done
  echo "[dynalite] did not answer on $BASE; last lines of $LOG:" >&2
  tail -n 20 "$LOG" >&2 || true
  stop >/dev/null
  return 1
}

stop() {
  local pid
  if ! pid="$(our_pid)"; then
    rm -f "$PIDFILE"
    echo "[dynalite] nothing to stop (no dynalite started by this script is running)"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$PIDFILE"
  echo "[dynalite] stopped (pid $pid)"
}

status() {
  if is_dynalite; then
    local pid
    if pid="$(our_pid)"; then echo "dynalite on $BASE (started here, pid $pid)"; else echo "dynalite on $BASE (not started by this script)"; fi
    return 0
  fi
  if answers; then echo "something else answers on $BASE"; return 1; fi
  echo "no dynalite on $BASE"
  return 1
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  check) "$TOOLS_DIR/venv/bin/python" "$REPO/infra/dynalite/check.py" --endpoint "$BASE" ;;
  calls) curl -sf "$BASE/c360/calls" && echo ;;
  *) echo "usage: $0 install|start|stop|status|check|calls" >&2; exit 2 ;;
esac
