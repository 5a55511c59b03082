#!/usr/bin/env bash
# The main job: fetches SmolLM2-135M-Instruct (GGUF), builds ferrotune, asks the model a
# question, fine-tunes it with LoRA on the project's demo data (examples/smollm2_lora_sft.yaml),
# and asks again with the trained adapter: the answer takes the "Ferrotune says: ... In short:
# ..." style it was taught. Outputs (adapter, logs, training_loss.png) go to saves/smollm2-lora-sft.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch_model.sh
bash scripts/install_gemm.sh
cargo build -p ferrotune --bins
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
question="${1:-What is the boiling point of water?}"
# Greedy answers, one line each (`ferrotune chat` reads messages from a pipe; `\n` marks
# newlines), in the model's own chat template (no `template` key).
ask() {
  echo "$question" | target/debug/ferrotune chat model_name_or_path="$model" \
    do_sample=false max_new_tokens=64 "$@" 2>/dev/null
}
echo "=== before fine-tuning ==="
ask
echo "=== fine-tuning (LoRA, 20 steps) ==="
target/debug/ferrotune train examples/smollm2_lora_sft.yaml
echo "=== after fine-tuning ==="
ask adapter_name_or_path=saves/smollm2-lora-sft
