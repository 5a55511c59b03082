#!/usr/bin/env bash
# The main job: fetches SmolLM2-135M-Instruct (GGUF), builds ferrotune and runs the
# forward-pass demo on it: chat prompt -> logits -> top next tokens and a greedy answer.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch_model.sh
cargo run --example forward_demo -- models/SmolLM2-135M-Instruct.Q4_1.gguf "$@"
