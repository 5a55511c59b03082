"""Decode speed: ferrotune against llama.cpp (llama-cpp-python) and transformers' generate.

One prompt (a ChatML story request, the same text for every engine), greedy decoding, 128 new
tokens, 2 threads (--threads), one process per engine and model:

* ferrotune: `crates/ferrotune-infer/examples/bench_decode.rs` on each GGUF, weights kept
  quantized (`load_gguf_quantized`; with --f32 also dequantized to f32), RAYON_NUM_THREADS
  set to --threads;
* llama.cpp: llama-cpp-python on the same GGUF files, n_threads = n_threads_batch = --threads,
  `Llama.generate` with top_k=1 (it never stops at the end-of-sequence token);
* transformers: `generate(do_sample=False, min_new_tokens=128)` on the f32 HF conversion
  (models/smollm2-f32-hf), torch.set_num_threads(--threads).

Decode tokens/s counts the tokens after the first (the first comes out of the prefill) over the
time from the first token to the last, for every engine. Each engine runs --rounds times
(interleaved, after one warm-up generation each), and the best round counts: on a shared machine
the best round is the one least disturbed by other work. Prints one JSON object per run, then a
table with the ratios ferrotune / llama.cpp and ferrotune / transformers.

The GGUFs: the demo Q4_1 file, and a Q8_0 file that `ferrotune export` writes from it
(export_format gguf, export_quantization q8_0) into a temporary folder unless --q8 names one.

Run from the repository root after `cargo build -p ferrotune-infer --example bench_decode` (and
`cargo build -p ferrotune --bin ferrotune` for the Q8_0 export):

    python3 tools/bench_decode.py [--rounds 2] [--new-tokens 128] [--f32] \\
        [--torch-python /work/pyref/venv/bin/python] [--llama-python /work/pyref/llama/bin/python]

llama-cpp-python is installed from source by tools/requirements-bench.txt (see there).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROMPT = (
    "<|im_start|>user\nWrite a long story about a little robot who explores a quiet city at "
    "night.<|im_end|>\n<|im_start|>assistant\n"
)


def decode_rate(times: list[float]) -> float:
    """Tokens per second between the first and the last token timestamps."""
    if len(times) < 2 or times[-1] <= times[0]:
        return 0.0
    return (len(times) - 1) / (times[-1] - times[0])


def worker_llama_cpp(gguf: str, new_tokens: int, threads: int) -> dict:
    import llama_cpp

    llm = llama_cpp.Llama(
        model_path=gguf,
        n_ctx=1024,
        n_threads=threads,
        n_threads_batch=threads,
        verbose=False,
    )
    prompt = llm.tokenize(PROMPT.encode(), add_bos=False, special=True)

    def run(n: int) -> tuple[list[int], list[float], float]:
        ids, times = [], []
        start = time.perf_counter()
        gen = llm.generate(prompt, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0, reset=True)
        for tok in gen:
            times.append(time.perf_counter())
            ids.append(tok)
            if len(ids) >= n:
                break
        return ids, times, start

    run(4)
    ids, times, start = run(new_tokens)
    return {
        "engine": "llama.cpp",
        "model": gguf,
        "weights": "gguf",
        "threads": threads,
        "version": llama_cpp.__version__,
        "prompt_tokens": len(prompt),
        "prefill_tokens_per_second": len(prompt) / (times[0] - start),
        "generated_tokens": len(ids),
        "decode_tokens": len(ids) - 1,
        "decode_tokens_per_second": decode_rate(times),
        "first_token_ids": ids[:16],
    }


def worker_transformers(hf_dir: str, new_tokens: int, threads: int) -> dict:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.generation.streamers import BaseStreamer

    torch.set_num_threads(threads)
    tok = AutoTokenizer.from_pretrained(hf_dir)
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    enc = tok(PROMPT, return_tensors="pt", add_special_tokens=False)

    class Clock(BaseStreamer):
        """Timestamps every new token (`put` first receives the prompt)."""

        def __init__(self) -> None:
            self.times: list[float] = []
            self.ids: list[int] = []
            self.prompt_seen = False

        def put(self, value) -> None:
            if not self.prompt_seen:
                self.prompt_seen = True
                return
            self.times.append(time.perf_counter())
            self.ids.extend(int(v) for v in value.flatten())

        def end(self) -> None:
            pass

    def run(n: int) -> tuple[Clock, float]:
        clock = Clock()
        start = time.perf_counter()
        with torch.inference_mode():
            model.generate(
                **enc,
                max_new_tokens=n,
                min_new_tokens=n,
                do_sample=False,
                streamer=clock,
                pad_token_id=tok.pad_token_id or tok.eos_token_id,
            )
        return clock, start

    run(4)
    clock, start = run(new_tokens)
    return {
        "engine": "transformers",
        "model": hf_dir,
        "weights": "f32",
        "threads": threads,
        "version": f"transformers {transformers.__version__}, torch {torch.__version__}",
        "prompt_tokens": int(enc["input_ids"].shape[1]),
        "prefill_tokens_per_second": int(enc["input_ids"].shape[1]) / (clock.times[0] - start),
        "generated_tokens": len(clock.ids),
        "decode_tokens": len(clock.ids) - 1,
        "decode_tokens_per_second": decode_rate(clock.times),
        "first_token_ids": clock.ids[:16],
    }


def run_json(cmd: list[str], env: dict | None = None) -> list[dict]:
    """Runs a command and parses every stdout line that is a JSON object."""
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def make_q8_0(out_dir: Path, ferrotune_bin: Path) -> Path:
    """`ferrotune export` of the demo Q4_1 GGUF as a Q8_0 GGUF."""
    cfg = out_dir / "export_q8_0.yaml"
    cfg.write_text(
        "model_name_or_path: models/SmolLM2-135M-Instruct.Q4_1.gguf\n"
        "template: chatml\n"
        f"export_dir: {out_dir / 'q8_0'}\n"
        "export_format: gguf\n"
        "export_quantization: q8_0\n"
    )
    subprocess.run([str(ferrotune_bin), "export", str(cfg)], cwd=ROOT, check=True,
                   capture_output=True)
    return out_dir / "q8_0" / "model-q8_0.gguf"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worker", choices=["llama_cpp", "transformers"], help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="threads of every engine")
    ap.add_argument("--f32", action="store_true", help="also run ferrotune with f32 weights")
    ap.add_argument("--q4", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--q8", help="a Q8_0 GGUF (default: exported by ferrotune to a temp folder)")
    ap.add_argument("--hf", default="models/smollm2-f32-hf")
    ap.add_argument("--bench-bin", default="target/debug/examples/bench_decode")
    ap.add_argument("--ferrotune-bin", default="target/debug/ferrotune")
    ap.add_argument("--torch-python", default="/work/pyref/venv/bin/python")
    ap.add_argument("--llama-python", default="/work/pyref/llama/bin/python")
    args = ap.parse_args()

    if args.worker == "llama_cpp":
        print(json.dumps(worker_llama_cpp(args.model, args.new_tokens, args.threads)))
        return 0
    if args.worker == "transformers":
        print(json.dumps(worker_transformers(args.model, args.new_tokens, args.threads)))
        return 0

    tmp = tempfile.TemporaryDirectory(prefix="ferrotune-bench-")
    q8 = args.q8 or str(make_q8_0(Path(tmp.name), ROOT / args.ferrotune_bin))
    ggufs = [args.q4, q8]
    threads = str(args.threads)
    env = dict(os.environ, RAYON_NUM_THREADS=threads, OMP_NUM_THREADS=threads)
    me = str(Path(__file__).resolve())
    n = str(args.new_tokens)
    jobs = [["ferrotune", [args.bench_bin, "--max-new-tokens", n, "--prompt", PROMPT]
             + (["--f32"] if args.f32 else []) + ggufs]]
    jobs += [["llama.cpp", [args.llama_python, me, "--worker", "llama_cpp", "--model", g,
                            "--new-tokens", n, "--threads", threads]] for g in ggufs]
    jobs.append(["transformers", [args.torch_python, me, "--worker", "transformers",
                                  "--model", args.hf, "--new-tokens", n, "--threads", threads]])

    best: dict[tuple[str, str, str], dict] = {}
    for r in range(args.rounds):
        for _name, cmd in jobs:
            for res in run_json(cmd, env):
                res["round"] = r
                print(json.dumps(res), flush=True)
                key = (res["engine"], Path(res["model"]).name, res["weights"])
                if key not in best or (res["decode_tokens_per_second"]
                                       > best[key]["decode_tokens_per_second"]):
                    best[key] = res

    print(f"\ndecode tokens/s, best of {args.rounds} round(s), {args.threads} threads, "
          f"{args.new_tokens} new tokens:")
    for (engine, model, weights), res in sorted(best.items()):
        print(f"  {engine:13s} {model:40s} {weights:10s} {res['decode_tokens_per_second']:8.1f}"
              f"   (prefill {res['prefill_tokens_per_second']:.1f} tokens/s)")
    hf_rate = next((v["decode_tokens_per_second"] for k, v in best.items()
                    if k[0] == "transformers"), 0.0)
    for g in ggufs:
        name = Path(g).name
        ours = best.get(("ferrotune", name, "quantized"))
        theirs = best.get(("llama.cpp", name, "gguf"))
        if ours and theirs:
            print(f"  ferrotune / llama.cpp on {name}: "
                  f"{ours['decode_tokens_per_second'] / theirs['decode_tokens_per_second']:.2f}x")
        if ours and hf_rate:
            print(f"  ferrotune ({name}) / transformers (f32): "
                  f"{ours['decode_tokens_per_second'] / hf_rate:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
