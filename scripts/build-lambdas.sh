#!/usr/bin/env bash
# Builds an arm64 `bootstrap` for every Lambda function with cargo-lambda
# (from PyPI; it ships zig and cross-compiles offline), then prints the sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=".venv-build"
CARGO_LAMBDA_VERSION="1.9.2"
if [ ! -x "$VENV/bin/cargo-lambda" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "cargo-lambda==$CARGO_LAMBDA_VERSION"
fi
rustup target add aarch64-unknown-linux-gnu >/dev/null
# cargo-lambda finds zig through `python3 -m ziglang`: the venv's python must come first.
export PATH="$PWD/$VENV/bin:$PATH"
# A function gains nothing from unwinding: after a panic, Lambda reports the invocation failed
# whether the runtime caught it or the process ended, and the batch comes back after its
# visibility timeout either way. Aborting drops the unwind paths from the zips.
export CARGO_PROFILE_RELEASE_PANIC=abort
cargo lambda build --release --arm64 \
  --bin hookflow-webhook --bin hookflow-events --bin hookflow-dispatcher --bin hookflow-step --bin hookflow-api
for f in target/lambda/*/bootstrap; do
  printf '%-40s %s\n' "$f" "$(du -h "$f" | cut -f1)"
done
