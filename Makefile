# The verbs a user types. See README.md.
.PHONY: dev test check fmt lint

# Run the whole stack locally (in-memory backend) on http://127.0.0.1:3000.
dev:
	cargo run -p hookflow-cli --bin hookflow -- dev --workflows examples/workflows

# Every test: unit, property, end-to-end through hookflow dev's HTTP surface.
test:
	cargo test --workspace --all-targets

fmt:
	cargo fmt --all

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

check: lint test
