"""bf16 against f32 matrix products on this CPU, through torch (oneDNN/MKL inside).

Why ferrotune's `bf16: true` rounds the operands and multiplies on the f32 units
(crates/ferrotune-model/src/kernels/precision.rs): a native bf16 GEMM is faster only with AMX.
Prints the CPU's bf16/AMX flags and, for the demo model's training shapes
(x [rows, k] · Wᵀ [k, out]), the best-of GFLOP/s in f32 and bf16 and their ratio.

    /work/pyref/venv/bin/python tools/bench_bf16_gemm.py [--threads 2] [--rows 2048]
"""

import argparse
import time

import torch


def rate(a: torch.Tensor, b: torch.Tensor, seconds: float) -> float:
    a @ b.T
    best = float("inf")
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        a @ b.T
        best = min(best, time.perf_counter() - t)
    m, k = a.shape
    n = b.shape[0]
    return 2.0 * m * n * k / best / 1e9


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rows", type=int, default=2048)
    ap.add_argument("--seconds", type=float, default=1.0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    flags = open("/proc/cpuinfo").read().split()
    print("cpu flags:", sorted({f for f in flags if "bf16" in f or f.startswith("amx")}) or "none")
    print(f"torch {torch.__version__}, {args.threads} threads")
    print(f"{'out':>6} {'k':>6} {'f32 GFLOP/s':>12} {'bf16 GFLOP/s':>13} {'bf16/f32':>9}")
    for out, k in [(576, 576), (1536, 576), (576, 1536), (49152, 576)]:
        x = torch.randn(args.rows, k)
        w = torch.randn(out, k)
        f32 = rate(x, w, args.seconds)
        bf16 = rate(x.bfloat16(), w.bfloat16(), args.seconds)
        print(f"{out:>6} {k:>6} {f32:>12.0f} {bf16:>13.0f} {bf16 / f32:>9.2f}")


if __name__ == "__main__":
    main()
