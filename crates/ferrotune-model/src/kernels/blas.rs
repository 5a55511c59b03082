//! An optional, run-time loaded GEMM library for the large f32 products of training.
//!
//! On this project's 2-core AVX-512 machines, for the demo model's training shapes (2,048 rows
//! × 576–49,152 columns × 576–1,536 inner), the `gemm` crate (candle's CPU matmul) ran
//! 196–237 GFLOP/s and oneDNN's `dnnl_sgemm` 204–286, 0.97–1.23× (`cargo run -p
//! ferrotune-model --example bench_gemm`, which alternates the two in one run; torch's f32
//! matmul, `tools/bench_bf16_gemm.py`, ran 207–302 in the same session). So when oneDNN is
//! installed (Debian's `libdnnl2`/`libdnnl3`, or any `libdnnl.so` on the loader path) the
//! threaded products of the fused kernels go through it, and otherwise through the `gemm`
//! crate, with results equal up to f32 summation order.
//!
//! The library is opened with `dlopen` at the first product, never linked at build time, so
//! the project builds and runs without it. Settings, read once:
//! * `FERROTUNE_GEMM` — `auto` (default: oneDNN when it loads), `onednn` (the same, but a
//!   warning when it does not load) or `portable` (always the `gemm` crate);
//! * `FERROTUNE_DNNL_LIB` — a path to the library, tried before the usual names.
//!
//! oneDNN's CPU runtime in Debian's build is OpenMP (libgomp); its thread count is set once to
//! candle's (`RAYON_NUM_THREADS`/`CANDLE_NUM_THREADS`, else the core count). Its threads should
//! wait passively between products (`OMP_WAIT_POLICY=passive`, which the `ferrotune` binary
//! sets at start), or they spin on the cores the rayon pool needs.

use std::ffi::{c_char, c_int};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// `dnnl_sgemm(transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)`: row-major
/// `C = alpha·op(A)·op(B) + beta·C`, `dnnl_dim_t` = `int64_t`, returns `dnnl_status_t`
/// (0 = success). oneDNN 2.x and 3.x share this signature (dnnl.h, "BLAS functions").
type SgemmFn = unsafe extern "C" fn(
    c_char,
    c_char,
    i64,
    i64,
    i64,
    f32,
    *const f32,
    i64,
    *const f32,
    i64,
    f32,
    *mut f32,
    i64,
) -> c_int;

/// `omp_set_num_threads(n)` of the OpenMP runtime oneDNN was built with.
type OmpSetFn = unsafe extern "C" fn(c_int);

/// A loaded oneDNN: the library handle (kept open) and its `dnnl_sgemm`.
pub struct OneDnn {
    /// Where it was loaded from (for the log).
    pub path: String,
    sgemm: SgemmFn,
    _lib: libloading::Library,
}

/// File names tried, newest ABI first.
const NAMES: [&str; 3] = ["libdnnl.so.3", "libdnnl.so.2", "libdnnl.so"];

static LIBRARY: OnceLock<Option<OneDnn>> = OnceLock::new();

/// Cleared by [`set_enabled`]`(false)`: products then take the gemm crate even with a loaded
/// library.
static ENABLED: AtomicBool = AtomicBool::new(true);

/// The loaded GEMM library, or `None` when `FERROTUNE_GEMM=portable`, none could be opened, or
/// [`set_enabled`]`(false)`. The first call loads it.
pub fn library() -> Option<&'static OneDnn> {
    if !ENABLED.load(Ordering::Relaxed) {
        return None;
    }
    LIBRARY.get_or_init(load).as_ref()
}

/// Turns the library path on or off for the whole process (benchmarks and tests compare both
/// paths in one run); on by default.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// A one-line description of the GEMM path in use, for logs and benchmarks:
/// `"oneDNN (<path>)"` or `"gemm crate"`.
pub fn describe() -> String {
    match library() {
        Some(l) => format!("oneDNN ({})", l.path),
        None => "gemm crate".to_string(),
    }
}

fn load() -> Option<OneDnn> {
    let setting = std::env::var("FERROTUNE_GEMM").unwrap_or_default();
    let setting = setting.trim().to_ascii_lowercase();
    if matches!(setting.as_str(), "portable" | "gemm" | "off" | "0") {
        return None;
    }
    let mut candidates: Vec<String> = Vec::new();
    if let Ok(path) = std::env::var("FERROTUNE_DNNL_LIB") {
        if !path.trim().is_empty() {
            candidates.push(path);
        }
    }
    candidates.extend(NAMES.iter().map(|s| s.to_string()));
    for path in candidates {
        // SAFETY: loading oneDNN runs its (and libgomp's) initialisers, which have no
        // preconditions; the symbols below are looked up with the signatures of dnnl.h.
        let Ok(lib) = (unsafe { libloading::Library::new(&path) }) else {
            continue;
        };
        let sgemm = match unsafe { lib.get::<SgemmFn>(b"dnnl_sgemm\0") } {
            Ok(f) => *f,
            Err(_) => continue,
        };
        if let Ok(set) = unsafe { lib.get::<OmpSetFn>(b"omp_set_num_threads\0") } {
            let threads = candle_core::utils::get_num_threads().max(1);
            // SAFETY: omp_set_num_threads takes any positive count.
            unsafe { set(threads as c_int) };
        }
        return Some(OneDnn {
            path,
            sgemm,
            _lib: lib,
        });
    }
    if setting == "onednn" {
        eprintln!(
            "warning: FERROTUNE_GEMM=onednn but no oneDNN library could be loaded (tried \
             FERROTUNE_DNNL_LIB and {NAMES:?}); using the gemm crate. Install Debian's \
             libdnnl2 (scripts/install_gemm.sh)"
        );
    }
    None
}

/// How a matrix is passed to a row-major BLAS: `'N'` with leading dimension `ld` when rows are
/// contiguous (column stride 1), `'T'` when columns are (row stride 1) — the stored matrix is
/// then the transpose. `None` for other strides, or a leading dimension too small for BLAS.
fn blas_operand(rows: usize, cols: usize, rs: usize, cs: usize) -> Option<(c_char, i64)> {
    if cs == 1 && (rows <= 1 || rs >= cols) {
        Some((b'N' as c_char, rs.max(cols).max(1) as i64))
    } else if rs == 1 && (cols <= 1 || cs >= rows) {
        Some((b'T' as c_char, cs.max(rows).max(1) as i64))
    } else {
        None
    }
}

impl OneDnn {
    /// `dst = (accumulate ? dst : 0) + alpha · lhs · rhs`, `lhs` `m × k` at `(rs, cs)` strides,
    /// `rhs` `k × n`, `dst` `m × n` row-major with row stride `dst_rs`. Returns `false` (and
    /// leaves `dst` untouched) when a stride pattern is not BLAS-shaped or oneDNN reports an
    /// error; the caller then uses its portable path.
    ///
    /// # Safety
    /// `lhs`, `rhs` and `dst` must hold their matrices at the given strides, and `dst` must
    /// not alias the inputs (the callers check both).
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn sgemm(
        &self,
        m: usize,
        n: usize,
        k: usize,
        dst: *mut f32,
        dst_rs: usize,
        accumulate: bool,
        lhs: (*const f32, usize, usize),
        rhs: (*const f32, usize, usize),
        alpha: f32,
    ) -> bool {
        let (Some((ta, lda)), Some((tb, ldb))) = (
            blas_operand(m, k, lhs.1, lhs.2),
            blas_operand(k, n, rhs.1, rhs.2),
        ) else {
            return false;
        };
        if dst_rs < n {
            return false;
        }
        let beta = if accumulate { 1.0 } else { 0.0 };
        // SAFETY: per the contract above; oneDNN reads op(A) m×k, op(B) k×n and writes C m×n
        // with the leading dimensions given, all inside the caller's buffers.
        let status = unsafe {
            (self.sgemm)(
                ta,
                tb,
                m as i64,
                n as i64,
                k as i64,
                alpha,
                lhs.0,
                lda,
                rhs.0,
                ldb,
                beta,
                dst,
                dst_rs as i64,
            )
        };
        status == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blas_operands_follow_the_strides() {
        // Row-major 3×4: 'N', ld 4; its transpose view (4×3 with rs 1, cs 4): 'T', ld 4.
        assert_eq!(blas_operand(3, 4, 4, 1), Some((b'N' as c_char, 4)));
        assert_eq!(blas_operand(4, 3, 1, 4), Some((b'T' as c_char, 4)));
        // A row stride wider than the row (a sub-matrix) is a valid leading dimension.
        assert_eq!(blas_operand(3, 4, 10, 1), Some((b'N' as c_char, 10)));
        // Neither stride 1, or an overlapping leading dimension: not BLAS-shaped.
        assert_eq!(blas_operand(3, 4, 8, 2), None);
        assert_eq!(blas_operand(3, 4, 2, 1), None);
    }

    /// The library's products equal the gemm crate's on the training layouts (x·Wᵀ, dy·W,
    /// a transposed left operand, accumulation, a scale) within 1e-5 relative. Without oneDNN
    /// installed (`library()` is `None`) both sides take the gemm crate and the check is
    /// against candle's matmul only.
    #[test]
    fn library_products_equal_the_gemm_crate() {
        use crate::kernels::{gemm, matmul_nn, matmul_nt, rel_err, test_tensor, Mat};
        use candle_core::Tensor;
        let (m, n, k) = (67, 45, 33);
        let x = test_tensor(&[m, k], 1);
        let w = test_tensor(&[n, k], 2);
        let xs = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let ws = w.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let reference = x.matmul(&w.t().unwrap()).unwrap();
        let run = |on: bool| {
            set_enabled(on);
            let nt = matmul_nt(&xs, &ws, m, n, k).unwrap();
            let dy = &nt;
            let nn = matmul_nn(dy, &ws, m, n, k).unwrap();
            // xᵀ·x as two accumulated halves, the left operand read transposed.
            let mut acc = vec![0f32; k * k];
            for _ in 0..2 {
                gemm(
                    k,
                    k,
                    m,
                    &mut acc,
                    k,
                    true,
                    Mat::rows_t(&xs, k),
                    Mat::rows(&xs, k),
                    0.5,
                    true,
                )
                .unwrap();
            }
            set_enabled(true);
            (nt, nn, acc)
        };
        let (nt1, nn1, acc1) = run(true);
        let (nt0, nn0, acc0) = run(false);
        let t = |v: Vec<f32>, d: (usize, usize)| {
            Tensor::from_vec(v, d, &candle_core::Device::Cpu).unwrap()
        };
        assert!(rel_err(&t(nt0.clone(), (m, n)), &reference) < 1e-5);
        assert!(rel_err(&t(nt1, (m, n)), &t(nt0, (m, n))) < 1e-5);
        assert!(rel_err(&t(nn1, (m, k)), &t(nn0, (m, k))) < 1e-5);
        let xtx = x.t().unwrap().matmul(&x).unwrap();
        assert!(rel_err(&t(acc0.clone(), (k, k)), &xtx) < 1e-5);
        assert!(rel_err(&t(acc1, (k, k)), &t(acc0, (k, k))) < 1e-5);
        eprintln!("gemm path: {}", describe());
    }
}
