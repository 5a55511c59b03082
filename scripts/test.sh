#!/usr/bin/env bash
# The project's test command: fetches the demo model (the tests run on it), then runs
# every test of the workspace, then checks the API server with the official OpenAI Python client
# (scripts/check_api.sh installs it from tools/requirements-api.txt). Needs only cargo and
# python3 with pip; installs oneDNN with apt-get when it can (scripts/install_gemm.sh), so the
# tests cover the oneDNN products as well as the built-in ones.
set -euo pipefail
cd "$(dirname "$0")/.."
# The build (about 5 GiB under target/) and the tests that write full-size f32 exports of the
# demo model (about 0.5 GiB each, in the temporary folder) need room: say so before starting
# rather than failing half-way with "No space left on device".
need_kib=$((8 * 1024 * 1024))
for dir in . "${TMPDIR:-/tmp}"; do
    free_kib=$(df -Pk "$dir" | awk 'NR == 2 { print $4 }')
    echo "free space for $dir: $((free_kib / 1024)) MiB"
    if [ "$free_kib" -lt "$need_kib" ]; then
        echo "warning: less than 8 GiB free for $dir; the build and the export tests may fail with 'No space left on device'" >&2
    fi
done
scripts/fetch_model.sh
bash scripts/install_gemm.sh
cargo test --workspace --no-fail-fast "$@"
bash scripts/check_api.sh
