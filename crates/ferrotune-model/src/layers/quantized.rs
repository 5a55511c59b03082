//! Block-quantized weights kept as stored in a GGUF file (Q8_0, Q4_0, Q4_1), for inference.
//!
//! Shapes: R rows of `x`, K input features (a multiple of 32), N output features, NB = K/32
//! blocks per weight row; `W` `[N, K]`, `x` `[R, K]`, `y` `[R, N]`.
//!
//! Block layouts (ggml's `ggml-common.h`, `block_q8_0`, `block_q4_0`, `block_q4_1`; 32 weights
//! per block, little-endian):
//! - Q8_0, 34 bytes: f16 scale `d`, then 32 × i8 `q`; weight `i` = `d·q[i]`.
//! - Q4_0, 18 bytes: f16 `d`, then 16 bytes; byte `j` holds weight `j` in its low nibble and
//!   weight `j + 16` in its high nibble; weight = `d·(nibble − 8)`.
//! - Q4_1, 20 bytes: f16 `d`, f16 `m`, then 16 bytes as Q4_0; weight = `d·nibble + m`.
//!
//! At load the blocks are split into arrays: scales (and minimums) widened to f32, and the
//! packed integers as they are. Q4_0 is kept as Q4_1 with `m = −8d`, so one kernel serves both.
//!
//! The product follows llama.cpp's CPU scheme (`ggml-cpu`'s `ggml_vec_dot_q4_1_q8_1` and
//! `ggml_vec_dot_q8_0_q8_0`): each row of `x` is first quantized to 8-bit blocks of 32
//! (`d_x = max|x|/127`, `q_x = round(x/d_x)`, and `s_x = d_x·Σq_x`), then each block's integer
//! dot product is scaled: `Σ_b d_w·d_x·Σ_i q_w·q_x (+ m_w·s_x for Q4)`. The integer part runs as
//! AVX2 `vpmaddubsw`/`vpmaddwd`, or VNNI `vpdpbusd` where the CPU has it, on x86-64 (a portable
//! loop elsewhere). Quantizing `x` adds an error of the same order as the weights' own (≈ 1/254
//! of each block's largest activation), as in llama.cpp.

use std::sync::Arc;

use candle_core::{DType, Tensor, TensorId};
use ferrotune_hub::gguf::GgmlType;

use crate::error::Result;
use crate::layers::gemv::{for_out_rows, GEMV_MAX_ROWS};

/// Weights per block for every supported type.
const BLOCK: usize = 32;

/// How the integers of a [`QMatrix`] are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QFormat {
    /// 8-bit signed integers, one scale per block (GGUF Q8_0).
    Q8,
    /// 4-bit unsigned integers packed two per byte, a scale and a minimum per block (GGUF Q4_1,
    /// and Q4_0 with minimum `−8·scale`).
    Q4,
}

/// A `[N, K]` weight matrix in 32-weight blocks.
#[derive(Debug, Clone)]
pub struct QMatrix {
    format: QFormat,
    /// The GGUF type it was read from (Q8_0, Q4_0 or Q4_1).
    source_type: GgmlType,
    /// N.
    out: usize,
    /// K.
    k: usize,
    /// `[N, NB]` block scales `d`.
    scales: Vec<f32>,
    /// `[N, NB]` block minimums `m` (Q4 only; empty for Q8).
    mins: Vec<f32>,
    /// `[N, NB, 32]` i8 (Q8) or `[N, NB, 16]` packed nibbles (Q4).
    qs: Vec<u8>,
}

impl QMatrix {
    /// Reads `[out, k]` weights stored as GGUF `dtype` (Q8_0, Q4_0 or Q4_1) from their bytes.
    ///
    /// Errors (as a message for the caller to wrap with the file and tensor): another type, `k`
    /// not a multiple of 32, or a byte count that disagrees with the shape.
    pub fn from_ggml(
        dtype: GgmlType,
        bytes: &[u8],
        out: usize,
        k: usize,
    ) -> std::result::Result<Self, String> {
        let block_bytes = match dtype {
            GgmlType::Q8_0 => 34,
            GgmlType::Q4_0 => 18,
            GgmlType::Q4_1 => 20,
            other => {
                return Err(format!(
                    "type {other} is not kept quantized; supported: Q8_0, Q4_0, Q4_1"
                ))
            }
        };
        if k % BLOCK != 0 {
            return Err(format!(
                "{k} input features are not a multiple of the block size {BLOCK}"
            ));
        }
        let n_blocks = out * (k / BLOCK);
        if bytes.len() != n_blocks * block_bytes {
            return Err(format!(
                "{} bytes for [{out}, {k}] {dtype} weights; expected {}",
                bytes.len(),
                n_blocks * block_bytes
            ));
        }
        let f16_at = |b: &[u8], i: usize| half::f16::from_le_bytes([b[i], b[i + 1]]).to_f32();
        let mut scales = Vec::with_capacity(n_blocks);
        let mut mins = Vec::new();
        let mut qs = Vec::new();
        let format = match dtype {
            GgmlType::Q8_0 => {
                qs.reserve(n_blocks * BLOCK);
                for b in bytes.chunks_exact(block_bytes) {
                    scales.push(f16_at(b, 0));
                    qs.extend_from_slice(&b[2..]);
                }
                QFormat::Q8
            }
            _ => {
                mins.reserve(n_blocks);
                qs.reserve(n_blocks * BLOCK / 2);
                for b in bytes.chunks_exact(block_bytes) {
                    let d = f16_at(b, 0);
                    scales.push(d);
                    if dtype == GgmlType::Q4_1 {
                        mins.push(f16_at(b, 2));
                        qs.extend_from_slice(&b[4..]);
                    } else {
                        mins.push(-8.0 * d);
                        qs.extend_from_slice(&b[2..]);
                    }
                }
                QFormat::Q4
            }
        };
        Ok(Self {
            format,
            source_type: dtype,
            out,
            k,
            scales,
            mins,
            qs,
        })
    }

    /// `[N, K]`.
    pub fn dims(&self) -> (usize, usize) {
        (self.out, self.k)
    }

    /// The GGUF type the blocks came from.
    pub fn source_type(&self) -> GgmlType {
        self.source_type
    }

    /// Bytes held (integers and f32 scales).
    pub fn n_bytes(&self) -> usize {
        self.qs.len() + 4 * (self.scales.len() + self.mins.len())
    }

    /// The same matrix with its rows reordered: row `i` of the result is row `perm[i]` here.
    /// Errors when `perm` is not a permutation of `0..N`.
    pub fn permute_rows(&self, perm: &[usize]) -> std::result::Result<Self, String> {
        let mut seen = vec![false; self.out];
        let valid = perm.len() == self.out
            && perm
                .iter()
                .all(|&p| p < self.out && !std::mem::replace(&mut seen[p], true));
        if !valid {
            return Err(format!(
                "row order {perm:?} is not a permutation of 0..{}",
                self.out
            ));
        }
        let nb = self.k / BLOCK;
        let q_row = self.qs.len() / self.out.max(1);
        let mut out = Self {
            scales: Vec::with_capacity(self.scales.len()),
            mins: Vec::with_capacity(self.mins.len()),
            qs: Vec::with_capacity(self.qs.len()),
            ..self.clone_header()
        };
        for &p in perm {
            out.scales
                .extend_from_slice(&self.scales[p * nb..(p + 1) * nb]);
            if !self.mins.is_empty() {
                out.mins.extend_from_slice(&self.mins[p * nb..(p + 1) * nb]);
            }
            out.qs
                .extend_from_slice(&self.qs[p * q_row..(p + 1) * q_row]);
        }
        Ok(out)
    }

    fn clone_header(&self) -> Self {
        Self {
            format: self.format,
            source_type: self.source_type,
            out: self.out,
            k: self.k,
            scales: Vec::new(),
            mins: Vec::new(),
            qs: Vec::new(),
        }
    }

    /// The weights as f32 `[N·K]` row-major (`d·q` for Q8, `d·nibble + m` for Q4), for tests
    /// against the f32 path.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut w = Vec::with_capacity(self.out * self.k);
        match self.format {
            QFormat::Q8 => {
                for (q, &d) in self.qs.chunks_exact(BLOCK).zip(&self.scales) {
                    w.extend(q.iter().map(|&v| d * f32::from(v as i8)));
                }
            }
            QFormat::Q4 => {
                for ((q, &d), &m) in self
                    .qs
                    .chunks_exact(BLOCK / 2)
                    .zip(&self.scales)
                    .zip(&self.mins)
                {
                    w.extend(q.iter().map(|&v| d * f32::from(v & 0x0F) + m));
                    w.extend(q.iter().map(|&v| d * f32::from(v >> 4) + m));
                }
            }
        }
        w
    }

    /// `x` `[rows, K]` f32 row-major · Wᵀ → `[rows, N]` f32, with `x` quantized to 8-bit blocks
    /// (see the module doc). Errors when `x.len() != rows·K`.
    pub fn matmul(&self, x: &[f32], rows: usize) -> std::result::Result<Vec<f32>, String> {
        if x.len() != rows * self.k {
            return Err(format!(
                "input has {} values; expected {rows} rows of {}",
                x.len(),
                self.k
            ));
        }
        let xq = Q8Rows::quantize(x, rows, self.k);
        let nb = self.k / BLOCK;
        let q_row = self.qs.len() / self.out.max(1);
        let dot = select_dot(self.format);
        Ok(for_out_rows(rows, self.out, self.k, |first, yt| {
            for (i, y_col) in yt.chunks_exact_mut(rows.max(1)).enumerate() {
                let j = first + i;
                let w = WRow {
                    qs: &self.qs[j * q_row..(j + 1) * q_row],
                    scales: &self.scales[j * nb..(j + 1) * nb],
                    mins: self.mins.get(j * nb..(j + 1) * nb).unwrap_or(&[]),
                };
                for (r, y) in y_col.iter_mut().enumerate() {
                    *y = dot(&w, &xq.row(r));
                }
            }
        }))
    }
}

/// A [`QMatrix`] attached to a layer, valid only for the f32 weight it was read with.
///
/// The layer keeps its f32 weight (for prefill, adapters, export); this copy serves products
/// with at most [`GEMV_MAX_ROWS`] rows and no gradient. It remembers the id of the f32 tensor
/// it stands for, so a layer whose weight was replaced (merged adapters, a trainable copy) falls
/// back to the f32 path instead of using stale blocks. Changing a weight's values in place
/// (`Var::set`) keeps its id: do not train a model loaded with quantized weights.
#[derive(Debug, Clone)]
pub struct QuantizedWeight {
    source: TensorId,
    matrix: Arc<QMatrix>,
}

impl QuantizedWeight {
    /// Attaches `matrix` to the f32 weight `weight` `[N, K]` it was read with.
    pub fn new(weight: &Tensor, matrix: QMatrix) -> Self {
        Self {
            source: weight.id(),
            matrix: Arc::new(matrix),
        }
    }

    /// The blocks.
    pub fn matrix(&self) -> &QMatrix {
        &self.matrix
    }

    /// `x` `[rows, K]` · Wᵀ from the blocks when they serve this product: `weight` is the one
    /// they were read with, `x` is contiguous f32 on the CPU with at most [`GEMV_MAX_ROWS`] rows
    /// and tracks no gradient. `None` means: use the f32 weight.
    pub fn try_matmul(&self, x: &Tensor, weight: &Tensor) -> Result<Option<Tensor>> {
        let serves = weight.id() == self.source
            && !x.track_op()
            && x.device().is_cpu()
            && x.dtype() == DType::F32
            && x.rank() == 2;
        if !serves {
            return Ok(None);
        }
        let (rows, k) = x.dims2()?;
        let (out, k_w) = self.matrix.dims();
        if rows > GEMV_MAX_ROWS || k != k_w {
            return Ok(None);
        }
        let xs = x.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let y = self
            .matrix
            .matmul(&xs, rows)
            .map_err(candle_core::Error::msg)?;
        Ok(Some(Tensor::from_vec(y, (rows, out), x.device())?))
    }
}

/// One weight row's blocks.
struct WRow<'a> {
    /// `[NB, 32]` i8 or `[NB, 16]` nibbles.
    qs: &'a [u8],
    /// `[NB]`.
    scales: &'a [f32],
    /// `[NB]` (Q4) or empty.
    mins: &'a [f32],
}

/// One activation row's 8-bit blocks.
struct XRow<'a> {
    /// `[NB, 32]`.
    qs: &'a [i8],
    /// `[NB]` block scales `d_x`.
    scales: &'a [f32],
    /// `[NB]` `d_x·Σq_x`, the block's sum as the Q4 minimum term needs it.
    sums: &'a [f32],
}

/// Rows of `x` quantized to 8-bit blocks of 32.
struct Q8Rows {
    nb: usize,
    qs: Vec<i8>,
    scales: Vec<f32>,
    sums: Vec<f32>,
}

impl Q8Rows {
    /// `x` `[rows, k]`, `k` a multiple of 32: per block `d = max|x|/127`, `q = round(x/d)`
    /// (all zeros when the block is), `s = d·Σq`.
    fn quantize(x: &[f32], rows: usize, k: usize) -> Self {
        let nb = k / BLOCK;
        let mut qs = Vec::with_capacity(rows * k);
        let mut scales = Vec::with_capacity(rows * nb);
        let mut sums = Vec::with_capacity(rows * nb);
        for block in x.chunks_exact(BLOCK) {
            let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
            let mut sum = 0i32;
            for &v in block {
                let q = (v * inv).round() as i8;
                sum += i32::from(q);
                qs.push(q);
            }
            scales.push(d);
            sums.push(d * sum as f32);
        }
        Self {
            nb,
            qs,
            scales,
            sums,
        }
    }

    fn row(&self, r: usize) -> XRow<'_> {
        let nb = self.nb;
        XRow {
            qs: &self.qs[r * nb * BLOCK..(r + 1) * nb * BLOCK],
            scales: &self.scales[r * nb..(r + 1) * nb],
            sums: &self.sums[r * nb..(r + 1) * nb],
        }
    }
}

/// A row dot product between weight blocks and activation blocks.
type DotFn = fn(&WRow<'_>, &XRow<'_>) -> f32;

/// The fastest kernel this CPU runs for `format`: AVX512-VNNI, then AVX2 + FMA, then the
/// portable loop, detected at run time.
fn select_dot(format: QFormat) -> DotFn {
    #[cfg(target_arch = "x86_64")]
    {
        if x86::has_vnni() {
            return match format {
                QFormat::Q8 => x86::dot_q8_vnni,
                QFormat::Q4 => x86::dot_q4_vnni,
            };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return match format {
                QFormat::Q8 => x86::dot_q8_avx2,
                QFormat::Q4 => x86::dot_q4_avx2,
            };
        }
    }
    match format {
        QFormat::Q8 => dot_q8_plain,
        QFormat::Q4 => dot_q4_plain,
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
        acc += w.scales[b] * x.scales[b] * isum as f32;
    }
    acc
}

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
        acc += w.scales[b] * x.scales[b] * isum as f32 + w.mins[b] * x.sums[b];
    }
    acc
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! AVX2 block dot products: per block, 32 byte pairs multiplied and summed to eight i32
    //! (`vpmaddubsw` u8×i8 → pairs of i16, `vpmaddwd` by 1 → i32), converted to f32 and scaled
    //! into eight f32 accumulators that are summed once per row.
    //!
    //! VNNI kernels: `vpdpbusd` (Intel SDM vol. 2C, "VPDPBUSD — Multiply and Add Unsigned and
    //! Signed Bytes") multiplies groups of four u8 × i8 pairs and adds them to an i32 lane in
    //! one instruction, replacing `vpmaddubsw` + `vpmaddwd`. Its operands are u8 × i8, so Q8_0
    //! passes `|w|` and `x` with `w`'s sign (`vpabsb`, `vpsignb`), and Q4's nibbles go in as
    //! they are. Two blocks per step, into two accumulators, for independent dependency chains.

    use std::arch::x86_64::*;

    use super::{WRow, XRow, BLOCK};

    /// Sum of the eight lanes.
    #[target_feature(enable = "avx2,fma")]
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

    pub(super) fn dot_q8_avx2(w: &WRow<'_>, x: &XRow<'_>) -> f32 {
        #[target_feature(enable = "avx2,fma")]
        fn inner(w: &WRow<'_>, x: &XRow<'_>) -> f32 {
            let nb = fits(w, x, BLOCK);
            let ones = _mm256_set1_epi16(1);
            let mut acc = _mm256_setzero_ps();
            for b in 0..nb {
                // SAFETY: `fits` checked that block `b` lies inside both slices.
                let (wv, xv) = unsafe {
                    (
                        _mm256_loadu_si256(w.qs.as_ptr().add(b * BLOCK).cast()),
                        _mm256_loadu_si256(x.qs.as_ptr().add(b * BLOCK).cast()),
                    )
                };
                // i8·i8 through the u8·i8 instruction: |w| times x carrying w's sign.
                let prod = _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
                let isum = _mm256_madd_epi16(prod, ones);
                let scale = _mm256_set1_ps(w.scales[b] * x.scales[b]);
                acc = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(isum), acc);
            }
            hsum(acc)
        }
        // SAFETY: selected only after detecting AVX2 and FMA.
        unsafe { inner(w, x) }
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

    /// Whether the CPU has what the VNNI kernels use: AVX512-VNNI with AVX512VL (the 256-bit
    /// EVEX form of `vpdpbusd`), AVX2 and FMA.
    pub(super) fn has_vnni() -> bool {
        std::arch::is_x86_feature_detected!("avx512vnni")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
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
    #[target_feature(enable = "avx2,fma")]
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

    pub(super) fn dot_q8_vnni(w: &WRow<'_>, x: &XRow<'_>) -> f32 {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn inner(w: &WRow<'_>, x: &XRow<'_>) -> f32 {
            let nb = fits(w, x, BLOCK);
            let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            let mut b = 0;
            while b + 2 <= nb {
                // SAFETY: `fits` checked blocks `b` and `b + 1`; the caller checked `has_vnni`.
                let (i0, i1) = unsafe { (q8_block(w, x, b), q8_block(w, x, b + 1)) };
                let s0 = _mm256_set1_ps(w.scales[b] * x.scales[b]);
                let s1 = _mm256_set1_ps(w.scales[b + 1] * x.scales[b + 1]);
                acc0 = _mm256_fmadd_ps(s0, _mm256_cvtepi32_ps(i0), acc0);
                acc1 = _mm256_fmadd_ps(s1, _mm256_cvtepi32_ps(i1), acc1);
                b += 2;
            }
            if b < nb {
                // SAFETY: as above, for the last block.
                let i0 = unsafe { q8_block(w, x, b) };
                let s0 = _mm256_set1_ps(w.scales[b] * x.scales[b]);
                acc0 = _mm256_fmadd_ps(s0, _mm256_cvtepi32_ps(i0), acc0);
            }
            hsum(_mm256_add_ps(acc0, acc1))
        }
        // SAFETY: selected only after `has_vnni`.
        unsafe { inner(w, x) }
    }

    pub(super) fn dot_q4_vnni(w: &WRow<'_>, x: &XRow<'_>) -> f32 {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn inner(w: &WRow<'_>, x: &XRow<'_>) -> f32 {
            let nb = fits(w, x, BLOCK / 2);
            assert!(w.mins.len() >= nb && x.sums.len() >= nb);
            let low = _mm256_set1_epi8(0x0F);
            let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            let (mut min0, mut min1) = (0f32, 0f32);
            let mut b = 0;
            while b + 2 <= nb {
                // SAFETY: `fits` checked that blocks `b` and `b + 1` lie inside both slices.
                let (packed, x0, x1) = unsafe {
                    (
                        load256(w.qs.as_ptr().add(b * BLOCK / 2)),
                        load256(x.qs.as_ptr().add(b * BLOCK).cast()),
                        load256(x.qs.as_ptr().add((b + 1) * BLOCK).cast()),
                    )
                };
                // The 32 packed bytes of two blocks: low nibbles (weights 0..16) and high ones
                // (16..32) of both, then regrouped per block.
                let lo = _mm256_and_si256(packed, low);
                let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(packed), low);
                let w0 = _mm256_permute2x128_si256::<0x20>(lo, hi);
                let w1 = _mm256_permute2x128_si256::<0x31>(lo, hi);
                // SAFETY: the caller checked `has_vnni`.
                let (i0, i1) = unsafe { (dpbusd(w0, x0), dpbusd(w1, x1)) };
                let s0 = _mm256_set1_ps(w.scales[b] * x.scales[b]);
                let s1 = _mm256_set1_ps(w.scales[b + 1] * x.scales[b + 1]);
                acc0 = _mm256_fmadd_ps(s0, _mm256_cvtepi32_ps(i0), acc0);
                acc1 = _mm256_fmadd_ps(s1, _mm256_cvtepi32_ps(i1), acc1);
                min0 = w.mins[b].mul_add(x.sums[b], min0);
                min1 = w.mins[b + 1].mul_add(x.sums[b + 1], min1);
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
                let s0 = _mm256_set1_ps(w.scales[b] * x.scales[b]);
                acc0 = _mm256_fmadd_ps(s0, _mm256_cvtepi32_ps(i0), acc0);
                min0 = w.mins[b].mul_add(x.sums[b], min0);
            }
            hsum(_mm256_add_ps(acc0, acc1)) + (min0 + min1)
        }
        // SAFETY: selected only after `has_vnni`.
        unsafe { inner(w, x) }
    }

    pub(super) fn dot_q4_avx2(w: &WRow<'_>, x: &XRow<'_>) -> f32 {
        #[target_feature(enable = "avx2,fma")]
        fn inner(w: &WRow<'_>, x: &XRow<'_>) -> f32 {
            let nb = fits(w, x, BLOCK / 2);
            assert!(w.mins.len() >= nb && x.sums.len() >= nb);
            let low = _mm_set1_epi8(0x0F);
            let ones = _mm256_set1_epi16(1);
            let mut acc = _mm256_setzero_ps();
            let mut min_acc = 0f32;
            for b in 0..nb {
                // SAFETY: `fits` checked that block `b` lies inside both slices.
                let (packed, xv) = unsafe {
                    (
                        _mm_loadu_si128(w.qs.as_ptr().add(b * BLOCK / 2).cast()),
                        _mm256_loadu_si256(x.qs.as_ptr().add(b * BLOCK).cast()),
                    )
                };
                // Weights 0..16 are the low nibbles, 16..32 the high ones.
                let lo = _mm_and_si128(packed, low);
                let hi = _mm_and_si128(_mm_srli_epi16::<4>(packed), low);
                let wv = _mm256_set_m128i(hi, lo);
                let isum = _mm256_madd_epi16(_mm256_maddubs_epi16(wv, xv), ones);
                let scale = _mm256_set1_ps(w.scales[b] * x.scales[b]);
                acc = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(isum), acc);
                min_acc = w.mins[b].mul_add(x.sums[b], min_acc);
            }
            hsum(acc) + min_acc
        }
        // SAFETY: selected only after detecting AVX2 and FMA.
        unsafe { inner(w, x) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::layers::test_values as values;

    /// Encodes `[out, k]` weights as GGUF blocks of `dtype` (a simple round-to-nearest
    /// quantizer; only the decoding is under test).
    fn encode(dtype: GgmlType, w: &[f32]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for block in w.chunks_exact(BLOCK) {
            let f16 = |v: f32| half::f16::from_f32(v).to_le_bytes();
            match dtype {
                GgmlType::Q8_0 => {
                    let d = block.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
                    bytes.extend(f16(d));
                    bytes.extend(block.iter().map(|v| (v / d).round() as i8 as u8));
                }
                GgmlType::Q4_0 | GgmlType::Q4_1 => {
                    let (lo, hi) = block
                        .iter()
                        .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
                    let (d, m) = if dtype == GgmlType::Q4_1 {
                        ((hi - lo) / 15.0, lo)
                    } else {
                        let amax = lo.abs().max(hi.abs());
                        (amax / 8.0, -amax)
                    };
                    bytes.extend(f16(d));
                    if dtype == GgmlType::Q4_1 {
                        bytes.extend(f16(m));
                    }
                    let q = |v: f32| (((v - m) / d).round() as i32).clamp(0, 15) as u8;
                    for j in 0..BLOCK / 2 {
                        bytes.push(q(block[j]) | (q(block[j + 16]) << 4));
                    }
                }
                _ => unreachable!(),
            }
        }
        bytes
    }

    #[test]
    fn products_match_the_dequantized_weights_within_activation_rounding() {
        let (out, k) = (300, 96);
        let w = values(out * k, 3);
        for dtype in [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1] {
            let m = QMatrix::from_ggml(dtype, &encode(dtype, &w), out, k).unwrap();
            let dq = m.dequantize();
            for rows in [1, 4] {
                let x = values(rows * k, 7 + rows as u32);
                let got = m.matmul(&x, rows).unwrap();
                for r in 0..rows {
                    let xr = &x[r * k..(r + 1) * k];
                    // Bound of the activation's rounding: Σ|w|·d_x/2 per block.
                    for j in 0..out {
                        let wr = &dq[j * k..(j + 1) * k];
                        let exact: f64 = wr
                            .iter()
                            .zip(xr)
                            .map(|(&a, &b)| f64::from(a) * f64::from(b))
                            .sum();
                        let bound: f64 = wr
                            .chunks_exact(BLOCK)
                            .zip(xr.chunks_exact(BLOCK))
                            .map(|(wb, xb)| {
                                let dx = xb.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
                                wb.iter().map(|v| f64::from(v.abs())).sum::<f64>() * f64::from(dx)
                                    / 2.0
                            })
                            .sum();
                        let g = f64::from(got[r * out + j]);
                        assert!(
                            (g - exact).abs() <= bound + 1e-4,
                            "{dtype} row {r} out {j}: {g} vs {exact} (bound {bound})"
                        );
                    }
                }
            }
        }
    }

    /// Every kernel this CPU can run for `format`, with a name, the portable one first.
    fn kernels(format: QFormat) -> Vec<(&'static str, DotFn)> {
        let mut all: Vec<(&'static str, DotFn)> = match format {
            QFormat::Q8 => vec![("plain", dot_q8_plain)],
            QFormat::Q4 => vec![("plain", dot_q4_plain)],
        };
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                all.push(match format {
                    QFormat::Q8 => ("avx2", x86::dot_q8_avx2),
                    QFormat::Q4 => ("avx2", x86::dot_q4_avx2),
                });
            }
            if x86::has_vnni() {
                all.push(match format {
                    QFormat::Q8 => ("vnni", x86::dot_q8_vnni),
                    QFormat::Q4 => ("vnni", x86::dot_q4_vnni),
                });
            }
        }
        all
    }

    /// Random raw blocks of `dtype`: every byte value in the integers (−128 included for Q8),
    /// scales `0.01·(1 + block index mod 7)` and minimums `−0.05` (Q4_1).
    fn random_blocks(dtype: GgmlType, n_blocks: usize, seed: u32) -> Vec<u8> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        let mut byte = move || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 24) as u8
        };
        let f16 = |v: f32| half::f16::from_f32(v).to_le_bytes();
        let mut bytes = Vec::new();
        for b in 0..n_blocks {
            bytes.extend(f16(0.01 * (1 + b % 7) as f32));
            let n = match dtype {
                GgmlType::Q8_0 => BLOCK,
                GgmlType::Q4_1 => {
                    bytes.extend(f16(-0.05));
                    BLOCK / 2
                }
                _ => unreachable!(),
            };
            bytes.extend((0..n).map(|_| byte()));
        }
        bytes
    }

    #[test]
    fn simd_and_portable_dots_agree() {
        // K = 160 and 96 are 5 and 3 blocks: the two-block VNNI steps and the odd last block.
        for (k, out) in [(160, 64), (96, 40), (64, 8)] {
            let w = values(out * k, 5);
            let x = values(k, 6);
            // Activations at the ends of the i8 range too.
            let mut x_extreme = values(k, 9);
            for (i, v) in x_extreme.iter_mut().enumerate() {
                if i % 5 == 0 {
                    *v = if i % 2 == 0 { 1.0 } else { -1.0 };
                }
            }
            let nb = k / BLOCK;
            for dtype in [GgmlType::Q8_0, GgmlType::Q4_1] {
                let encoded = QMatrix::from_ggml(dtype, &encode(dtype, &w), out, k).unwrap();
                let raw = random_blocks(dtype, out * nb, 11);
                let raw = QMatrix::from_ggml(dtype, &raw, out, k).unwrap();
                for m in [&encoded, &raw] {
                    let q_row = m.qs.len() / out;
                    for xs in [&x, &x_extreme] {
                        let xq = Q8Rows::quantize(xs, 1, k);
                        let all = kernels(m.format);
                        for j in 0..out {
                            let wr = WRow {
                                qs: &m.qs[j * q_row..(j + 1) * q_row],
                                scales: &m.scales[j * nb..(j + 1) * nb],
                                mins: m.mins.get(j * nb..(j + 1) * nb).unwrap_or(&[]),
                            };
                            let want = all[0].1(&wr, &xq.row(0));
                            for (name, dot) in &all[1..] {
                                let got = dot(&wr, &xq.row(0));
                                assert!(
                                    (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                                    "{dtype} k {k} row {j} {name}: {got} vs {want}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn permuting_rows_moves_whole_rows_and_rejects_non_permutations() {
        let (out, k) = (4, 64);
        let w = values(out * k, 8);
        let m = QMatrix::from_ggml(GgmlType::Q4_1, &encode(GgmlType::Q4_1, &w), out, k).unwrap();
        let p = m.permute_rows(&[2, 0, 3, 1]).unwrap();
        let (a, b) = (m.dequantize(), p.dequantize());
        assert_eq!(&b[..k], &a[2 * k..3 * k]);
        assert_eq!(&b[3 * k..], &a[k..2 * k]);
        assert!(m.permute_rows(&[0, 0, 1, 2]).is_err());
        assert!(m.permute_rows(&[0, 1, 2]).is_err());
    }

    #[test]
    fn bad_blocks_are_refused_with_the_reason() {
        let e = QMatrix::from_ggml(GgmlType::Q4_1, &[0; 19], 1, 32).unwrap_err();
        assert!(e.contains("19 bytes"), "{e}");
        let e = QMatrix::from_ggml(GgmlType::Q4_1, &[0; 20], 1, 31).unwrap_err();
        assert!(e.contains("multiple of the block size"), "{e}");
        let e = QMatrix::from_ggml(GgmlType::Q6_K, &[0; 210], 1, 256).unwrap_err();
        assert!(e.contains("Q6_K"), "{e}");
    }
}
