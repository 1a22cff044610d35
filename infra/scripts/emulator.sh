#!/usr/bin/env bash
# Local AWS emulator (moto_server from the tools venv) on 127.0.0.1:${EMULATOR_PORT:-4566}.
#
#   emulator.sh start    start moto_server in the background unless something already answers on the port
#                        (then that emulator, e.g. LocalStack or a moto started earlier, is reused), and wait
#   emulator.sh wait     wait until the emulator answers (up to EMULATOR_WAIT_SECONDS, default 30)
#   emulator.sh status   exit 0 and print what answers if the port answers, else exit 1
#   emulator.sh stop     stop the moto_server this script started (pidfile); never touches anything else
#   emulator.sh reset    wipe all moto state (POST /moto-api/reset)
#
# Settings (environment; a value already set wins):
#   EMULATOR_PORT           port on 127.0.0.1 (default 4566, LocalStack's)
#   EMULATOR_WAIT_SECONDS   start/wait timeout (default 30)
#   C360_DEV_DIR            pidfile and log directory (default <repo>/.dev)
#   C360_TOOLS_DIR          tools dir holding venv/ (default <repo>/.tools), see tools.sh
set -euo pipefail

export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true SAM_CLI_TELEMETRY=0
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-$AWS_REGION}"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PORT="${EMULATOR_PORT:-4566}"
WAIT="${EMULATOR_WAIT_SECONDS:-30}"
DEV_DIR="${C360_DEV_DIR:-$REPO/.dev}"
VENV="${C360_TOOLS_DIR:-$REPO/.tools}/venv"
PIDFILE="$DEV_DIR/emulator.pid"
LOG="$DEV_DIR/emulator.log"
BASE="http://127.0.0.1:$PORT"

# Any HTTP answer at all (moto, LocalStack, ...): curl exits 0 without -f whatever the status code.
answers() { curl -s -o /dev/null --max-time 2 "$BASE/" 2>/dev/null; }
is_moto() { curl -sf -o /dev/null --max-time 2 "$BASE/moto-api/" 2>/dev/null; }

# The pid in the pidfile, if that process is alive and still a moto_server (guards against pid reuse).
our_pid() {
  [ -f "$PIDFILE" ] || return 1
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q moto_server || return 1
  echo "$pid"
}

wait_ready() {
  local deadline=$((SECONDS + WAIT)) pid="${1:-}"
  while [ "$SECONDS" -lt "$deadline" ]; do
    if [ -n "$pid" ]; then
      # Our own moto: wait for its API, and fail fast if the process died.
      is_moto && return 0
      kill -0 "$pid" 2>/dev/null || break
    else
      { is_moto || answers; } && return 0
    fi
    sleep 0.2
  done
  echo "[emulator] no emulator answered on $BASE within ${WAIT}s" >&2
  if [ -f "$LOG" ] && { [ -n "$pid" ] || our_pid >/dev/null; }; then
    echo "[emulator] last lines of $LOG:" >&2
    tail -n 30 "$LOG" >&2 || true
  fi
  return 1
}

start() {
  mkdir -p "$DEV_DIR"
  if answers; then
    if is_moto; then
      echo "[emulator] reusing the moto emulator already answering on $BASE"
    else
      echo "[emulator] reusing the (non-moto) emulator already answering on $BASE"
    fi
    return 0
  fi
  if [ ! -x "$VENV/bin/moto_server" ]; then
    echo "[emulator] $VENV/bin/moto_server not found: run infra/scripts/tools.sh first" >&2
    return 1
  fi
  # Detached in its own session: Ctrl-C in the terminal does not hit it; whoever started it stops it.
  # The child writes its own pid before exec'ing, so the pidfile is right even if setsid forks.
  rm -f "$PIDFILE"
  local detach=()
  command -v setsid >/dev/null 2>&1 && detach=(setsid)
  # shellcheck disable=SC2016  # $$ and $1.. are expanded by the child shell
  # moto_server with atomic DynamoDB writes (infra/moto/moto_server_atomic.py says why).
  "${detach[@]}" bash -c 'echo $$ > "$1"; exec "$2" "$3" -H 127.0.0.1 -p "$4"' _ \
    "$PIDFILE" "$VENV/bin/python" "$REPO/infra/moto/moto_server_atomic.py" "$PORT" >"$LOG" 2>&1 < /dev/null &
  local pid=""
  for _ in $(seq 1 50); do
    pid="$(cat "$PIDFILE" 2>/dev/null || true)"
    [ -n "$pid" ] && break
    sleep 0.1
  done
  if [ -z "$pid" ]; then
    echo "[emulator] moto_server did not start" >&2
    tail -n 30 "$LOG" >&2 || true
    return 1
  fi
  local t0=$SECONDS
  if ! wait_ready "$pid"; then
    stop >/dev/null 2>&1 || true
    return 1
  fi
  echo "[emulator] moto_server started on $BASE (pid $pid, $((SECONDS - t0))s, log ${LOG#"$REPO"/})"
}

stop() {
  local pid
  if ! pid="$(our_pid)"; then
    rm -f "$PIDFILE"
    echo "[emulator] nothing to stop (no emulator started by this script is running)"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$PIDFILE"
  echo "[emulator] stopped moto_server (pid $pid)"
}

status() {
  if is_moto; then
    local pid
    if pid="$(our_pid)"; then echo "moto on $BASE (started here, pid $pid)"; else echo "moto on $BASE (not started by this script)"; fi
    return 0
  fi
  if answers; then echo "an emulator answers on $BASE (not moto)"; return 0; fi
  echo "no emulator on $BASE"
  return 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  wait) wait_ready ;;
  status) status ;;
  reset)
    is_moto || { echo "[emulator] no moto on $BASE" >&2; exit 1; }
    curl -sf -o /dev/null -X POST "$BASE/moto-api/reset" && echo "[emulator] moto state wiped"
    ;;
  *) echo "usage: $0 start|stop|wait|status|reset" >&2; exit 2 ;;
esac
