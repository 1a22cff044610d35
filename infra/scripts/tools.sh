#!/usr/bin/env bash
# Idempotent installer of the project's pinned Python tools into a private venv (never the system Python).
#
#   infra/scripts/tools.sh           # moto[server], cfn-lint, aws-sam-translator, boto3 (infra/requirements.txt)
#   infra/scripts/tools.sh lambda    # also cargo-lambda + ziglang (infra/requirements-lambda.txt)
#
# Settings (environment; a value already set wins):
#   C360_TOOLS_DIR   where the venv lives (default: <repo>/.tools); the venv is $C360_TOOLS_DIR/venv
#   C360_PYTHON      interpreter used to create the venv (default: python3)
#
# A stamp file holding the hash of the requirements (and the interpreter version) makes re-runs instant;
# change a pin and the next run reinstalls. The venv path is printed on the last line.
set -euo pipefail

export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true SAM_CLI_TELEMETRY=0
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-$AWS_REGION}"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS_DIR="${C360_TOOLS_DIR:-$REPO/.tools}"
VENV="$TOOLS_DIR/venv"
PY="${C360_PYTHON:-python3}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

groups=(base)
for arg in "$@"; do
  case "$arg" in
    base) ;;
    lambda) groups+=(lambda) ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "tools.sh: unknown group '$arg' (expected: base, lambda)" >&2; exit 2 ;;
  esac
done

req_file() {
  case "$1" in
    base) echo "$REPO/infra/requirements.txt" ;;
    lambda) echo "$REPO/infra/requirements-lambda.txt" ;;
  esac
}

if ! command -v "$PY" >/dev/null 2>&1; then
  echo "tools.sh: '$PY' not found; install Python 3 (3.10+) with the venv module" >&2
  exit 1
fi
# One installer at a time (make dev and make test may start together).
mkdir -p "$TOOLS_DIR"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$TOOLS_DIR/.lock"
  flock 9
fi

py_version="$("$PY" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
  echo "[tools] creating venv $VENV (python $py_version)"
  mkdir -p "$TOOLS_DIR"
  rm -rf "$VENV"
  if ! "$PY" -m venv "$VENV" >/dev/null 2>&1; then
    # Debian's own python3 lacks ensurepip unless python3-venv is installed. Fall back to a venv without
    # pip, seeded with pip by the interpreter's own pip (pip >= 22.3 has --python); else apt-get as root.
    rm -rf "$VENV"
    if "$PY" -m venv --without-pip "$VENV" >/dev/null 2>&1 \
       && "$PY" -m pip --python "$VENV/bin/python" install --quiet pip >/dev/null 2>&1; then
      echo "[tools] venv created without ensurepip (pip seeded from $PY's pip)"
    elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      rm -rf "$VENV"
      echo "[tools] installing python3-venv with apt-get"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      "$PY" -m venv "$VENV"
    else
      echo "tools.sh: cannot create a venv with $PY; install python3-venv" >&2
      exit 1
    fi
  fi
fi

for group in "${groups[@]}"; do
  req="$(req_file "$group")"
  stamp="$VENV/.stamp-$group"
  want="$( { cat "$req"; echo "python=$py_version"; } | sha256sum | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    continue
  fi
  echo "[tools] installing $group tools from ${req#"$REPO"/} into $VENV"
  start=$SECONDS
  "$VENV/bin/python" -m pip install --quiet --requirement "$req"
  echo "$want" > "$stamp"
  echo "[tools] $group tools ready in $((SECONDS - start))s"
done

echo "$VENV"
