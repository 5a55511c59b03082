#!/usr/bin/env bash
# Checks `ferrotune api` with the official OpenAI Python client: makes a venv from
# tools/requirements-api.txt (VENV, default target/api-venv), builds the binary, starts the
# server on the demo model with an API key on a free loopback port, runs
# tools/check_openai_client.py against it, then stops the server with SIGTERM and checks that it
# exits 0. Needs python3 with pip (a venv when the venv module exists, else pip --target),
# and the demo model (scripts/fetch_model.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${VENV:-target/api-venv}"
if [ -x "$venv/bin/python" ] || python3 -m venv "$venv" >/dev/null 2>&1; then
    py="$venv/bin/python"
else
    # No venv module (Debian without python3-venv): install beside the tree instead.
    rm -rf "$venv"
    export PYTHONPATH="$PWD/target/api-pydeps${PYTHONPATH:+:$PYTHONPATH}"
    py=python3
    mkdir -p target/api-pydeps
fi
if [ "$py" = python3 ]; then
    python3 -m pip install --quiet --target target/api-pydeps -r tools/requirements-api.txt
else
    "$py" -m pip install --quiet -r tools/requirements-api.txt
fi
scripts/fetch_model.sh
cargo build --quiet -p ferrotune --bins
port="$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
key="sk-check-$RANDOM$RANDOM"
log="$(mktemp)"
API_PORT="$port" API_KEY="$key" target/debug/ferrotune api \
    model_name_or_path=models/SmolLM2-135M-Instruct.Q4_1.gguf template=smollm2 >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 120); do
    if "$py" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
        "http://127.0.0.1:$port/health" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$pid" 2>/dev/null; then cat "$log" >&2; echo "error: the server exited" >&2; exit 1; fi
    sleep 0.5
done
status=0
"$py" tools/check_openai_client.py --base-url "http://127.0.0.1:$port/v1" --api-key "$key" || status=$?
kill -TERM "$pid"
server_status=0
wait "$pid" || server_status=$?
if [ "$status" != 0 ]; then
    echo "--- server log" >&2; tail -n 40 "$log" >&2
    exit "$status"
fi
if grep -q "$key" "$log"; then
    echo "error: the API key appears in the server log" >&2; exit 1
fi
if [ "$server_status" != 0 ]; then
    echo "error: the server exited with $server_status after SIGTERM (expected 0)" >&2; exit 1
fi
echo "server stopped cleanly after SIGTERM; the log never shows the API key"
