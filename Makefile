# The verbs a user types. See README.md.
.PHONY: dev test check fmt lint fuzz bench bench-long profile bench-memory lint-template build deploy

# Run the whole stack locally (in-memory backend) on http://127.0.0.1:3000.
dev:
	cargo run -p hookflow-cli --bin hookflow -- dev --workflows examples/workflows

# Every test: unit, property, end-to-end, and the port conformance suite on moto (installed by the script).
test:
	bash scripts/test.sh

fmt:
	cargo fmt --all

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

check: lint test

# The never-panic harnesses in shared/core/tests/fuzz.rs (templates, conditions, ingest, workflows),
# run long: `make test` runs them at 256 cases. A failure's seed is saved next to the test file.
fuzz:
	PROPTEST_CASES=200000 cargo test -p hookflow-core --test fuzz --release

# Speed and cost against a bare relay, flatness, dispatcher scaling, AWS cost per run and the
# Lambda footprint, side by side on this machine: one table, written to bench/results.md.
bench: build
	bash scripts/bench.sh

# The same with the flatness part at 1,000,000 events (bench/results-long.md).
bench-long: build
	bash scripts/bench.sh --flat-events 1000000 --out bench/results-long.md

# A CPU profile of hookflow dev under the pipeline bench: its top 20 functions in bench/profile.txt.
profile:
	bash scripts/bench.sh --repetitions 1 --flat-events 0 --starts 0 --burst 0 --profile-to bench/profile.txt --out /tmp/hookflow-profile-results.md

# Peak memory of one step-function batch at its worst (ten peers answering 1 MiB each), against
# the function's 256 MiB; fails over half of it.
bench-memory:
	cargo run --release -p hookflow-tests --bin delivery_memory

# cfn-lint and sam validate --lint on template.yaml (installed into .venv-template by the script).
lint-template:
	bash scripts/lint-template.sh

# arm64 Lambda bootstraps for every function (PyPI cargo-lambda in .venv-build, which ships zig).
build:
	bash scripts/build-lambdas.sh

# Needs AWS credentials; cannot run on a machine without AWS access.
deploy: build
	bash scripts/lint-template.sh
	PATH="$(CURDIR)/.venv-build/bin:$$PATH" CARGO_PROFILE_RELEASE_PANIC=abort SAM_CLI_TELEMETRY=0 .venv-template/bin/sam build --beta-features
	SAM_CLI_TELEMETRY=0 .venv-template/bin/sam deploy --guided
