#!/usr/bin/env bash
# `make bench-cohort`: the cohort workspace load run of issue 4 for docs/benchmarks.md, traffic to 127.0.0.1 only.
#   1. the demo tree, roles and admin; then the cohort data set (`dev-server --cohort-dataset OWNERS REQUESTS`,
#      shared/src/services/seed.rs `seed_cohort_dataset`): BENCH_OWNERS (150) owners, BENCH_REQUESTS (5,000) requests,
#      4 snapshots with their query texts and 4 counts per request, 1 cohort per 4 snapshots, folders; user 8000000
#      (the heavy owner) holds 20 folders, 300 requests, 1,100 snapshots, 1,100 counts and 275 cohorts; one more
#      owner, 8000000 + BENCH_OWNERS (the 10× owner, 8000150), 20 folders and 10 times the rest (3,000 requests,
#      11,000 snapshots and counts, 2,750 cohorts), on top of BENCH_REQUESTS
#   2. wrk at each concurrency of BENCH_CONCURRENCY (1 10 50), as the heavy owner then as the 10× owner, on
#      GET /cohort/requests/?limit=20, GET /cohort/requests/?limit=20&ordering=name (a non-default order),
#      GET /cohort/cohorts/?limit=20 and GET /cohort/folders/; then as the heavy owner on POST /cohort/requests/
#      (after every read: each POST adds a request to the workspace the reads list). Per request: the DynamoDB calls,
#      the DynamoDB items read (counted by infra/dynalite/serve.js) and the CPU; the section "cohort" of
#      docs/benchmarks.md
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
# A field of the `CohortDataset {...}` line: a number, or a username (quoted).
dataset() { sed -n "s/.*[ {]$1: \"\{0,1\}\([0-9]*\).*/\1/p" "$OUT/dataset.txt"; }
HEAVY10_USER=$(dataset heavy10_user)

bench_server_start
# A fresh token before each run: access tokens live ACCESS_TOKEN_LIFETIME_SECONDS (300 s in local.env).
token() { bench_token "${1:-$BENCH_USER}" load-user-password; }  # [username]: both heavy owners share the password
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

run() {  # username, label, concurrency, url, lua script
  BENCH_TOKEN=$(token "$1")
  export BENCH_TOKEN
  shift
  # A 10 s timeout: wrk's default 2 s would drop the slowest requests from the percentiles.
  bench_run "$@" --timeout 10s
}
READS=("/cohort/requests/?limit=20" "/cohort/requests/?limit=20&ordering=name" "/cohort/cohorts/?limit=20" "/cohort/folders/")
bench_timed_start
for c in $CONCURRENCY; do
  for owner in "$BENCH_USER heavy owner" "$HEAVY10_USER 10× owner"; do
    for path in "${READS[@]}"; do
      run "${owner%% *}" "GET $path (${owner#* })" "$c" "http://127.0.0.1:$PORT$path" infra/bench/authenticated.lua
    done
  done
done
export BENCH_BODY="{\"name\": \"bench\", \"parent_folder\": \"$FOLDER\"}"
for c in $CONCURRENCY; do
  run "$BENCH_USER" "POST /cohort/requests/ (heavy owner)" "$c" "http://127.0.0.1:$PORT/cohort/requests/" infra/bench/post-json.lua
done
bench_timed_end
requests_after=$(requests_count)
"$VENV/bin/python" infra/bench/report.py "$OUT/runs.tsv" cohort docs/benchmarks.md \
  "$SECONDS_PER_RUN s per run; the heavy owner is user $BENCH_USER, the 10× owner user $HEAVY10_USER. Data: $(dataset owners) owners, $(dataset folders) folders, $(dataset requests) requests, $(dataset snapshots) snapshots (query texts $(($(dataset query_bytes) / $(dataset snapshots))) bytes on average, in their own items), $(dataset measures) counts, $(dataset cohorts) cohorts; user $BENCH_USER: $(dataset bench_folders) folders, $(dataset bench_requests) requests, $(dataset bench_snapshots) snapshots, $(dataset bench_measures) counts, $(dataset bench_cohorts) cohorts; user $HEAVY10_USER: $(dataset heavy10_folders) folders, $(dataset heavy10_requests) requests, $(dataset heavy10_snapshots) snapshots, $(dataset heavy10_measures) counts, $(dataset heavy10_cohorts) cohorts. Demo tree (16 perimeters)." \
  "DynamoDB items read per request: the items the Queries and Scans evaluated (ScannedCount), the items GetItem and BatchGetItem returned, counted by infra/dynalite/serve.js; like the calls, they include the requests still in flight when wrk stops." \
  "The read runs come first, as the heavy owner then as the 10× owner at each concurrency; \`ordering=name\` is a non-default order (not the list index: it reads the owner's request items). The POST runs come last, as the heavy owner only, and add to its workspace: user $BENCH_USER had $requests_before requests before them and $requests_after after." \
  "$(bench_load_note)" \
  "$(bench_built_from). wrk runs 1 thread at concurrency 1, 2 threads otherwise; a login (argon2id) before each run gives it a fresh token." \
  "Writing the cohort data set into $BENCH_DYNAMODB_LABEL took ${load_s} s (BatchWriteItem); the tree, roles and admin ${BENCH_SEED_S} s. Server peak RSS: $((BENCH_RSS_KIB / 1024)) MiB."
echo "[bench] docs/benchmarks.md updated"
