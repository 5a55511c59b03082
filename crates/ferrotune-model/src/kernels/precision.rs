//! Mixed-precision products: the operands of the large matmuls rounded to bf16 or fp16.
//!
//! `bf16: true` / `fp16: true` in a training config (torch's autocast, as the HF Trainer and
//! LLaMA-Factory use it) compute each matmul from operands cast to the half type with f32
//! accumulation, and everything else (norms, softmax, the loss, the optimizer and its master
//! weights) in f32. [`round_operand`] reproduces the cast: the product of two bf16 (or fp16)
//! values is exact in f32, so rounding both operands and multiplying on the f32 units gives
//! the half-precision product with f32 accumulation, up to summation order.
//!
//! The products then run on the f32 GEMM. A native bf16 GEMM is faster only on CPUs with AMX:
//! on this project's AVX-512-BF16 machines (AMX not exposed) torch's bf16 matmul runs
//! 0.52–0.66× its f32 matmul on the training shapes (`tools/bench_bf16_gemm.py`, 2 threads),
//! and one-off C probes of oneDNN 2.6's `avx512_core_bf16` matmul and MKL 2026.2's
//! `cblas_gemm_bf16bf16f32` gave about 0.55× theirs.
//!
//! Rounding: bf16 by round-to-nearest-even on the f32 bit pattern (NaN kept NaN); fp16 by
//! `half::f16` (round-to-nearest-even, overflow to ±inf beyond 65,504, which is what the fp16
//! loss scaler watches for).

use std::borrow::Cow;
use std::cell::Cell;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU8, Ordering};

use rayon::prelude::*;

/// The type the operands of the large products are rounded to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatmulPrecision {
    /// No rounding (the default).
    F32,
    /// bfloat16: 8 exponent bits, 8 significant bits.
    Bf16,
    /// IEEE half: 5 exponent bits, 11 significant bits, largest finite 65,504.
    F16,
}

static PRECISION: AtomicU8 = AtomicU8::new(0);

thread_local! {
    /// A per-thread setting that wins over the process-wide one (see [`with_matmul_precision`]).
    static OVERRIDE: Cell<Option<MatmulPrecision>> = const { Cell::new(None) };
}

fn encode(p: MatmulPrecision) -> u8 {
    match p {
        MatmulPrecision::F32 => 0,
        MatmulPrecision::Bf16 => 1,
        MatmulPrecision::F16 => 2,
    }
}

/// The precision of the large products on this thread.
pub fn matmul_precision() -> MatmulPrecision {
    if let Some(p) = OVERRIDE.with(|o| o.get()) {
        return p;
    }
    match PRECISION.load(Ordering::Relaxed) {
        1 => MatmulPrecision::Bf16,
        2 => MatmulPrecision::F16,
        _ => MatmulPrecision::F32,
    }
}

/// Sets the precision of the large products for the whole process (the trainer does, from
/// `bf16`/`fp16`/`pure_bf16`).
pub fn set_matmul_precision(p: MatmulPrecision) {
    PRECISION.store(encode(p), Ordering::Relaxed);
}

/// Runs `f` with the products at precision `p` on this thread only, restoring the previous
/// setting after (tests compare precisions while other threads run).
pub fn with_matmul_precision<R>(p: MatmulPrecision, f: impl FnOnce() -> R) -> R {
    let before = OVERRIDE.with(|o| o.replace(Some(p)));
    let out = f();
    OVERRIDE.with(|o| o.set(before));
    out
}

/// `x` rounded to bf16 (round-to-nearest-even), as an f32; NaN stays NaN. Branch-free, so
/// loops over it vectorize.
#[inline]
pub fn round_bf16(x: f32) -> f32 {
    let bits = x.to_bits();
    let rounded = f32::from_bits(bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) & 0xffff_0000);
    if x.is_nan() {
        x
    } else {
        rounded
    }
}

/// `x` rounded to IEEE half (round-to-nearest-even, ±inf beyond 65,504), as an f32.
#[inline]
pub fn round_f16(x: f32) -> f32 {
    half::f16::from_f32(x).to_f32()
}

/// Elements per parallel task of [`round_operand`].
const CHUNK: usize = 1 << 14;

/// `src` rounded to precision `p` into `dst` (same length), written without being read.
fn round_into(src: &[f32], dst: &mut [MaybeUninit<f32>], p: MatmulPrecision) {
    match p {
        MatmulPrecision::F32 => {
            for (d, &x) in dst.iter_mut().zip(src) {
                d.write(x);
            }
        }
        MatmulPrecision::Bf16 => {
            for (d, &x) in dst.iter_mut().zip(src) {
                d.write(round_bf16(x));
            }
        }
        MatmulPrecision::F16 => {
            // half's slice conversions use F16C when the CPU has it.
            let mut tmp = vec![half::f16::ZERO; src.len()];
            half::slice::HalfFloatSliceExt::convert_from_f32_slice(&mut tmp[..], src);
            for (d, h) in dst.iter_mut().zip(&tmp) {
                d.write(h.to_f32());
            }
        }
    }
}

/// The operand `data` as the product at precision `p` reads it: borrowed unchanged for f32,
/// else a rounded copy (same length and layout), made on the rayon pool without zero-filling
/// it first.
pub fn round_operand(data: &[f32], p: MatmulPrecision) -> Cow<'_, [f32]> {
    if p == MatmulPrecision::F32 {
        return Cow::Borrowed(data);
    }
    let n = data.len();
    let mut out: Vec<f32> = Vec::with_capacity(n);
    let spare = &mut out.spare_capacity_mut()[..n];
    if n <= CHUNK {
        round_into(data, spare, p);
    } else {
        spare
            .par_chunks_mut(CHUNK)
            .zip(data.par_chunks(CHUNK))
            .for_each(|(d, s)| round_into(s, d, p));
    }
    // SAFETY: `round_into` wrote each of the first `n` elements (the chunks cover them all).
    unsafe { out.set_len(n) };
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounding_matches_the_half_crate() {
        let values = [
            0.0f32,
            -0.0,
            1.0,
            1.0 + 1.0 / 256.0, // a tie: rounds to even (1.0)
            1.0 + 3.0 / 256.0, // a tie: rounds to even (1 + 4/256)
            3.140_625,
            -2.718_281_7,
            1e-30,
            3.0e38,
            f32::MAX,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MIN_POSITIVE / 3.0,
        ];
        for &x in &values {
            let ours = round_bf16(x);
            let reference = half::bf16::from_f32(x).to_f32();
            assert_eq!(ours.to_bits(), reference.to_bits(), "x = {x:e}");
        }
        assert!(round_bf16(f32::NAN).is_nan());
        // Every pseudo-random value agrees bit for bit.
        for v in crate::layers::test_values(10_000, 7) {
            let x = v * 1e3;
            assert_eq!(
                round_bf16(x).to_bits(),
                half::bf16::from_f32(x).to_f32().to_bits(),
                "x = {x:e}"
            );
        }
    }

    #[test]
    fn operands_are_rounded_per_precision() {
        let data = [1.0f32 + 1.0 / 512.0, 70_000.0, -1.0e-8, 0.1];
        assert!(matches!(
            round_operand(&data, MatmulPrecision::F32),
            Cow::Borrowed(_)
        ));
        let b = round_operand(&data, MatmulPrecision::Bf16);
        assert_eq!(b[0], 1.0);
        assert_eq!(b[1], 70_144.0); // bf16 spacing at 2^16 is 512
        assert_eq!(b[3], half::bf16::from_f32(0.1).to_f32());
        let h = round_operand(&data, MatmulPrecision::F16);
        assert_eq!(h[0], 1.0 + 1.0 / 512.0); // exact in fp16 (11 bits)
        assert_eq!(h[1], f32::INFINITY); // beyond fp16's range
        assert_eq!(h[2], -0.0); // below fp16's smallest subnormal (6e-8): flushed
        assert_eq!(h[3], half::f16::from_f32(0.1).to_f32());
    }

    #[test]
    fn large_operands_are_rounded_like_small_ones() {
        let data: Vec<f32> = crate::layers::test_values(3 * CHUNK + 17, 3)
            .into_iter()
            .map(|x| x * 7e4)
            .collect();
        for p in [MatmulPrecision::Bf16, MatmulPrecision::F16] {
            let rounded = round_operand(&data, p);
            for (&x, &r) in data.iter().zip(rounded.iter()) {
                let expected = match p {
                    MatmulPrecision::Bf16 => round_bf16(x),
                    _ => round_f16(x),
                };
                assert_eq!(r.to_bits(), expected.to_bits(), "{p:?} x = {x:e}");
            }
        }
    }

    #[test]
    fn the_thread_override_wins_and_is_restored() {
        let outer = matmul_precision();
        with_matmul_precision(MatmulPrecision::F16, || {
            assert_eq!(matmul_precision(), MatmulPrecision::F16);
            with_matmul_precision(MatmulPrecision::Bf16, || {
                assert_eq!(matmul_precision(), MatmulPrecision::Bf16);
            });
            assert_eq!(matmul_precision(), MatmulPrecision::F16);
        });
        assert_eq!(matmul_precision(), outer);
    }
}
