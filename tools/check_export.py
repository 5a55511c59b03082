"""Checks ferrotune's exports with the Python tools users load them with.

Usage (from the repository root; the directory is written by the Rust test
`crates/ferrotune/tests/export.rs` when FERROTUNE_EXPORT_CHECK_DIR is set):

    FERROTUNE_EXPORT_CHECK_DIR=/tmp/export_check cargo test -p ferrotune --test export
    # optional: more GGUF types beside it, e.g.
    #   target/debug/ferrotune export model_name_or_path=... adapter_name_or_path=... \
    #       template=smollm2 export_format=gguf export_quantization=q4_0 export_dir=/tmp/export_check/gguf_q4_0
    /work/pyref/venv/bin/python tools/check_export.py /tmp/export_check

Checks, each printed with its measured value:
1. transformers loads the f32 HF export (`hf_f32/`) and its logits on `reference.json`'s
   input_ids equal ferrotune's in-memory merged model (`reference.safetensors`) within 1e-4;
   AutoTokenizer gives the same ids and renders the chat template.
2. gguf-py reads every `*.gguf` below the directory (version, architecture, tensor count,
   tokenizer), and each quantized/float tensor's bytes equal gguf-py's own
   `gguf.quants.quantize` of the f32 HF export's weight (llama Q/K rows permuted as
   llama.cpp's convert_hf_to_gguf.py does): bit-identical quantization.
   Also writes fixtures/export/transformers_hf_f32.json (those logits' first 64 vocabulary ids
   per position and the argmax) for the Rust export test.
3. transformers loads the q8_0 GGUF (its own GGUF reader and un-permutation) and predicts
   the same greedy tokens as ferrotune's merged model.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

import gguf
from gguf import GGMLQuantizationType as Q

TOL_F32 = 1e-4

HF_TO_GGUF = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}


def gguf_name(hf: str) -> str:
    fixed = {
        "model.embed_tokens.weight": "token_embd.weight",
        "model.norm.weight": "output_norm.weight",
        "lm_head.weight": "output.weight",
    }
    if hf in fixed:
        return fixed[hf]
    _, _, layer, rest = hf.split(".", 3)
    module, kind = rest.rsplit(".", 1)
    return f"blk.{layer}.{HF_TO_GGUF[module]}.{kind}"


def permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's LlamaModel.permute (rotate-half rows to interleaved)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


FIXTURE = Path(__file__).resolve().parent.parent / "fixtures/export/transformers_hf_f32.json"
SLICE = 64  # vocabulary ids kept per position in the fixture


def check_hf(root: Path, ref: dict, logits_ref: np.ndarray) -> None:
    hf_dir = root / ref["hf_dir"]
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    ids = torch.tensor([ref["input_ids"]], dtype=torch.long)
    with torch.no_grad():
        logits = model(input_ids=ids).logits.numpy()
    diff = float(np.abs(logits - logits_ref).max())
    print(f"[hf] transformers {type(model).__name__} logits {list(logits.shape)}: max |diff| vs ferrotune = {diff:.3e} (tolerance {TOL_F32})")
    assert diff <= TOL_F32, diff
    # For the Rust test (crates/ferrotune/tests/export.rs), which has no Python: transformers'
    # logits on the f32 HF export, every position, the first SLICE vocabulary ids and the
    # argmax.
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps({
        "what": "transformers logits of ferrotune's f32 HF export (demo GGUF + fixtures/peft_interop/lora_qv merged)",
        "input_ids": ref["input_ids"],
        "logits_first_ids": logits[0, :, :SLICE].tolist(),
        "argmax": logits[0].argmax(-1).tolist(),
        "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__},
    }) + "\n")
    print(f"[hf] wrote {FIXTURE}")
    tok = AutoTokenizer.from_pretrained(hf_dir)
    got = tok(ref["prompt"], add_special_tokens=False)["input_ids"]
    assert got == ref["input_ids"], (got, ref["input_ids"])
    text = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    print(f"[hf] AutoTokenizer: same {len(got)} ids; eos {tok.eos_token!r}, pad {tok.pad_token!r}; chat template renders {text!r}")


def check_gguf_file(path: Path, hf_weights: dict, cfg: dict) -> None:
    r = gguf.GGUFReader(path)
    field = lambda k: r.fields[k].contents() if k in r.fields else None  # noqa: E731
    types = {}
    for t in r.tensors:
        types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
    print(
        f"[gguf] {path.name}: version {field('GGUF.version')}, arch {field('general.architecture')!r}, "
        f"name {field('general.name')!r}, file_type {field('general.file_type')}, {len(r.tensors)} tensors {types}, "
        f"{len(field('tokenizer.ggml.tokens'))} tokens (model {field('tokenizer.ggml.model')!r}, pre {field('tokenizer.ggml.pre')!r}), "
        f"block_count {field('llama.block_count')}, head_count {field('llama.attention.head_count')}/{field('llama.attention.head_count_kv')}, "
        f"rope.freq_base {field('llama.rope.freq_base')}, chat_template {len(field('tokenizer.chat_template') or '')} chars"
    )
    n_heads, n_kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    by_name = {t.name: t for t in r.tensors}
    checked = 0
    for hf, w in hf_weights.items():
        name = gguf_name(hf)
        t = by_name[name]
        w = w.astype(np.float32)
        if hf.endswith("q_proj.weight"):
            w = permute(w, n_heads)
        elif hf.endswith("k_proj.weight"):
            w = permute(w, n_kv)
        want = gguf.quants.quantize(w, t.tensor_type)
        got = np.asarray(t.data)
        assert want.tobytes() == got.tobytes(), f"{name}: {t.tensor_type.name} bytes differ from gguf-py"
        checked += 1
    assert checked == len(r.tensors), (checked, len(r.tensors))
    print(f"[gguf] {path.name}: all {checked} tensors byte-identical to gguf-py quantize() of the f32 export")


def check_transformers_gguf(path: Path, ref: dict, logits_ref: np.ndarray) -> None:
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    ids = torch.tensor([ref["input_ids"]], dtype=torch.long)
    with torch.no_grad():
        logits = model(input_ids=ids).logits.numpy()
    diff = float(np.abs(logits - logits_ref).max())
    same = bool((logits.argmax(-1) == logits_ref.argmax(-1)).all())
    print(f"[gguf] transformers loads {path.name}: max |logit diff| vs ferrotune f32 merged = {diff:.3f}, same greedy tokens: {same}")
    assert same


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/export_check")
    ref = json.loads((root / "reference.json").read_text())
    tensors = load_file(root / "reference.safetensors")
    logits_ref = tensors["logits"]
    assert tensors["input_ids"].tolist() == [ref["input_ids"]]
    check_hf(root, ref, logits_ref)
    hf_dir = root / ref["hf_dir"]
    hf_weights = load_file(hf_dir / "model.safetensors")
    cfg = json.loads((hf_dir / "config.json").read_text())
    for path in sorted(root.rglob("*.gguf")):
        check_gguf_file(path, hf_weights, cfg)
    check_transformers_gguf(root / ref["gguf_file"], ref, logits_ref)
    print("all checks passed")


if __name__ == "__main__":
    main()
