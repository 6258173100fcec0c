#!/usr/bin/env bash
# The test command: installs the pinned AWS emulator (moto, server mode) into
# a project-local virtualenv, starts two of them on free loopback ports (one
# shared by the tests, one of its own for the emulator chaos test, since moto
# serves one request at a time), runs every test of the workspace against
# them, and stops them again, also on failure. Then schemathesis checks the
# HTTP API against its OpenAPI document (scripts/schemathesis.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/moto.sh
# The official Standard Webhooks library signs the hook tests' requests
# (tests/signers/sign.py), and PyJWT makes the SSO tests' tokens
# (tests/signers/jwt_tokens.py), independently of our verifiers.
STANDARDWEBHOOKS_VERSION="1.1.0"
PYJWT_VERSION="2.10.1"

if ! "$VENV/bin/python" -c "
import sys, moto, importlib.metadata as m
sys.exit(0 if moto.__version__ == '$MOTO_VERSION' and m.version('standardwebhooks') == '$STANDARDWEBHOOKS_VERSION'
         and m.version('pyjwt') == '$PYJWT_VERSION' and m.version('cryptography') else 1)" 2>/dev/null; then
  echo "== installing moto[server]==$MOTO_VERSION, standardwebhooks==$STANDARDWEBHOOKS_VERSION and pyjwt[crypto]==$PYJWT_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" \
    "standardwebhooks==$STANDARDWEBHOOKS_VERSION" "pyjwt[crypto]==$PYJWT_VERSION"
fi
export HOOKFLOW_TEST_PYTHON="$PWD/$VENV/bin/python"

# The dashboard test drives Debian's headless Chromium through chromedriver.
# It never skips: without them it fails, so they are installed here.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "== installing Debian's chromium and chromium-driver"
  apt_get() { if [ "$(id -u)" -eq 0 ]; then apt-get "$@"; else sudo apt-get "$@"; fi; }
  apt_get update -qq
  DEBIAN_FRONTEND=noninteractive apt_get install -y -qq chromium chromium-driver >/dev/null
fi
export HOOKFLOW_TEST_CHROMIUM="$(command -v chromium)"
export HOOKFLOW_TEST_CHROMEDRIVER="$(command -v chromedriver)"

start_moto
export HOOKFLOW_TEST_AWS_ENDPOINT="$MOTO_ENDPOINT"
start_moto
export HOOKFLOW_TEST_CHAOS_AWS_ENDPOINT="$MOTO_ENDPOINT"
echo "== moto $MOTO_VERSION on $HOOKFLOW_TEST_AWS_ENDPOINT (shared) and $HOOKFLOW_TEST_CHAOS_AWS_ENDPOINT (chaos)"

cargo test --workspace --all-targets "$@"

# The API against its own OpenAPI document, once the unfiltered suite passed
# (a filtered run, `scripts/test.sh NAME`, is for one test).
if [ "$#" -eq 0 ]; then
  bash scripts/schemathesis.sh
fi
