"""PEFT interop proof: adapters trained by ferrotune, loaded by Python's PEFT, same eval loss.

Writes, for every case in CASES (see the `peft_interop/` section of fixtures/README.md):
  fixtures/peft_interop/<case>/train.yaml                  the ferrotune config that trained it
  fixtures/peft_interop/<case>/adapter_model.safetensors   as `ferrotune train` wrote it
  fixtures/peft_interop/<case>/adapter_config.json         as `ferrotune train` wrote it
  fixtures/peft_interop/<case>/expected.json               batch and losses computed by PEFT

Step 1, training (only when a case has no adapter yet, or with --retrain): runs ferrotune's own
binary from the repository root,
  target/debug/ferrotune train fixtures/peft_interop/<case>/train.yaml output_dir=<tmp dir>
(build it first with `cargo build -p ferrotune --bins`; set FERROTUNE=/path/to/ferrotune to use
another build), and copies adapter_model.safetensors and adapter_config.json from the output
folder unchanged. The runs take the demo GGUF models/SmolLM2-135M-Instruct.Q4_1.gguf, the first
16 examples of alpaca_en_demo (../shared/data/llamafactory), template smollm2, cutoff_len 64,
4 steps of batch 2 at learning_rate 5e-3 (constant), so lora_B ends clearly away from zero.
Training on CPU is not bit-reproducible across machines, so the committed adapters are kept
unless --retrain is given; the rest of the script is deterministic.

Step 2, the reference: loads models/smollm2-f32-hf (the demo GGUF dequantized to float32 by
/work/shared/tools/gguf_to_hf.py, i.e. the same weights ferrotune computes with) with
transformers in float32 and eager attention, and applies the adapter with
peft.PeftModel.from_pretrained. This is the interop claim, checked strictly:
  - PEFT's load reports no unexpected key and no missing adapter key (lora_A, lora_B,
    lora_magnitude_vector, modules_to_save) and emits no warning;
  - get_peft_model_state_dict of the loaded model (what PEFT's own save_pretrained would
    write) has exactly the file's tensor names and values.
The fixed batch is 4 held-out examples (rows 16, 17, 21, 29: not among the 16 trained on) of
fixtures/data/sft_alpaca_smollm2.jsonl, i.e. alpaca_en_demo tokenized with template smollm2 and
cutoff_len 1024 (LLaMA-Factory's ids, which ferrotune's pipeline reproduces), right-padded as
LLaMA-Factory's collator and ferrotune's `collate` do: input_ids with pad_token_id 2
(<|im_end|>), labels with -100, attention_mask 1 on tokens and 0 on padding. The loss is
transformers' causal-LM loss (position t scored against labels[t + 1], mean over the labels
that are not -100): recorded from float32 logits with log_softmax in float64, and checked
against model(..., labels=labels).loss (float32) to 2e-5. It is recorded for the base model
(loss_base, adapter disabled) and the adapted one (loss_peft).

Run from the repository root (about 1 min without training, plus about 1 min per case with it):
  /work/pyref/venv/bin/python tools/make_peft_interop_fixtures.py            # keep adapters
  /work/pyref/venv/bin/python tools/make_peft_interop_fixtures.py --retrain  # train again
Requirements: tools/requirements.txt (torch, transformers, safetensors, peft 0.21.2).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings

import peft
import safetensors
import torch
import transformers
from peft import PeftModel, get_peft_model_state_dict
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fixtures", "peft_interop")
BASE_HF = os.path.join(ROOT, "models", "smollm2-f32-hf")
DATA = os.path.join(ROOT, "fixtures", "data", "sft_alpaca_smollm2.jsonl")
ROWS = [16, 17, 21, 29]
PAD_TOKEN_ID = 2
IGNORE_INDEX = -100

COMMON = """\
# ferrotune config that trained this adapter (tools/make_peft_interop_fixtures.py); run from
# the repository root with `target/debug/ferrotune train <this file> output_dir=<dir>`.
model_name_or_path: models/SmolLM2-135M-Instruct.Q4_1.gguf
stage: sft
do_train: true
finetuning_type: lora
lora_target: q_proj,v_proj
dataset: alpaca_en_demo
dataset_dir: ../shared/data/llamafactory
template: smollm2
cutoff_len: 64
max_samples: 16
per_device_train_batch_size: 2
max_steps: 4
learning_rate: 5.0e-3
lr_scheduler_type: constant
logging_steps: 1
save_strategy: "no"
seed: 42
overwrite_output_dir: true
"""

# name -> extra YAML lines. Ranks are small to keep the fixtures under 1 MB each.
CASES = {
    # Plain LoRA, scaling alpha / r = 16 / 4.
    "lora_qv": "lora_rank: 4\nlora_alpha: 16\n",
    # DoRA with rsLoRA scaling alpha / sqrt(r) and every RMSNorm weight trained as
    # modules_to_save (PEFT's rule: module path ends with "norm").
    "dora_rslora_norm": "lora_rank: 2\nlora_alpha: 8\nuse_dora: true\nuse_rslora: true\n"
    "additional_target: norm\n",
}


def train(case_dir):
    """Runs `ferrotune train` for one case and copies its adapter into case_dir."""
    exe = os.environ.get("FERROTUNE", os.path.join(ROOT, "target", "debug", "ferrotune"))
    if not os.path.isfile(exe):
        sys.exit(f"{exe} is missing: run `cargo build -p ferrotune --bins` or set FERROTUNE")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [exe, "train", os.path.join(case_dir, "train.yaml"), f"output_dir={tmp}/out"]
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, cwd=ROOT, check=True)
        for name in ("adapter_model.safetensors", "adapter_config.json"):
            shutil.copyfile(os.path.join(tmp, "out", name), os.path.join(case_dir, name))


def fixed_batch():
    """The 4 held-out rows, right-padded: (input_ids, labels, attention_mask) as lists."""
    with open(DATA) as f:
        rows = [json.loads(line) for line in f]
    picked = [rows[i] for i in ROWS]
    t = max(len(r["input_ids"]) for r in picked)
    input_ids, labels, mask = [], [], []
    for r in picked:
        n = len(r["input_ids"])
        assert len(r["labels"]) == n
        input_ids.append(r["input_ids"] + [PAD_TOKEN_ID] * (t - n))
        labels.append(r["labels"] + [IGNORE_INDEX] * (t - n))
        mask.append([1] * n + [0] * (t - n))
    return input_ids, labels, mask


def causal_lm_loss(model, input_ids, labels, mask):
    """transformers' causal-LM loss, log_softmax in float64 over the float32 logits."""
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=mask, labels=labels, use_cache=False)
    logits = out.logits[:, :-1, :].double()
    target = labels[:, 1:]
    keep = target != IGNORE_INDEX
    logp = torch.log_softmax(logits, dim=-1)
    nll = -logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    loss = (nll * keep).sum() / keep.sum()
    diff = abs(loss.item() - out.loss.item())
    assert diff < 2e-5, f"float64 loss {loss.item()} vs transformers' float32 loss {out.loss.item()}"
    return loss.item(), int(keep.sum())


def check_loaded(peft_model, case_dir):
    """The loaded adapter is exactly the file: same names, same values."""
    on_disk = load_file(os.path.join(case_dir, "adapter_model.safetensors"))
    # save_embedding_layers=False: no probe of base_model_name_or_path (a GGUF path here)
    # for a config.json; no embedding layer is adapted in these cases.
    in_model = get_peft_model_state_dict(peft_model, save_embedding_layers=False)
    assert set(on_disk) == set(in_model), (
        f"names differ: only in file {sorted(set(on_disk) - set(in_model))[:5]}, "
        f"only in model {sorted(set(in_model) - set(on_disk))[:5]}"
    )
    for name, t in on_disk.items():
        assert t.dtype == torch.float32, f"{name} is {t.dtype}"
        assert torch.equal(t, in_model[name].cpu()), f"{name} loaded with other values"
    return on_disk


def run_case(name, batch):
    """Writes train.yaml, trains if needed, loads the adapter with PEFT, writes expected.json."""
    case_dir = os.path.join(OUT, name)
    os.makedirs(case_dir, exist_ok=True)
    yaml = COMMON + CASES[name]
    with open(os.path.join(case_dir, "train.yaml"), "w") as f:
        f.write(yaml)
    if "--retrain" in sys.argv or not os.path.isfile(
        os.path.join(case_dir, "adapter_model.safetensors")
    ):
        train(case_dir)

    input_ids, labels, mask = (torch.tensor(x, dtype=torch.long) for x in batch)
    base = AutoModelForCausalLM.from_pretrained(
        BASE_HF, dtype=torch.float32, attn_implementation="eager"
    )
    base.eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = PeftModel.from_pretrained(base, case_dir, is_trainable=False)
    # transformers' own deprecation notices (e.g. `is_gradient_checkpointing`) say nothing
    # about the adapter; every other warning fails the case.
    messages = [
        str(w.message)
        for w in caught
        if not issubclass(w.category, (DeprecationWarning, FutureWarning))
        and "deprecated" not in str(w.message)
    ]
    assert not messages, f"PEFT warned while loading {name}: {messages}"
    # Load once more through PEFT's own loader to read its report of missing/unexpected keys.
    result = peft.utils.set_peft_model_state_dict(
        model, peft.utils.load_peft_weights(case_dir), adapter_name="default"
    )
    assert not result.unexpected_keys, f"unexpected keys: {result.unexpected_keys[:5]}"
    adapter_markers = ("lora_A", "lora_B", "lora_magnitude_vector", "modules_to_save")
    missing = [k for k in result.missing_keys if any(m in k for m in adapter_markers)]
    assert not missing, f"missing adapter keys: {missing[:5]}"
    tensors = check_loaded(model, case_dir)
    model.eval()

    loss_peft, n_scored = causal_lm_loss(model, input_ids, labels, mask)
    with model.disable_adapter():
        loss_base, _ = causal_lm_loss(model, input_ids, labels, mask)
    assert abs(loss_peft - loss_base) > 1e-2, f"the adapter barely moves the loss: {loss_base} vs {loss_peft}"
    max_b = max(t.abs().max().item() for k, t in tensors.items() if "lora_B" in k)
    print(f"{name}: {len(tensors)} tensors, max|lora_B| {max_b:.4g}, scored tokens {n_scored}, "
          f"loss_base {loss_base:.6f}, loss_peft {loss_peft:.6f}")

    expected = {
        "rows": ROWS,
        "source": "fixtures/data/sft_alpaca_smollm2.jsonl",
        "pad_token_id": PAD_TOKEN_ID,
        "input_ids": batch[0],
        "labels": batch[1],
        "attention_mask": batch[2],
        "n_scored_tokens": n_scored,
        "loss_base": loss_base,
        "loss_peft": loss_peft,
        "n_adapter_tensors": len(tensors),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
            "safetensors": safetensors.__version__,
        },
    }
    with open(os.path.join(case_dir, "expected.json"), "w") as f:
        json.dump(expected, f, separators=(",", ":"))
        f.write("\n")


def main():
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    if not os.path.isdir(BASE_HF):
        sys.exit(f"{BASE_HF} is missing: convert the demo GGUF with /work/shared/tools/gguf_to_hf.py")
    batch = fixed_batch()
    for name in CASES:
        run_case(name, batch)


if __name__ == "__main__":
    main()
