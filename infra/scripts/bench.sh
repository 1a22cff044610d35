#!/usr/bin/env bash
# `make bench`: figures for docs/benchmarks.md, measured on this machine, traffic to 127.0.0.1 only.
#   1. a release build of the dev server, against the emulator (DynamoDB: BENCH_DYNAMODB, dynalite by default, see
#      infra/scripts/bench-dynamodb.sh), with the demo data (own resource prefix)
#   2. process start -> first 200 on /maintenances/next/ (seeding done beforehand, not timed)
#   3. wrk on POST /auth/login/, GET /users/{me}/, GET /maintenances/next/ at concurrency 10 and 50
#   4. the server's peak RSS (after the read runs, and at the end); the results replace the "Foundation load run" section of docs/benchmarks.md
# Settings: BENCH_DYNAMODB (dynalite | moto), BENCH_SECONDS (10 per run), BENCH_PORT (8010), BENCH_CONCURRENCY ("10 50").
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
       AWS_EC2_METADATA_DISABLED=true
SECONDS_PER_RUN="${BENCH_SECONDS:-10}"
PORT="${BENCH_PORT:-8010}"
CONCURRENCY="${BENCH_CONCURRENCY:-10 50}"
VENV="${C360_TOOLS_DIR:-$REPO/.tools}/venv"
DEV_DIR="${C360_DEV_DIR:-$REPO/.dev}"
OUT="$DEV_DIR/bench"
mkdir -p "$OUT"

if ! command -v wrk >/dev/null; then
  echo "[bench] installing wrk (Debian package)"
  apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
infra/scripts/tools.sh >/dev/null

# shellcheck source=infra/scripts/bench-dynamodb.sh
source infra/scripts/bench-dynamodb.sh
OWN_EMULATOR=0
SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  "$VENV/bin/python" infra/bootstrap.py --prefix c360-bench --delete >/dev/null 2>&1 || true
  [ "$OWN_EMULATOR" = 1 ] && infra/scripts/emulator.sh stop >/dev/null
  bench_dynamodb_stop
  return 0
}
trap cleanup EXIT
infra/scripts/emulator.sh status >/dev/null 2>&1 || OWN_EMULATOR=1
infra/scripts/emulator.sh start >/dev/null
bench_dynamodb_start

"$VENV/bin/python" infra/bootstrap.py --prefix c360-bench --delete >/dev/null 2>&1 || true
"$VENV/bin/python" infra/bootstrap.py --prefix c360-bench --env-out "$OUT/resources.env" >/dev/null
set -a
# shellcheck source=/dev/null
source "$OUT/resources.env"
set +a
# shellcheck source=infra/scripts/with-env.sh
source infra/scripts/with-env.sh
# The server alone is measured: no identity server round trip at login.
export PORT LOG_FORMAT=json RUST_LOG=warn IDENTITY_SERVER_URL=""

echo "[bench] cargo build --release -p dev-server"
cargo build --release -q -p dev-server
BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/dev-server"
"$BIN" --seed-only

start_ns=$(date +%s%N)
"$BIN" > "$OUT/server.log" 2>&1 &
SERVER_PID=$!
until curl -sf -o /dev/null "http://127.0.0.1:$PORT/maintenances/next/"; do sleep 0.005; done
startup_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
echo "[bench] process start -> first 200 on /maintenances/next/: ${startup_ms} ms"

export BENCH_USER="$DEV_ADMIN_USERNAME" BENCH_PASSWORD="$DEV_ADMIN_PASSWORD"
BENCH_TOKEN=$(curl -sf -X POST "http://127.0.0.1:$PORT/auth/login/" -H 'authorizationMethod: JWT' \
  -F "username=$BENCH_USER" -F "password=$BENCH_PASSWORD" | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
export BENCH_TOKEN

: > "$OUT/runs.tsv"
run() {  # name, concurrency, url, lua script
  local name="$1" c="$2" url="$3" script="$4"
  local file before; file="$OUT/wrk-$(printf %s "$1" | tr -c "A-Za-z0-9" "_")-$2.txt"
  before=$(bench_dynamodb_calls)
  wrk -t2 -c"$c" -d"${SECONDS_PER_RUN}s" --latency -s "$script" "$url" > "$file"
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$c" "$file" "$before" "$(bench_dynamodb_calls)" >> "$OUT/runs.tsv"
  echo "[bench] $name c=$c: $(grep 'Requests/sec' "$file")"
}
# Reads first: moto answers a Query by scanning the whole table, so the items the login runs write
# (refresh tokens, audit lines) would slow every read measured after them.
for c in $CONCURRENCY; do
  run "GET /maintenances/next/" "$c" "http://127.0.0.1:$PORT/maintenances/next/" infra/bench/authenticated.lua
done
for c in $CONCURRENCY; do
  run "GET /users/{me}/" "$c" "http://127.0.0.1:$PORT/users/$BENCH_USER/" infra/bench/authenticated.lua
done
rss_reads_kib=$(awk '/VmHWM/ {print $2}' "/proc/$SERVER_PID/status")
for c in $CONCURRENCY; do
  run "POST /auth/login/" "$c" "http://127.0.0.1:$PORT/auth/login/" infra/bench/login.lua
done
rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$SERVER_PID/status")

"$VENV/bin/python" infra/bench/report.py "$OUT/runs.tsv" foundation docs/benchmarks.md \
  "$SECONDS_PER_RUN s per run; demo data (16 perimeters)." \
  "Process start → first 200 on \`/maintenances/next/\`: **${startup_ms} ms** (state, AWS clients, routers; no seeding)." \
  "Server peak RSS: **$((rss_reads_kib / 1024)) MiB** after the read runs, **$((rss_kib / 1024)) MiB** after the login runs (argon2id works in 19 MiB per hashing, on one thread per core; the rest of the growth is allocator retention, not investigated further)."
echo "[bench] docs/benchmarks.md updated"
