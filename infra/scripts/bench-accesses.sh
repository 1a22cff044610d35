#!/usr/bin/env bash
# `make bench-accesses`: the accesses load run for docs/benchmarks.md, traffic to 127.0.0.1 only.
#   1. the institution-sized tree (infra/data/gen_perimeters.py large, ~29k perimeters), roles, admin
#   2. a population of BENCH_USERS users (2,000) holding BENCH_ACCESSES accesses (10,000) in all; user
#      9000000 holds exactly one access
#   3. wrk at concurrency BENCH_CONCURRENCY (10) on my-accesses, perimeters?limit=20, accesses?limit=20,
#      as the full admin and as the one-access user, counting the DynamoDB calls made per request; the section
#      "accesses" of docs/benchmarks.md
# Settings: BENCH_DYNAMODB (dynalite, or moto: see infra/scripts/bench-dynamodb.sh), BENCH_SECONDS (10 per run),
# BENCH_PORT (8012), BENCH_CONCURRENCY (10), BENCH_USERS (2000), BENCH_ACCESSES (10000).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
       AWS_EC2_METADATA_DISABLED=true
SECONDS_PER_RUN="${BENCH_SECONDS:-10}"
PORT="${BENCH_PORT:-8012}"
CONCURRENCY="${BENCH_CONCURRENCY:-10}"
USERS="${BENCH_USERS:-2000}"
ACCESSES="${BENCH_ACCESSES:-10000}"
VENV="${C360_TOOLS_DIR:-$REPO/.tools}/venv"
OUT="${C360_DEV_DIR:-$REPO/.dev}/bench-accesses"
mkdir -p "$OUT"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
infra/scripts/tools.sh >/dev/null

# shellcheck source=infra/scripts/bench-dynamodb.sh
source infra/scripts/bench-dynamodb.sh
OWN_EMULATOR=0
SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  "$VENV/bin/python" infra/bootstrap.py --prefix c360-bench-acc --delete >/dev/null 2>&1 || true
  [ "$OWN_EMULATOR" = 1 ] && infra/scripts/emulator.sh stop >/dev/null
  bench_dynamodb_stop
  return 0
}
trap cleanup EXIT
infra/scripts/emulator.sh status >/dev/null 2>&1 || OWN_EMULATOR=1
infra/scripts/emulator.sh start >/dev/null
bench_dynamodb_start
"$VENV/bin/python" infra/bootstrap.py --prefix c360-bench-acc --delete >/dev/null 2>&1 || true
"$VENV/bin/python" infra/bootstrap.py --prefix c360-bench-acc --env-out "$OUT/resources.env" >/dev/null
set -a
# shellcheck source=/dev/null
source "$OUT/resources.env"
set +a
python3 infra/data/gen_perimeters.py large > "$OUT/perimeters.large.csv"
export PERIMETERS_CSV="$OUT/perimeters.large.csv"
# shellcheck source=infra/scripts/with-env.sh
source infra/scripts/with-env.sh
export PORT LOG_FORMAT=json RUST_LOG=warn IDENTITY_SERVER_URL=""

cargo build --release -q -p dev-server
BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/dev-server"
t0=$SECONDS; "$BIN" --seed-only; seed_s=$((SECONDS - t0))
t0=$SECONDS
"$BIN" --load-dataset "$USERS" "$ACCESSES"   # 9000000 holds exactly one access
load_s=$((SECONDS - t0))
echo "[bench] tree + roles + admin in ${seed_s}s, population in ${load_s}s"

"$BIN" > "$OUT/server.log" 2>&1 &
SERVER_PID=$!
until curl -sf -o /dev/null "http://127.0.0.1:$PORT/maintenances/next/"; do sleep 0.05; done
token() {
  curl -sf -X POST "http://127.0.0.1:$PORT/auth/login/" -H 'authorizationMethod: JWT' -F "username=$1" -F "password=$2" \
    | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
ADMIN_TOKEN=$(token "$DEV_ADMIN_USERNAME" "$DEV_ADMIN_PASSWORD")
USER_TOKEN=$(token 9000000 load-user-password)
# First request outside the timed runs: the container loads the 29k-perimeter tree once.
first_ms=$( { /usr/bin/time -f '%e' curl -sf -o /dev/null "http://127.0.0.1:$PORT/accesses/perimeters/?limit=20" \
  -H "Authorization: Bearer $ADMIN_TOKEN" -H 'authorizationMethod: JWT'; } 2>&1 | awk '{printf "%d", $1 * 1000}')

: > "$OUT/runs.tsv"
# CPU time (clock ticks) of a process; where a request's time goes: the server, or the DynamoDB emulator.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
EMULATOR_PID=$(bench_dynamodb_pid)
run() {  # label, concurrency, url, token
  local file before server0 emulator0 emulator_ticks=-
  file="$OUT/wrk-$(printf %s "$1" | tr -c "A-Za-z0-9" "_")-$2.txt"
  before=$(bench_dynamodb_calls)
  server0=$(cpu_ticks "$SERVER_PID")
  [ -n "$EMULATOR_PID" ] && emulator0=$(cpu_ticks "$EMULATOR_PID")
  # A 10 s timeout: wrk's default 2 s would drop the slowest requests from the percentiles.
  BENCH_TOKEN="$4" wrk -t2 -c"$2" -d"${SECONDS_PER_RUN}s" --timeout 10s --latency -s infra/bench/authenticated.lua "$3" > "$file"
  [ -n "$EMULATOR_PID" ] && emulator_ticks=$(($(cpu_ticks "$EMULATOR_PID") - emulator0))
  printf '%s\t%s\t%s\t%s\t%s\t%s %s\n' "$1" "$2" "$file" "$before" "$(bench_dynamodb_calls)" \
    "$(($(cpu_ticks "$SERVER_PID") - server0))" "$emulator_ticks" >> "$OUT/runs.tsv"
  echo "[bench] $1 c=$2: $(grep 'Requests/sec' "$file")"
}
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for c in $CONCURRENCY; do
  for who in admin user; do
    if [ "$who" = admin ]; then tok="$ADMIN_TOKEN"; else tok="$USER_TOKEN"; fi
    run "GET /accesses/accesses/my-accesses/ ($who)" "$c" "http://127.0.0.1:$PORT/accesses/accesses/my-accesses/" "$tok"
    run "GET /accesses/perimeters/?limit=20 ($who)" "$c" "http://127.0.0.1:$PORT/accesses/perimeters/?limit=20" "$tok"
    run "GET /accesses/accesses/?limit=20 ($who)" "$c" "http://127.0.0.1:$PORT/accesses/accesses/?limit=20" "$tok"
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$SERVER_PID/status")
"$VENV/bin/python" infra/bench/report.py "$OUT/runs.tsv" accesses docs/benchmarks.md \
  "$SECONDS_PER_RUN s per run. Data: the large tree ($(($(wc -l < "$PERIMETERS_CSV") - 1)) perimeters), $USERS users holding $ACCESSES accesses in all (user 9000000 holds exactly one, its role drawn from the same mix), and the full admin." \
  "Load average (1, 5, 15 min) before the timed runs: $load_before; after: $load_after." \
  "Writing that population into $BENCH_DYNAMODB took ${load_s} s; the tree, roles and admin ${seed_s} s." \
  "First \`/accesses/perimeters/\` of the container (tree load, not timed in the runs): ${first_ms} ms. Server peak RSS: $((rss_kib / 1024)) MiB."
echo "[bench] docs/benchmarks.md updated"
