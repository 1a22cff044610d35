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
# BENCH_TARGET_DIR (see infra/scripts/bench-stack.sh, which sets up and tears down the stack).
set -euo pipefail

PORT="${BENCH_PORT:-8013}"
CONCURRENCY="${BENCH_CONCURRENCY:-1 10 50}"
OWNERS="${BENCH_OWNERS:-150}"
REQUESTS="${BENCH_REQUESTS:-5000}"
BENCH_USER=8000000
# shellcheck source=infra/scripts/bench-stack.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-stack.sh"
bench_stack_up c360-bench-coh "${C360_DEV_DIR:-$REPO/.dev}/bench-cohort"

bench_build
bench_seed
t0=$SECONDS
"$BIN" --cohort-dataset "$OWNERS" "$REQUESTS" > "$OUT/dataset.txt"
load_s=$((SECONDS - t0))
echo "[bench] demo tree + roles + admin in ${BENCH_SEED_S}s, cohort data set in ${load_s}s: $(cat "$OUT/dataset.txt")"
dataset() { sed -n "s/.*[ {]$1: \([0-9]*\).*/\1/p" "$OUT/dataset.txt"; }

bench_server_start
# A fresh token before each run: access tokens live ACCESS_TOKEN_LIFETIME_SECONDS (300 s in local.env).
token() { bench_token "$BENCH_USER" load-user-password; }
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

run() {  # label, concurrency, url, lua script
  BENCH_TOKEN=$(token)
  export BENCH_TOKEN
  # A 10 s timeout: wrk's default 2 s would drop the slowest requests from the percentiles.
  bench_run "$@" --timeout 10s
}
bench_timed_start
for c in $CONCURRENCY; do
  run "GET /cohort/requests/?limit=20" "$c" "http://127.0.0.1:$PORT/cohort/requests/?limit=20" infra/bench/authenticated.lua
  run "GET /cohort/cohorts/?limit=20" "$c" "http://127.0.0.1:$PORT/cohort/cohorts/?limit=20" infra/bench/authenticated.lua
  run "GET /cohort/folders/" "$c" "http://127.0.0.1:$PORT/cohort/folders/" infra/bench/authenticated.lua
done
export BENCH_BODY="{\"name\": \"bench\", \"parent_folder\": \"$FOLDER\"}"
for c in $CONCURRENCY; do
  run "POST /cohort/requests/" "$c" "http://127.0.0.1:$PORT/cohort/requests/" infra/bench/post-json.lua
done
bench_timed_end
requests_after=$(requests_count)
"$VENV/bin/python" infra/bench/report.py "$OUT/runs.tsv" cohort docs/benchmarks.md \
  "$SECONDS_PER_RUN s per run, as user $BENCH_USER. Data: $(dataset owners) owners, $(dataset folders) folders, $(dataset requests) requests, $(dataset snapshots) snapshots (query texts $(($(dataset query_bytes) / $(dataset snapshots))) bytes on average, in their own items), $(dataset measures) counts, $(dataset cohorts) cohorts; user $BENCH_USER: $(dataset bench_folders) folders, $(dataset bench_requests) requests, $(dataset bench_snapshots) snapshots, $(dataset bench_measures) counts, $(dataset bench_cohorts) cohorts. Demo tree (16 perimeters)." \
  "The POST runs come last and add to the listed workspace: user $BENCH_USER had $requests_before requests before them and $requests_after after." \
  "$(bench_load_note)" \
  "$(bench_built_from). wrk runs 1 thread at concurrency 1, 2 threads otherwise; a login (argon2id) before each run gives it a fresh token." \
  "Writing the cohort data set into $BENCH_DYNAMODB_LABEL took ${load_s} s (BatchWriteItem); the tree, roles and admin ${BENCH_SEED_S} s. Server peak RSS: $((BENCH_RSS_KIB / 1024)) MiB."
echo "[bench] docs/benchmarks.md updated"
