#!/usr/bin/env python3
"""Write the demo-model fixtures that ferrotune-hub's tests compare against, so that the
Rust tests need only the GGUF, never the Python conversion:

* fixtures/smollm2/dequant_slices.safetensors - rows of five tensors of the float32 HF
  conversion (gguf_to_hf.py, which dequantizes with gguf-py): the first two and the last row
  of blk.0.ffn_down (Q4_1), blk.17.ffn_gate (Q4_1), blk.29.attn_v (Q4_1), token_embd (Q8_0),
  and the whole blk.3.attn_norm (F32), under their HF names.
* fixtures/smollm2/hf_tokenizer/{tokenizer.json,tokenizer_config.json} - the tokenizer files of
  that conversion (a tokenizer.json built by Python's tokenizers from the GGUF metadata).

Run from the repository root after tools/make_smollm2_golden.py (which makes
models/smollm2-f32-hf):

    /work/pyref/venv/bin/python tools/make_smollm2_hub_fixtures.py
"""
import shutil
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "models" / "smollm2-f32-hf"
OUT = REPO / "fixtures" / "smollm2"

NAMES = [
    "model.layers.0.mlp.down_proj.weight",
    "model.layers.17.mlp.gate_proj.weight",
    "model.layers.29.self_attn.v_proj.weight",
    "model.embed_tokens.weight",
]


def main() -> None:
    w = load_file(str(SRC / "model.safetensors"))
    out = {}
    for name in NAMES:
        a = w[name]
        out[name] = np.ascontiguousarray(np.concatenate([a[:2], a[-1:]], axis=0))
    out["model.layers.3.input_layernorm.weight"] = w["model.layers.3.input_layernorm.weight"]
    save_file(out, str(OUT / "dequant_slices.safetensors"))
    (OUT / "hf_tokenizer").mkdir(exist_ok=True)
    for f in ["tokenizer.json", "tokenizer_config.json"]:
        shutil.copyfile(SRC / f, OUT / "hf_tokenizer" / f)
    print("wrote", sorted(p.name for p in OUT.rglob("*")))


if __name__ == "__main__":
    main()
