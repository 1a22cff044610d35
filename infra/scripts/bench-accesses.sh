#!/usr/bin/env bash
# `make bench-accesses`: the accesses load run for docs/benchmarks.md, traffic to 127.0.0.1 only.
#   1. the institution-sized tree (infra/data/gen_perimeters.py large, ~29k perimeters), roles, admin
#   2. a population of BENCH_USERS users (2,000) holding BENCH_ACCESSES accesses (10,000) in all; user
#      9000000 holds exactly one access
#   3. wrk at concurrency BENCH_CONCURRENCY (10) on my-accesses, perimeters?limit=20, accesses?limit=20 as the full
#      admin, and on my-accesses, perimeters?limit=20, my-data-rights as the one-access user (its role does not
#      manage accesses: the access list would measure a 403), counting the DynamoDB calls and the CPU per request;
#      the section "accesses" of docs/benchmarks.md
# Settings: BENCH_DYNAMODB (dynalite, or moto: see infra/scripts/bench-dynamodb.sh), BENCH_SECONDS (10 per run),
# BENCH_PORT (8012), BENCH_CONCURRENCY (10), BENCH_USERS (2000), BENCH_ACCESSES (10000), BENCH_TARGET_DIR (see
# infra/scripts/bench-stack.sh, which sets up and tears down the stack).
set -euo pipefail

PORT="${BENCH_PORT:-8012}"
CONCURRENCY="${BENCH_CONCURRENCY:-10}"
USERS="${BENCH_USERS:-2000}"
ACCESSES="${BENCH_ACCESSES:-10000}"
# shellcheck source=infra/scripts/bench-stack.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-stack.sh"
bench_stack_up c360-bench-acc "${C360_DEV_DIR:-$REPO/.dev}/bench-accesses"
python3 infra/data/gen_perimeters.py large > "$OUT/perimeters.large.csv"
export PERIMETERS_CSV="$OUT/perimeters.large.csv"

bench_build
bench_seed
t0=$SECONDS
"$BIN" --load-dataset "$USERS" "$ACCESSES"   # 9000000 holds exactly one access
load_s=$((SECONDS - t0))
echo "[bench] tree + roles + admin in ${BENCH_SEED_S}s, population in ${load_s}s"

bench_server_start
ADMIN_TOKEN=$(bench_token "$DEV_ADMIN_USERNAME" "$DEV_ADMIN_PASSWORD")
USER_TOKEN=$(bench_token 9000000 load-user-password)
api() { echo "http://127.0.0.1:$PORT/accesses/$1"; }
first_ms() {  # path, token: the time of a request made outside the timed runs
  { /usr/bin/time -f '%e' curl -sf -o /dev/null "$(api "$1")" -H "Authorization: Bearer $2" \
      -H 'authorizationMethod: JWT'; } 2>&1 | awk '{printf "%d", $1 * 1000}'
}
# The container's first requests load its caches (the 29k-perimeter tree, then the accesses index): not timed in
# the runs, which measure a warm container.
rss_mib() { awk '/VmRSS/ {printf "%d", $2 / 1024}' "/proc/$SERVER_PID/status"; }
rss_before_tree=$(rss_mib)
first_tree_ms=$(first_ms "perimeters/?limit=20" "$ADMIN_TOKEN")
rss_after_tree=$(rss_mib)
first_index_ms=$(first_ms "accesses/?limit=20" "$ADMIN_TOKEN")
user_list_status=$(curl -s -o /dev/null -w '%{http_code}' "$(api "accesses/?limit=20")" \
  -H "Authorization: Bearer $USER_TOKEN" -H 'authorizationMethod: JWT')
user_rights=$(curl -sf "$(api accesses/my-data-rights/)" -H "Authorization: Bearer $USER_TOKEN" \
  -H 'authorizationMethod: JWT' | "$VENV/bin/python" -c 'import json,sys; print(len(json.load(sys.stdin)))')

bench_timed_start
for c in $CONCURRENCY; do
  # A 10 s timeout: wrk's default 2 s would drop the slowest requests from the percentiles.
  export BENCH_TOKEN="$ADMIN_TOKEN"
  for path in accesses/my-accesses/ "perimeters/?limit=20" "accesses/?limit=20"; do
    bench_run "GET /accesses/$path (admin)" "$c" "$(api "$path")" infra/bench/authenticated.lua --timeout 10s
  done
  export BENCH_TOKEN="$USER_TOKEN"
  for path in accesses/my-accesses/ "perimeters/?limit=20" accesses/my-data-rights/; do
    bench_run "GET /accesses/$path (user)" "$c" "$(api "$path")" infra/bench/authenticated.lua --timeout 10s
  done
done
bench_timed_end
"$VENV/bin/python" infra/bench/report.py "$OUT/runs.tsv" accesses docs/benchmarks.md \
  "$SECONDS_PER_RUN s per run. Data: the large tree ($(($(wc -l < "$PERIMETERS_CSV") - 1)) perimeters), $USERS users holding $ACCESSES accesses in all (user 9000000 holds exactly one, its role drawn from the same mix), and the full admin." \
  "User 9000000 is measured on what it may call: its \`GET /accesses/accesses/?limit=20\` answers $user_list_status (its role does not manage accesses); its \`my-data-rights/\` lists $user_rights perimeter(s)." \
  "$(bench_load_note)" \
  "$(bench_built_from)." \
  "Writing that population into $BENCH_DYNAMODB took ${load_s} s; the tree, roles and admin ${BENCH_SEED_S} s." \
  "First requests of the container (not timed in the runs): \`/accesses/perimeters/\` (tree load) ${first_tree_ms} ms, the server's RSS going from ${rss_before_tree} to ${rss_after_tree} MiB, then \`/accesses/accesses/\` as the admin (accesses index load) ${first_index_ms} ms. Server peak RSS: $((BENCH_RSS_KIB / 1024)) MiB."
echo "[bench] docs/benchmarks.md updated"
