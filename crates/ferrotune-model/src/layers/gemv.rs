//! `y = x·Wᵀ` for a few rows of `x`: the decode step's matrix–vector products.
//!
//! Shapes: R rows of `x` (1 per sequence in a decode step), K input features, N output
//! features; `x` `[R, K]`, `W` `[N, K]` (PyTorch layout), `y` `[R, N]`, all row-major f32.
//!
//! A GEMM library tiles for many rows; with one row the product is bound by reading `W`, so
//! here each row of `W` is read exactly once and dotted with every row of `x` (which stays in
//! L1), and the N output features are split across the rayon pool. The dot products are plain
//! loops over independent lanes, compiled three times (AVX-512F, AVX2+FMA, baseline) and chosen
//! at run time, so the compiler emits packed FMAs without a `target-cpu` flag.
//!
//! Results equal candle's matmul up to f32 summation order (not bit for bit), so training,
//! which needs bit-stable numbers, never comes here: [`crate::layers::matmul_wt`] takes this
//! path only when no gradient is tracked.

use rayon::prelude::*;

/// Largest row count of `x` for which the kernels of this module (and of
/// [`crate::layers::QuantizedWeight`]) are used instead of a GEMM.
pub const GEMV_MAX_ROWS: usize = 8;

/// Products smaller than this many weight elements (`N·K`) run on one thread: below it the
/// pool's wake-up costs more than it saves (a `[192, 576]` k_proj stays serial).
const PARALLEL_MIN_ELEMS: usize = 1 << 18;

/// Output features per parallel task when the product is split (a multiple of 8).
const ROWS_PER_TASK: usize = 64;

/// Runs `f(first_out_row, yt_chunk)` over the output features of a product with `rows` rows
/// of `x` and returns `y` `[rows, out]`. `yt_chunk` is the chunk's slice of `yᵀ` `[out, rows]`
/// (for output row `first_out_row + i`, the values for every `x` row at `i·rows..(i+1)·rows`).
/// Serial when `out·k` < [`PARALLEL_MIN_ELEMS`], else split into tasks on the rayon pool.
pub(crate) fn for_out_rows<F>(rows: usize, out: usize, k: usize, f: F) -> Vec<f32>
where
    F: Fn(usize, &mut [f32]) + Sync,
{
    let mut yt = vec![0f32; rows * out];
    if rows == 0 || out == 0 {
        return yt;
    }
    if out * k < PARALLEL_MIN_ELEMS {
        f(0, &mut yt);
    } else {
        yt.par_chunks_mut(ROWS_PER_TASK * rows)
            .enumerate()
            .for_each(|(task, chunk)| f(task * ROWS_PER_TASK, chunk));
    }
    if rows == 1 {
        return yt;
    }
    // yᵀ [out, rows] → y [rows, out].
    let mut y = vec![0f32; rows * out];
    for (j, col) in yt.chunks_exact(rows).enumerate() {
        for (r, &v) in col.iter().enumerate() {
            y[r * out + j] = v;
        }
    }
    y
}

/// `x` `[rows, k]` · `w`ᵀ with `w` `[out, k]` → `y` `[rows, out]`, all f32 row-major.
///
/// Meant for `rows` ≤ [`GEMV_MAX_ROWS`] (any count is correct, but a GEMM is faster for many
/// rows). The caller guarantees `x.len() == rows·k` and `w.len() == out·k`; shorter slices
/// give a result over the available elements only (no panic).
pub fn gemv_f32(x: &[f32], rows: usize, w: &[f32], out: usize, k: usize) -> Vec<f32> {
    let kernel = select_f32_kernel();
    for_out_rows(rows, out, k, |first, yt| {
        let n = yt.len() / rows.max(1);
        let start = (first * k).min(w.len());
        let end = ((first + n) * k).min(w.len());
        kernel(&w[start..end], x, rows, k, yt);
    })
}

/// Signature of the f32 kernels: `(w_rows [n, k], x [rows, k], rows, k, yt [n, rows])`.
type F32Kernel = fn(&[f32], &[f32], usize, usize, &mut [f32]);

/// The fastest f32 kernel this CPU runs.
fn select_f32_kernel() -> F32Kernel {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return rows_f32_avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return rows_f32_avx2;
        }
    }
    rows_f32_plain
}

/// Dot product over 32 independent lanes (so the loop vectorizes without reassociating a
/// single sum), `madd(a, b, acc)` being either a fused or a plain multiply-add.
#[inline(always)]
fn dot_lanes(a: &[f32], b: &[f32], madd: impl Fn(f32, f32, f32) -> f32) -> f32 {
    const LANES: usize = 32;
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] = madd(x[i], y[i], acc[i]);
        }
    }
    let mut tail = 0f32;
    for (&x, &y) in ta.iter().zip(tb) {
        tail = madd(x, y, tail);
    }
    // Pairwise fold of the lanes.
    let mut width = LANES / 2;
    while width > 0 {
        for i in 0..width {
            acc[i] += acc[i + width];
        }
        width /= 2;
    }
    acc[0] + tail
}

/// The body shared by the three f32 kernels (see [`F32Kernel`]).
#[inline(always)]
fn rows_f32_body(
    w: &[f32],
    x: &[f32],
    rows: usize,
    k: usize,
    yt: &mut [f32],
    madd: impl Fn(f32, f32, f32) -> f32 + Copy,
) {
    if k == 0 || rows == 0 {
        return;
    }
    for (w_row, y_col) in w.chunks_exact(k).zip(yt.chunks_exact_mut(rows)) {
        for (x_row, y) in x.chunks_exact(k).zip(y_col.iter_mut()) {
            *y = dot_lanes(w_row, x_row, madd);
        }
    }
}

fn rows_f32_plain(w: &[f32], x: &[f32], rows: usize, k: usize, yt: &mut [f32]) {
    rows_f32_body(w, x, rows, k, yt, |a, b, c| a * b + c);
}

#[cfg(target_arch = "x86_64")]
fn rows_f32_avx2(w: &[f32], x: &[f32], rows: usize, k: usize, yt: &mut [f32]) {
    #[target_feature(enable = "avx2,fma")]
    fn inner(w: &[f32], x: &[f32], rows: usize, k: usize, yt: &mut [f32]) {
        rows_f32_body(w, x, rows, k, yt, f32::mul_add);
    }
    // SAFETY: only selected by `select_f32_kernel` after detecting AVX2 and FMA.
    unsafe { inner(w, x, rows, k, yt) }
}

#[cfg(target_arch = "x86_64")]
fn rows_f32_avx512(w: &[f32], x: &[f32], rows: usize, k: usize, yt: &mut [f32]) {
    #[target_feature(enable = "avx512f,fma")]
    fn inner(w: &[f32], x: &[f32], rows: usize, k: usize, yt: &mut [f32]) {
        rows_f32_body(w, x, rows, k, yt, f32::mul_add);
    }
    // SAFETY: only selected by `select_f32_kernel` after detecting AVX-512F (which implies FMA
    // on every CPU that has it; `fma` is enabled alongside for the scalar `mul_add`).
    unsafe { inner(w, x, rows, k, yt) }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::layers::test_values as values;

    fn reference(x: &[f32], rows: usize, w: &[f32], out: usize, k: usize) -> Vec<f64> {
        let mut y = vec![0f64; rows * out];
        for r in 0..rows {
            for j in 0..out {
                y[r * out + j] = (0..k)
                    .map(|i| f64::from(x[r * k + i]) * f64::from(w[j * k + i]))
                    .sum();
            }
        }
        y
    }

    #[test]
    fn every_kernel_matches_a_f64_reference() {
        // k not a multiple of the lane count; out large enough to run in parallel tasks with a
        // partial last task; rows 1 (no transpose) and 3.
        let (out, k) = (1000, 577);
        let w = values(out * k, 1);
        for rows in [1, 3] {
            let x = values(rows * k, 2 + rows as u32);
            let want = reference(&x, rows, &w, out, k);
            let mut kernels: Vec<(&str, F32Kernel)> = vec![("plain", rows_f32_plain)];
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    kernels.push(("avx2", rows_f32_avx2));
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    kernels.push(("avx512", rows_f32_avx512));
                }
            }
            for (name, kernel) in kernels {
                let got = for_out_rows(rows, out, k, |first, yt| {
                    let n = yt.len() / rows;
                    kernel(&w[first * k..(first + n) * k], &x, rows, k, yt);
                });
                let max = got
                    .iter()
                    .zip(&want)
                    .map(|(&g, &r)| (f64::from(g) - r).abs())
                    .fold(0f64, f64::max);
                assert!(max < 1e-4, "{name}, rows {rows}: max |diff| {max}");
            }
            let got = gemv_f32(&x, rows, &w, out, k);
            assert_eq!(got.len(), rows * out);
        }
    }

    #[test]
    fn small_products_run_serially_and_give_the_same_values() {
        let (out, k, rows) = (7, 5, 2);
        let (w, x) = (values(out * k, 9), values(rows * k, 10));
        let got = gemv_f32(&x, rows, &w, out, k);
        let want = reference(&x, rows, &w, out, k);
        for (g, r) in got.iter().zip(&want) {
            assert!((f64::from(*g) - r).abs() < 1e-6, "{g} vs {r}");
        }
    }
}
