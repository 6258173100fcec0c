#!/usr/bin/env bash
# make bench / bench-long / profile: builds what is measured (release, or
# the profiling profile with --profile-to), starts moto for the dispatcher
# scaling, cost and burst parts (not for a profile), and runs the bench; arguments go to it
# (`target/release/hookflow-bench --help`). The arm64 zips come from
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

PROFILE="release"
if [[ " $* " == *" --profile-to "* ]]; then PROFILE="profiling"; fi
echo "== building hookflow, the bench and the Lambda functions ($PROFILE profile, x86_64)"
cargo build --profile "$PROFILE" -p hookflow-cli -p hookflow-bench
# The functions and the bare binary they are measured against abort on panic, as `make build`'s do.
CARGO_PROFILE_RELEASE_PANIC=abort cargo build --profile "$PROFILE" \
  -p function-webhook -p function-events -p function-dispatcher -p function-step -p function-api
CARGO_PROFILE_RELEASE_PANIC=abort cargo build --profile "$PROFILE" -p hookflow-bench --bin bench-lambda-hello

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
"target/$PROFILE/hookflow-bench" "$@"
