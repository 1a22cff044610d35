#!/usr/bin/env bash
# shellcheck disable=SC2317  # cleanup functions are invoked from traps
# `make dev`: the whole stack on this machine.
#   1. pinned Python tools into .tools/venv (tools.sh; instant when already there)
#   2. the AWS emulator on 127.0.0.1:4566 (reused if one already answers); the tables in dynalite on 127.0.0.1:4567
#      (DEV_DYNAMODB=dynalite, the default when npm is there: it reads key ranges as DynamoDB does, where moto scans
#      the whole table per Query and slows down as an afternoon's audit rows pile up) or in the emulator (moto)
#   3. cargo build of the dev server and the fakes
#   4. the template's tables/queues/bucket in the emulator (bootstrap.py) -> .dev/resources.env
#   5. the fake third parties (identity server, OIDC provider) in the background
#   6. the dev server (every HTTP router, as API Gateway maps them) in the foreground, with --seed
# Settings: infra/env/local.env (every value there can be overridden from the environment).
# Ctrl-C stops everything this script started (never an emulator that was already running).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true SAM_CLI_TELEMETRY=0
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-$AWS_REGION}"

# shellcheck source=infra/scripts/with-env.sh
source infra/scripts/with-env.sh
DEV_DIR="${C360_DEV_DIR:-$REPO/.dev}"
VENV="${C360_TOOLS_DIR:-$REPO/.tools}/venv"
mkdir -p "$DEV_DIR"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

OWN_EMULATOR=0
OWN_DYNALITE=0
FAKES_PID=""
SERVER_PID=""
# Stop one of our background processes: TERM, up to 3 s of grace, then KILL.
stop_pid() {
  local pid="$1" name="$2"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  echo "[dev] $name stopped"
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pid "$SERVER_PID" "dev server"
  stop_pid "$FAKES_PID" "fakes"
  if [ "$OWN_DYNALITE" = 1 ]; then
    infra/scripts/dynalite.sh stop || true
  fi
  if [ "$OWN_EMULATOR" = 1 ]; then
    infra/scripts/emulator.sh stop || true
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

step "tools"
infra/scripts/tools.sh >/dev/null

step "emulator"
if ! infra/scripts/emulator.sh status >/dev/null 2>&1; then
  OWN_EMULATOR=1
fi
infra/scripts/emulator.sh start

step "DynamoDB"
DEV_DYNAMODB="${DEV_DYNAMODB:-auto}"
if [ "$DEV_DYNAMODB" = auto ]; then
  if command -v npm >/dev/null; then DEV_DYNAMODB=dynalite; else
    DEV_DYNAMODB=moto
    echo "[dev] npm not found: the tables live in moto, whose Queries slow down as the table grows (Node.js 20+ gives dynalite)"
  fi
fi
case "$DEV_DYNAMODB" in
  dynalite)
    infra/scripts/dynalite.sh status >/dev/null 2>&1 || OWN_DYNALITE=1
    # Transactions all or nothing (see infra/dynalite/serve.js).
    DYNALITE_TRANSACTIONS=rollback infra/scripts/dynalite.sh start
    export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:${DYNALITE_PORT:-4567}"
    ;;
  moto) unset AWS_ENDPOINT_URL_DYNAMODB ;;
  *) echo "[dev] DEV_DYNAMODB must be auto, dynalite or moto, not '$DEV_DYNAMODB'" >&2; exit 2 ;;
esac

step "build dev-server and fakes"
cargo build -p dev-server -p fakes
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"

step "resources from template.yaml"
"$VENV/bin/python" infra/bootstrap.py --prefix "${C360_RESOURCE_PREFIX:-c360-local}" \
  --endpoint "$AWS_ENDPOINT_URL" --env-out "$DEV_DIR/resources.env"
# Reload: the freshly generated names replace whatever an older resources.env said.
source infra/scripts/with-env.sh

step "fake third-party services"
"$TARGET_DIR/debug/fakes" > "$DEV_DIR/fakes.log" 2>&1 &
FAKES_PID=$!
sleep 0.5
if ! kill -0 "$FAKES_PID" 2>/dev/null; then
  echo "[dev] the fakes exited at start; last lines of ${DEV_DIR#"$REPO"/}/fakes.log:" >&2
  tail -n 30 "$DEV_DIR/fakes.log" >&2 || true
  exit 1
fi
echo "[dev] fakes running (pid $FAKES_PID, log ${DEV_DIR#"$REPO"/}/fakes.log):"
# Which services are faked and which real ones are used (a fake runs only on a dev-default URL, or per FAKES).
grep -oE '(fake|no fake) .*' "$DEV_DIR/fakes.log" | sed 's/^/      /' || true

cat <<EOF

  Cohort360 API      http://127.0.0.1:${PORT}/            (also under /api/back/)
  Swagger UI         http://127.0.0.1:${PORT}/docs
  OpenAPI schema     http://127.0.0.1:${PORT}/schema
  Admin login        ${DEV_ADMIN_USERNAME} / ${DEV_ADMIN_PASSWORD}
  AWS emulator       ${AWS_ENDPOINT_URL}   (table ${TABLE_NAME} in ${AWS_ENDPOINT_URL_DYNAMODB:-the emulator})
  Logs               ${DEV_DIR#"$REPO"/}/emulator.log, ${DEV_DIR#"$REPO"/}/fakes.log

  Ctrl-C stops everything.

EOF

step "dev server"
# In the background + `wait`, so that INT/TERM/HUP sent to this script are handled at once (bash defers
# traps while a foreground child runs); the EXIT trap then stops the server, the fakes and our emulator.
"$TARGET_DIR/debug/dev-server" --seed &
SERVER_PID=$!
set +e
wait "$SERVER_PID"
rc=$?
set -e
SERVER_PID=""
echo "[dev] dev server exited (status $rc)"
exit "$rc"
