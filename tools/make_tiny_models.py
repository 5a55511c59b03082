"""Build tiny random decoder models, their golden logits and two tiny GGUF files.

Writes, for every variant in VARIANTS:
  fixtures/tiny/<variant>/config.json                 HF config (see "config.json format" below)
  fixtures/tiny/<variant>/model.safetensors           weights (or model-0000N-of-0000M.safetensors
                                                      + model.safetensors.index.json for qwen2_sharded)
  fixtures/tiny/<variant>/generation_config.json      as written by save_pretrained
  fixtures/tiny/<variant>/golden.safetensors          input_ids I64 [2, 10], logits F32 [2, 10, 256]
and
  fixtures/tiny/gguf/llama.gguf   variant `llama` in llama.cpp's GGUF convention (Q/K rows permuted)
  fixtures/tiny/gguf/qwen2.gguf   variant `qwen2` in llama.cpp's GGUF convention (with q/k/v biases)

Every model: vocab 256, hidden 64, intermediate 128, 2 layers, 4 heads, 2 kv heads (GQA),
max_position_embeddings 128. Weights are overwritten from a seeded torch.Generator:
matrices N(0, 0.2^2), norm weights 1 + 0.1 * N(0, 1) (Gemma: 0.1 * N(0, 1), it uses (1 + w)),
biases 0.2 * N(0, 1), so that a missing bias, a wrong norm offset or a transposed matrix
changes the logits.

Golden logits are computed by reloading the saved folder with
AutoModelForCausalLM.from_pretrained(dtype=float32, attn_implementation="eager") and running
input_ids with attention_mask all ones and use_cache=False. For llama_bf16 / llama_f16 the
checkpoint holds bfloat16 / float16 weights and the golden logits are those weights upcast
to float32.

config.json format: transformers 5 writes RoPE settings as one `rope_parameters` object.
Checkpoints on the Hub (Llama 3.x, Qwen2.5, Mistral ...) use the older top-level
`rope_theta` + `rope_scaling` keys, so every variant's config.json is rewritten to that older
form, EXCEPT `llama_rope_linear`, which keeps the transformers-5 `rope_parameters` form so that
both spellings are covered. The script checks that transformers reloads each rewritten config
to the same RoPE parameters and that the reloaded logits equal the in-memory model's logits.

Run from the repository root (deterministic, safe to re-run; about 30 s on 2 CPU cores):
  /work/pyref/venv/bin/python tools/make_tiny_models.py
Requirements: tools/requirements.txt. The GGUF permutation check imports
/work/shared/tools/gguf_to_hf.py (its `unpermute`); set GGUF_TO_HF to point elsewhere.
"""
import importlib.util
import json
import os
import shutil

import numpy as np
import torch
from gguf import GGUFReader, GGUFWriter, LlamaFileType
from safetensors.torch import load_file, save_file
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    GemmaConfig,
    LlamaConfig,
    MistralConfig,
    Phi3Config,
    Qwen2Config,
    Qwen3Config,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fixtures", "tiny")
GGUF_TO_HF = os.environ.get("GGUF_TO_HF", "/work/shared/tools/gguf_to_hf.py")
INPUT_SEED = 1234
BATCH, SEQ = 2, 10

COMMON = dict(
    vocab_size=256,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
    initializer_range=0.2,
    rms_norm_eps=1e-6,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=None,
)


def rope(theta: float, scaling: dict | None = None) -> dict:
    """transformers-5 `rope_parameters` for a base `theta` and an optional scaling dict."""
    params = {"rope_type": "default", "rope_theta": theta}
    if scaling is not None:
        params.update(scaling)
    return params


# name -> (seed, config class, config kwargs, save dtype, extra save_pretrained kwargs)
VARIANTS = {
    "llama": (1, LlamaConfig, dict(tie_word_embeddings=True, rope_parameters=rope(10000.0)), torch.float32, {}),
    "llama_untied_rope_llama3": (2, LlamaConfig, dict(
        tie_word_embeddings=False,
        rope_parameters=rope(500000.0, {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                        "high_freq_factor": 4.0, "original_max_position_embeddings": 16}),
    ), torch.float32, {}),
    "llama_rope_linear": (3, LlamaConfig, dict(
        tie_word_embeddings=False, rope_parameters=rope(10000.0, {"rope_type": "linear", "factor": 2.0}),
    ), torch.float32, {}),
    "llama_head_dim": (4, LlamaConfig, dict(tie_word_embeddings=False, head_dim=32, rope_parameters=rope(10000.0)),
                       torch.float32, {}),
    "llama_bf16": (5, LlamaConfig, dict(tie_word_embeddings=False, rope_parameters=rope(10000.0)), torch.bfloat16, {}),
    "llama_f16": (6, LlamaConfig, dict(tie_word_embeddings=False, rope_parameters=rope(10000.0)), torch.float16, {}),
    "mistral": (7, MistralConfig, dict(tie_word_embeddings=False, sliding_window=None, head_dim=16,
                                       rope_parameters=rope(1000000.0)), torch.float32, {}),
    "qwen2": (8, Qwen2Config, dict(tie_word_embeddings=False, rope_parameters=rope(1000000.0)), torch.float32, {}),
    "qwen2_sharded": (9, Qwen2Config, dict(tie_word_embeddings=False, rope_parameters=rope(1000000.0)),
                      torch.float32, dict(max_shard_size="200KB")),
    "qwen3": (10, Qwen3Config, dict(tie_word_embeddings=False, head_dim=32, rope_parameters=rope(1000000.0)),
              torch.float32, {}),
    "gemma": (11, GemmaConfig, dict(tie_word_embeddings=True, head_dim=16, hidden_act="gelu_pytorch_tanh",
                                    bos_token_id=2, eos_token_id=1, pad_token_id=0,
                                    rope_parameters=rope(10000.0)), torch.float32, {}),
    "phi3": (12, Phi3Config, dict(tie_word_embeddings=False, pad_token_id=0, rope_scaling=None,
                                  original_max_position_embeddings=128, sliding_window=None,
                                  rope_parameters=rope(10000.0)), torch.float32, {}),
}


def randomize(model: torch.nn.Module, seed: int, gemma_norm: bool) -> None:
    """Overwrite every parameter from a generator seeded with `seed` (independent of HF init)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if "norm" in name:
                p.copy_(0.1 * noise if gemma_norm else 1.0 + 0.1 * noise)
            else:  # matrices, embeddings and biases
                p.copy_(0.2 * noise)


def legacy_rope_config(path: str) -> None:
    """Rewrite config.json's `rope_parameters` as Hub-style `rope_theta` + `rope_scaling`."""
    cfg_path = os.path.join(path, "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    params = dict(cfg.pop("rope_parameters"))
    cfg["rope_theta"] = params.pop("rope_theta")
    partial = params.pop("partial_rotary_factor", None)
    if partial is not None:
        cfg["partial_rotary_factor"] = partial
    cfg["rope_scaling"] = None if params.get("rope_type") == "default" else params
    with open(cfg_path, "w") as f:
        json.dump(dict(sorted(cfg.items())), f, indent=2)
        f.write("\n")


def run_logits(model: torch.nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), use_cache=False)
    return out.logits.float()


def build_variant(name: str, input_ids: torch.Tensor) -> None:
    seed, cls, kwargs, save_dtype, save_kwargs = VARIANTS[name]
    path = os.path.join(OUT, name)
    shutil.rmtree(path, ignore_errors=True)
    torch.manual_seed(seed)
    config = cls(**{**COMMON, **kwargs})
    config._attn_implementation = "eager"
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager", dtype=torch.float32).eval()
    randomize(model, seed, gemma_norm=cls is GemmaConfig)
    model.to(save_dtype).save_pretrained(path, safe_serialization=True, **save_kwargs)
    if name != "llama_rope_linear":
        legacy_rope_config(path)
    if cls is GemmaConfig:  # released Gemma configs also name the activation `hidden_activation`
        with open(os.path.join(path, "config.json")) as f:
            cfg = json.load(f)
        cfg["hidden_activation"] = cfg["hidden_act"]
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump(dict(sorted(cfg.items())), f, indent=2)
            f.write("\n")

    reloaded_cfg = AutoConfig.from_pretrained(path)
    assert reloaded_cfg.rope_parameters == config.rope_parameters, (reloaded_cfg.rope_parameters,
                                                                    config.rope_parameters)
    ref = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager").eval()
    logits = run_logits(ref, input_ids)
    if save_dtype == torch.float32:  # the saved folder reproduces the in-memory model exactly
        direct = run_logits(model.float(), input_ids)
        assert torch.equal(direct, logits), (name, (direct - logits).abs().max())
    else:  # the golden model is the rounded weights upcast to float32
        for (k, a), (_, b) in zip(model.state_dict().items(), ref.state_dict().items()):
            assert torch.equal(a.float(), b), k
    if config.rope_parameters.get("rope_type", "default") != "default":
        # the scaling must matter at this size: the same weights with plain RoPE give other logits
        plain_cfg = AutoConfig.from_pretrained(path)
        plain_cfg.rope_parameters = {"rope_type": "default", "rope_theta": config.rope_parameters["rope_theta"]}
        plain = AutoModelForCausalLM.from_pretrained(path, config=plain_cfg, dtype=torch.float32,
                                                     attn_implementation="eager").eval()
        diff = (run_logits(plain, input_ids) - logits).abs().max().item()
        assert diff > 1e-2, (name, diff)
        print(f"{name}: max |logits - logits with unscaled rope| = {diff:.4f}")
    std = logits.std().item()
    assert std > 0.5, (name, std)
    save_file({"input_ids": input_ids.contiguous(), "logits": logits.contiguous()},
              os.path.join(path, "golden.safetensors"))
    files = sorted(os.listdir(path))
    print(f"{name:26s} max|logit|={logits.abs().max().item():7.4f} std={std:6.4f} "
          f"logits[0,0,:3]={[round(v, 5) for v in logits[0, 0, :3].tolist()]} files={files}")


# ---------------------------------------------------------------- GGUF

def permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp convert_hf_to_gguf.py's Q/K row permutation (HF rotate_half -> GGML interleaved RoPE)."""
    out = w.shape[0]
    return w.reshape(n_head, 2, out // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


GGUF_NAMES = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
}


def gguf_name(hf: str) -> str:
    top = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
           "lm_head.weight": "output.weight"}
    if hf in top:
        return top[hf]
    _, _, layer, *rest = hf.split(".")
    module, kind = ".".join(rest[:-1]), rest[-1]
    return f"blk.{layer}.{GGUF_NAMES[module]}.{kind}"


def write_gguf(variant: str, arch: str) -> dict[str, np.ndarray]:
    """Write fixtures/tiny/gguf/<arch>.gguf from a tiny HF folder; returns the GGUF-named arrays."""
    src = os.path.join(OUT, variant)
    with open(os.path.join(src, "config.json")) as f:
        cfg = json.load(f)
    n_head, n_kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // n_head
    weights = {k: v.float().numpy() for k, v in load_file(os.path.join(src, "model.safetensors")).items()}
    tensors = {}
    for hf, w in sorted(weights.items()):
        if arch == "llama" and hf.endswith("self_attn.q_proj.weight"):
            w = permute(w, n_head)
        if arch == "llama" and hf.endswith("self_attn.k_proj.weight"):
            w = permute(w, n_kv)
        tensors[gguf_name(hf)] = np.ascontiguousarray(w, dtype=np.float32)

    os.makedirs(os.path.join(OUT, "gguf"), exist_ok=True)
    path = os.path.join(OUT, "gguf", f"{arch}.gguf")
    writer = GGUFWriter(path, arch)
    writer.add_name(f"ferrotune tiny {variant}")
    writer.add_file_type(LlamaFileType.ALL_F32)
    writer.add_context_length(cfg["max_position_embeddings"])
    writer.add_embedding_length(cfg["hidden_size"])
    writer.add_block_count(cfg["num_hidden_layers"])
    writer.add_feed_forward_length(cfg["intermediate_size"])
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    writer.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    writer.add_rope_freq_base(cfg["rope_theta"])
    writer.add_rope_dimension_count(head_dim)
    writer.add_vocab_size(cfg["vocab_size"])
    # token_embd first, then blocks in order, output tensors last (llama.cpp's usual order)
    order = sorted(tensors, key=lambda n: (0 if n.startswith("token_embd") else 2 if n.startswith("output") else 1,
                                           int(n.split(".")[1]) if n.startswith("blk.") else 0, n))
    for n in order:
        writer.add_tensor(n, tensors[n])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"wrote {path} ({os.path.getsize(path)} bytes, {len(tensors)} tensors)")
    return tensors


def check_gguf(variant: str, arch: str) -> None:
    """Read the GGUF back, undo the permutation with gguf_to_hf.py's `unpermute`, compare to HF weights."""
    spec = importlib.util.spec_from_file_location("gguf_to_hf", GGUF_TO_HF)
    g2h = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(g2h)
    reader = GGUFReader(os.path.join(OUT, "gguf", f"{arch}.gguf"))
    n_head = g2h.field(reader, f"{arch}.attention.head_count")
    n_kv = g2h.field(reader, f"{arch}.attention.head_count_kv")
    hf = {gguf_name(k): v.float().numpy()
          for k, v in load_file(os.path.join(OUT, variant, "model.safetensors")).items()}
    assert sorted(hf) == sorted(t.name for t in reader.tensors), "tensor name sets differ"
    for t in reader.tensors:
        a = np.asarray(t.data, dtype=np.float32).reshape([int(x) for x in reversed(t.shape.tolist())])
        if arch == "llama" and t.name.endswith("attn_q.weight"):
            a = g2h.unpermute(a, n_head)
        if arch == "llama" and t.name.endswith("attn_k.weight"):
            a = g2h.unpermute(a, n_kv)
        assert np.array_equal(a, hf[t.name]), t.name
        if arch == "llama" and t.name.endswith(("attn_q.weight", "attn_k.weight")):
            assert not np.array_equal(np.asarray(t.data).reshape(a.shape), a), f"{t.name} was not permuted"
    print(f"check {arch}.gguf: {len(reader.tensors)} tensors equal to {variant}/model.safetensors"
          + (" after gguf_to_hf.unpermute (and differ before it)" if arch == "llama" else "") + ": OK")


def main() -> None:
    torch.use_deterministic_algorithms(True)
    input_ids = torch.randint(0, 256, (BATCH, SEQ), generator=torch.Generator().manual_seed(INPUT_SEED))
    print("input_ids", input_ids.tolist())
    for name in VARIANTS:
        build_variant(name, input_ids)
    write_gguf("llama", "llama")
    write_gguf("qwen2", "qwen2")
    check_gguf("llama", "llama")
    check_gguf("qwen2", "qwen2")


if __name__ == "__main__":
    main()
