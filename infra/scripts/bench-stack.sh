# shellcheck shell=bash
# Sourced by the load scripts (bench.sh, bench-accesses.sh, bench-cohort.sh): the stack they all stand on, set up
# and torn down the same way so their figures differ by workload only. Traffic to 127.0.0.1 only.
#   bench_stack_up PREFIX DIR      wrk and the tools venv; the emulator (queues, bucket: reused if it answers, stopped
#                                  at exit only if started here); DynamoDB (BENCH_DYNAMODB, see bench-dynamodb.sh);
#                                  the template's resources under PREFIX, their names in DIR/resources.env; the dev
#                                  configuration; one EXIT trap that undoes all of it. OUT=DIR afterwards
#   bench_build                    release build of the dev server (the working tree, or BENCH_REV) into
#                                  BENCH_TARGET_DIR; sets BIN
#   bench_seed                     tree, roles and admin (`--seed-only`); sets BENCH_SEED_S
#   bench_server_start             starts $BIN, waits for its first 200; sets SERVER_PID, BENCH_STARTUP_MS
#   bench_token USER PASSWORD      an access token (a login, argon2id)
#   bench_timed_start / _end       around the timed runs: empty runs.tsv, load average, the machine's CPU, peak RSS
#                                  (BENCH_RSS_KIB)
#   bench_run LABEL C URL LUA [WRK OPTION...]   one wrk run as BENCH_TOKEN, a line of $OUT/runs.tsv (report.py):
#                                  label, concurrency, wrk output, the DynamoDB counters before and after the run
#                                  (calls per operation and, under items_read, items read per operation), CPU ticks
#   bench_load_note, bench_built_from           notes for the report: machine load, which code was measured
# The caller sets PORT before bench_stack_up. Settings: BENCH_DYNAMODB, BENCH_SECONDS (10 per run), BENCH_TARGET_DIR
# (release target dir, default <repo>/target/bench: a release build must not wait on the debug builds' lock),
# BENCH_CPU_COLUMN (1: time the server and DynamoDB processes per run), BENCH_REV (a commit to build instead of the
# working tree, e.g. HEAD; the scripts, template and data still come from the working tree).
# shellcheck disable=SC2034  # REPO, VENV, OUT, SECONDS_PER_RUN... are read by the sourcing script

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO" || exit
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
       AWS_EC2_METADATA_DISABLED=true
SECONDS_PER_RUN="${BENCH_SECONDS:-10}"
TARGET_DIR="${BENCH_TARGET_DIR:-$REPO/target/bench}"
BENCH_CPU_COLUMN="${BENCH_CPU_COLUMN:-1}"
VENV="${C360_TOOLS_DIR:-$REPO/.tools}/venv"
BENCH_UPTIME_START=$(uptime | sed 's/^ *//')

# shellcheck source=infra/scripts/bench-dynamodb.sh
source infra/scripts/bench-dynamodb.sh
SERVER_PID=""
_bench_prefix=""
_bench_own_emulator=0
_bench_emulator_pid=""

# The EXIT trap. Every step tolerates failure: a step that stopped the trap under `set -e` would leave dynalite,
# the emulator or the resources behind (waiting on the killed server returns 143).
bench_stack_down() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  if [ -n "$_bench_prefix" ]; then
    "$VENV/bin/python" infra/bootstrap.py --prefix "$_bench_prefix" --delete >/dev/null 2>&1 || true
  fi
  if [ "$_bench_own_emulator" = 1 ]; then infra/scripts/emulator.sh stop >/dev/null || true; fi
  bench_dynamodb_stop || true
  return 0
}

bench_stack_up() {  # resource prefix, output directory
  _bench_prefix="$1"
  OUT="$2"
  mkdir -p "$OUT"
  if ! command -v wrk >/dev/null; then
    echo "[bench] installing wrk (Debian package)"
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
  fi
  infra/scripts/tools.sh >/dev/null
  trap bench_stack_down EXIT
  infra/scripts/emulator.sh status >/dev/null 2>&1 || _bench_own_emulator=1
  infra/scripts/emulator.sh start >/dev/null
  bench_dynamodb_start
  _bench_emulator_pid=$(bench_dynamodb_pid)
  # A clean slate: resources left by an interrupted run would carry its data into this one.
  "$VENV/bin/python" infra/bootstrap.py --prefix "$_bench_prefix" --delete >/dev/null 2>&1 || true
  "$VENV/bin/python" infra/bootstrap.py --prefix "$_bench_prefix" --env-out "$OUT/resources.env" >/dev/null
  set -a
  # shellcheck source=/dev/null
  source "$OUT/resources.env"
  set +a
  # shellcheck source=infra/scripts/with-env.sh
  source infra/scripts/with-env.sh
  # The server alone is measured: no identity server round trip at login.
  export PORT LOG_FORMAT=json RUST_LOG=warn IDENTITY_SERVER_URL=""
}

bench_build() {
  local src="$REPO"
  if [ -n "${BENCH_REV:-}" ]; then
    # A commit exported apart: the shared working tree may be mid-edit (not compiling, or not what is measured).
    # One export for every script, kept while the commit is the same, so cargo finds it built. A new export is
    # touched (tar -m): files dated by an older commit would look older than the last build and not be rebuilt.
    local rev
    rev=$(git rev-parse "$BENCH_REV^{commit}")
    src="${C360_DEV_DIR:-$REPO/.dev}/bench-src"
    if [ "$(cat "$src.rev" 2>/dev/null)" != "$rev" ]; then
      rm -rf "$src" && mkdir -p "$src"
      git archive "$rev" | tar -x -m -C "$src"
      echo "$rev" > "$src.rev"
    fi
    _bench_built_from="Built from $(git rev-parse --short "$rev") alone (BENCH_REV, exported apart from the working tree)"
  else
    _bench_built_from=$(_bench_source_state)
  fi
  echo "[bench] cargo build --release -p dev-server (sources $src, target dir $TARGET_DIR)"
  (cd "$src" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release -q -p dev-server)
  BIN="$TARGET_DIR/release/dev-server"
}

bench_seed() {
  local t0=$SECONDS
  "$BIN" --seed-only
  BENCH_SEED_S=$((SECONDS - t0))
}

bench_server_start() {
  local start_ns
  start_ns=$(date +%s%N)
  "$BIN" > "$OUT/server.log" 2>&1 &
  SERVER_PID=$!
  until curl -sf -o /dev/null "http://127.0.0.1:$PORT/maintenances/next/"; do sleep 0.005; done
  BENCH_STARTUP_MS=$(( ($(date +%s%N) - start_ns) / 1000000 ))
}

bench_token() {  # username, password
  curl -sf -X POST "http://127.0.0.1:$PORT/auth/login/" -H 'authorizationMethod: JWT' -F "username=$1" -F "password=$2" \
    | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}

bench_rss_kib() { awk '/VmHWM/ {print $2}' "/proc/$SERVER_PID/status"; }

# CPU time (clock ticks) of a process: where a request's time goes, the server or the DynamoDB emulator.
_bench_cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Clock ticks: the whole machine busy and in all (all cores; idle and iowait are not busy), the server, dynalite.
_bench_cpu_snapshot() {
  {
    awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat
    _bench_cpu_ticks "$SERVER_PID"
    if [ -n "$_bench_emulator_pid" ]; then _bench_cpu_ticks "$_bench_emulator_pid"; else echo 0; fi
  } | tr '\n' ' '
}
# The load average mixes in the build that precedes the runs; the machine's CPU during the runs says what else ran.
_bench_cpu_at_start=""
_bench_wrk_cs=0  # centiseconds of CPU the wrk runs used

bench_timed_start() {
  : > "$OUT/runs.tsv"
  BENCH_LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
  _bench_cpu_at_start=$(_bench_cpu_snapshot)
  _bench_wrk_cs=0
}

bench_timed_end() {
  local dynalite="dynalite" rest="the script, anything else on the machine"
  # On moto the DynamoDB process is the shared emulator: its CPU falls in the rest.
  [ -n "$_bench_emulator_pid" ] || { dynalite=""; rest="moto, $rest"; }
  BENCH_LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
  BENCH_RSS_KIB=$(bench_rss_kib)
  # Shares of the whole machine (100 % = every core busy) over the timed runs; /proc/stat counts in USER_HZ ticks.
  BENCH_MACHINE_CPU=$(echo "$_bench_cpu_at_start" "$(_bench_cpu_snapshot)" | awk -v hz="$(getconf CLK_TCK)" \
    -v wrk_cs="$_bench_wrk_cs" -v dynalite="$dynalite" -v rest="$rest" '{
    pct = 100 / ($6 - $2); busy = $5 - $1; server = $7 - $3; dynamo = $8 - $4; wrk = wrk_cs * hz / 100
    printf "the cores were %.0f %% busy: the server %.0f %%, ", busy * pct, server * pct
    if (dynalite != "") printf "%s %.0f %%, ", dynalite, dynamo * pct
    printf "wrk %.0f %%, the rest (%s) %.0f %%", wrk * pct, rest, (busy - server - dynamo - wrk) * pct }')
}

bench_run() {  # label, concurrency, url, lua script, [wrk options]; the token is BENCH_TOKEN (exported)
  local label="$1" c="$2" url="$3" script="$4"
  shift 4
  local file before server0 emulator0 emulator_ticks=- cpu="" threads=2
  # wrk needs a connection per thread.
  [ "$c" -lt 2 ] && threads=1
  file="$OUT/wrk-$(printf %s "$label" | tr -c "A-Za-z0-9" "_")-$c.txt"
  # The counters of dynalite's shim: calls per operation and `items_read` (items read per operation), so the report
  # gives both per request ({} on moto).
  before=$(bench_dynamodb_calls)
  server0=$(_bench_cpu_ticks "$SERVER_PID")
  [ -n "$_bench_emulator_pid" ] && emulator0=$(_bench_cpu_ticks "$_bench_emulator_pid")
  # wrk's own CPU, so that the machine's CPU during the runs separates it from whatever else ran.
  /usr/bin/time -f '%U %S' -o "$file.cpu" wrk -t"$threads" -c"$c" -d"${SECONDS_PER_RUN}s" "$@" --latency -s "$script" "$url" > "$file"
  _bench_wrk_cs=$(awk -v cs="$_bench_wrk_cs" '{print cs + int(($1 + $2) * 100 + 0.5)}' "$file.cpu")
  if [ "$BENCH_CPU_COLUMN" = 1 ]; then
    [ -n "$_bench_emulator_pid" ] && emulator_ticks=$(($(_bench_cpu_ticks "$_bench_emulator_pid") - emulator0))
    cpu=$'\t'"$(($(_bench_cpu_ticks "$SERVER_PID") - server0)) $emulator_ticks"
  fi
  printf '%s\t%s\t%s\t%s\t%s%s\n' "$label" "$c" "$file" "$before" "$(bench_dynamodb_calls)" "$cpu" >> "$OUT/runs.tsv"
  echo "[bench] $label c=$c: $(grep 'Requests/sec' "$file")"
}

bench_load_note() {
  echo "Load average (1, 5, 15 min) before the timed runs: $BENCH_LOAD_BEFORE; after: $BENCH_LOAD_AFTER. During them" \
    "$BENCH_MACHINE_CPU." \
    "\`uptime\` at the start of the script: $BENCH_UPTIME_START; at the end: $(uptime | sed 's/^ *//')."
}

# The working tree is shared and moves during a run: what it held when the build started (commit, and whether
# the server's sources had uncommitted changes).
_bench_source_state() {
  local dirty
  dirty=$(git status --porcelain -- functions shared infra/dev-server Cargo.toml Cargo.lock 2>/dev/null)
  echo "Built from $(git rev-parse --short HEAD)${dirty:+ plus the uncommitted changes of the shared working tree at the time}"
}
_bench_built_from=""

bench_built_from() { echo "${_bench_built_from:-$(_bench_source_state)}"; }
