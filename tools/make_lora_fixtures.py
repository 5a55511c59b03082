"""Reference gradients of LoRA / DoRA adapters and of full fine-tuning on the tiny models.

Writes, for every case in LORA_CASES (see fixtures/lora/README.md for the full description):
  fixtures/lora/<case>/case.json                  base folder, PEFT config, input_ids, labels, loss
  fixtures/lora/<case>/adapter_config.json        exactly as PEFT's save_pretrained writes it
  fixtures/lora/<case>/adapter_init.safetensors   PEFT's adapter_model.safetensors BEFORE backward
  fixtures/lora/<case>/grads.safetensors          d loss / d tensor, same names as adapter_init
for every case in FULL_CASES:
  fixtures/lora/full_<variant>/case.json          as above without "peft_config"
  fixtures/lora/full_<variant>/grads.safetensors  d loss / d weight for every weight (HF names)
and a PEFT-made adapter for loading interop:
  fixtures/lora/peft_made_llama/adapter_model.safetensors + adapter_config.json
  fixtures/lora/peft_made_llama/logits.safetensors  logits F32 [2, 10, 256] of the adapted model

Procedure per LoRA case: load fixtures/tiny/<variant> in float32 with eager attention, wrap it
with peft.get_peft_model(LoraConfig(task_type="CAUSAL_LM", lora_dropout=0.0, bias="none", ...))
under torch.manual_seed(SEED) (PEFT initializes lora_A with kaiming-uniform from torch's global
generator, lora_B with zeros and the DoRA magnitude with the row norms of the base weight),
then overwrite every lora_B with 0.1 * N(0, 1) from a seeded torch.Generator so that every
lora_A receives a gradient. The DoRA magnitude keeps PEFT's initial value ||W||_row (computed
while B was still zero; the script asserts it). The adapter is saved with save_pretrained; the
loss is model(input_ids, labels=labels).loss (transformers shifts labels by one and averages
over the non -100 targets) and the gradients of all trainable tensors after .backward() are
renamed with peft.get_peft_model_state_dict, the function save_pretrained itself uses, so that
grads.safetensors and adapter_init.safetensors have the same key set.

Checks: the saved adapter reloaded into a fresh PeftModel gives the same loss and gradients;
a central finite difference of the loss along a unit direction matches the directional
derivative of the recorded gradients to 1e-3 relative (for DoRA only along the magnitude direction: PEFT
detaches the weight norm ||W + s*B@A||_row in the DoRA forward, following section 4.3 of the
DoRA paper, so its lora_A / lora_B gradients are NOT the derivatives of the loss function; the
script prints the size of that difference and asserts that it is there). The finite
difference runs in float32 (transformers casts to float32 inside RMSNorm, RoPE and the loss, so
a float64 model is not float64 throughout) with a direction that is half the gradient, half
seeded noise, and step 1e-3.

Run from the repository root (deterministic, safe to re-run; about 10 s on 2 CPU cores):
  /work/pyref/venv/bin/python tools/make_lora_fixtures.py
Requirements: tools/requirements.txt (torch, transformers, safetensors, peft).
"""
import json
import os
import re
import shutil
import sys
import tempfile

import peft
import torch
from peft import LoraConfig, PeftModel, get_peft_model, get_peft_model_state_dict
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fixtures", "lora")
SEED = 4242
B_SEED = 777

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
PHI3_LINEAR = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]

# case name -> (variant, LoraConfig keyword arguments)
LORA_CASES = {
    "lora_llama": ("llama", dict(r=4, lora_alpha=8, target_modules=ALL_LINEAR)),
    "lora_llama_qv_rslora": (
        "llama",
        dict(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], use_rslora=True),
    ),
    "dora_llama": ("llama", dict(r=4, lora_alpha=8, target_modules=ALL_LINEAR, use_dora=True)),
    "lora_qwen2": ("qwen2", dict(r=4, lora_alpha=8, target_modules=ALL_LINEAR)),
    "lora_phi3": ("phi3", dict(r=4, lora_alpha=8, target_modules=PHI3_LINEAR)),
    "lora_llama_modules_to_save": (
        "llama_untied_rope_llama3",
        dict(
            r=4,
            lora_alpha=8,
            target_modules=["q_proj", "v_proj"],
            modules_to_save=["embed_tokens", "lm_head"],
        ),
    ),
}
FULL_CASES = ["llama", "qwen3"]
PEFT_MADE = ("peft_made_llama", "llama", dict(r=4, lora_alpha=8, target_modules=ALL_LINEAR))


def load_base(variant: str):
    """The tiny model in float32 with eager attention, loaded by a path relative to the repo
    root so that adapter_config.json records `fixtures/tiny/<variant>`, not a machine path."""
    model = AutoModelForCausalLM.from_pretrained(
        os.path.join("fixtures", "tiny", variant), dtype=torch.float32, attn_implementation="eager"
    )
    model.config.use_cache = False
    return model


def golden_input_ids(variant: str) -> torch.Tensor:
    return load_file(os.path.join(ROOT, "fixtures", "tiny", variant, "golden.safetensors"))["input_ids"]


def make_labels(input_ids: torch.Tensor) -> torch.Tensor:
    """Same ids; first 3 positions of each row and the last 2 of row 1 ignored (-100)."""
    labels = input_ids.clone()
    labels[:, :3] = -100
    labels[1, -2:] = -100
    return labels


def peft_config_json(kwargs: dict) -> dict:
    return {
        "r": kwargs["r"],
        "lora_alpha": kwargs["lora_alpha"],
        "lora_dropout": 0.0,
        "target_modules": list(kwargs["target_modules"]),
        "use_rslora": kwargs.get("use_rslora", False),
        "use_dora": kwargs.get("use_dora", False),
        "modules_to_save": kwargs.get("modules_to_save"),
        "bias": "none",
    }


def lora_config(kwargs: dict, **extra) -> LoraConfig:
    return LoraConfig(task_type="CAUSAL_LM", lora_dropout=0.0, bias="none", **kwargs, **extra)


def save_adapter(model, case_dir: str, weights_name: str) -> dict:
    """save_pretrained into a temp dir; copy adapter_model.safetensors (as `weights_name`) and
    adapter_config.json into case_dir (the model-card README.md PEFT also writes is dropped).
    Returns the saved tensors."""
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        shutil.copyfile(os.path.join(tmp, "adapter_model.safetensors"), os.path.join(case_dir, weights_name))
        shutil.copyfile(os.path.join(tmp, "adapter_config.json"), os.path.join(case_dir, "adapter_config.json"))
    return load_file(os.path.join(case_dir, weights_name))


def loss_and_grads(model, input_ids, labels) -> tuple[float, dict]:
    """Loss of one forward/backward pass and {parameter name: grad} of the trainable tensors."""
    model.zero_grad(set_to_none=True)
    out = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), labels=labels, use_cache=False)
    out.loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert all(g is not None for g in grads.values())
    return out.loss.item(), grads


def total_norm(tensors: dict) -> float:
    return torch.sqrt(sum((t.double() ** 2).sum() for t in tensors.values())).item()


def directional_check(model, input_ids, labels, names, grads_by_param, tag):
    """Central finite difference of the float32 loss along a seeded random unit direction over
    `names` (parameter names), half along the recorded gradient, vs. the directional derivative <grad, d> of the recorded
    gradients. (A float64 check is not possible through transformers: its RMSNorm, RoPE and
    loss code cast to float32.) Step 1e-3 keeps float32 rounding of the loss (~1e-6) well below
    the derivative; returns (analytic, finite_difference)."""
    params = dict(model.named_parameters())
    gen = torch.Generator().manual_seed(99)
    noise = {n: torch.randn(params[n].shape, generator=gen, dtype=torch.float64) for n in names}
    grad = {n: grads_by_param[n].double() for n in names}
    # d = unit(unit(grad) + unit(noise)): a derivative of about |grad| / sqrt(2), not ~0.
    gn, nn_ = total_norm(grad), total_norm(noise)
    direction = {n: grad[n] / gn + noise[n] / nn_ for n in names}
    norm = total_norm(direction)
    direction = {n: d / norm for n, d in direction.items()}
    analytic = sum((grads_by_param[n].double() * direction[n]).sum() for n in names).item()
    eps = 1e-3
    original = {n: params[n].detach().clone() for n in names}

    def loss_at(sign):
        with torch.no_grad():
            for n in names:
                params[n].copy_((original[n].double() + sign * eps * direction[n]).float())
            value = model(input_ids=input_ids, labels=labels, use_cache=False).loss.double().item()
            for n in names:
                params[n].copy_(original[n])
        return value

    fd = (loss_at(1.0) - loss_at(-1.0)) / (2 * eps)
    print(f"  [{tag}] directional derivative: analytic {analytic:.7f} finite-diff {fd:.7f}"
          f" (abs diff {abs(analytic - fd):.1e})")
    return analytic, fd


def fd_ok(analytic, fd):
    return abs(analytic - fd) < 1e-3 * max(abs(fd), 0.1)


def write_case_json(case_dir, base, peft_cfg, input_ids, labels, loss, grad_norm):
    case = {"base": f"tiny/{base}"}
    if peft_cfg is not None:
        case["peft_config"] = peft_cfg
    case.update(
        {
            "input_ids": input_ids.tolist(),
            "labels": labels.tolist(),
            "loss": loss,
            "grad_norm": grad_norm,
        }
    )
    text = json.dumps(case, indent=1)
    # One line per integer row (input_ids / labels) instead of one line per integer.
    text = re.sub(r"\[[\s\d,-]+\]", lambda m: json.dumps(json.loads(m.group(0))), text)
    with open(os.path.join(case_dir, "case.json"), "w") as f:
        f.write(text + "\n")


def make_lora_case(name: str, variant: str, kwargs: dict):
    case_dir = os.path.join(OUT, name)
    os.makedirs(case_dir, exist_ok=True)
    input_ids = golden_input_ids(variant)
    labels = make_labels(input_ids)

    torch.manual_seed(SEED)
    model = get_peft_model(load_base(variant), lora_config(kwargs))
    model.train()

    # lora_B <- 0.1 * N(0, 1), seeded, in parameter order; DoRA magnitude checked = ||W||_row.
    gen = torch.Generator().manual_seed(B_SEED)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if ".lora_B." in pname:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
        if kwargs.get("use_dora"):
            for mname, module in model.named_modules():
                if hasattr(module, "lora_magnitude_vector") and "default" in module.lora_magnitude_vector:
                    mag = module.lora_magnitude_vector["default"].weight
                    expect = torch.linalg.norm(module.get_base_layer().weight, dim=1)
                    assert torch.equal(mag, expect), mname

    saved = save_adapter(model, case_dir, "adapter_init.safetensors")
    loss, grads_by_param = loss_and_grads(model, input_ids, labels)
    grads = get_peft_model_state_dict(model, state_dict=grads_by_param)
    assert set(grads) == set(saved), (sorted(set(grads) ^ set(saved)))
    for k in saved:
        assert grads[k].shape == saved[k].shape, k
        assert grads[k].abs().max() > 0, f"{name}: zero gradient for {k}"
    grads = {k: v.contiguous() for k, v in grads.items()}
    save_file(grads, os.path.join(case_dir, "grads.safetensors"), metadata={"format": "pt"})
    gnorm = total_norm(grads)
    write_case_json(case_dir, variant, peft_config_json(kwargs), input_ids, labels, loss, gnorm)
    print(f"{name}: loss {loss:.6f}, {len(grads)} tensors, grad norm {gnorm:.6f}")

    # Reload check: saved adapter into a fresh PeftModel -> same loss and gradients.
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(os.path.join(case_dir, "adapter_init.safetensors"), os.path.join(tmp, "adapter_model.safetensors"))
        shutil.copyfile(os.path.join(case_dir, "adapter_config.json"), os.path.join(tmp, "adapter_config.json"))
        fresh = PeftModel.from_pretrained(load_base(variant), tmp, is_trainable=True)
    fresh.train()
    loss2, g2 = loss_and_grads(fresh, input_ids, labels)
    g2 = get_peft_model_state_dict(fresh, state_dict=g2)
    assert set(g2) == set(grads)
    max_diff = max((g2[k] - grads[k]).abs().max().item() for k in grads)
    print(f"  reload: loss {loss2:.6f} (diff {abs(loss2 - loss):.1e}), grads max abs diff {max_diff:.1e}")
    assert abs(loss2 - loss) < 1e-6 and max_diff < 1e-6

    # Finite-difference check (on the reloaded model, which is then discarded).
    trainable = [n for n, p in fresh.named_parameters() if p.requires_grad]
    if kwargs.get("use_dora"):
        mags = [n for n in trainable if "lora_magnitude_vector" in n]
        analytic, fd = directional_check(fresh, input_ids, labels, mags, grads_by_param, "magnitude only")
        assert fd_ok(analytic, fd)
        ab = [n for n in trainable if "lora_magnitude_vector" not in n]
        analytic, fd = directional_check(fresh, input_ids, labels, ab, grads_by_param, "lora_A/B (norm detached)")
        print(f"  DoRA: PEFT's lora_A/B gradients differ from the true derivative by"
              f" {abs(analytic - fd) / abs(fd):.1%} along that direction (detached weight norm)")
        assert not fd_ok(analytic, fd), "expected the detached norm to change the lora_A/B gradients"
    else:
        analytic, fd = directional_check(fresh, input_ids, labels, trainable, grads_by_param, "all")
        assert fd_ok(analytic, fd)


def make_full_case(variant: str):
    name = f"full_{variant}"
    case_dir = os.path.join(OUT, name)
    os.makedirs(case_dir, exist_ok=True)
    input_ids = golden_input_ids(variant)
    labels = make_labels(input_ids)
    model = load_base(variant)
    model.train()
    loss, grads = loss_and_grads(model, input_ids, labels)
    with safe_open(os.path.join(ROOT, "fixtures", "tiny", variant, "model.safetensors"), "pt") as f:
        file_keys = set(f.keys())
    assert set(grads) == file_keys, sorted(set(grads) ^ file_keys)
    grads = {k: v.contiguous() for k, v in grads.items()}
    save_file(grads, os.path.join(case_dir, "grads.safetensors"), metadata={"format": "pt"})
    gnorm = total_norm(grads)
    write_case_json(case_dir, variant, None, input_ids, labels, loss, gnorm)
    print(f"{name}: loss {loss:.6f}, {len(grads)} tensors, grad norm {gnorm:.6f}")
    analytic, fd = directional_check(model, input_ids, labels, list(grads), grads, "all")
    assert fd_ok(analytic, fd)


def make_peft_made():
    name, variant, kwargs = PEFT_MADE
    case_dir = os.path.join(OUT, name)
    os.makedirs(case_dir, exist_ok=True)
    input_ids = golden_input_ids(variant)
    torch.manual_seed(SEED + 1)
    # init_lora_weights=False: A and B keep nn.Linear's default (kaiming-uniform) init, so B != 0.
    model = get_peft_model(load_base(variant), lora_config(kwargs, init_lora_weights=False))
    model.eval()
    save_adapter(model, case_dir, "adapter_model.safetensors")
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), use_cache=False).logits
    save_file({"logits": logits.contiguous()}, os.path.join(case_dir, "logits.safetensors"), metadata={"format": "pt"})

    fresh = PeftModel.from_pretrained(load_base(variant), case_dir)
    fresh.eval()
    with torch.no_grad():
        again = fresh(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), use_cache=False).logits
    base_logits = load_file(os.path.join(ROOT, "fixtures", "tiny", variant, "golden.safetensors"))["logits"]
    reload_diff = (again - logits).abs().max().item()
    print(f"{name}: logits[0,0,:5] {[round(v, 6) for v in logits[0, 0, :5].tolist()]}, reload max diff "
          f"{reload_diff:.1e}, max |adapted - base| {(logits - base_logits).abs().max().item():.3f}")
    assert reload_diff < 1e-6
    # A merged copy must give the same logits up to float32 rounding.
    merged = fresh.merge_and_unload()
    with torch.no_grad():
        m = merged(input_ids=input_ids, use_cache=False).logits
    print(f"  merged vs adapted max diff {(m - logits).abs().max().item():.1e}")


def main():
    # PEFT stores target_modules as a set and writes it in set order, which depends on Python's
    # string hash seed: pin it (by re-executing) so adapter_config.json is byte-identical.
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})
    os.chdir(ROOT)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    print(f"peft {peft.__version__}, torch {torch.__version__}")
    for name, (variant, kwargs) in LORA_CASES.items():
        make_lora_case(name, variant, kwargs)
    for variant in FULL_CASES:
        make_full_case(variant)
    make_peft_made()


if __name__ == "__main__":
    main()
