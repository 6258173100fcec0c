# The verbs a user types. See README.md.
.PHONY: dev test check fmt lint

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
