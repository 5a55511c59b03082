#!/usr/bin/env bash
# The main job: fetches SmolLM2-135M-Instruct (GGUF), builds ferrotune, asks the model a
# question, fine-tunes it with LoRA on the project's demo data (examples/smollm2_lora_sft.yaml),
# and asks again with the trained adapter: the answer takes the "Ferrotune says: ... In short:
# ..." style it was taught. Outputs (adapter, logs, training_loss.png) go to saves/smollm2-lora-sft.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch_model.sh
cargo build -p ferrotune --bins --examples
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
question="${1:-What is the boiling point of water?}"
echo "=== before fine-tuning ==="
target/debug/examples/forward_demo "$model" "$question"
echo "=== fine-tuning (LoRA, 20 steps) ==="
target/debug/ferrotune train examples/smollm2_lora_sft.yaml
echo "=== after fine-tuning ==="
target/debug/examples/forward_demo "$model" "$question" --adapter saves/smollm2-lora-sft
