#!/usr/bin/env bash
# make bench / bench-long / profile: builds what is measured (`hookflow` and
# the relay with the speed profile, or the profiling one with --profile-to;
# the functions as SAM builds them), starts moto for the dispatcher scaling,
# cost and burst parts (not for a profile), and runs the bench; arguments go
# to it (`target/speed/hookflow-bench --help`). The arm64 zips come from
# `make build`, which `make bench` runs first.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/moto.sh
if ! "$VENV/bin/python" -c "import sys, moto; sys.exit(0 if moto.__version__ == '$MOTO_VERSION' else 1)" 2>/dev/null; then
  echo "== installing moto[server]==$MOTO_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi

# zip measures the Lambda packages; perf takes the profile.
missing=()
command -v zip >/dev/null || missing+=(zip)
if [[ " $* " == *" --profile-to "* ]] && ! command -v perf >/dev/null; then missing+=(linux-perf); fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "== installing Debian's ${missing[*]}"
  apt_get() { if [ "$(id -u)" -eq 0 ]; then apt-get "$@"; else sudo apt-get "$@"; fi; }
  apt_get update -qq
  DEBIAN_FRONTEND=noninteractive apt_get install -y -qq "${missing[@]}" >/dev/null
fi

# hookflow dev, the relay and the bench itself: the speed profile, or with
# --profile-to the profiling one (its opt-level, with symbols, without LTO).
SERVER_PROFILE="speed"
if [[ " $* " == *" --profile-to "* ]]; then SERVER_PROFILE="profiling"; fi
echo "== building hookflow, the relay and the bench ($SERVER_PROFILE profile, x86_64)"
cargo build --profile "$SERVER_PROFILE" -p hookflow-cli -p hookflow-bench
# The functions and the bare binary they are measured against, as SAM builds
# them (--release) and aborting on panic as `make build`'s do.
echo "== building the Lambda functions and the bare lambda_runtime binary (release profile, x86_64)"
CARGO_PROFILE_RELEASE_PANIC=abort cargo build --release \
  -p function-webhook -p function-events -p function-dispatcher -p function-step -p function-api
CARGO_PROFILE_RELEASE_PANIC=abort cargo build --release -p hookflow-bench --bin bench-lambda-hello

# Three emulators: the burst's two chains run beside the scaling and cost
# parts, and one moto serves one request at a time. A profile needs none.
if [[ " $* " != *" --profile-to "* ]]; then
  start_moto
  export HOOKFLOW_BENCH_AWS_ENDPOINT="$MOTO_ENDPOINT"
  start_moto
  burst_endpoints="$MOTO_ENDPOINT"
  start_moto
  export HOOKFLOW_BENCH_BURST_AWS_ENDPOINTS="$burst_endpoints,$MOTO_ENDPOINT"
fi
# The functions just built, unless the caller names others.
functions_dir=(--functions-dir target/release)
if [[ " $* " == *" --functions-dir"* ]]; then functions_dir=(); fi
"target/$SERVER_PROFILE/hookflow-bench" "${functions_dir[@]}" "$@"
