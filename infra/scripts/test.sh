#!/usr/bin/env bash
# `make test`: everything CI runs (.ci/run calls `make test`).
#   tools -> cargo fmt --check -> clippy -D warnings -> cfn-lint + offline SAM translation of template.yaml
#   -> emulator -> template resources smoke test in the emulator -> unit + integration tests (nextest if present)
# The integration tests run against the emulator with REQUIRE_EMULATOR=1: a missing emulator fails them.
# Settings (environment): EMULATOR_PORT (4566), C360_TOOLS_DIR (.tools), C360_DEV_DIR (.dev),
# C360_TEST_RUNNER (auto|nextest|cargo), C360_SKIP_LINT=1 to skip fmt/clippy/cfn-lint locally,
# C360_TEST_ARGS (extra arguments for the test runner, e.g. `--test fuzz --no-capture`: what `make fuzz` runs).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
       AWS_EC2_METADATA_DISABLED=true SAM_CLI_TELEMETRY=0
unset AWS_SESSION_TOKEN AWS_PROFILE
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

VENV="${C360_TOOLS_DIR:-$REPO/.tools}/venv"
EMULATOR_PORT="${EMULATOR_PORT:-4566}"
export EMULATOR_PORT

T_START=$SECONDS
TIMINGS=()
CURRENT=""
step_begin() { CURRENT="$1"; STEP_T0=$SECONDS; printf '\n==> %s\n' "$1"; }
step_end() {
  local dt=$((SECONDS - STEP_T0))
  TIMINGS+=("$(printf '%5ds  %s' "$dt" "$CURRENT")")
  printf '<== %s: ok (%ds)\n' "$CURRENT" "$dt"
  CURRENT=""
}

OWN_EMULATOR=0
SMOKE_PREFIX=""
finish() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$SMOKE_PREFIX" ]; then
    "$VENV/bin/python" infra/bootstrap.py --prefix "$SMOKE_PREFIX" --delete >/dev/null 2>&1 || true
  fi
  if [ "$OWN_EMULATOR" = 1 ]; then
    infra/scripts/emulator.sh stop || true
  fi
  echo
  echo "==> timings"
  for t in "${TIMINGS[@]}"; do echo "$t"; done
  [ -n "$CURRENT" ] && printf '%5ds  %s (FAILED)\n' "$((SECONDS - STEP_T0))" "$CURRENT"
  printf '%5ds  total\n' "$((SECONDS - T_START))"
  if [ "$rc" = 0 ]; then echo "make test: OK"; else echo "make test: FAILED (exit $rc)"; fi
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step_begin "tools (pinned venv)"
infra/scripts/tools.sh
export PATH="$VENV/bin:$PATH"       # cfn-lint, moto_server, python3 for tests that shell out to bootstrap.py
export C360_PYTHON_BIN="$VENV/bin/python"
step_end

if [ "${C360_SKIP_LINT:-0}" != 1 ]; then
  step_begin "cargo fmt --all --check"
  cargo fmt --all --check
  step_end

  step_begin "cargo clippy --workspace --all-targets -- -D warnings"
  cargo clippy --workspace --all-targets -- -D warnings
  step_end

  step_begin "no aws-lc-sys / OpenSSL in the dependency tree"
  for heavy in aws-lc-sys openssl-sys; do
    if cargo tree --workspace -i "$heavy" >/dev/null 2>&1; then
      echo "$heavy is back in the dependency tree (see Cargo.toml: trimmed SDK features):"; cargo tree --workspace -i "$heavy" | head -20
      exit 1
    fi
  done
  step_end

  step_begin "cfn-lint template.yaml"
  cfn-lint template.yaml
  step_end

  step_begin "SAM translation of template.yaml (offline)"
  "$VENV/bin/python" infra/bootstrap.py --check
  step_end
fi

step_begin "emulator"
if ! infra/scripts/emulator.sh status >/dev/null 2>&1; then
  OWN_EMULATOR=1
fi
infra/scripts/emulator.sh start
export AWS_ENDPOINT_URL="http://127.0.0.1:$EMULATOR_PORT" REQUIRE_EMULATOR=1
step_end

step_begin "template resources in the emulator (bootstrap smoke test)"
SMOKE_PREFIX="c360-ci-$$"
"$VENV/bin/python" infra/bootstrap.py --prefix "$SMOKE_PREFIX" --env-out "" >/dev/null
"$VENV/bin/python" infra/bootstrap.py --prefix "$SMOKE_PREFIX" --env-out ""   # second run: idempotent
# The integration tests clone this table's schema (keys, indexes, TTL) into one table per test,
# so the template stays the single source of truth. The exit trap deletes these resources.
export C360_REFERENCE_TABLE="$SMOKE_PREFIX-AppTable"
step_end

runner="${C360_TEST_RUNNER:-auto}"
if [ "$runner" = auto ]; then
  if command -v cargo-nextest >/dev/null 2>&1; then runner=nextest; else runner=cargo; fi
fi
read -r -a extra <<< "${C360_TEST_ARGS:-}"
if [ "$runner" = nextest ]; then
  step_begin "cargo nextest run --workspace --no-fail-fast ${extra[*]}"
  cargo nextest run --workspace --no-fail-fast "${extra[@]}"
  step_end
else
  step_begin "cargo test --workspace --no-fail-fast ${extra[*]}"
  cargo test --workspace --no-fail-fast "${extra[@]}"
  step_end
fi
