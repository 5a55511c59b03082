#!/usr/bin/env python3
"""Write golden LLaMA-Factory data-pipeline outputs into fixtures/data/.

For every case below this script runs LLaMA-Factory's own argument parser, tokenizer loader,
template lookup and `get_dataset` (no model, no training) over the demo datasets and writes

* `fixtures/data/<case>.yaml`  - the exact argument dict given to `get_train_args`, with
  `dataset_dir` written as the relative name `llamafactory` (the Rust tests map it to
  `<repo>/../shared/data/llamafactory`);
* `fixtures/data/<case>.jsonl` - one JSON object per row of `dataset_module["train_dataset"]`,
  in dataset order, holding the integer columns LLaMA-Factory produced (see fixtures/data/README.md).

Every case runs in its own Python process: LLaMA-Factory keeps its templates in a module-level
registry that `get_template_and_fix_tokenizer` edits in place, so one process per case keeps the
cases independent.

Run from the repository root with the environment of tools/requirements-llamafactory.txt:

    /work/pyref/lf/bin/python tools/make_data_fixtures.py            # all cases (~2-3 min)
    /work/pyref/lf/bin/python tools/make_data_fixtures.py CASE ...   # only these cases

The tokenizer is the demo model's, from the float32 HF folder `models/smollm2-f32-hf`; it is made
from the demo GGUF with /work/shared/tools/gguf_to_hf.py when missing (set GGUF_TO_HF to use
another copy of that converter, LF_DATA_DIR to use another copy of the demo datasets).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "fixtures" / "data"
MODEL_DIR = "models/smollm2-f32-hf"
GGUF = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
DATA_DIR = Path(os.environ.get("LF_DATA_DIR", REPO.parent / "shared" / "data" / "llamafactory"))
DATA_DIR_NAME = "llamafactory"

# Stage named in the config -> stage given to get_dataset (the dpo workflow loads data as "rm").
DATASET_STAGE = {"pt": "pt", "sft": "sft", "rm": "rm", "dpo": "rm", "kto": "kto", "ppo": "ppo"}


def _case(stage: str, dataset: str, template: str, cutoff_len: int, max_samples: int, **extra) -> dict:
    """The argument dict of one case, in the key order written to its YAML file."""
    args = {
        "model_name_or_path": MODEL_DIR,
        "stage": stage,
        "do_train": True,
        "finetuning_type": "lora",
        "output_dir": "/tmp/ferrotune_lf_fixture_out",
        "template": template,
        "dataset": dataset,
        "dataset_dir": DATA_DIR_NAME,
        "cutoff_len": cutoff_len,
        "max_samples": max_samples,
        "overwrite_cache": True,
        "preprocessing_num_workers": 1,
    }
    args.update(extra)
    return args


def _cases() -> dict[str, dict]:
    """All cases, in generation order (name -> argument dict)."""
    cases: dict[str, dict] = {}
    # 1. alpaca SFT through several templates, plus one truncation case.
    for template in ["smollm2", "chatml", "qwen", "default", "alpaca", "vicuna", "empty"]:
        cases[f"sft_alpaca_{template}"] = _case("sft", "alpaca_en_demo", template, 1024, 30)
    cases["sft_alpaca_smollm2_cutoff64"] = _case("sft", "alpaca_en_demo", "smollm2", 64, 30)
    # 2. identity (placeholders) and tool calling.
    cases["sft_identity_smollm2"] = _case("sft", "identity", "smollm2", 1024, 20)
    for template in ["smollm2", "qwen"]:
        cases[f"sft_glaive_toolcall_{template}"] = _case("sft", "glaive_toolcall_en_demo", template, 1024, 20)
    # 3. label masking switches.
    cases["sft_alpaca_smollm2_train_on_prompt"] = _case(
        "sft", "alpaca_en_demo", "smollm2", 1024, 30, train_on_prompt=True
    )
    cases["sft_glaive_smollm2_mask_history"] = _case(
        "sft", "glaive_toolcall_en_demo", "smollm2", 1024, 20, mask_history=True
    )
    # A template with efficient_eos (solar): multi-turn source labels start with eos.
    cases["sft_glaive_solar"] = _case("sft", "glaive_toolcall_en_demo", "solar", 1024, 20)
    # 4. pairwise (dpo and rm load the same rows).
    cases["pairwise_dpo_smollm2"] = _case("dpo", "dpo_en_demo", "smollm2", 1024, 20)
    # 5. kto.
    cases["kto_smollm2"] = _case("kto", "kto_en_demo", "smollm2", 1024, 20)
    # 6. pre-training, packing off / on / left unset (unset means on for pt, without the
    #    cutoff_len - 1 that an explicit `packing: true` applies).
    cases["pt_c4_smollm2"] = _case("pt", "c4_demo", "smollm2", 128, 50, packing=False)
    cases["pt_c4_smollm2_packing"] = _case("pt", "c4_demo", "smollm2", 128, 50, packing=True)
    cases["pt_c4_smollm2_packing_unset"] = _case("pt", "c4_demo", "smollm2", 128, 50)
    # 7. packed SFT.
    cases["sft_alpaca_smollm2_packing"] = _case("sft", "alpaca_en_demo", "smollm2", 512, 40, packing=True)
    cases["sft_alpaca_smollm2_neat_packing"] = _case(
        "sft", "alpaca_en_demo", "smollm2", 512, 40, neat_packing=True
    )
    return cases


def _yaml_scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)  # a double-quoted YAML string


def _write_yaml(path: Path, name: str, args: dict) -> None:
    lines = [
        f"# LLaMA-Factory data fixture `{name}`: written by tools/make_data_fixtures.py",
        f"# (dataset_dir `{DATA_DIR_NAME}` means ../shared/data/llamafactory beside the repository).",
    ]
    lines += [f"{key}: {_yaml_scalar(value)}" for key, value in args.items()]
    path.write_text("\n".join(lines) + "\n")


def _int_list(values) -> list[int]:
    return [int(v) for v in values]


def _rows(stage: str, dataset, tokenizer, data_args) -> list[dict]:
    """Integer columns of every row, in the order LLaMA-Factory produced them."""
    rows = []
    names = set(dataset.column_names)
    if stage == "pt":
        # The pt dataset has no labels column: LLaMA-Factory's pt workflow builds them with
        # transformers' DataCollatorForLanguageModeling(mlm=False). On a batch of one row (no
        # padding) that copies input_ids and sets -100 wherever the id equals pad_token_id.
        from transformers import DataCollatorForLanguageModeling

        collator = DataCollatorForLanguageModeling(tokenizer=tokenizer, mlm=False)
        for row in dataset:
            batch = collator([{"input_ids": row["input_ids"], "attention_mask": row["attention_mask"]}])
            rows.append(
                {
                    "input_ids": _int_list(row["input_ids"]),
                    "labels": _int_list(batch["labels"][0].tolist()),
                    "attention_mask": _int_list(row["attention_mask"]),
                }
            )
        return rows

    for row in dataset:
        if "chosen_input_ids" in names:
            out = {
                key: _int_list(row[key])
                for key in ["chosen_input_ids", "chosen_labels", "rejected_input_ids", "rejected_labels"]
            }
        elif "kto_tags" in names:
            out = {key: _int_list(row[key]) for key in ["input_ids", "labels", "kl_input_ids", "kl_labels"]}
            out["kto_tags"] = bool(row["kto_tags"])
        else:
            out = {"input_ids": _int_list(row["input_ids"]), "labels": _int_list(row["labels"])}
            if data_args.packing:
                out["attention_mask"] = _int_list(row["attention_mask"])
                out["position_ids"] = _int_list(row["position_ids"])
                if "packing_params" in names:
                    params = row["packing_params"]
                    out["sequence_boundaries"] = _int_list(params["sequence_boundaries"])
        rows.append(out)
    return rows


def _run_case(name: str) -> None:
    """Worker: run LLaMA-Factory's data pipeline for one case and write its two files."""
    args = dict(_cases()[name])
    os.chdir(REPO)  # model_name_or_path is relative to the repository root
    call_args = dict(args, dataset_dir=str(DATA_DIR))

    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    model_args, data_args, training_args, _finetuning_args, _generating_args = get_train_args(call_args)
    tokenizer_module = load_tokenizer(model_args)
    tokenizer = tokenizer_module["tokenizer"]
    template = get_template_and_fix_tokenizer(tokenizer, data_args)
    stage = DATASET_STAGE[args["stage"]]
    dataset_module = get_dataset(template, model_args, data_args, training_args, stage, **tokenizer_module)
    rows = _rows(stage, dataset_module["train_dataset"], tokenizer, data_args)
    if not rows:
        raise SystemExit(f"case {name}: LLaMA-Factory produced no rows")

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    _write_yaml(OUT_DIR / f"{name}.yaml", name, args)
    with open(OUT_DIR / f"{name}.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps(row, separators=(",", ":")) + "\n")
    print(f"wrote fixtures/data/{name}.jsonl: {len(rows)} rows")


def _ensure_model_dir() -> None:
    if (REPO / MODEL_DIR / "tokenizer.json").exists():
        return
    converter = os.environ.get("GGUF_TO_HF", "/work/shared/tools/gguf_to_hf.py")
    if not (REPO / GGUF).exists():
        raise SystemExit(f"{GGUF} is missing: run scripts/fetch_model.sh first")
    subprocess.run([sys.executable, converter, GGUF, MODEL_DIR], cwd=REPO, check=True)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        _run_case(sys.argv[2])
        return
    cases = _cases()
    wanted = sys.argv[1:] or list(cases)
    unknown = [c for c in wanted if c not in cases]
    if unknown:
        raise SystemExit(f"unknown case(s) {unknown}; known: {list(cases)}")
    if not (DATA_DIR / "dataset_info.json").exists():
        raise SystemExit(f"demo datasets not found at {DATA_DIR}: set LF_DATA_DIR")
    _ensure_model_dir()
    env = dict(os.environ)
    env.setdefault("HF_DATASETS_OFFLINE", "1")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("CUDA_VISIBLE_DEVICES", "")
    # A private datasets cache, so that overwrite_cache never touches anything shared.
    with tempfile.TemporaryDirectory(prefix="lf_fixture_cache_") as cache:
        env["HF_DATASETS_CACHE"] = cache
        for name in wanted:
            print(f"== {name}", flush=True)
            subprocess.run([sys.executable, __file__, "--worker", name], cwd=REPO, env=env, check=True)


if __name__ == "__main__":
    main()
