#!/usr/bin/env bash
# `make bench-cohort`: the cohort workspace load run of issue 4 for docs/benchmarks.md, traffic to 127.0.0.1 only.
#   1. the demo tree, roles and admin; then the cohort data set (`dev-server --cohort-dataset OWNERS REQUESTS`,
#      shared/src/seed.rs `seed_cohort_dataset`): BENCH_OWNERS (150) owners, BENCH_REQUESTS (5,000) requests,
#      4 snapshots with their query texts and 4 counts per request, 1 cohort per 4 snapshots, folders; user 8000000
#      (the heavy owner) holds 300 requests, 1,100 snapshots, 1,100 counts and 275 cohorts
#   2. wrk as user 8000000 at each concurrency of BENCH_CONCURRENCY (1 10 50) on GET /cohort/requests/?limit=20,
#      GET /cohort/cohorts/?limit=20, GET /cohort/folders/, then POST /cohort/requests/ (after every read: each POST
#      adds a request to the workspace the reads list), counting the DynamoDB calls and the CPU per request; the
#      section "cohort" of docs/benchmarks.md
# Settings: BENCH_DYNAMODB (dynalite, or moto: see infra/scripts/bench-dynamodb.sh), BENCH_SECONDS (10 per run),
# BENCH_PORT (8013), BENCH_CONCURRENCY ("1 10 50"), BENCH_OWNERS (150), BENCH_REQUESTS (5000),
# BENCH_TARGET_DIR (the release build's cargo target dir, default <repo>/target/bench: not the debug builds' lock).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
       AWS_EC2_METADATA_DISABLED=true
SECONDS_PER_RUN="${BENCH_SECONDS:-10}"
PORT="${BENCH_PORT:-8013}"
CONCURRENCY="${BENCH_CONCURRENCY:-1 10 50}"
OWNERS="${BENCH_OWNERS:-150}"
REQUESTS="${BENCH_REQUESTS:-5000}"
TARGET_DIR="${BENCH_TARGET_DIR:-$REPO/target/bench}"
BENCH_USER=8000000
VENV="${C360_TOOLS_DIR:-$REPO/.tools}/venv"
OUT="${C360_DEV_DIR:-$REPO/.dev}/bench-cohort"
mkdir -p "$OUT"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
infra/scripts/tools.sh >/dev/null

# shellcheck source=infra/scripts/bench-dynamodb.sh
source infra/scripts/bench-dynamodb.sh
OWN_EMULATOR=0
SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  "$VENV/bin/python" infra/bootstrap.py --prefix c360-bench-coh --delete >/dev/null 2>&1 || true
  [ "$OWN_EMULATOR" = 1 ] && infra/scripts/emulator.sh stop >/dev/null
  bench_dynamodb_stop
  return 0
}
trap cleanup EXIT
uptime_start=$(uptime)
infra/scripts/emulator.sh status >/dev/null 2>&1 || OWN_EMULATOR=1
infra/scripts/emulator.sh start >/dev/null
bench_dynamodb_start
"$VENV/bin/python" infra/bootstrap.py --prefix c360-bench-coh --delete >/dev/null 2>&1 || true
"$VENV/bin/python" infra/bootstrap.py --prefix c360-bench-coh --env-out "$OUT/resources.env" >/dev/null
set -a
# shellcheck source=/dev/null
source "$OUT/resources.env"
set +a
# shellcheck source=infra/scripts/with-env.sh
source infra/scripts/with-env.sh
export PORT LOG_FORMAT=json RUST_LOG=warn IDENTITY_SERVER_URL=""

CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release -q -p dev-server
BIN="$TARGET_DIR/release/dev-server"
t0=$SECONDS; "$BIN" --seed-only; seed_s=$((SECONDS - t0))
t0=$SECONDS
"$BIN" --cohort-dataset "$OWNERS" "$REQUESTS" > "$OUT/dataset.txt"
load_s=$((SECONDS - t0))
echo "[bench] demo tree + roles + admin in ${seed_s}s, cohort data set in ${load_s}s: $(cat "$OUT/dataset.txt")"
dataset() { sed -n "s/.*[ {]$1: \([0-9]*\).*/\1/p" "$OUT/dataset.txt"; }

"$BIN" > "$OUT/server.log" 2>&1 &
SERVER_PID=$!
until curl -sf -o /dev/null "http://127.0.0.1:$PORT/maintenances/next/"; do sleep 0.05; done
# A fresh token before each run: access tokens live ACCESS_TOKEN_LIFETIME_SECONDS (300 s in local.env).
token() {
  curl -sf -X POST "http://127.0.0.1:$PORT/auth/login/" -H 'authorizationMethod: JWT' -F "username=$BENCH_USER" \
    -F "password=load-user-password" | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
get() {  # path, token
  curl -sf "http://127.0.0.1:$PORT$1" -H "Authorization: Bearer $2" -H 'authorizationMethod: JWT'
}
TOKEN=$(token)
FOLDER=$(get /cohort/folders/ "$TOKEN" | "$VENV/bin/python" -c '
import json, sys
body = json.load(sys.stdin)
print((body["results"] if isinstance(body, dict) else body)[0]["uuid"])')
requests_count() {
  get "/cohort/requests/?limit=1" "$(token)" | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["count"])'
}
requests_before=$(requests_count)

: > "$OUT/runs.tsv"
# CPU time (clock ticks) of a process; where a request's time goes: the server, or the DynamoDB emulator.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
EMULATOR_PID=$(bench_dynamodb_pid)
run() {  # label, concurrency, url, lua script
  local file before server0 emulator0 emulator_ticks=- threads=2
  [ "$2" -lt 2 ] && threads=1
  file="$OUT/wrk-$(printf %s "$1" | tr -c "A-Za-z0-9" "_")-$2.txt"
  BENCH_TOKEN=$(token)
  export BENCH_TOKEN
  before=$(bench_dynamodb_calls)
  server0=$(cpu_ticks "$SERVER_PID")
  [ -n "$EMULATOR_PID" ] && emulator0=$(cpu_ticks "$EMULATOR_PID")
  # A 10 s timeout: wrk's default 2 s would drop the slowest requests from the percentiles.
  wrk -t"$threads" -c"$2" -d"${SECONDS_PER_RUN}s" --timeout 10s --latency -s "$4" "$3" > "$file"
  [ -n "$EMULATOR_PID" ] && emulator_ticks=$(($(cpu_ticks "$EMULATOR_PID") - emulator0))
  printf '%s\t%s\t%s\t%s\t%s\t%s %s\n' "$1" "$2" "$file" "$before" "$(bench_dynamodb_calls)" \
    "$(($(cpu_ticks "$SERVER_PID") - server0))" "$emulator_ticks" >> "$OUT/runs.tsv"
  echo "[bench] $1 c=$2: $(grep 'Requests/sec' "$file")"
}
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for c in $CONCURRENCY; do
  run "GET /cohort/requests/?limit=20" "$c" "http://127.0.0.1:$PORT/cohort/requests/?limit=20" infra/bench/authenticated.lua
  run "GET /cohort/cohorts/?limit=20" "$c" "http://127.0.0.1:$PORT/cohort/cohorts/?limit=20" infra/bench/authenticated.lua
  run "GET /cohort/folders/" "$c" "http://127.0.0.1:$PORT/cohort/folders/" infra/bench/authenticated.lua
done
export BENCH_BODY="{\"name\": \"bench\", \"parent_folder\": \"$FOLDER\"}"
for c in $CONCURRENCY; do
  run "POST /cohort/requests/" "$c" "http://127.0.0.1:$PORT/cohort/requests/" infra/bench/post-json.lua
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
requests_after=$(requests_count)
rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$SERVER_PID/status")
"$VENV/bin/python" infra/bench/report.py "$OUT/runs.tsv" cohort docs/benchmarks.md \
  "$SECONDS_PER_RUN s per run, as user $BENCH_USER. Data: $(dataset owners) owners, $(dataset folders) folders, $(dataset requests) requests, $(dataset snapshots) snapshots (query texts $(($(dataset query_bytes) / $(dataset snapshots))) bytes on average, in their own items), $(dataset measures) counts, $(dataset cohorts) cohorts; user $BENCH_USER: $(dataset bench_folders) folders, $(dataset bench_requests) requests, $(dataset bench_snapshots) snapshots, $(dataset bench_measures) counts, $(dataset bench_cohorts) cohorts. Demo tree (16 perimeters)." \
  "The POST runs come last and add to the listed workspace: user $BENCH_USER had $requests_before requests before them and $requests_after after." \
  "Load average (1, 5, 15 min) before the timed runs: $load_before; after: $load_after. \`uptime\` at the start of the script: ${uptime_start# }; at the end: $(uptime | sed 's/^ //')." \
  "Built from $(git rev-parse --short HEAD)$(git diff --quiet HEAD 2>/dev/null || echo " plus the uncommitted changes of the shared working tree at the time"). wrk runs 1 thread at concurrency 1, 2 threads otherwise; a login (argon2id) before each run gives it a fresh token." \
  "Writing the cohort data set into $BENCH_DYNAMODB_LABEL took ${load_s} s (BatchWriteItem); the tree, roles and admin ${seed_s} s. Server peak RSS: $((rss_kib / 1024)) MiB."
echo "[bench] docs/benchmarks.md updated"
