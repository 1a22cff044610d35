#!/usr/bin/env bash
# `make bench-logs`: the `/logs/` load run for docs/benchmarks.md, traffic to 127.0.0.1 only.
#   1. tree, roles and admin; BENCH_LOG_ROWS (100,000) request logs over BENCH_LOG_DAYS (90) days from BENCH_LOG_USERS
#      (200) users on the audited routes, written through the store as the audit layer writes them (seed-logs)
#   2. the items DynamoDB reads for the first page of each listing (seed-logs --measure)
#   3. wrk at concurrency BENCH_CONCURRENCY (10) on the Portail's listings as the full admin: page 1 and page 50
#      newest first, one user, path_contains (the Portail's words, one access's history), a status, a method, the last
#      7 days, a search on a route word and on a user; the section "logs" of docs/benchmarks.md
# Settings: BENCH_DYNAMODB (dynalite, or moto: see infra/scripts/bench-dynamodb.sh), BENCH_SECONDS (10 per run),
# BENCH_PORT (8014), BENCH_CONCURRENCY (10), BENCH_LOG_ROWS, BENCH_LOG_DAYS, BENCH_LOG_USERS, BENCH_TARGET_DIR (see
# infra/scripts/bench-stack.sh, which sets up and tears down the stack).
set -euo pipefail

PORT="${BENCH_PORT:-8014}"
CONCURRENCY="${BENCH_CONCURRENCY:-10}"
ROWS="${BENCH_LOG_ROWS:-100000}"
DAYS="${BENCH_LOG_DAYS:-90}"
USERS="${BENCH_LOG_USERS:-200}"
# shellcheck source=infra/scripts/bench-stack.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-stack.sh"
bench_stack_up c360-bench-logs "${C360_DEV_DIR:-$REPO/.dev}/bench-logs"

bench_build
bench_seed
t0=$SECONDS
"$TARGET_DIR/release/seed-logs" "$ROWS" "$DAYS" "$USERS" > "$OUT/items.tsv"
load_s=$((SECONDS - t0))
echo "[bench] $ROWS logs in ${load_s}s"
cat "$OUT/items.tsv"

bench_server_start
export BENCH_TOKEN
BENCH_TOKEN=$(bench_token "$DEV_ADMIN_USERNAME" "$DEV_ADMIN_PASSWORD")
week=$(date -u -d '7 days ago' +%F)
today=$(date -u +%F)
user=$((4000000 + USERS / 2))
access=1000 # ACCESS_ID in seed-logs.rs
bench_timed_start
for c in $CONCURRENCY; do
  for query in "page=1" "page=50" "page=1&user=$user" "page=1&path_contains=/cohort/" "page=1&path_contains=accesses" \
               "page=50&path_contains=accesses" "page=1&path_contains=/accesses/$access/" "page=1&path_contains=roles" \
               "page=1&status_code=500" "page=1&method=POST" "page=1&requested_at_after=$week&requested_at_before=$today" \
               "page=1&search=cohorts" "page=1&search=$user"; do
    url="http://127.0.0.1:$PORT/logs/?ordering=-requested_at&$query"
    bench_run "GET /logs/?$query" "$c" "$url" infra/bench/authenticated.lua --timeout 10s
  done
done
bench_timed_end
items=$(awk -F'\t' '{printf "%s%s: %s, %s", (NR > 1 ? "; " : ""), $1, $2, $4}' "$OUT/items.tsv")
"$VENV/bin/python" infra/bench/report.py "$OUT/runs.tsv" logs docs/benchmarks.md \
  "$SECONDS_PER_RUN s per run, as the full admin, \`ordering=-requested_at\` on every listing. Data: $ROWS request logs over the last $DAYS days from $USERS users (1 in 20 anonymous) on the 28 audited routes (weighted as a deployment calls them: a quarter snapshot saves, 3 % access writes, 0.5 % role writes), written through the store as the audit layer writes them (row and day and route counters, then the status) in ${load_s} s; the budget of rows read to count a filter the counters do not answer is the default (5,000)." \
  "Items DynamoDB reads for the first page of each listing (rows evaluated plus counter items; \`seed-logs --measure\`): $items." \
  "$(bench_load_note)" \
  "$(bench_built_from). Server peak RSS: $((BENCH_RSS_KIB / 1024)) MiB."
echo "[bench] docs/benchmarks.md updated"
