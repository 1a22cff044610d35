#!/usr/bin/env bash
# `make bench-jobs`: cohort job latency and worker throughput (issue 5) for docs/benchmarks.md, 127.0.0.1 only.
# Runs target/bench/release/bench-jobs (tests/bench_jobs.rs): the app in-process as the integration tests build it
# (tests/support/mod.rs TestApp: fresh table, queue and bucket in the emulator), served on a local port with the dev
# server's SQS poller and cohort worker, the fake QueryExecutor over HTTP (20 ms per job, then its callback PATCH)
# and a WebSocket client on /ws/. Phase 1: BENCH_JOBS counts one after another; phase 2: BENCH_JOBS queued count
# messages handled by one `Worker::handle` in turn, fake callbacks off. The bench takes every timestamp itself.
# DynamoDB: BENCH_DYNAMODB=dynalite (default; the bench clones the reference table's schema into dynalite) or moto
# (TestApp as is), see infra/scripts/bench-dynamodb.sh. SQS and S3 are always the emulator's (moto). The tables,
# queues and buckets it creates (t-<uuid>) are left behind, as the integration tests' are.
# Settings: BENCH_JOBS (200), BENCH_DYNAMODB, CARGO_TARGET_DIR (target/bench), BENCH_DOCS (docs/benchmarks.md;
# "" = do not write; the section is "jobs-<BENCH_DYNAMODB>", replaced on a rerun, else appended at the end).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
JOBS="${BENCH_JOBS:-200}"
DOCS="${BENCH_DOCS-docs/benchmarks.md}"
VENV="${C360_TOOLS_DIR:-$REPO/.tools}/venv"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target/bench}"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-$AWS_REGION}" AWS_EC2_METADATA_DISABLED=true
export AWS_ENDPOINT_URL="${AWS_ENDPOINT_URL:-http://127.0.0.1:4566}"
case "$AWS_ENDPOINT_URL" in http://127.0.0.1:*|http://localhost:*) ;; *) echo "[bench-jobs] AWS_ENDPOINT_URL must be local" >&2; exit 2 ;; esac
export C360_REFERENCE_TABLE="${C360_REFERENCE_TABLE:-c360-local-AppTable}"

infra/scripts/emulator.sh status >/dev/null || infra/scripts/emulator.sh start
# The reference table the test apps clone (as `make bootstrap` creates it; idempotent).
if ! "$VENV/bin/python" -c "import boto3, sys; boto3.client('dynamodb').describe_table(TableName=sys.argv[1])" \
     "$C360_REFERENCE_TABLE" >/dev/null 2>&1; then
  "$VENV/bin/python" infra/bootstrap.py --prefix "${C360_REFERENCE_TABLE%-AppTable}" --endpoint "$AWS_ENDPOINT_URL" --env-out ""
fi

cargo build --release -p integration-tests --bin bench-jobs
# shellcheck source=infra/scripts/bench-dynamodb.sh
source infra/scripts/bench-dynamodb.sh
bench_dynamodb_start
trap bench_dynamodb_stop EXIT
MOTO="moto $("$VENV/bin/python" -c 'import moto; print(moto.__version__)') on $AWS_ENDPOINT_URL"
# The bench reads the emulators' CPU time (/proc/<pid>/stat) around its concurrent phases.
BENCH_DYNALITE_PID="$(bench_dynamodb_pid)"
BENCH_MOTO_PID="$(cat "${C360_DEV_DIR:-$REPO/.dev}/emulator.pid" 2>/dev/null || true)"
export BENCH_DYNALITE_PID BENCH_MOTO_PID
before="$(uptime)"
t0=$SECONDS
table="$("$CARGO_TARGET_DIR/release/bench-jobs" "$JOBS")"
elapsed=$((SECONDS - t0))
after="$(uptime)"
echo "$table"
echo "[bench-jobs] uptime before: $before; after: $after"

[ -n "$DOCS" ] || exit 0
rev="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
dirty=""; git diff --quiet HEAD 2>/dev/null || dirty=" plus the uncommitted changes of the working tree"
{
  echo "Measured $(date -u '+%Y-%m-%d %H:%M') UTC on $(uname -m) ($(nproc) cores, shared with other builds): release \`bench-jobs\`, DynamoDB: $BENCH_DYNAMODB_LABEL; SQS: $MOTO; $JOBS jobs per phase, ${elapsed} s in all."
  echo
  echo "$table"
  echo
  echo "- \`uptime\` before: $before; after: $after."
  echo "- Built from $rev$dirty."
} | "$VENV/bin/python" infra/bench/docs_section.py "$DOCS" "jobs-$BENCH_DYNAMODB"
echo "[bench-jobs] wrote the jobs section of $DOCS"
