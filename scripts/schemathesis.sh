#!/usr/bin/env bash
# Property-based tests of the HTTP API from its own OpenAPI document: the
# pinned schemathesis (PyPI, in a project virtualenv) against `hookflow dev
# --require-keys` with a bootstrap admin key. Required: no 5xx, and no
# response that breaks the documented schema. Bounded by examples per
# operation and a time budget, so it stays a few minutes at most.
set -euo pipefail
cd "$(dirname "$0")/.."

ST_VERSION="4.32.5"
VENV=".venv-schemathesis"
HOOKFLOW="${HOOKFLOW_BIN:-target/debug/hookflow}"

if ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$ST_VERSION"; then
  echo "== installing schemathesis==$ST_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$ST_VERSION"
fi
[ -x "$HOOKFLOW" ] || cargo build --quiet -p hookflow-cli --bin hookflow

port=$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
key=$("$VENV/bin/python" -c 'import secrets, base64; print("hfk_" + secrets.token_hex(8) + "_" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("="))')
log=$(mktemp -t hookflow-dev.XXXXXX)
HOOKFLOW_BOOTSTRAP_KEY="$key" RUST_LOG=warn "$HOOKFLOW" dev --addr "127.0.0.1:$port" --require-keys \
  --bootstrap-workspace ws_demo --deny-private-networks >"$log" 2>&1 &
dev=$!
cleanup() {
  kill "$dev" 2>/dev/null || true
  wait "$dev" 2>/dev/null || true
  rm -f "$log"
}
trap cleanup EXIT INT TERM

base="http://127.0.0.1:$port"
ready=""
for _ in $(seq 1 100); do
  if "$VENV/bin/python" -c "import urllib.request; urllib.request.urlopen('$base/v1/openapi.json')" 2>/dev/null; then ready=1; break; fi
  if ! kill -0 "$dev" 2>/dev/null; then echo "hookflow dev exited; its log:" >&2; cat "$log" >&2; exit 1; fi
  sleep 0.1
done
if [ -z "$ready" ]; then echo "hookflow dev did not serve $base within 10 s; its log:" >&2; cat "$log" >&2; exit 1; fi

echo "== schemathesis $ST_VERSION against $base (no 5xx, responses match the schema)"
HOOKFLOW_API_KEY="$key" "$VENV/bin/st" --config-file scripts/schemathesis.toml run "$base/v1/openapi.json" \
  --checks not_a_server_error,response_schema_conformance \
  --phases examples,coverage,fuzzing --max-time 120 --workers 2 --no-color
