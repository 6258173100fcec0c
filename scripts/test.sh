#!/usr/bin/env bash
# The test command: installs the pinned AWS emulator (moto, server mode) into
# a project-local virtualenv, starts it on a free loopback port, runs every
# test of the workspace against it, and stops it again, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_VERSION="5.2.5"
VENV=".venv"

if ! "$VENV/bin/python" -c "import moto, sys; sys.exit(0 if moto.__version__ == '$MOTO_VERSION' else 1)" 2>/dev/null; then
  echo "== installing moto[server]==$MOTO_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi

port=$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
log=$(mktemp -t hookflow-moto.XXXXXX)
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
moto_pid=$!
cleanup() {
  kill "$moto_pid" 2>/dev/null || true
  wait "$moto_pid" 2>/dev/null || true
  rm -f "$log"
}
trap cleanup EXIT INT TERM

endpoint="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  if "$VENV/bin/python" -c "import urllib.request; urllib.request.urlopen('$endpoint/moto-api/')" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$moto_pid" 2>/dev/null; then
    echo "moto_server exited before it was ready; its log:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.1
done
"$VENV/bin/python" -c "import urllib.request; urllib.request.urlopen('$endpoint/moto-api/')" 2>/dev/null || {
  echo "moto_server did not answer on $endpoint within 10 s; its log:" >&2
  cat "$log" >&2
  exit 1
}
echo "== moto $MOTO_VERSION on $endpoint"

export HOOKFLOW_TEST_AWS_ENDPOINT="$endpoint"
cargo test --workspace --all-targets "$@"
