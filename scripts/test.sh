#!/usr/bin/env bash
# The project's test command: fetches the demo model (the tests run on it), then runs
# every test of the workspace, then checks the API server with the official OpenAI Python client
# (scripts/check_api.sh installs it from tools/requirements-api.txt). Needs only cargo and
# python3 with pip; installs oneDNN with apt-get when it can (scripts/install_gemm.sh), so the
# tests cover the oneDNN products as well as the built-in ones.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch_model.sh
bash scripts/install_gemm.sh
cargo test --workspace --no-fail-fast "$@"
bash scripts/check_api.sh
