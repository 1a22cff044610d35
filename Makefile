# Cohort360 serverless backend - developer entry points.
# Every setting is an environment variable documented in infra/env/local.env; a value already set in the
# caller's environment wins (e.g. `PORT=9000 make dev`).

SHELL := /bin/bash
.DEFAULT_GOAL := help

REPO := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
TOOLS_DIR ?= $(if $(C360_TOOLS_DIR),$(C360_TOOLS_DIR),$(REPO)/.tools)
VENV := $(TOOLS_DIR)/venv
DEV_DIR ?= $(if $(C360_DEV_DIR),$(C360_DEV_DIR),$(REPO)/.dev)

# Never let an AWS client look for real credentials or call the EC2 metadata service.
export AWS_ACCESS_KEY_ID := test
export AWS_SECRET_ACCESS_KEY := test
export AWS_REGION ?= us-east-1
export AWS_DEFAULT_REGION ?= $(AWS_REGION)
export AWS_EC2_METADATA_DISABLED := true
export SAM_CLI_TELEMETRY := 0

# Lambda function crates (functions/<crate>, binary name == crate name), packaged by `make build-lambdas`.
LAMBDA_CRATES := auth-api users-api accesses-api cohort-api exports-api platform-api ws-api \
                 cohort-worker export-worker scheduled-tasks

.PHONY: help dev test fuzz tools emulator emulator-stop emulator-status dynalite dynalite-stop dynalite-status \
        bootstrap lint fmt clippy cfn-lint build-lambdas bench bench-accesses bench-logs bench-cohort bench-exports clean-dev

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

dev: ## tools + emulator + resources + fakes + dev server (with demo data) on http://127.0.0.1:8000
	@infra/scripts/dev.sh

test: ## everything CI runs: fmt, clippy, cfn-lint, unit + integration tests against the emulator
	@infra/scripts/test.sh

fuzz: ## the random-input run over every route, longer than make test's (FUZZ_CASES=10000; FUZZ_SEED replays a run)
	@FUZZ_CASES=$${FUZZ_CASES:-10000} FUZZ_SEED=$${FUZZ_SEED:-$$(date +%s%N)} C360_SKIP_LINT=1 \
	  C360_TEST_ARGS="--test fuzz --no-capture" infra/scripts/test.sh

tools: ## install the pinned Python tools into .tools/venv (idempotent)
	@infra/scripts/tools.sh

emulator: tools ## start the AWS emulator (127.0.0.1, port EMULATOR_PORT=4566) in the background
	@infra/scripts/emulator.sh start

emulator-stop: ## stop the emulator started by `make emulator` / the scripts
	@infra/scripts/emulator.sh stop

emulator-status: ## tell what answers on the emulator port
	@infra/scripts/emulator.sh status

dynalite: ## start dynalite (DynamoDB only, 127.0.0.1:DYNALITE_PORT=4567) for the load runs; see infra/scripts/dynalite.sh
	@infra/scripts/dynalite.sh start

dynalite-stop: ## stop the dynalite started by `make dynalite` / the bench scripts
	@infra/scripts/dynalite.sh stop

dynalite-status: ## tell whether dynalite answers on its port
	@infra/scripts/dynalite.sh status

# The tables too go to the emulator: a resources.env left by `make dev` may name its dynalite, gone with it.
bootstrap: emulator ## create the template's tables/queues/bucket in the emulator, write .dev/resources.env
	@source infra/scripts/with-env.sh && \
	  "$(VENV)/bin/python" infra/bootstrap.py --prefix "$${C360_RESOURCE_PREFIX:-c360-local}" \
	    --endpoint "$$AWS_ENDPOINT_URL" --dynamodb-endpoint "$$AWS_ENDPOINT_URL" --env-out "$(DEV_DIR)/resources.env"

lint: fmt clippy cfn-lint ## cargo fmt --check, clippy -D warnings, cfn-lint + SAM translation

fmt:
	cargo fmt --all --check

clippy:
	cargo clippy --workspace --all-targets -- -D warnings

cfn-lint: tools
	"$(VENV)/bin/cfn-lint" template.yaml
	"$(VENV)/bin/python" infra/bootstrap.py --check

build-lambdas: ## release arm64 zips of every function (cargo-lambda + zig) in target/lambda/<crate>/bootstrap.zip
	@infra/scripts/tools.sh lambda >/dev/null
	rustup target add aarch64-unknown-linux-gnu || true
	# cargo-lambda finds zig through `python3 -m ziglang`: the venv must come first on PATH.
	PATH="$(VENV)/bin:$$PATH" cargo lambda build --release --arm64 --output-format zip \
	  $(addprefix -p ,$(LAMBDA_CRATES))
	@ls -la target/lambda/*/bootstrap.zip

bench: ## foundation load run (infra/scripts/bench.sh), DynamoDB on dynalite (BENCH_DYNAMODB=moto for moto)
	@infra/scripts/bench.sh

bench-accesses: ## accesses load run on dynalite: large tree, 2,000 users, 10,000 accesses -> docs/benchmarks.md
	@infra/scripts/bench-accesses.sh

bench-logs: ## /logs/ load run on dynalite: 100,000 request logs over 90 days, 200 users -> docs/benchmarks.md
	@infra/scripts/bench-logs.sh

bench-cohort: ## cohort workspace load run on dynalite: a heavy and a 10x owner among 151, items read per request -> docs/benchmarks.md
	@infra/scripts/bench-cohort.sh

bench-exports: ## exports list load run on dynalite: 5,000 exports of 150 owners, as an admin and as a plain user -> docs/benchmarks.md
	@infra/scripts/bench-exports.sh

.PHONY: bench-coldstart
bench-coldstart: ## Lambda binaries started against a local Runtime API stub, large tree on dynalite: init, first invocation -> docs/benchmarks.md
	@infra/scripts/bench-coldstart.sh

.PHONY: bench-jobs
bench-jobs: ## cohort job latency (POST -> QueryExecutor, callback -> WebSocket) and worker throughput -> docs/benchmarks.md
	@infra/scripts/bench-jobs.sh

clean-dev: ## stop our emulator and dynalite and delete .dev/ (generated env, logs, pidfiles); keeps .tools/ and target/
	-@infra/scripts/emulator.sh stop
	-@infra/scripts/dynalite.sh stop
	rm -rf "$(DEV_DIR)"
