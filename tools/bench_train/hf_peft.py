"""One HF transformers (+ PEFT) training run for tools/bench_train.py, set up as LLaMA-Factory
0.9.5 sets up the same YAML on a CPU, in a plain loop without the HF Trainer:

* model: AutoModelForCausalLM.from_pretrained(dtype="auto") (LLaMA-Factory's `torch_dtype:
  "auto"`: the checkpoint's dtype, float32 for models/smollm2-f32-hf) or, with
  --weights-dtype bf16, the base weights in bf16 (what "auto" gives for a bf16 checkpoint such
  as the original SmolLM2);
* lora: PEFT LoraConfig(r, lora_alpha, lora_dropout 0, target_modules "all-linear" (every
  nn.Linear but the output layer, as LLaMA-Factory's `lora_target: all`)), trainable
  parameters cast to float32 (LLaMA-Factory's `cast_trainable_params_to_fp32`); full: every
  parameter trainable (float32);
* --bf16: forward under torch.autocast("cpu", bfloat16), as the HF Trainer (accelerate's
  native amp) runs a `bf16: true` job;
* --gc: model.gradient_checkpointing_enable(use_reentrant=True) and
  enable_input_require_grads (LLaMA-Factory's default `use_reentrant_gc: true`);
* AdamW as the HF Trainer's default `adamw_torch_fused` (torch.optim.AdamW(fused=True),
  weight decay 0), gradient clipping at max_grad_norm 1.0;
* batches: consecutive rows of rows.json (see make_data.py), attention_mask all ones, labels =
  input_ids with pad-token positions set to -100 (DataCollatorForLanguageModeling(mlm=False),
  LLaMA-Factory's pt collator; SmolLM2's pad token is its eos token).

Prints one JSON object: per-step seconds, the losses, the measured steps' time, and
ru_maxrss of this process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--rows", required=True, help="rows.json from make_data.py")
    ap.add_argument("--finetuning-type", choices=["lora", "full"], default="lora")
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--weights-dtype", choices=["auto", "bf16"], default="auto")
    ap.add_argument("--gc", action="store_true", help="gradient checkpointing")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--lora-rank", type=int, default=8)
    ap.add_argument("--lora-alpha", type=int, default=16)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    with open(args.rows, encoding="utf-8") as f:
        data = json.load(f)
    ids = torch.tensor(data["input_ids"], dtype=torch.long)
    need = args.batch * (args.warmup + args.steps)
    if ids.shape[0] < need:
        raise SystemExit(f"hf_peft: {ids.shape[0]} rows in {args.rows}, need {need}")
    labels = ids.clone()
    if data.get("pad_token_id") is not None:
        labels[labels == data["pad_token_id"]] = -100

    dtype = "auto" if args.weights_dtype == "auto" else torch.bfloat16
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype)
    model.config.use_cache = False
    if args.finetuning_type == "lora":
        from peft import LoraConfig, get_peft_model

        cfg = LoraConfig(
            r=args.lora_rank,
            lora_alpha=args.lora_alpha,
            lora_dropout=0.0,
            target_modules="all-linear",
            bias="none",
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, cfg)
    else:
        for p in model.parameters():
            p.requires_grad_(True)
    for p in model.parameters():
        if p.requires_grad:
            p.data = p.data.to(torch.float32)
    if args.gc:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
        model.enable_input_require_grads()
    model.train()

    params = [p for p in model.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in params)
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0, fused=True)

    def autocast():
        if args.bf16:
            return torch.autocast(device_type="cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    step_s: list[float] = []
    losses: list[float] = []
    for step in range(args.warmup + args.steps):
        sl = slice(step * args.batch, (step + 1) * args.batch)
        x, y = ids[sl], labels[sl]
        t0 = time.perf_counter()
        with autocast():
            out = model(input_ids=x, attention_mask=torch.ones_like(x), labels=y)
        loss = out.loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        step_s.append(time.perf_counter() - t0)

    print(
        json.dumps(
            {
                "step_s": step_s,
                "losses": losses,
                "train_s": sum(step_s[args.warmup :]),
                "trainable_params": n_trainable,
                "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
