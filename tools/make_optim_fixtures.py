"""Reference trajectories for the optimizer (AdamW + grad clipping) and the LR schedulers.

Writes (see fixtures/optim/README.md for the full description):
  fixtures/optim/adamw.json        10 steps of torch.optim.AdamW with HF Trainer's parameter
                                   groups, clip_grad_norm_(max_norm 1.0) and a cosine schedule
  fixtures/optim/schedulers.json   the learning rate at every step of every transformers
                                   scheduler type, plus warmup-ratio -> warmup-steps cases

adamw.json: four float32 parameters with HF names (a weight, its bias, an RMSNorm weight and an
embedding), split into decay / no-decay groups by transformers' Trainer.get_decay_parameter_names
(biases and norm weights get weight_decay 0.0), exactly as Trainer.create_optimizer builds
them. Each step: set seeded random gradients, torch.nn.utils.clip_grad_norm_(all params, 1.0),
optimizer.step(), scheduler.step(), in the order of HF Trainer's inner loop. The scheduler is
transformers.get_cosine_schedule_with_warmup(num_warmup_steps=3, num_training_steps=10).

schedulers.json: for each case, transformers.get_scheduler(name, optimizer (base lr 1e-3),
num_warmup_steps, num_training_steps=20, scheduler_specific_kwargs) and the optimizer's
param_groups[0]["lr"] after k = 0..20 calls of scheduler.step().

Run from the repository root (deterministic, safe to re-run; about 2 s):
  /work/pyref/venv/bin/python tools/make_optim_fixtures.py
Requirements: tools/requirements.txt (torch, transformers).
"""
import json
import math
import os
import tempfile

import torch
from torch import nn
from transformers import Trainer, TrainingArguments, get_cosine_schedule_with_warmup, get_scheduler

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fixtures", "optim")

LR, BETAS, EPS, WEIGHT_DECAY, MAX_GRAD_NORM = 1e-3, (0.9, 0.999), 1e-8, 0.01, 1.0
ADAM_STEPS, ADAM_WARMUP = 10, 3
# Per-step gradient scale: total pre-clip norms from ~0.3 to ~3, so some steps clip, some not.
GRAD_SCALES = [0.3, 0.05, 0.1, 0.4, 0.15, 0.08, 0.25, 0.12, 0.5, 0.06]

SCHED_STEPS, SCHED_WARMUP = 20, 4


class TinyRMSNorm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))


class TinyAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.q_proj = nn.Linear(3, 4, bias=True)


class TinyLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.self_attn = TinyAttention()
        self.input_layernorm = TinyRMSNorm(3)


class TinyModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed_tokens = nn.Embedding(5, 3)
        self.layers = nn.ModuleList([TinyLayer()])


class TinyLM(nn.Module):
    """Only its parameter names matter: model.embed_tokens.weight [5, 3],
    model.layers.0.self_attn.q_proj.weight [4, 3], ...q_proj.bias [4],
    model.layers.0.input_layernorm.weight [3]."""

    def __init__(self):
        super().__init__()
        self.model = TinyModel()


def floats(t: torch.Tensor):
    """Nested lists of Python floats; float32 -> float64 is exact and repr round-trips it."""
    return t.detach().tolist()


def make_adamw() -> dict:
    torch.manual_seed(0)
    model = TinyLM()
    gen = torch.Generator().manual_seed(2024)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("layernorm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))

    decay_names = set(Trainer.get_decay_parameter_names(None, model))
    named = list(model.named_parameters())
    groups = [
        {"params": [p for n, p in named if n in decay_names], "weight_decay": WEIGHT_DECAY},
        {"params": [p for n, p in named if n not in decay_names], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=LR, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY)
    scheduler = get_cosine_schedule_with_warmup(optimizer, num_warmup_steps=ADAM_WARMUP, num_training_steps=ADAM_STEPS)

    params = [{"name": n, "shape": list(p.shape), "decay": n in decay_names, "init": floats(p)} for n, p in named]
    steps = []
    for step, scale in enumerate(GRAD_SCALES):
        grads = {n: scale * torch.randn(p.shape, generator=gen) for n, p in named}
        for n, p in named:
            p.grad = grads[n].clone()
        lr = optimizer.param_groups[0]["lr"]
        assert all(g["lr"] == lr for g in optimizer.param_groups)
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM).item()
        clip_coef = min(MAX_GRAD_NORM / (norm + 1e-6), 1.0)
        optimizer.step()
        scheduler.step()
        steps.append(
            {
                "step": step + 1,
                "lr": lr,
                "grad_norm": norm,
                "clipped": norm > MAX_GRAD_NORM,
                "grads": {n: floats(grads[n]) for n, _ in named},
                "params": {n: floats(p) for n, p in named},
                "exp_avg": {n: floats(optimizer.state[p]["exp_avg"]) for n, p in named},
                "exp_avg_sq": {n: floats(optimizer.state[p]["exp_avg_sq"]) for n, p in named},
            }
        )
        print(f"adamw step {step + 1}: lr {lr:.6e} grad_norm {norm:.6f} clip_coef {clip_coef:.6f}")

    fused_diff = fused_vs_reference(named, params, steps, decay_names)
    print(f"adamw: fused=True vs default implementation, max |param diff| over all steps {fused_diff:.1e}")
    return {
        "optimizer": "torch.optim.AdamW",
        "implementation": "torch default on CPU (single-tensor loop, foreach=False, fused=False)",
        "dtype": "float32",
        "lr": LR,
        "betas": list(BETAS),
        "eps": EPS,
        "weight_decay": WEIGHT_DECAY,
        "max_grad_norm": MAX_GRAD_NORM,
        "lr_scheduler_type": "cosine",
        "num_warmup_steps": ADAM_WARMUP,
        "num_training_steps": ADAM_STEPS,
        "params": params,
        "steps": steps,
    }


def fused_vs_reference(named, params, steps, decay_names) -> float:
    """Replays the same gradients through AdamW(fused=True), HF's default optim
    ("adamw_torch_fused" for torch >= 2.8), and returns the largest parameter difference."""
    ps = {p["name"]: nn.Parameter(torch.tensor(p["init"], dtype=torch.float32)) for p in params}
    groups = [
        {"params": [ps[n] for n, _ in named if n in decay_names], "weight_decay": WEIGHT_DECAY},
        {"params": [ps[n] for n, _ in named if n not in decay_names], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=LR, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY, fused=True)
    sched = get_cosine_schedule_with_warmup(opt, num_warmup_steps=ADAM_WARMUP, num_training_steps=ADAM_STEPS)
    worst = 0.0
    for s in steps:
        for n in ps:
            ps[n].grad = torch.tensor(s["grads"][n], dtype=torch.float32)
        torch.nn.utils.clip_grad_norm_(list(ps.values()), MAX_GRAD_NORM)
        opt.step()
        sched.step()
        for n in ps:
            worst = max(worst, (ps[n].detach() - torch.tensor(s["params"][n])).abs().max().item())
    return worst


def lrs_of(name, num_warmup_steps, num_training_steps, kwargs, metrics=None):
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=LR)
    sched = get_scheduler(
        name,
        opt,
        num_warmup_steps=num_warmup_steps,
        num_training_steps=num_training_steps,
        scheduler_specific_kwargs=dict(kwargs) if kwargs else None,
    )
    lrs = [opt.param_groups[0]["lr"]]
    for k in range(num_training_steps):
        opt.step()  # no gradients: changes nothing, keeps torch's step-order check quiet
        if metrics is not None:
            sched.step(metrics[k])
        else:
            sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    return lrs


def make_schedulers() -> dict:
    W, N = SCHED_WARMUP, SCHED_STEPS
    specs = [
        ("linear", "linear", W, {}),
        ("cosine", "cosine", W, {}),
        ("cosine_with_restarts_2", "cosine_with_restarts", W, {"num_cycles": 2}),
        ("polynomial_power1", "polynomial", W, {"power": 1.0, "lr_end": 1e-7}),
        ("polynomial_power2", "polynomial", W, {"power": 2.0, "lr_end": 1e-7}),
        ("constant", "constant", W, {}),
        ("constant_with_warmup", "constant_with_warmup", W, {}),
        # get_wsd_schedule has no default for num_decay_steps (LLaMA-Factory passes
        # lr_scheduler_kwargs through unchanged, so a user must give it); defaults otherwise:
        # warmup_type "linear", decay_type "cosine", min_lr_ratio 0, num_cycles 0.5,
        # num_stable_steps = num_training_steps - warmup - decay.
        ("warmup_stable_decay", "warmup_stable_decay", 3, {"num_decay_steps": 6}),
        (
            "warmup_stable_decay_linear_min_lr",
            "warmup_stable_decay",
            W,
            {"num_decay_steps": 5, "warmup_type": "cosine", "decay_type": "linear", "min_lr_ratio": 0.1},
        ),
        (
            "warmup_stable_decay_1sqrt_stable_given",
            "warmup_stable_decay",
            W,
            {"num_decay_steps": 8, "num_stable_steps": 6, "warmup_type": "1-sqrt", "decay_type": "1-sqrt"},
        ),
        ("inverse_sqrt", "inverse_sqrt", W, {}),
        ("inverse_sqrt_timescale10", "inverse_sqrt", W, {"timescale": 10}),
        ("cosine_with_min_lr", "cosine_with_min_lr", W, {"min_lr_rate": 0.1}),
        ("cosine_warmup_with_min_lr", "cosine_warmup_with_min_lr", W, {"min_lr_rate": 0.1}),
    ]
    cases = []
    for case_name, name, warmup, kwargs in specs:
        lrs = lrs_of(name, warmup, N, kwargs)
        cases.append(
            {
                "name": case_name,
                "lr_scheduler_type": name,
                "num_warmup_steps": warmup,
                "num_training_steps": N,
                "lr_scheduler_kwargs": kwargs,
                "lrs": lrs,
            }
        )
        print(f"{case_name}: {[f'{v:.3e}' for v in lrs[:6]]} ... {lrs[-1]:.3e}")

    # ReduceLROnPlateau ignores warmup and steps on an evaluation metric, not on every step.
    # Default kwargs (mode "min", factor 0.1, patience 10, threshold 1e-4 "rel", cooldown 0,
    # min_lr 0, eps 1e-8): 0.79995 is NOT an improvement on 0.8 (needs < 0.8 * (1 - 1e-4)).
    flat = [1.0, 0.9, 0.8, 0.8, 0.79995] + [0.8] * 15
    bumpy = [1.0, 0.9, 0.8, 0.8, 0.8, 0.8, 0.79995, 0.7, 0.75, 0.72, 0.71, 0.70, 0.7, 0.69, 0.6993, 0.70, 0.71,
             0.72, 0.5, 0.5]
    for case_name, kwargs, plateau_metrics in [
        ("reduce_lr_on_plateau_default", {}, flat),
        ("reduce_lr_on_plateau_patience2", {"patience": 2, "factor": 0.5}, bumpy),
    ]:
        lrs = lrs_of("reduce_lr_on_plateau", None, N, kwargs, metrics=plateau_metrics)
        cases.append(
            {
                "name": case_name,
                "lr_scheduler_type": "reduce_lr_on_plateau",
                "num_warmup_steps": None,
                "num_training_steps": N,
                "lr_scheduler_kwargs": kwargs,
                "metrics": plateau_metrics,
                "lrs": lrs,
            }
        )
        print(f"{case_name}: {[f'{v:.3e}' for v in lrs]}")

    # transformers 5 has no separate warmup_ratio argument: TrainingArguments.warmup_steps < 1 is
    # a ratio, converted by get_warmup_steps as ceil(num_training_steps * ratio) in float64.
    ratio_cases = []
    for ratio, steps, name in [(0.1, 20, "cosine"), (0.03, 20, "linear"), (0.07, 100, "linear")]:
        with tempfile.TemporaryDirectory() as tmp:
            args = TrainingArguments(output_dir=tmp, warmup_steps=ratio, report_to=[])
            warmup = args.get_warmup_steps(steps)
        assert warmup == math.ceil(steps * ratio)
        lrs = lrs_of(name, warmup, steps, {})
        ratio_cases.append(
            {
                "warmup_ratio": ratio,
                "num_training_steps": steps,
                "num_warmup_steps": warmup,
                "lr_scheduler_type": name,
                "lrs": lrs,
            }
        )
        print(f"warmup_ratio {ratio} of {steps} steps -> {warmup} warmup steps")
    return {
        "base_lr": LR,
        "lrs_definition": "lrs[k] = optimizer.param_groups[0]['lr'] after k scheduler.step() calls "
        "(k = 0..num_training_steps); optimizer step k (0-based) uses lrs[k]",
        "cases": cases,
        "warmup_ratio_cases": ratio_cases,
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    with open(os.path.join(OUT, "adamw.json"), "w") as f:
        json.dump(make_adamw(), f, indent=1)
        f.write("\n")
    with open(os.path.join(OUT, "schedulers.json"), "w") as f:
        json.dump(make_schedulers(), f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
