#!/usr/bin/env bash
# `make bench-coldstart`: cold starts of the Lambda binaries (infra/bench/coldstart.py), 127.0.0.1 only.
# Creates the template's resources (DynamoDB on dynalite, SQS and S3 on moto, as the other load runs), seeds the
# large perimeter tree (infra/data/gen_perimeters.py large, ~29k perimeters), the roles and the full admin with the
# release dev server, logs the admin in, builds every function in release mode (target/bench), then starts each
# binary BENCH_COLDSTART_RUNS times (5) against a local stub of the Lambda Runtime API with one sample event of
# events/<function>/, and the tree-using functions also with an authenticated request that loads the tree: init
# (spawn -> first `next`) and first invocation (event -> response) in wall-clock ms, binary size, peak RSS. No
# Firecracker here: no VM boot, no code download, x86_64 not arm64.
# Then (BENCH_COLDSTART_LOAD invocations, 300; 0 = skip) each HTTP function serves its own endpoints one invocation
# at a time in one container, with the cohort data set's heavy owners (dev-server --cohort-dataset, as bench-cohort),
# and its peak RSS is read: the memory a warm container reaches, against the template's MemorySize.
# Settings: BENCH_COLDSTART_RUNS, BENCH_COLDSTART_LOAD, BENCH_DYNAMODB (dynalite, or moto), BENCH_PORT (8015, the dev server's login),
# BENCH_REV (build a commit exported apart from the working tree, as bench-accesses), BENCH_COLDSTART_ONLY (these
# functions only, e.g. "accesses-api cohort-api"), BENCH_TARGET_DIR (target/bench), BENCH_DOCS (docs/benchmarks.md; "" = do not write; the section "coldstart" is replaced on a
# rerun, else appended at the end).
set -euo pipefail

RUNS="${BENCH_COLDSTART_RUNS:-5}"
DOCS="${BENCH_DOCS-docs/benchmarks.md}"
PORT="${BENCH_PORT:-8015}"
# shellcheck source=infra/scripts/bench-stack.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-stack.sh"
bench_stack_up c360-bench-cold "${C360_DEV_DIR:-$REPO/.dev}/bench-coldstart"
python3 infra/data/gen_perimeters.py large > "$OUT/perimeters.large.csv"
export PERIMETERS_CSV="$OUT/perimeters.large.csv"

bench_build
FUNCTIONS=(auth-api users-api accesses-api cohort-api exports-api platform-api ws-api cohort-worker export-worker scheduled-tasks)
[ -z "${BENCH_COLDSTART_ONLY:-}" ] || read -r -a FUNCTIONS <<< "$BENCH_COLDSTART_ONLY"
src="$REPO"
[ -z "${BENCH_REV:-}" ] || src="${C360_DEV_DIR:-$REPO/.dev}/bench-src"   # exported by bench_build
(cd "$src" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release -q $(printf -- '-p %s ' "${FUNCTIONS[@]}"))
bench_seed
LOAD="${BENCH_COLDSTART_LOAD:-300}"
if [ "$LOAD" != 0 ]; then
  "$BIN" --cohort-dataset 150 5000 > "$OUT/dataset.txt"
  # The exports list's shape of make bench-exports: 5,000 exports of the same 150 owners.
  "$BIN" --exports-dataset 150 5000 > "$OUT/exports.txt"
  echo "[bench-coldstart] cohort data set: $(cat "$OUT/dataset.txt")"
fi
# The tokens, taken once the builds are done; an hour is longer than the runs.
export ACCESS_TOKEN_LIFETIME_SECONDS=3600
bench_server_start
BENCH_TOKEN=$(bench_token "$DEV_ADMIN_USERNAME" "$DEV_ADMIN_PASSWORD")
export BENCH_TOKEN BENCH_ADMIN="$DEV_ADMIN_USERNAME:$DEV_ADMIN_PASSWORD"
if [ "$LOAD" != 0 ]; then
  owner10=$(sed -n 's/.*[ {]heavy10_user: "\{0,1\}\([0-9]*\).*/\1/p' "$OUT/dataset.txt")
  BENCH_OWNER_TOKEN=$(bench_token 8000000 load-user-password)
  BENCH_OWNER10_TOKEN=$(bench_token "$owner10" load-user-password)
  export BENCH_OWNER_TOKEN BENCH_OWNER10_TOKEN
fi
kill "$SERVER_PID" && wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=""
before="$(uptime)"
t0=$SECONDS
table="$("$VENV/bin/python" infra/bench/coldstart.py --bin-dir "$TARGET_DIR/release" --runs "$RUNS" --load "$LOAD" \
  --only "${FUNCTIONS[@]}")"
elapsed=$((SECONDS - t0))
echo "$table"

[ -n "$DOCS" ] || exit 0
{
  echo "Measured $(date -u '+%Y-%m-%d %H:%M') UTC on $(uname -m) ($(nproc) cores): release binaries (not cargo-lambda's arm64 builds), $RUNS starts each, ${elapsed} s in all; DynamoDB: $BENCH_DYNAMODB_LABEL; SQS and S3: moto $("$VENV/bin/python" -c 'import moto; print(moto.__version__)') at $AWS_ENDPOINT_URL."
  echo
  echo "$table"
  echo
  echo "- Data: the large tree ($(($(wc -l < "$PERIMETERS_CSV") - 1)) perimeters), the demo roles and the full admin, seeded by the release dev server in ${BENCH_SEED_S} s$([ "$LOAD" = 0 ] || echo "; for the second table, the cohort data set of \`make bench-cohort\` ($(cat "$OUT/dataset.txt"))")."
  [ "$LOAD" = 0 ] || echo "- Second table: $LOAD invocations per function in one container, one at a time (Lambda sends a container one event at a time), cycling through the endpoints listed; owner is the heavy owner (user 8000000), owner10 the 10× owner. Every function has \`MemorySize: $(sed -n 's/^ *MemorySize: *//p' template.yaml | head -1)\` (template.yaml, Globals)."
  echo "- \`uptime\` before: $before."
  echo "- $_bench_built_from."
} | "$VENV/bin/python" infra/bench/docs_section.py "$DOCS" "coldstart"
echo "[bench-coldstart] wrote the coldstart section of $DOCS"
