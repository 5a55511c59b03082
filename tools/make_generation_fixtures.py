"""Greedy-generation fixtures for the demo model SmolLM2-135M-Instruct (Q4_1 GGUF).

Writes
  fixtures/generation/greedy.json
    {"model", "max_new_tokens", "eos_token_ids", "pad_token_id",
     "single": [{"messages", "prompt_ids", "generated_ids", "min_top2_gap"}],
     "batched": {"prompt_ids": [[...]], "generated_ids": [[...]], "min_top2_gap": [...]}}

Each prompt is a chat rendered by the tokenizer's own chat template with
add_generation_prompt=True (tokenizer.apply_chat_template, tokenize=True), so `prompt_ids` are
the template's ids. `generated_ids` are the new tokens of transformers' greedy `generate`
(do_sample=False, num_beams=1, max_new_tokens=32) up to and including the first eos, without
the padding transformers writes after it. `min_top2_gap` is the smallest gap between the best
and second-best raw logit over the generated steps: how close greedy decoding came to a tie.

The batched case runs the first three prompts in one `generate` call, left-padded with the pad
token (tokenizer.padding_side = "left", attention_mask marking padding), as transformers
documents for batched generation with decoder-only models; `prompt_ids` are the unpadded ids.

Reference model: models/smollm2-f32-hf, the float32 HF conversion of the GGUF made by
/work/shared/tools/gguf_to_hf.py (created when missing; set GGUF_TO_HF to use another copy),
loaded with eager attention in float32. Its weights equal the GGUF's dequantized Q4_1 weights.

Run from the repository root (deterministic; about 1 minute on 2 CPU cores):
  /work/pyref/venv/bin/python tools/make_generation_fixtures.py
Requirements: tools/requirements.txt.
"""
import json
import os
import subprocess
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GGUF = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
HF_DIR = os.path.join(ROOT, "models", "smollm2-f32-hf")
OUT = os.path.join(ROOT, "fixtures", "generation")
GGUF_TO_HF = os.environ.get("GGUF_TO_HF", "/work/shared/tools/gguf_to_hf.py")
MAX_NEW_TOKENS = 32

CHATS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Write a haiku about the sea."}],
    [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "List three primary colors."},
    ],
    [
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello! How can I help you today?"},
        {"role": "user", "content": "Explain gravity in one sentence."},
    ],
]


def ensure_hf_dir():
    if os.path.isfile(os.path.join(HF_DIR, "model.safetensors")):
        return
    if not os.path.isfile(GGUF):
        sys.exit(f"{GGUF} not found: run scripts/fetch_model.sh")
    subprocess.run([sys.executable, GGUF_TO_HF, GGUF, HF_DIR], check=True)


def prompt_ids(tok, messages):
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if isinstance(ids, dict) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return [int(i) for i in ids]


def cut_at_eos(ids, eos):
    out = []
    for i in ids:
        out.append(int(i))
        if int(i) in eos:
            break
    return out


def min_gap(step_logits, row, steps):
    gaps = []
    for s in range(steps):
        top2 = torch.topk(step_logits[s][row].double(), 2).values
        gaps.append(float(top2[0] - top2[1]))
    return min(gaps)


def run(model, input_ids, attention_mask, pad_id):
    with torch.no_grad():
        out = model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            do_sample=False,
            num_beams=1,
            max_new_tokens=MAX_NEW_TOKENS,
            pad_token_id=pad_id,
            return_dict_in_generate=True,
            output_logits=True,
        )
    return out.sequences[:, input_ids.shape[1]:], out.logits


def main():
    ensure_hf_dir()
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(HF_DIR)
    model = AutoModelForCausalLM.from_pretrained(
        HF_DIR, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    eos = model.generation_config.eos_token_id
    eos = sorted(set(eos if isinstance(eos, list) else [eos]) | {tok.eos_token_id})
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else eos[0]

    single = []
    for messages in CHATS:
        ids = prompt_ids(tok, messages)
        x = torch.tensor([ids])
        new, logits = run(model, x, torch.ones_like(x), pad_id)
        gen = cut_at_eos(new[0].tolist(), eos)
        single.append(
            {
                "messages": messages,
                "prompt_ids": ids,
                "generated_ids": gen,
                "min_top2_gap": min_gap(logits, 0, len(gen)),
            }
        )
        print(repr(tok.decode(gen)))

    rows = [prompt_ids(tok, m) for m in CHATS[:3]]
    width = max(len(r) for r in rows)
    x = torch.tensor([[pad_id] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    new, logits = run(model, x, mask, pad_id)
    gen = [cut_at_eos(new[b].tolist(), eos) for b in range(len(rows))]
    batched = {
        "prompt_ids": rows,
        "generated_ids": gen,
        "min_top2_gap": [min_gap(logits, b, len(g)) for b, g in enumerate(gen)],
    }
    for b, g in enumerate(gen):
        same = g == single[b]["generated_ids"]
        print(f"batched row {b}: {len(g)} tokens, equal to the unbatched run: {same}")

    os.makedirs(OUT, exist_ok=True)
    doc = {
        "model": "models/SmolLM2-135M-Instruct.Q4_1.gguf (f32 conversion models/smollm2-f32-hf)",
        "max_new_tokens": MAX_NEW_TOKENS,
        "eos_token_ids": eos,
        "pad_token_id": pad_id,
        "single": single,
        "batched": batched,
    }
    with open(os.path.join(OUT, "greedy.json"), "w") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print("wrote", os.path.join(OUT, "greedy.json"))


if __name__ == "__main__":
    main()
