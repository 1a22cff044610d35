# shellcheck shell=bash
# Sourced by the bench scripts: where the table lives during a load run. BENCH_DYNAMODB=dynalite (default:
# infra/scripts/dynalite.sh on 127.0.0.1:DYNALITE_PORT, indexed key ranges like DynamoDB) or moto (the table with
# the queues and the bucket; moto scans the whole table per Query, so the figures measure moto).
#   bench_dynamodb_start   start dynalite unless it already answers, check it, export AWS_ENDPOINT_URL_DYNAMODB (only
#                          DynamoDB moves: the SDKs read the service-specific endpoint); export BENCH_DYNAMODB_LABEL
#   bench_dynamodb_calls   JSON of the DynamoDB calls served so far per operation ({} on moto, which does not count)
#   bench_dynamodb_pid     pid of the dynalite process (nothing on moto: its CPU is shared with the other users)
#   bench_dynamodb_stop    stop dynalite if bench_dynamodb_start started it
BENCH_DYNAMODB="${BENCH_DYNAMODB:-dynalite}"
_bench_own_dynalite=0

bench_dynamodb_start() {
  case "$BENCH_DYNAMODB" in
    dynalite)
      infra/scripts/dynalite.sh status >/dev/null 2>&1 || _bench_own_dynalite=1
      infra/scripts/dynalite.sh start >/dev/null
      infra/scripts/dynalite.sh check >/dev/null
      export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:${DYNALITE_PORT:-4567}"
      export BENCH_DYNAMODB_LABEL="dynalite 4.0.0 (in memory, with infra/dynalite/serve.js)"
      ;;
    moto)
      unset AWS_ENDPOINT_URL_DYNAMODB
      BENCH_DYNAMODB_LABEL="moto $("${VENV:?}/bin/python" -c 'import moto; print(moto.__version__)')"
      export BENCH_DYNAMODB_LABEL
      ;;
    *) echo "[bench] BENCH_DYNAMODB must be dynalite or moto, not '$BENCH_DYNAMODB'" >&2; return 2 ;;
  esac
}

bench_dynamodb_calls() {
  if [ "$BENCH_DYNAMODB" = dynalite ]; then infra/scripts/dynalite.sh calls; else echo '{}'; fi
}

bench_dynamodb_pid() {
  if [ "$BENCH_DYNAMODB" = dynalite ]; then cat "${C360_DEV_DIR:-$REPO/.dev}/dynalite.pid" 2>/dev/null || true; fi
}

bench_dynamodb_stop() {
  if [ "$_bench_own_dynalite" = 1 ]; then infra/scripts/dynalite.sh stop >/dev/null; fi
}
