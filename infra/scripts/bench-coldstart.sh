#!/usr/bin/env bash
# `make bench-coldstart`: cold starts of the Lambda binaries (infra/bench/coldstart.py), 127.0.0.1 only.
# Builds every function in release mode (target/bench), creates the template's resources in the emulator, then
# starts each binary BENCH_COLDSTART_RUNS times (5) against a local stub of the Lambda Runtime API with one sample
# event of events/<function>/: init (spawn -> first `next`) and first invocation (event -> response) in
# wall-clock ms, binary size, peak RSS. No Firecracker here: no VM boot, no code download, x86_64 not arm64.
# Settings: BENCH_COLDSTART_RUNS, CARGO_TARGET_DIR (target/bench), BENCH_DOCS (docs/benchmarks.md; "" = do not
# write; the section "coldstart" is replaced on a rerun, else appended at the end).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
RUNS="${BENCH_COLDSTART_RUNS:-5}"
DOCS="${BENCH_DOCS-docs/benchmarks.md}"
VENV="${C360_TOOLS_DIR:-$REPO/.tools}/venv"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target/bench}"
# shellcheck source=infra/scripts/with-env.sh
source infra/scripts/with-env.sh
case "$AWS_ENDPOINT_URL" in http://127.0.0.1:*|http://localhost:*) ;; *) echo "[bench-coldstart] AWS_ENDPOINT_URL must be local" >&2; exit 2 ;; esac

infra/scripts/tools.sh >/dev/null
infra/scripts/emulator.sh status >/dev/null || infra/scripts/emulator.sh start
"$VENV/bin/python" infra/bootstrap.py --prefix c360-local --endpoint "$AWS_ENDPOINT_URL" \
  --env-out "${C360_DEV_DIR:-$REPO/.dev}/resources.env" >/dev/null
source infra/scripts/with-env.sh

FUNCTIONS=(auth-api users-api accesses-api cohort-api exports-api platform-api ws-api cohort-worker export-worker scheduled-tasks)
cargo build --release $(printf -- '-p %s ' "${FUNCTIONS[@]}")
before="$(uptime)"
t0=$SECONDS
table="$("$VENV/bin/python" infra/bench/coldstart.py --bin-dir "$CARGO_TARGET_DIR/release" --runs "$RUNS")"
elapsed=$((SECONDS - t0))
echo "$table"

[ -n "$DOCS" ] || exit 0
rev="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
dirty=""; git diff --quiet HEAD 2>/dev/null || dirty=" plus the uncommitted changes of the working tree"
{
  echo "Measured $(date -u '+%Y-%m-%d %H:%M') UTC on $(uname -m) ($(nproc) cores): release binaries (not cargo-lambda's arm64 builds), $RUNS starts each, ${elapsed} s in all; DynamoDB, SQS and S3 on moto $("$VENV/bin/python" -c 'import moto; print(moto.__version__)') at $AWS_ENDPOINT_URL."
  echo
  echo "$table"
  echo
  echo "- \`uptime\` before: $before."
  echo "- Built from $rev$dirty."
} | "$VENV/bin/python" infra/bench/docs_section.py "$DOCS" "coldstart"
echo "[bench-coldstart] wrote the coldstart section of $DOCS"
