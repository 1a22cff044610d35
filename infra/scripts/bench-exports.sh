#!/usr/bin/env bash
# `make bench-exports`: the exports list load run of issue 10 for docs/benchmarks.md, traffic to 127.0.0.1 only.
#   1. the demo tree, roles and admin; the owners of the cohort data set (`dev-server --cohort-dataset OWNERS 300`:
#      users 8000000… with a small workspace each); then BENCH_EXPORTS (5,000) exports spread over them
#      (`dev-server --exports-dataset OWNERS EXPORTS`, shared/src/services/seed.rs `seed_exports_dataset`), each with its
#      list summary and counted as POST /exports/ counts them
#   2. wrk at each concurrency of BENCH_CONCURRENCY (1 10 50) on GET /exports/?limit=20 as the admin (who may manage
#      exports: every owner's exports) and as the plain user 8000000 (its own), then on a filter and a search (not
#      the index order: the caller's export items are read and filtered). Per request: the DynamoDB calls, the items
#      read (infra/dynalite/serve.js) and the CPU; the section "exports" of docs/benchmarks.md
# Settings: BENCH_DYNAMODB, BENCH_SECONDS (10 per run), BENCH_PORT (8014), BENCH_CONCURRENCY ("1 10 50"),
# BENCH_OWNERS (150), BENCH_EXPORTS (5000), BENCH_TARGET_DIR (see infra/scripts/bench-stack.sh).
set -euo pipefail

PORT="${BENCH_PORT:-8014}"
CONCURRENCY="${BENCH_CONCURRENCY:-1 10 50}"
OWNERS="${BENCH_OWNERS:-150}"
EXPORTS="${BENCH_EXPORTS:-5000}"
BENCH_USER=8000000
# shellcheck source=infra/scripts/bench-stack.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-stack.sh"
bench_stack_up c360-bench-exp "${C360_DEV_DIR:-$REPO/.dev}/bench-exports"

bench_build
bench_seed
t0=$SECONDS
"$BIN" --cohort-dataset "$OWNERS" 300 > "$OUT/owners.txt"
"$BIN" --exports-dataset "$OWNERS" "$EXPORTS" > "$OUT/dataset.txt"
load_s=$((SECONDS - t0))
echo "[bench] owners and exports in ${load_s}s: $(cat "$OUT/dataset.txt")"
dataset() { sed -n "s/.*[ {]$1: \"\{0,1\}\([0-9]*\).*/\1/p" "$OUT/dataset.txt"; }

bench_server_start
run() {  # username, password, label, concurrency, url
  BENCH_TOKEN=$(bench_token "$1" "$2")
  export BENCH_TOKEN
  shift 2
  bench_run "$@" infra/bench/authenticated.lua --timeout 10s
}
ADMIN=("$DEV_ADMIN_USERNAME" "$DEV_ADMIN_PASSWORD")
USER=("$BENCH_USER" load-user-password)
bench_timed_start
for c in $CONCURRENCY; do
  run "${ADMIN[@]}" "GET /exports/?limit=20 (admin: every owner's)" "$c" "http://127.0.0.1:$PORT/exports/?limit=20"
  run "${USER[@]}" "GET /exports/?limit=20 (user $BENCH_USER: its own)" "$c" "http://127.0.0.1:$PORT/exports/?limit=20"
  run "${ADMIN[@]}" "GET /exports/?limit=20&output_format=xlsx (admin)" "$c" \
    "http://127.0.0.1:$PORT/exports/?limit=20&output_format=xlsx"
  run "${USER[@]}" "GET /exports/?limit=20&search=Cohorte (user $BENCH_USER)" "$c" \
    "http://127.0.0.1:$PORT/exports/?limit=20&search=Cohorte"
done
bench_timed_end
"$VENV/bin/python" infra/bench/report.py "$OUT/runs.tsv" exports docs/benchmarks.md \
  "$SECONDS_PER_RUN s per run. Data: $(dataset exports) exports of $(dataset owners) owners (user $BENCH_USER: $(dataset bench_exports)), created over the past year, a tenth running, a twentieth failed; the owners' small workspaces of the cohort data set; demo tree (16 perimeters)." \
  "DynamoDB items read per request: the items the Queries and Scans evaluated (ScannedCount), the items GetItem and BatchGetItem returned, counted by infra/dynalite/serve.js." \
  "$(bench_load_note)" \
  "$(bench_built_from). A login (argon2id) before each run gives wrk a fresh token." \
  "Writing the owners and the exports into $BENCH_DYNAMODB_LABEL took ${load_s} s (BatchWriteItem). Server peak RSS: $((BENCH_RSS_KIB / 1024)) MiB."
echo "[bench] docs/benchmarks.md updated"
