"""bf16 against f32 matrix products on this CPU: torch's matmul, oneDNN's BLAS-like GEMMs
(the library ferrotune loads, `dnnl_sgemm` and `dnnl_gemm_bf16bf16f32`) and, with `--mkl
DIR`, oneMKL's `cblas_sgemm` and `cblas_gemm_bf16bf16f32` (DIR holds libmkl_rt.so.*, e.g.
the lib folder of PyPI's `mkl` wheel; run with MKL_THREADING_LAYER=GNU).

Why ferrotune's `bf16: true` rounds the operands and multiplies on the f32 units
(crates/ferrotune-model/src/kernels/precision.rs): a native bf16 GEMM is faster only with AMX.
`cargo run -p ferrotune-model --example bf16_peak` measures the instruction rates behind it.
Prints the CPU's bf16/AMX flags and, for the demo model's training shapes
(x [rows, k] · Wᵀ [k, out]), the best-of GFLOP/s in f32 and bf16 and their ratio for each
library. The library GEMMs take bf16 operands and write f32 (f32 accumulation).

    /work/pyref/venv/bin/python tools/bench_bf16_gemm.py [--threads 2] [--rows 2048] [--mkl DIR]
"""

import argparse
import ctypes
import glob
import os
import time

import numpy as np
import torch


def best_rate(flop: float, seconds: float, call) -> float:
    """GFLOP/s of the fastest of at least 3 calls of `call` (more while `seconds` last), after
    one untimed call that faults in the output."""
    call()
    best, calls = float("inf"), 0
    end = time.perf_counter() + seconds
    while calls < 3 or time.perf_counter() < end:
        t = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - t)
        calls += 1
    return flop / best / 1e9


def rate(a: torch.Tensor, b: torch.Tensor, seconds: float) -> float:
    """torch's `a @ bᵀ` into a preallocated output."""
    m, k = a.shape
    n = b.shape[0]
    out = torch.empty(m, n, dtype=a.dtype)
    return best_rate(2.0 * m * n * k, seconds, lambda: torch.matmul(a, b.T, out=out))


def to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """Round-to-nearest-even f32 → bf16, as uint16 bit patterns."""
    u = x.astype(np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


class Blas:
    """Row-major C[m, n] = A[m, k] · B[n, k]ᵀ in f32 and in bf16 (f32 out) through one library."""

    def __init__(self, name: str, path: str):
        self.name = name
        lib = ctypes.CDLL(path)
        p, f = ctypes.c_void_p, ctypes.c_float
        self.version = "?"
        if name == "oneDNN":
            c, i = ctypes.c_char, ctypes.c_int64
            # Both are exported by libdnnl.so.2; the bf16 one is not in 2.6's public header,
            # and takes the same row-major arguments as dnnl_sgemm (checked against numpy below).
            args = [c, c, i, i, i, f, p, i, p, i, f, p, i]
            self.s, self.b = lib.dnnl_sgemm, lib.dnnl_gemm_bf16bf16f32
            self.prefix = (b"N", b"T")
            lib.dnnl_version.restype = ctypes.POINTER(ctypes.c_int * 3)
            self.version = ".".join(map(str, lib.dnnl_version().contents))
        else:
            i = ctypes.c_int
            args = [i, i, i, i, i, i, f, p, i, p, i, f, p, i]
            self.s, self.b = lib.cblas_sgemm, lib.cblas_gemm_bf16bf16f32
            self.s.restype = self.b.restype = None  # void: no status to check
            self.prefix = (101, 111, 112)  # CblasRowMajor, CblasNoTrans, CblasTrans
            buf = ctypes.create_string_buffer(256)
            lib.mkl_get_version_string(buf, 256)
            self.version = buf.value.decode(errors="replace").strip()
        self.s.argtypes = self.b.argtypes = args

    def rates(self, x: np.ndarray, w: np.ndarray, seconds: float) -> tuple[float, float]:
        m, k = x.shape
        n = w.shape[0]
        out = np.zeros((m, n), np.float32)
        xb, wb = to_bf16_bits(x), to_bf16_bits(w)
        f32 = lambda: self.s(*self.prefix, m, n, k, 1.0, x.ctypes.data, k, w.ctypes.data, k, 0.0, out.ctypes.data, n)
        bf16 = lambda: self.b(*self.prefix, m, n, k, 1.0, xb.ctypes.data, k, wb.ctypes.data, k, 0.0, out.ctypes.data, n)
        widen = lambda b: (b.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        for what, call, exact in (
            ("f32", f32, x.astype(np.float64) @ w.astype(np.float64).T),
            ("bf16", bf16, widen(xb) @ widen(wb).T),
        ):
            out[:] = np.nan
            status = call()
            err = np.abs(out - exact).max() / np.abs(exact).max()
            if (status or 0) != 0 or not err <= 1e-5:
                raise SystemExit(f"{self.name} {what} GEMM: status {status}, "
                                 f"relative error {err:.1e} against numpy")
        flop = 2.0 * m * n * k
        return best_rate(flop, seconds, f32), best_rate(flop, seconds, bf16)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rows", type=int, default=2048)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--mkl", help="folder with libmkl_rt.so.* (oneMKL) to measure as well")
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # read by oneDNN's OpenMP when it loads
    torch.set_num_threads(args.threads)
    libs = []
    try:
        libs.append(Blas("oneDNN", "libdnnl.so.2"))
    except (OSError, AttributeError) as e:
        print(f"oneDNN not measured: {e} (scripts/install_gemm.sh installs it)")
    if args.mkl:
        found = sorted(glob.glob(os.path.join(args.mkl, "libmkl_rt.so*")))
        if not found:
            raise SystemExit(f"--mkl {args.mkl}: no libmkl_rt.so* there")
        libs.append(Blas("oneMKL", found[0]))
    flags = open("/proc/cpuinfo").read().split()
    print("cpu flags:", sorted({f for f in flags if "bf16" in f or f.startswith("amx")}) or "none")
    print(f"torch {torch.__version__}, {args.threads} threads")
    for lib in libs:
        print(f"{lib.name} {lib.version}")
    print(f"{'library':>8} {'out':>6} {'k':>6} {'f32 GFLOP/s':>12} {'bf16 GFLOP/s':>13} {'bf16/f32':>9}")
    for out, k in [(576, 576), (1536, 576), (576, 1536), (49152, 576)]:
        x = torch.randn(args.rows, k)
        w = torch.randn(out, k)
        f32 = rate(x, w, args.seconds)
        bf16 = rate(x.bfloat16(), w.bfloat16(), args.seconds)
        print(f"{'torch':>8} {out:>6} {k:>6} {f32:>12.0f} {bf16:>13.0f} {bf16 / f32:>9.2f}")
        for lib in libs:
            f32, bf16 = lib.rates(x.numpy(), w.numpy(), args.seconds)
            print(f"{lib.name:>8} {out:>6} {k:>6} {f32:>12.0f} {bf16:>13.0f} {bf16 / f32:>9.2f}")


if __name__ == "__main__":
    main()
