//! Fused CPU kernels for training with hand-written backward passes.
//!
//! Each kernel replaces a chain of generic candle tensor ops (each of which allocates its
//! output, and whose autograd adds one more zero-filled buffer and one more addition per node)
//! by one pass over plain f32 slices, split over the rayon thread pool, and records a
//! backward computed the same way. Every kernel is checked against the unfused reference
//! path (values and gradients) in its tests.
//!
//! The kernels are used when [`fused`] is on (the default; `FERROTUNE_FUSED_KERNELS=0` in the
//! environment turns it off at start, [`set_fused`] at run time) and the inputs are f32
//! tensors on the CPU; anything else takes the reference path.

use std::sync::atomic::{AtomicU8, Ordering};

/// 0: not read yet, 1: on, 2: off.
static FUSED: AtomicU8 = AtomicU8::new(0);

/// Whether the fused kernels are used (see the module docs). The first call reads
/// `FERROTUNE_FUSED_KERNELS` (`0`, `false` or `off` turn them off).
pub fn fused() -> bool {
    if let Some(on) = OVERRIDE.with(|o| o.get()) {
        return on;
    }
    match FUSED.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let off = std::env::var("FERROTUNE_FUSED_KERNELS")
                .map(|v| matches!(v.trim(), "0" | "false" | "off"))
                .unwrap_or(false);
            FUSED.store(if off { 2 } else { 1 }, Ordering::Relaxed);
            !off
        }
    }
}

thread_local! {
    /// A per-thread setting that wins over the process-wide one (see [`with_fused`]).
    static OVERRIDE: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with the fused kernels on or off on this thread only (tests compare both paths
/// while other threads run), restoring the previous setting after.
pub fn with_fused<R>(on: bool, f: impl FnOnce() -> R) -> R {
    let before = OVERRIDE.with(|o| o.replace(Some(on)));
    let out = f();
    OVERRIDE.with(|o| o.set(before));
    out
}

/// Turns the fused kernels on or off for the whole process (benchmarks and tests compare
/// both paths in one run).
pub fn set_fused(on: bool) {
    FUSED.store(if on { 1 } else { 2 }, Ordering::Relaxed);
}

pub mod attention;
pub mod blas;
pub mod exp;
pub mod lora;
pub mod lora_block;
pub mod precision;
pub mod rmsnorm;
pub mod rope;
pub mod simd;
pub mod swiglu;

use candle_core::{CpuStorage, DType, Layout, Storage, Tensor};

/// Whether the fused kernels may take `tensors`: [`fused`] is on and every tensor is f32 on
/// the CPU.
pub(crate) fn eligible(tensors: &[&Tensor]) -> bool {
    fused()
        && tensors
            .iter()
            .all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
}

/// The f32 elements of a contiguous CPU storage in `layout` order.
///
/// Errors: another dtype, or a layout that is not contiguous.
pub(crate) fn cpu_slice<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
) -> candle_core::Result<&'a [f32]> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("fused kernel: input must be contiguous");
    };
    Ok(&storage.as_slice::<f32>()?[start..end])
}

/// Calls `f` with the f32 elements of `t` (CPU), made contiguous first when it is not.
///
/// Errors: a tensor that is not f32 on the CPU.
pub(crate) fn with_slice<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> candle_core::Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("fused kernel: tensor must be on the CPU");
    };
    Ok(f(cpu_slice(cpu, layout)?))
}

/// A strided f32 matrix read from a slice: element `(i, j)` at `data[i·rs + j·cs]`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// A row-major matrix with `cols` columns.
    pub fn rows(data: &'a [f32], cols: usize) -> Self {
        Mat {
            data,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose of a row-major matrix with `cols` columns.
    pub fn rows_t(data: &'a [f32], cols: usize) -> Self {
        Mat {
            data,
            rs: 1,
            cs: cols,
        }
    }

    /// Whether an `m × n` matrix fits in `data`.
    fn fits(&self, m: usize, n: usize) -> bool {
        m == 0 || n == 0 || (m - 1) * self.rs + (n - 1) * self.cs < self.data.len()
    }
}

/// `dst = (accumulate ? dst : 0) + beta · lhs · rhs` with `lhs` `m × k`, `rhs` `k × n`, `dst`
/// `m × n` row-major with row stride `dst_rs`. With `threads`, by oneDNN when it is loaded
/// ([`blas::library`]) and the strides are BLAS-shaped, else by the `gemm` crate (the kernels
/// candle's CPU matmul uses) on the rayon pool; without `threads` (products inside a parallel
/// loop), by the `gemm` crate on the calling thread.
///
/// Errors: a matrix that does not fit in its slice.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    lhs: Mat<'_>,
    rhs: Mat<'_>,
    beta: f32,
    threads: bool,
) -> candle_core::Result<()> {
    let dst_fits = m == 0 || n == 0 || (m - 1) * dst_rs + n <= dst.len();
    if !dst_fits || !lhs.fits(m, k) || !rhs.fits(k, n) {
        candle_core::bail!("fused kernel: gemm {m}×{k}·{k}×{n} does not fit its buffers");
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                dst[i * dst_rs..i * dst_rs + n].fill(0.0);
            }
        }
        return Ok(());
    }
    if threads {
        if let Some(lib) = blas::library() {
            // SAFETY: the matrices lie inside their slices (checked above) and `dst` is a
            // unique borrow.
            let done = unsafe {
                lib.sgemm(
                    m,
                    n,
                    k,
                    dst.as_mut_ptr(),
                    dst_rs,
                    accumulate,
                    (lhs.data.as_ptr(), lhs.rs, lhs.cs),
                    (rhs.data.as_ptr(), rhs.rs, rhs.cs),
                    beta,
                )
            };
            if done {
                return Ok(());
            }
        }
    }
    let parallelism = if threads {
        gemm::Parallelism::Rayon(candle_core::utils::get_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the three matrices lie inside their slices (checked above); `dst` is a unique
    // borrow, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            1.0,
            beta,
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(())
}

/// `x·Wᵀ` with `x` `[rows, k]` and `w` `[out, k]`, both row-major f32, → `[rows, out]`
/// row-major, by [`gemm`] on every thread (oneDNN when loaded, else the gemm crate). The
/// operands are used as given: mixed-precision callers round them first
/// ([`precision::round_operand`]).
///
/// Errors: slices shorter than their shapes.
pub fn matmul_nt(
    x: &[f32],
    w: &[f32],
    rows: usize,
    out: usize,
    k: usize,
) -> candle_core::Result<Vec<f32>> {
    let mut y = vec![0f32; rows * out];
    gemm(
        rows,
        out,
        k,
        &mut y,
        out,
        false,
        Mat::rows(x, k),
        Mat::rows_t(w, k),
        1.0,
        true,
    )?;
    Ok(y)
}

/// `g·W` with `g` `[rows, out]` and `w` `[out, k]`, both row-major f32, → `[rows, k]` row-major
/// (the input gradient of `x·Wᵀ`), by [`gemm`] on every thread.
///
/// Errors: slices shorter than their shapes.
pub fn matmul_nn(
    g: &[f32],
    w: &[f32],
    rows: usize,
    out: usize,
    k: usize,
) -> candle_core::Result<Vec<f32>> {
    let mut dx = vec![0f32; rows * k];
    gemm(
        rows,
        k,
        out,
        &mut dx,
        k,
        false,
        Mat::rows(g, out),
        Mat::rows(w, k),
        1.0,
        true,
    )?;
    Ok(dx)
}

/// `gᵀ·x` with `g` `[rows, out]` and `x` `[rows, k]`, both row-major f32, → `[out, k]`
/// row-major (the weight gradient of `x·Wᵀ`), by [`gemm`] on every thread.
///
/// Errors: slices shorter than their shapes.
pub fn matmul_tn(
    g: &[f32],
    x: &[f32],
    rows: usize,
    out: usize,
    k: usize,
) -> candle_core::Result<Vec<f32>> {
    let mut dw = vec![0f32; out * k];
    matmul_tn_into(&mut dw, false, g, x, (rows, out, k))?;
    Ok(dw)
}

/// [`matmul_tn`] written into `dw` `[out, k]` (`dims` = `(rows, out, k)`), added to what it
/// holds when `accumulate` (a weight gradient summed over chunks of rows).
///
/// Errors: slices shorter than their shapes.
pub fn matmul_tn_into(
    dw: &mut [f32],
    accumulate: bool,
    g: &[f32],
    x: &[f32],
    (rows, out, k): (usize, usize, usize),
) -> candle_core::Result<()> {
    gemm(
        out,
        k,
        rows,
        dw,
        k,
        accumulate,
        Mat::rows_t(g, out),
        Mat::rows(x, k),
        1.0,
        true,
    )
}

/// A deterministic pseudo-random tensor in [-1, 1) for the kernel tests.
#[cfg(test)]
pub(crate) fn test_tensor(shape: &[usize], seed: u32) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(
        crate::layers::test_values(n, seed),
        shape,
        &candle_core::Device::Cpu,
    )
    .unwrap_or_else(|e| panic!("test tensor: {e}"))
}

/// max |a − b| / max(|b|, tiny) over all elements (b the reference), for the kernel tests.
#[cfg(test)]
pub(crate) fn rel_err(a: &Tensor, b: &Tensor) -> f32 {
    let d = (a - b)
        .and_then(|d| d.abs()?.max_all()?.to_scalar::<f32>())
        .unwrap_or(f32::INFINITY);
    let s = b
        .abs()
        .and_then(|s| s.max_all()?.to_scalar::<f32>())
        .unwrap_or(0.0);
    d / s.max(1e-30)
}
