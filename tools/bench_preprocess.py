"""Preprocessing throughput: LLaMA-Factory 0.9.5 `get_dataset` against `ferrotune preprocess`.

Builds a 20,000-example alpaca dataset (alpaca_en_demo repeated, cut to 20,000) in a temporary
dataset_dir with its own dataset_info.json, then tokenizes it for `stage: sft` with the smollm2
template and cutoff_len 1024:

* LLaMA-Factory (in a child process, timed around `get_dataset` only, imports and tokenizer
  loading excluded) with preprocessing_num_workers 2 and overwrite_cache, tokenizer from
  models/smollm2-f32-hf;
* ferrotune (the binary given by --bin, default target/release/ferrotune if built, else
  target/debug/ferrotune), tokenizer from models/SmolLM2-135M-Instruct.Q4_1.gguf; both its
  data-pipeline time (as it prints it) and the whole process's wall time are reported.

Run from the repository root:

    /work/pyref/lf/bin/python tools/bench_preprocess.py [--bin target/release/ferrotune] [--n 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEMO = Path(os.environ.get("LF_DATA_DIR", REPO.parent / "shared" / "data" / "llamafactory"))
HF_MODEL = REPO / "models" / "smollm2-f32-hf"
GGUF = REPO / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
CUTOFF = 1024


def _make_dataset(folder: Path, n: int) -> None:
    rows = json.loads((DEMO / "alpaca_en_demo.json").read_text())
    big = (rows * (n // len(rows) + 1))[:n]
    (folder / "alpaca_bench.json").write_text(json.dumps(big, ensure_ascii=False))
    info = {"alpaca_bench": {"file_name": "alpaca_bench.json"}}
    (folder / "dataset_info.json").write_text(json.dumps(info))


def _lf_worker(dataset_dir: str) -> None:
    """Child process: LLaMA-Factory's pipeline; prints `LF <examples> <seconds>`."""
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    args = {
        "model_name_or_path": str(HF_MODEL),
        "stage": "sft",
        "do_train": True,
        "finetuning_type": "lora",
        "output_dir": tempfile.mkdtemp(prefix="lf_bench_out_"),
        "template": "smollm2",
        "dataset": "alpaca_bench",
        "dataset_dir": dataset_dir,
        "cutoff_len": CUTOFF,
        "overwrite_cache": True,
        "preprocessing_num_workers": 2,
    }
    model_args, data_args, training_args, _, _ = get_train_args(args)
    tokenizer_module = load_tokenizer(model_args)
    template = get_template_and_fix_tokenizer(tokenizer_module["tokenizer"], data_args)
    start = time.perf_counter()
    module = get_dataset(template, model_args, data_args, training_args, "sft", **tokenizer_module)
    secs = time.perf_counter() - start
    print(f"LF {len(module['train_dataset'])} {secs:.3f}", flush=True)


def _run_lf(dataset_dir: Path) -> tuple[int, float]:
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", CUDA_VISIBLE_DEVICES="")
    with tempfile.TemporaryDirectory(prefix="lf_bench_cache_") as cache:
        env["HF_DATASETS_CACHE"] = cache
        out = subprocess.run(
            [sys.executable, __file__, "--lf-worker", str(dataset_dir)],
            cwd=REPO, env=env, check=True, capture_output=True, text=True,
        ).stdout
    line = next(l for l in out.splitlines() if l.startswith("LF "))
    _, count, secs = line.split()
    return int(count), float(secs)


def _run_ferrotune(binary: Path, dataset_dir: Path, folder: Path) -> tuple[int, float, float]:
    config = folder / "bench.yaml"
    config.write_text(
        f"model_name_or_path: {GGUF}\nstage: sft\ndo_train: true\nfinetuning_type: lora\n"
        f"template: smollm2\ndataset: alpaca_bench\ndataset_dir: {dataset_dir}\n"
        f"cutoff_len: {CUTOFF}\n"
    )
    start = time.perf_counter()
    out = subprocess.run(
        [str(binary), "preprocess", str(config)],
        cwd=REPO, check=True, capture_output=True, text=True, env=dict(os.environ, RUST_LOG="warn"),
    ).stdout
    wall = time.perf_counter() - start
    count = int(re.search(r"^(\d+) train examples", out, re.M).group(1))
    pipeline = float(re.search(r"data pipeline: ([0-9.]+) s", out).group(1))
    return count, pipeline, wall


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--lf-worker":
        _lf_worker(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", type=Path, default=None, help="ferrotune binary")
    parser.add_argument("--n", type=int, default=20000, help="number of examples")
    opts = parser.parse_args()
    binary = opts.bin
    if binary is None:
        release = REPO / "target" / "release" / "ferrotune"
        binary = release if release.exists() else REPO / "target" / "debug" / "ferrotune"
    with tempfile.TemporaryDirectory(prefix="bench_preprocess_") as tmp:
        folder = Path(tmp)
        _make_dataset(folder, opts.n)
        lf_count, lf_secs = _run_lf(folder)
        ft_count, ft_pipeline, ft_wall = _run_ferrotune(binary, folder, folder)
    if lf_count != ft_count:
        raise SystemExit(f"example counts differ: LLaMA-Factory {lf_count}, ferrotune {ft_count}")
    lf_rate = lf_count / lf_secs
    print(f"examples: {lf_count} (alpaca_en_demo repeated), template smollm2, cutoff_len {CUTOFF}")
    print(f"LLaMA-Factory 0.9.5 get_dataset (2 workers): {lf_secs:.2f} s, {lf_rate:,.0f} samples/s")
    print(f"ferrotune ({binary.relative_to(REPO) if binary.is_relative_to(REPO) else binary}) "
          f"pipeline: {ft_pipeline:.2f} s, {ft_count / ft_pipeline:,.0f} samples/s "
          f"(ratio {ft_count / ft_pipeline / lf_rate:.1f}x)")
    print(f"ferrotune whole process (tokenizer load included): {ft_wall:.2f} s, "
          f"{ft_count / ft_wall:,.0f} samples/s (ratio {ft_count / ft_wall / lf_rate:.1f}x)")


if __name__ == "__main__":
    main()
