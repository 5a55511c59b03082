//! The peak rate of one core's f32 FMA against its bf16 dot-product instruction, measured
//! with independent register chains (no memory traffic), alternated in one run.
//!
//! ```text
//! cargo run -p ferrotune-model --example bf16_peak -- [--seconds 1]
//! ```
//!
//! `vfmadd231ps zmm` does 16 multiply-adds (32 FLOP); `vdpbf16ps zmm` (AVX512-BF16) does 32
//! bf16 products summed pairwise into 16 f32 lanes (64 FLOP). A native bf16 GEMM on the
//! vector units can only beat an f32 one where the second runs at least half as often as the
//! first; AMX tiles (`amx_bf16`) are a separate unit this does not measure. This is why
//! `bf16: true` rounds the operands and multiplies on the f32 units
//! (`src/kernels/precision.rs`); `tools/bench_bf16_gemm.py` measures whole GEMMs.

use std::time::Instant;

/// Eight independent accumulators, so that the rate is the instruction's throughput, not its
/// latency; `zmm1`, `zmm2` hold whatever the registers held (the values do not matter).
#[cfg(target_arch = "x86_64")]
macro_rules! chains {
    ($ins:literal, $iters:expr) => {
        for _ in 0..$iters {
            // SAFETY: register-only arithmetic on clobbered vector registers; the caller
            // checked the CPU feature.
            unsafe {
                std::arch::asm!(
                    concat!($ins, " zmm3, zmm2, zmm1"),
                    concat!($ins, " zmm4, zmm2, zmm1"),
                    concat!($ins, " zmm5, zmm2, zmm1"),
                    concat!($ins, " zmm6, zmm2, zmm1"),
                    concat!($ins, " zmm7, zmm2, zmm1"),
                    concat!($ins, " zmm8, zmm2, zmm1"),
                    concat!($ins, " zmm9, zmm2, zmm1"),
                    concat!($ins, " zmm10, zmm2, zmm1"),
                    out("zmm3") _, out("zmm4") _, out("zmm5") _, out("zmm6") _,
                    out("zmm7") _, out("zmm8") _, out("zmm9") _, out("zmm10") _,
                    options(nomem, nostack, preserves_flags),
                );
            }
        }
    };
}

/// GFLOP/s of `run(iters)` (8 instructions of `flop_per_ins` per iteration), best of the
/// batches that fit in `seconds` (at least one).
#[cfg(target_arch = "x86_64")]
fn rate(seconds: f64, flop_per_ins: f64, run: impl Fn(u64)) -> f64 {
    const ITERS: u64 = 10_000_000;
    let mut best = f64::MAX;
    let start = Instant::now();
    while best == f64::MAX || start.elapsed().as_secs_f64() < seconds {
        let t = Instant::now();
        run(ITERS);
        best = best.min(t.elapsed().as_secs_f64());
    }
    8.0 * flop_per_ins * ITERS as f64 / best / 1e9
}

#[cfg(target_arch = "x86_64")]
fn main() {
    let seconds: f64 = std::env::args()
        .skip_while(|a| a != "--seconds")
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    if !is_x86_feature_detected!("avx512f") {
        println!("no AVX-512 on this CPU: nothing to measure");
        return;
    }
    let bf16 = is_x86_feature_detected!("avx512bf16");
    println!("one core; avx512bf16: {bf16}");
    let (mut f32s, mut bf16s) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        f32s.push(rate(seconds, 32.0, |n| chains!("vfmadd231ps", n)));
        if bf16 {
            bf16s.push(rate(seconds, 64.0, |n| chains!("vdpbf16ps", n)));
        }
    }
    let best = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
    println!("vfmadd231ps zmm (f32): {:.1} GFLOP/s", best(&f32s));
    if bf16 {
        println!("vdpbf16ps zmm (bf16): {:.1} GFLOP/s", best(&bf16s));
        println!("bf16 / f32: {:.2}", best(&bf16s) / best(&f32s));
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    println!("x86-64 only");
}
