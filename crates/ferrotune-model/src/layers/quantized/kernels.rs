//! The block dot products of [`super::QMatrix`]: one weight row's blocks against one
//! activation row's 8-bit blocks (see the parent module for the formats and the scheme), as a
//! portable loop and, on x86-64, AVX2 and AVX512-VNNI kernels chosen at run time.
//!
//! The weights' f16 scales and minimums are widened to f32 per block as the kernels read them
//! (exactly, so every kernel computes the same f32 products as with scales widened at load).

use super::{QFormat, WRow, WRows, XRow, BLOCK};

/// How many rows ahead the SIMD row loops ask for the packed integers of a row
/// (`prefetcht0`), reaching past the last row of their task into the next one's
/// ([`super::WRows::ahead`]), which on one thread is the next task run.
///
/// Measured on the demo model's shapes (all 30 layers' products and the head, one thread,
/// alternating builds on a busy machine): 4 to 16 rows ahead are within noise of each other,
/// 8 slightly ahead; prefetching past the task's end made Q4_1 about 5–10% faster than
/// stopping at it (every 32-row task otherwise starts with 4 rows left to the hardware
/// prefetcher, which stalls at each 4 KiB page of a row stream).
pub(super) const PREFETCH_ROWS: usize = 8;

/// Dot products of consecutive weight rows with one activation row:
/// `f(w, x, y, stride)` sets `y[i·stride]` to the dot product of row `i` of `w` with `x`.
pub(super) type RowsFn = fn(&WRows<'_>, &XRow<'_>, &mut [f32], usize);

/// The fastest kernel this CPU runs for `format`: AVX512-VNNI, then AVX2 + FMA + F16C, then
/// the portable loop, detected at run time.
pub(super) fn select_rows(format: QFormat) -> RowsFn {
    #[cfg(target_arch = "x86_64")]
    {
        if x86::has_vnni() {
            return match format {
                QFormat::Q8_0 => x86::rows_q8_vnni,
                QFormat::Q4_0 => x86::rows_q4_0_vnni,
                QFormat::Q4_1 => x86::rows_q4_1_vnni,
            };
        }
        if x86::has_avx2() {
            return match format {
                QFormat::Q8_0 => x86::rows_q8_avx2,
                QFormat::Q4_0 => x86::rows_q4_0_avx2,
                QFormat::Q4_1 => x86::rows_q4_1_avx2,
            };
        }
    }
    plain_rows(format)
}

/// The portable kernel for `format` (the reference the others are tested against).
pub(super) fn plain_rows(format: QFormat) -> RowsFn {
    match format {
        QFormat::Q8_0 => rows_q8_plain,
        QFormat::Q4_0 | QFormat::Q4_1 => rows_q4_plain,
    }
}

fn rows_q8_plain(w: &WRows<'_>, x: &XRow<'_>, y: &mut [f32], stride: usize) {
    let stride = stride.max(1);
    for i in 0..w.len().min(y.len().div_ceil(stride)) {
        y[i * stride] = dot_q8_plain(&w.row(i), x);
    }
}

/// Q4_1, or Q4_0 when the rows have no minimums.
fn rows_q4_plain(w: &WRows<'_>, x: &XRow<'_>, y: &mut [f32], stride: usize) {
    let stride = stride.max(1);
    for i in 0..w.len().min(y.len().div_ceil(stride)) {
        y[i * stride] = dot_q4_plain(&w.row(i), x);
    }
}

fn dot_q8_plain(w: &WRow<'_>, x: &XRow<'_>) -> f32 {
    let blocks = w.qs.chunks_exact(BLOCK).zip(x.qs.chunks_exact(BLOCK));
    let mut acc = 0f32;
    for (b, (wq, xq)) in blocks.enumerate() {
        let isum: i32 = wq
            .iter()
            .zip(xq)
            .map(|(&a, &c)| i32::from(a as i8) * i32::from(c))
            .sum();
        acc += w.scales[b].to_f32() * x.scales[b] * isum as f32;
    }
    acc
}

/// Q4_1, or Q4_0 (`m = −8d`) when `w.mins` is empty.
fn dot_q4_plain(w: &WRow<'_>, x: &XRow<'_>) -> f32 {
    let blocks = w.qs.chunks_exact(BLOCK / 2).zip(x.qs.chunks_exact(BLOCK));
    let mut acc = 0f32;
    for (b, (wq, xq)) in blocks.enumerate() {
        let (x_lo, x_hi) = xq.split_at(BLOCK / 2);
        let isum: i32 = wq
            .iter()
            .zip(x_lo.iter().zip(x_hi))
            .map(|(&v, (&l, &h))| {
                i32::from(v & 0x0F) * i32::from(l) + i32::from(v >> 4) * i32::from(h)
            })
            .sum();
        let d = w.scales[b].to_f32();
        let m = w.mins.get(b).map_or(-8.0 * d, |m| m.to_f32());
        acc += d * x.scales[b] * isum as f32 + m * x.sums[b];
    }
    acc
}

#[cfg(target_arch = "x86_64")]
pub(super) mod x86 {
    //! AVX2 block dot products: per block, 32 byte pairs multiplied and summed to eight i32
    //! (`vpmaddubsw` u8×i8 → pairs of i16, `vpmaddwd` by 1 → i32), converted to f32 and scaled
    //! into eight f32 accumulators that are summed once per row.
    //!
    //! VNNI kernels: `vpdpbusd` (Intel SDM vol. 2C, "VPDPBUSD — Multiply and Add Unsigned and
    //! Signed Bytes") multiplies groups of four u8 × i8 pairs and adds them to an i32 lane in
    //! one instruction, replacing `vpmaddubsw` + `vpmaddwd`. Its operands are u8 × i8, so Q8_0
    //! passes `|w|` and `x` with `w`'s sign (`vpabsb`, `vpsignb`), and Q4's nibbles go in as
    //! they are. Two blocks per step, into two accumulators, for independent dependency chains.
    //!
    //! The f16 scales (and Q4_1 minimums) are widened with F16C `vcvtph2ps` (Intel SDM vol. 2A,
    //! "VCVTPH2PS"), which every AVX2 CPU we target has and [`has_avx2`] checks: eight blocks'
    //! at once in steps of eight blocks ([`scales8`]), where Q4's minimum terms also add up per
    //! lane ([`min_terms8`]), then one at a time for the last `NB mod 8` blocks. Apart from
    //! those minimum terms of Q4 the f32 operations and their order are those of scales widened
    //! at load. The Q4 kernels are generic over `MINS`: Q4_1 reads a stored minimum, Q4_0
    //! computes `m = −8d`.

    use std::arch::x86_64::*;

    use half::f16;

    use super::super::{WRow, WRows, XRow, BLOCK};
    use super::PREFETCH_ROWS;

    /// `h` as f32 (exact), with F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    fn widen(h: f16) -> f32 {
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(h.to_bits()))))
    }

    /// [`widen`] for tests, after checking the CPU features.
    #[cfg(test)]
    pub(in crate::layers::quantized) fn widen_checked(h: f16) -> f32 {
        assert!(has_avx2(), "F16C kernels tested without the CPU features");
        // SAFETY: the features were checked just above.
        unsafe { widen(h) }
    }

    /// Block `b`'s minimum: Q4_1's stored one (`MINS`), else Q4_0's `−8d`.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    fn min_of<const MINS: bool>(w: &WRow<'_>, d: f32, b: usize) -> f32 {
        if MINS {
            widen(w.mins[b])
        } else {
            -8.0 * d
        }
    }

    /// Sum of the eight lanes.
    #[target_feature(enable = "avx2,fma,f16c")]
    fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// Checks the slice lengths the unchecked loads below rely on.
    fn fits(w: &WRow<'_>, x: &XRow<'_>, w_bytes: usize) -> usize {
        let nb = w.scales.len();
        assert!(
            w.qs.len() >= nb * w_bytes && x.qs.len() >= nb * BLOCK && x.scales.len() >= nb,
            "quantized row shorter than its scales"
        );
        nb
    }

    /// One row's dot product (see the module doc).
    ///
    /// Safety: the CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn dot_q8_avx2_row(w: &WRow<'_>, x: &XRow<'_>) -> f32 {
        let nb = fits(w, x, BLOCK);
        let mut acc = _mm256_setzero_ps();
        let mut b = 0;
        while b + 8 <= nb {
            // SAFETY: `fits` checked blocks `b..b + 8` in every slice.
            let (_, s) = unsafe { scales8(w, x, b) };
            for (j, &s) in s.iter().enumerate() {
                // SAFETY: as above.
                let isum = unsafe { q8_block_avx2(w, x, b + j) };
                acc = _mm256_fmadd_ps(_mm256_set1_ps(s), _mm256_cvtepi32_ps(isum), acc);
            }
            b += 8;
        }
        for b in b..nb {
            // SAFETY: `fits` checked that block `b` lies inside both slices.
            let isum = unsafe { q8_block_avx2(w, x, b) };
            let scale = _mm256_set1_ps(widen(w.scales[b]) * x.scales[b]);
            acc = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(isum), acc);
        }
        hsum(acc)
    }

    /// Q8_0 block `b` with AVX2: Σ q_w·q_x as eight i32 partial sums.
    ///
    /// Safety: block `b` inside both slices (`fits`).
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn q8_block_avx2(w: &WRow<'_>, x: &XRow<'_>, b: usize) -> __m256i {
        // SAFETY: the caller checked that block `b` lies inside both slices.
        let (wv, xv) = unsafe {
            (
                load256(w.qs.as_ptr().add(b * BLOCK)),
                load256(x.qs.as_ptr().add(b * BLOCK).cast()),
            )
        };
        // i8·i8 through the u8·i8 instruction: |w| times x carrying w's sign.
        let prod = _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
        _mm256_madd_epi16(prod, _mm256_set1_epi16(1))
    }

    /// 32 bytes from `p`, unaligned, with `vlddqu`.
    ///
    /// `_mm256_loadu_si256` and `read_unaligned` go through `copy_nonoverlapping`, whose
    /// precondition checks stay in this workspace's dev profile (opt-level 3 with debug
    /// assertions) and cost more than the load inside these loops; `vlddqu` is a plain
    /// unaligned load (Intel SDM vol. 2A, "LDDQU").
    ///
    /// Safety: `p..p + 32` readable.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn load256(p: *const u8) -> __m256i {
        // SAFETY: per the caller's contract; no alignment requirement.
        unsafe { _mm256_lddqu_si256(p.cast()) }
    }

    /// 16 bytes from `p`, unaligned, as [`load256`].
    ///
    /// Safety: `p..p + 16` readable.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn load128(p: *const u8) -> __m128i {
        // SAFETY: per the caller's contract.
        unsafe { _mm_lddqu_si128(p.cast()) }
    }

    /// Defines `$rows`, a [`super::RowsFn`] over `$row`, compiled with AVX2, FMA and F16C so
    /// that the row kernel inlines into the loop.
    macro_rules! rows_kernel {
        ($rows:ident, $row:path, $check:expr) => {
            pub(in crate::layers::quantized) fn $rows(
                w: &WRows<'_>,
                x: &XRow<'_>,
                y: &mut [f32],
                stride: usize,
            ) {
                #[target_feature(enable = "avx2,fma,f16c")]
                unsafe fn inner(w: &WRows<'_>, x: &XRow<'_>, y: &mut [f32], stride: usize) {
                    let stride = stride.max(1);
                    let n = w.len().min(y.len().div_ceil(stride));
                    for i in 0..n {
                        let ahead = (i + PREFETCH_ROWS) * w.q_row;
                        if let Some(row) = w.ahead.get(ahead..ahead + w.q_row) {
                            prefetch(row);
                        }
                        // SAFETY: per the caller's contract.
                        y[i * stride] = unsafe { $row(&w.row(i), x) };
                    }
                }
                assert!($check, "kernel selected without its CPU features");
                // SAFETY: the CPU features were checked just above (and when selected).
                unsafe { inner(w, x, y, stride) }
            }
        };
    }

    /// Asks for every cache line of `bytes` (a hint: no fault, no effect on the values).
    #[inline(always)]
    fn prefetch(bytes: &[u8]) {
        for line in bytes.chunks(64) {
            // SAFETY: `prefetcht0` only hints the cache, and `line` is inside a live slice.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast()) };
        }
    }

    rows_kernel!(rows_q8_avx2, dot_q8_avx2_row, has_avx2());
    rows_kernel!(rows_q4_0_avx2, dot_q4_avx2_row::<false>, has_avx2());
    rows_kernel!(rows_q4_1_avx2, dot_q4_avx2_row::<true>, has_avx2());
    rows_kernel!(rows_q8_vnni, dot_q8_vnni_row, has_vnni());
    rows_kernel!(rows_q4_0_vnni, dot_q4_vnni_row::<false>, has_vnni());
    rows_kernel!(rows_q4_1_vnni, dot_q4_vnni_row::<true>, has_vnni());

    /// Whether the CPU has what the AVX2 kernels use: AVX2, FMA and F16C.
    pub(in crate::layers::quantized) fn has_avx2() -> bool {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
    }

    /// Whether the CPU has what the VNNI kernels use: AVX512-VNNI with AVX512VL (the 256-bit
    /// EVEX form of `vpdpbusd`), and what [`has_avx2`] checks.
    pub(in crate::layers::quantized) fn has_vnni() -> bool {
        std::arch::is_x86_feature_detected!("avx512vnni")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && has_avx2()
    }

    /// `vpdpbusd`: each i32 lane `i` of the result is `Σ_{j<4} u[4i+j]·s[4i+j]`, `u` read as u8
    /// and `s` as i8, with no intermediate saturation.
    ///
    /// Written as inline assembly, EVEX-encoded (AVX512-VNNI + AVX512VL), because the
    /// `_mm256_dpbusd_epi32` intrinsic needs Rust 1.89 and the workspace supports 1.85.
    ///
    /// Safety: the CPU must have AVX512-VNNI and AVX512VL ([`has_vnni`]).
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn dpbusd(u: __m256i, s: __m256i) -> __m256i {
        let mut acc = _mm256_setzero_si256();
        // SAFETY: register-only instruction, available per the caller's contract.
        unsafe {
            std::arch::asm!(
                "{{evex}} vpdpbusd {acc}, {u}, {s}",
                acc = inout(ymm_reg) acc,
                u = in(ymm_reg) u,
                s = in(ymm_reg) s,
                options(pure, nomem, nostack, preserves_flags),
            );
        }
        acc
    }

    /// Q8_0 block `b`: Σ q_w·q_x as eight i32 partial sums.
    ///
    /// Safety: `has_vnni`, and block `b` inside both slices (`fits`).
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn q8_block(w: &WRow<'_>, x: &XRow<'_>, b: usize) -> __m256i {
        // SAFETY: the caller checked that block `b` lies inside both slices.
        let (wv, xv) = unsafe {
            (
                load256(w.qs.as_ptr().add(b * BLOCK)),
                load256(x.qs.as_ptr().add(b * BLOCK).cast()),
            )
        };
        // i8·i8 through the u8·i8 instruction: |w| times x carrying w's sign (|−128| read as
        // u8 is 128, still exact).
        // SAFETY: the caller checked `has_vnni`.
        unsafe { dpbusd(_mm256_abs_epi8(wv), _mm256_sign_epi8(xv, wv)) }
    }

    /// Blocks `b..b + 8`: the weights' scales `d_w` widened together (one `vcvtph2ps`), and
    /// the products `d_w·d_x` as an array the block steps broadcast from.
    ///
    /// Safety: blocks `b..b + 8` inside `w.scales` and `x.scales`.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn scales8(w: &WRow<'_>, x: &XRow<'_>, b: usize) -> (__m256, [f32; 8]) {
        // SAFETY: the caller checked that the 8 f16 (16 bytes) and 8 f32 (32 bytes) are
        // inside the slices.
        let (dw, dx) = unsafe {
            (
                _mm256_cvtph_ps(load128(w.scales.as_ptr().add(b).cast())),
                _mm256_castsi256_ps(load256(x.scales.as_ptr().add(b).cast())),
            )
        };
        // SAFETY: `__m256` and `[f32; 8]` have the same size and every bit pattern is valid.
        let products: [f32; 8] = unsafe { std::mem::transmute(_mm256_mul_ps(dw, dx)) };
        (dw, products)
    }

    /// `acc` plus blocks `b..b + 8`'s minimum terms `m·s_x`, one per lane: `m` Q4_1's stored
    /// minimums (`MINS`) or Q4_0's `−8·d_w` from `dw`, the widened scales.
    ///
    /// Safety: blocks `b..b + 8` inside `x.sums` and, with `MINS`, `w.mins`.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn min_terms8<const MINS: bool>(
        w: &WRow<'_>,
        x: &XRow<'_>,
        b: usize,
        dw: __m256,
        acc: __m256,
    ) -> __m256 {
        // SAFETY: per the caller's contract, 8 f16 (16 bytes) and 8 f32 (32 bytes) in range.
        let (m, sums) = unsafe {
            let m = if MINS {
                _mm256_cvtph_ps(load128(w.mins.as_ptr().add(b).cast()))
            } else {
                _mm256_mul_ps(_mm256_set1_ps(-8.0), dw)
            };
            (
                m,
                _mm256_castsi256_ps(load256(x.sums.as_ptr().add(b).cast())),
            )
        };
        _mm256_fmadd_ps(m, sums, acc)
    }

    /// One row's dot product (see the module doc): eight blocks per step with their scales
    /// widened together ([`scales8`]), then pairs, then the odd last block; even blocks go to
    /// one accumulator and odd ones to the other.
    ///
    /// Safety: the CPU has AVX2 and FMA and the VNNI features ([`has_vnni`]).
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn dot_q8_vnni_row(w: &WRow<'_>, x: &XRow<'_>) -> f32 {
        let nb = fits(w, x, BLOCK);
        let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut b = 0;
        while b + 8 <= nb {
            // SAFETY: `fits` checked blocks `b..b + 8` in every slice; the caller, `has_vnni`.
            let (_, s) = unsafe { scales8(w, x, b) };
            for j in [0, 2, 4, 6] {
                // SAFETY: as above.
                let (i0, i1) = unsafe { (q8_block(w, x, b + j), q8_block(w, x, b + j + 1)) };
                acc0 = _mm256_fmadd_ps(_mm256_set1_ps(s[j]), _mm256_cvtepi32_ps(i0), acc0);
                acc1 = _mm256_fmadd_ps(_mm256_set1_ps(s[j + 1]), _mm256_cvtepi32_ps(i1), acc1);
            }
            b += 8;
        }
        while b + 2 <= nb {
            // SAFETY: `fits` checked blocks `b` and `b + 1`; the caller checked `has_vnni`.
            let (i0, i1) = unsafe { (q8_block(w, x, b), q8_block(w, x, b + 1)) };
            let s0 = _mm256_set1_ps(widen(w.scales[b]) * x.scales[b]);
            let s1 = _mm256_set1_ps(widen(w.scales[b + 1]) * x.scales[b + 1]);
            acc0 = _mm256_fmadd_ps(s0, _mm256_cvtepi32_ps(i0), acc0);
            acc1 = _mm256_fmadd_ps(s1, _mm256_cvtepi32_ps(i1), acc1);
            b += 2;
        }
        if b < nb {
            // SAFETY: as above, for the last block.
            let i0 = unsafe { q8_block(w, x, b) };
            let s0 = _mm256_set1_ps(widen(w.scales[b]) * x.scales[b]);
            acc0 = _mm256_fmadd_ps(s0, _mm256_cvtepi32_ps(i0), acc0);
        }
        hsum(_mm256_add_ps(acc0, acc1))
    }

    /// Q4 blocks `b` and `b + 1`: Σ nibble·q_x of each as eight i32 partial sums.
    ///
    /// Safety: `has_vnni`, and both blocks inside both slices (`fits`).
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn q4_pair(w: &WRow<'_>, x: &XRow<'_>, b: usize) -> (__m256i, __m256i) {
        // SAFETY: the caller checked that blocks `b` and `b + 1` lie inside both slices.
        let (packed, x0, x1) = unsafe {
            (
                load256(w.qs.as_ptr().add(b * BLOCK / 2)),
                load256(x.qs.as_ptr().add(b * BLOCK).cast()),
                load256(x.qs.as_ptr().add((b + 1) * BLOCK).cast()),
            )
        };
        // The 32 packed bytes of two blocks: low nibbles (weights 0..16) and high ones
        // (16..32) of both, then regrouped per block.
        let low = _mm256_set1_epi8(0x0F);
        let lo = _mm256_and_si256(packed, low);
        let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(packed), low);
        let w0 = _mm256_permute2x128_si256::<0x20>(lo, hi);
        let w1 = _mm256_permute2x128_si256::<0x31>(lo, hi);
        // SAFETY: the caller checked `has_vnni`.
        unsafe { (dpbusd(w0, x0), dpbusd(w1, x1)) }
    }

    /// One row's dot product (see the module doc), stepping as [`dot_q8_vnni_row`]; in the
    /// eight-block steps the minimum terms `m·s_x` accumulate per block lane in a vector.
    ///
    /// Safety: the CPU has AVX2 and FMA and the VNNI features ([`has_vnni`]).
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn dot_q4_vnni_row<const MINS: bool>(w: &WRow<'_>, x: &XRow<'_>) -> f32 {
        let nb = fits(w, x, BLOCK / 2);
        assert!((!MINS || w.mins.len() >= nb) && x.sums.len() >= nb);
        let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut min_acc = _mm256_setzero_ps();
        let (mut min0, mut min1) = (0f32, 0f32);
        let mut b = 0;
        while b + 8 <= nb {
            // SAFETY: `fits` and the assertion above checked blocks `b..b + 8` in every slice
            // (scales, minimums, sums, integers); the caller checked `has_vnni`.
            let (dw, s) = unsafe { scales8(w, x, b) };
            // SAFETY: as above.
            min_acc = unsafe { min_terms8::<MINS>(w, x, b, dw, min_acc) };
            for j in [0, 2, 4, 6] {
                // SAFETY: as above.
                let (i0, i1) = unsafe { q4_pair(w, x, b + j) };
                acc0 = _mm256_fmadd_ps(_mm256_set1_ps(s[j]), _mm256_cvtepi32_ps(i0), acc0);
                acc1 = _mm256_fmadd_ps(_mm256_set1_ps(s[j + 1]), _mm256_cvtepi32_ps(i1), acc1);
            }
            b += 8;
        }
        while b + 2 <= nb {
            // SAFETY: `fits` checked blocks `b` and `b + 1`; the caller checked `has_vnni`.
            let (i0, i1) = unsafe { q4_pair(w, x, b) };
            let (d0, d1) = (widen(w.scales[b]), widen(w.scales[b + 1]));
            let s0 = _mm256_set1_ps(d0 * x.scales[b]);
            let s1 = _mm256_set1_ps(d1 * x.scales[b + 1]);
            acc0 = _mm256_fmadd_ps(s0, _mm256_cvtepi32_ps(i0), acc0);
            acc1 = _mm256_fmadd_ps(s1, _mm256_cvtepi32_ps(i1), acc1);
            min0 = min_of::<MINS>(w, d0, b).mul_add(x.sums[b], min0);
            min1 = min_of::<MINS>(w, d1, b + 1).mul_add(x.sums[b + 1], min1);
            b += 2;
        }
        if b < nb {
            // SAFETY: as above, for the last block.
            let (packed, x0) = unsafe {
                (
                    load128(w.qs.as_ptr().add(b * BLOCK / 2)),
                    load256(x.qs.as_ptr().add(b * BLOCK).cast()),
                )
            };
            let low = _mm_set1_epi8(0x0F);
            let lo = _mm_and_si128(packed, low);
            let hi = _mm_and_si128(_mm_srli_epi16::<4>(packed), low);
            // SAFETY: the caller checked `has_vnni`.
            let i0 = unsafe { dpbusd(_mm256_set_m128i(hi, lo), x0) };
            let d0 = widen(w.scales[b]);
            let s0 = _mm256_set1_ps(d0 * x.scales[b]);
            acc0 = _mm256_fmadd_ps(s0, _mm256_cvtepi32_ps(i0), acc0);
            min0 = min_of::<MINS>(w, d0, b).mul_add(x.sums[b], min0);
        }
        hsum(_mm256_add_ps(_mm256_add_ps(acc0, acc1), min_acc)) + (min0 + min1)
    }

    /// One row's dot product (see the module doc).
    ///
    /// Safety: the CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn dot_q4_avx2_row<const MINS: bool>(w: &WRow<'_>, x: &XRow<'_>) -> f32 {
        let nb = fits(w, x, BLOCK / 2);
        assert!((!MINS || w.mins.len() >= nb) && x.sums.len() >= nb);
        let mut acc = _mm256_setzero_ps();
        let mut min_vec = _mm256_setzero_ps();
        let mut b = 0;
        while b + 8 <= nb {
            // SAFETY: `fits` and the assertion above checked blocks `b..b + 8` in every slice.
            let (dw, s) = unsafe { scales8(w, x, b) };
            // SAFETY: as above.
            min_vec = unsafe { min_terms8::<MINS>(w, x, b, dw, min_vec) };
            for (j, &s) in s.iter().enumerate() {
                // SAFETY: as above.
                let isum = unsafe { q4_block_avx2(w, x, b + j) };
                acc = _mm256_fmadd_ps(_mm256_set1_ps(s), _mm256_cvtepi32_ps(isum), acc);
            }
            b += 8;
        }
        let mut min_acc = 0f32;
        for b in b..nb {
            // SAFETY: `fits` checked that block `b` lies inside both slices.
            let isum = unsafe { q4_block_avx2(w, x, b) };
            let d = widen(w.scales[b]);
            let scale = _mm256_set1_ps(d * x.scales[b]);
            acc = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(isum), acc);
            min_acc = min_of::<MINS>(w, d, b).mul_add(x.sums[b], min_acc);
        }
        hsum(_mm256_add_ps(acc, min_vec)) + min_acc
    }

    /// Q4 block `b` with AVX2: Σ nibble·q_x as eight i32 partial sums.
    ///
    /// Safety: block `b` inside both slices (`fits`).
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn q4_block_avx2(w: &WRow<'_>, x: &XRow<'_>, b: usize) -> __m256i {
        // SAFETY: the caller checked that block `b` lies inside both slices.
        let (packed, xv) = unsafe {
            (
                load128(w.qs.as_ptr().add(b * BLOCK / 2)),
                load256(x.qs.as_ptr().add(b * BLOCK).cast()),
            )
        };
        // Weights 0..16 are the low nibbles, 16..32 the high ones.
        let low = _mm_set1_epi8(0x0F);
        let lo = _mm_and_si128(packed, low);
        let hi = _mm_and_si128(_mm_srli_epi16::<4>(packed), low);
        let wv = _mm256_set_m128i(hi, lo);
        _mm256_madd_epi16(_mm256_maddubs_epi16(wv, xv), _mm256_set1_epi16(1))
    }
}
