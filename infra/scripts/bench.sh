#!/usr/bin/env bash
# `make bench`: figures for docs/benchmarks.md, measured on this machine, traffic to 127.0.0.1 only.
#   1. a release build of the dev server, against the emulator (DynamoDB: BENCH_DYNAMODB, dynalite by default, see
#      infra/scripts/bench-dynamodb.sh), with the demo data (own resource prefix)
#   2. process start -> first 200 on /maintenances/next/ (seeding done beforehand, not timed)
#   3. wrk on POST /auth/login/, GET /users/{me}/, GET /maintenances/next/ at concurrency 10 and 50
#   4. the server's peak RSS (after the read runs, and at the end); the results replace the "Foundation load run" section of docs/benchmarks.md
# Settings: BENCH_DYNAMODB (dynalite | moto), BENCH_SECONDS (10 per run), BENCH_PORT (8010), BENCH_CONCURRENCY ("10 50"),
# BENCH_TARGET_DIR (see infra/scripts/bench-stack.sh, which sets up and tears down the stack).
set -euo pipefail

PORT="${BENCH_PORT:-8010}"
CONCURRENCY="${BENCH_CONCURRENCY:-10 50}"
# The foundation section keeps the columns it was published with (BENCH_CPU_COLUMN=1 adds the CPU one).
BENCH_CPU_COLUMN="${BENCH_CPU_COLUMN:-0}"
# shellcheck source=infra/scripts/bench-stack.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-stack.sh"
bench_stack_up c360-bench "${C360_DEV_DIR:-$REPO/.dev}/bench"
bench_build
bench_seed
bench_server_start
echo "[bench] process start -> first 200 on /maintenances/next/: ${BENCH_STARTUP_MS} ms"

export BENCH_USER="$DEV_ADMIN_USERNAME" BENCH_PASSWORD="$DEV_ADMIN_PASSWORD"
BENCH_TOKEN=$(bench_token "$BENCH_USER" "$BENCH_PASSWORD")
export BENCH_TOKEN

bench_timed_start
# Reads first: moto answers a Query by scanning the whole table, so the items the login runs write
# (refresh tokens, audit lines) would slow every read measured after them.
for c in $CONCURRENCY; do
  bench_run "GET /maintenances/next/" "$c" "http://127.0.0.1:$PORT/maintenances/next/" infra/bench/authenticated.lua
done
for c in $CONCURRENCY; do
  bench_run "GET /users/{me}/" "$c" "http://127.0.0.1:$PORT/users/$BENCH_USER/" infra/bench/authenticated.lua
done
rss_reads_kib=$(bench_rss_kib)
for c in $CONCURRENCY; do
  bench_run "POST /auth/login/" "$c" "http://127.0.0.1:$PORT/auth/login/" infra/bench/login.lua
done
bench_timed_end

"$VENV/bin/python" infra/bench/report.py "$OUT/runs.tsv" foundation docs/benchmarks.md \
  "$SECONDS_PER_RUN s per run; demo data (16 perimeters)." \
  "Process start → first 200 on \`/maintenances/next/\`: **${BENCH_STARTUP_MS} ms** (state, AWS clients, routers; no seeding)." \
  "Server peak RSS: **$((rss_reads_kib / 1024)) MiB** after the read runs, **$((BENCH_RSS_KIB / 1024)) MiB** after the login runs (argon2id works in 19 MiB per hashing, on one thread per core; the rest of the growth is allocator retention, not investigated further)."
echo "[bench] docs/benchmarks.md updated"
