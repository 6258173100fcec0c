# Sourced by test.sh and bench.sh: the pinned AWS emulator (moto, server
# mode) in the project-local virtualenv, started on free loopback ports and
# stopped again when the script exits, also on failure.
MOTO_VERSION="5.2.5"
VENV=".venv"

moto_pids=()
moto_logs=()
stop_motos() {
  for pid in "${moto_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -f "${moto_logs[@]}"
}
trap stop_motos EXIT INT TERM

# Starts a moto server on a free loopback port and sets MOTO_ENDPOINT.
start_moto() {
  local port log pid endpoint
  port=$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  log=$(mktemp -t hookflow-moto.XXXXXX)
  "$VENV/bin/python" scripts/moto_server.py -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  pid=$!
  moto_pids+=("$pid")
  moto_logs+=("$log")
  endpoint="http://127.0.0.1:$port"
  for _ in $(seq 1 100); do
    if "$VENV/bin/python" -c "import urllib.request; urllib.request.urlopen('$endpoint/moto-api/')" 2>/dev/null; then
      MOTO_ENDPOINT="$endpoint"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "moto_server exited before it was ready; its log:" >&2
      cat "$log" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "moto_server did not answer on $endpoint within 10 s; its log:" >&2
  cat "$log" >&2
  exit 1
}
