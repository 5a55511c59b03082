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
//! At load the blocks are split into two arrays: the f16 scales (and Q4_1's minimums) as
//! stored, and the packed integers as they are, so a matrix holds exactly the file's bytes and a
//! product streams them once; the kernels widen each scale to f32 as they use it (F16C
//! `vcvtph2ps` on x86-64, exact). Q4_0 shares Q4_1's kernels with its minimum `m = −8d` computed
//! in place of a stored one.
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
use half::f16;

use crate::error::Result;
use crate::layers::gemv::{for_out_rows_many, GEMV_MAX_ROWS};

mod kernels;

use kernels::{select_rows, RowsFn, PREFETCH_ROWS};

/// Weights per block for every supported type.
const BLOCK: usize = 32;

/// How the blocks of a [`QMatrix`] are stored (the GGUF type they were read from).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum QFormat {
    /// 8-bit signed integers, one f16 scale per block (GGUF Q8_0).
    Q8_0,
    /// 4-bit unsigned integers packed two per byte, one f16 scale per block; minimum
    /// `−8·scale` (GGUF Q4_0).
    Q4_0,
    /// 4-bit unsigned integers packed two per byte, an f16 scale and an f16 minimum per block
    /// (GGUF Q4_1).
    Q4_1,
}

/// A `[N, K]` weight matrix in 32-weight blocks.
#[derive(Debug, Clone)]
pub struct QMatrix {
    format: QFormat,
    /// N.
    out: usize,
    /// K.
    k: usize,
    /// `[N, NB]` block scales `d`.
    scales: Vec<f16>,
    /// `[N, NB]` block minimums `m` (Q4_1 only; empty otherwise).
    mins: Vec<f16>,
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
        // Bytes per block, and of them the f16 scale (and minimum) before the integers.
        let (format, block_bytes, header) = match dtype {
            GgmlType::Q8_0 => (QFormat::Q8_0, 34, 2),
            GgmlType::Q4_0 => (QFormat::Q4_0, 18, 2),
            GgmlType::Q4_1 => (QFormat::Q4_1, 20, 4),
            other => {
                return Err(format!(
                    "type {other} is not kept quantized; supported: Q8_0, Q4_0, Q4_1"
                ))
            }
        };
        if !k.is_multiple_of(BLOCK) {
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
        let f16_at = |b: &[u8], i: usize| f16::from_le_bytes([b[i], b[i + 1]]);
        let mut scales = Vec::with_capacity(n_blocks);
        let with_mins = format == QFormat::Q4_1;
        let mut mins = Vec::with_capacity(if with_mins { n_blocks } else { 0 });
        let mut qs = Vec::with_capacity(n_blocks * (block_bytes - header));
        for b in bytes.chunks_exact(block_bytes) {
            scales.push(f16_at(b, 0));
            if with_mins {
                mins.push(f16_at(b, 2));
            }
            qs.extend_from_slice(&b[header..]);
        }
        Ok(Self {
            format,
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
        match self.format {
            QFormat::Q8_0 => GgmlType::Q8_0,
            QFormat::Q4_0 => GgmlType::Q4_0,
            QFormat::Q4_1 => GgmlType::Q4_1,
        }
    }

    /// Bytes held (integers and f16 scales and minimums): the size of the tensor in the file.
    pub fn n_bytes(&self) -> usize {
        self.qs.len() + 2 * (self.scales.len() + self.mins.len())
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
        let mut scales = Vec::with_capacity(self.scales.len());
        let mut mins = Vec::with_capacity(self.mins.len());
        let mut qs = Vec::with_capacity(self.qs.len());
        for &p in perm {
            scales.extend_from_slice(&self.scales[p * nb..(p + 1) * nb]);
            if !self.mins.is_empty() {
                mins.extend_from_slice(&self.mins[p * nb..(p + 1) * nb]);
            }
            qs.extend_from_slice(&self.qs[p * q_row..(p + 1) * q_row]);
        }
        Ok(Self {
            format: self.format,
            out: self.out,
            k: self.k,
            scales,
            mins,
            qs,
        })
    }

    /// The weights as f32 `[N·K]` row-major (`d·q` for Q8_0, `d·nibble + m` for Q4_1 and
    /// Q4_0 with `m = −8d`), for tests against the f32 path.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut w = Vec::with_capacity(self.out * self.k);
        if self.format == QFormat::Q8_0 {
            for (q, d) in self.qs.chunks_exact(BLOCK).zip(&self.scales) {
                let d = d.to_f32();
                w.extend(q.iter().map(|&v| d * f32::from(v as i8)));
            }
            return w;
        }
        for (b, (q, d)) in self
            .qs
            .chunks_exact(BLOCK / 2)
            .zip(&self.scales)
            .enumerate()
        {
            let d = d.to_f32();
            let m = self.mins.get(b).map_or(-8.0 * d, |m| m.to_f32());
            w.extend(q.iter().map(|&v| d * f32::from(v & 0x0F) + m));
            w.extend(q.iter().map(|&v| d * f32::from(v >> 4) + m));
        }
        w
    }

    /// `x` `[rows, K]` f32 row-major · Wᵀ → `[rows, N]` f32, with `x` quantized to 8-bit blocks
    /// (see the module doc). Errors when `x.len() != rows·K`.
    pub fn matmul(&self, x: &[f32], rows: usize) -> std::result::Result<Vec<f32>, String> {
        let mut ys = Self::matmul_many(&[self], x, rows)?;
        Ok(ys.pop().unwrap_or_default())
    }

    /// [`QMatrix::matmul`] of one `x` `[rows, K]` with several matrices of the same K (q/k/v,
    /// gate/up): `x` is quantized once and all products run in one parallel region. Returns
    /// one `[rows, N_p]` per matrix. Errors when the matrices differ in K or
    /// `x.len() != rows·K`.
    pub fn matmul_many(
        mats: &[&QMatrix],
        x: &[f32],
        rows: usize,
    ) -> std::result::Result<Vec<Vec<f32>>, String> {
        let Some(k) = mats.first().map(|m| m.k) else {
            return Ok(Vec::new());
        };
        if let Some(m) = mats.iter().find(|m| m.k != k) {
            return Err(format!(
                "matrices of {k} and {} input features cannot share an input",
                m.k
            ));
        }
        if x.len() != rows * k {
            return Err(format!(
                "input has {} values; expected {rows} rows of {k}",
                x.len()
            ));
        }
        let xq = Q8Rows::quantize(x, rows, k);
        let kernels: Vec<RowsFn> = mats.iter().map(|m| select_rows(m.format)).collect();
        let outs: Vec<usize> = mats.iter().map(|m| m.out).collect();
        Ok(for_out_rows_many(rows, &outs, k, |p, first, yt| {
            mats[p].rows_into(kernels[p], &xq, first, yt)
        }))
    }

    /// Output features `first..first + yt.len()/rows` into `yt` `[n, rows]` (see
    /// [`for_out_rows_many`]).
    fn rows_into(&self, kernel: RowsFn, xq: &Q8Rows, first: usize, yt: &mut [f32]) {
        let rows = xq.rows.max(1);
        let n = yt.len() / rows;
        let w = self.rows(first..(first + n).min(self.out));
        for r in 0..xq.rows {
            kernel(&w, &xq.row(r), &mut yt[r..], rows);
        }
    }

    /// The blocks of rows `range` (`range.end ≤ N`).
    fn rows(&self, range: std::ops::Range<usize>) -> WRows<'_> {
        let nb = self.k / BLOCK;
        let q_row = self.qs.len() / self.out.max(1);
        let (a, b) = (range.start, range.end);
        WRows {
            qs: &self.qs[a * q_row..b * q_row],
            scales: &self.scales[a * nb..b * nb],
            mins: self.mins.get(a * nb..b * nb).unwrap_or(&[]),
            ahead: &self.qs[a * q_row..(b + PREFETCH_ROWS).min(self.out) * q_row],
            nb,
            q_row,
        }
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
        let ys = Self::try_matmul_many(&[(self, weight)], x)?;
        Ok(ys.and_then(|mut ys| ys.pop()))
    }

    /// [`QuantizedWeight::try_matmul`] for several weights sharing `x` (see
    /// [`QMatrix::matmul_many`]): `Some` of one `[rows, N_p]` per `(blocks, weight)` pair when
    /// the blocks serve every product, else `None`.
    pub fn try_matmul_many(pairs: &[(&Self, &Tensor)], x: &Tensor) -> Result<Option<Vec<Tensor>>> {
        let serves = !x.track_op()
            && x.device().is_cpu()
            && x.dtype() == DType::F32
            && x.rank() == 2
            && pairs.iter().all(|(q, w)| w.id() == q.source);
        if !serves {
            return Ok(None);
        }
        let (rows, k) = x.dims2()?;
        if rows > GEMV_MAX_ROWS || pairs.iter().any(|(q, _)| q.matrix.k != k) {
            return Ok(None);
        }
        let mats: Vec<&QMatrix> = pairs.iter().map(|(q, _)| &*q.matrix).collect();
        let xs = x.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let ys = QMatrix::matmul_many(&mats, &xs, rows).map_err(candle_core::Error::msg)?;
        let ys = ys
            .into_iter()
            .zip(&mats)
            .map(|(y, m)| Tensor::from_vec(y, (rows, m.out), x.device()))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Some(ys))
    }
}

/// Consecutive weight rows' blocks.
struct WRows<'a> {
    /// `[n, q_row]` bytes.
    qs: &'a [u8],
    /// `[n, NB]`.
    scales: &'a [f16],
    /// `[n, NB]` (Q4_1) or empty.
    mins: &'a [f16],
    /// `[n + up to PREFETCH_ROWS, q_row]`: the packed integers of these rows and of the
    /// matrix's next [`PREFETCH_ROWS`] rows after them, for the kernels' prefetching.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    ahead: &'a [u8],
    /// Blocks per row NB.
    nb: usize,
    /// Bytes per row.
    q_row: usize,
}

impl<'a> WRows<'a> {
    /// Number of rows.
    #[inline(always)]
    fn len(&self) -> usize {
        self.scales.len() / self.nb.max(1)
    }

    /// Row `i < len()`'s blocks (plain index arithmetic, so that it inlines into the kernels).
    #[inline(always)]
    fn row(&self, i: usize) -> WRow<'a> {
        let (nb, q_row) = (self.nb, self.q_row);
        WRow {
            qs: &self.qs[i * q_row..(i + 1) * q_row],
            scales: &self.scales[i * nb..(i + 1) * nb],
            mins: if self.mins.is_empty() {
                &[]
            } else {
                &self.mins[i * nb..(i + 1) * nb]
            },
        }
    }
}

/// One weight row's blocks.
struct WRow<'a> {
    /// `[NB, 32]` i8 or `[NB, 16]` nibbles.
    qs: &'a [u8],
    /// `[NB]`.
    scales: &'a [f16],
    /// `[NB]` (Q4_1) or empty (Q8_0, Q4_0).
    mins: &'a [f16],
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
    rows: usize,
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
            rows,
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

#[cfg(test)]
mod tests {
    use super::kernels::plain_rows;
    #[cfg(target_arch = "x86_64")]
    use super::kernels::x86;
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
    fn kernels(format: QFormat) -> Vec<(&'static str, RowsFn)> {
        let mut all: Vec<(&'static str, RowsFn)> = vec![("plain", plain_rows(format))];
        #[cfg(target_arch = "x86_64")]
        {
            if x86::has_avx2() {
                all.push(match format {
                    QFormat::Q8_0 => ("avx2", x86::rows_q8_avx2),
                    QFormat::Q4_0 => ("avx2", x86::rows_q4_0_avx2),
                    QFormat::Q4_1 => ("avx2", x86::rows_q4_1_avx2),
                });
            }
            if x86::has_vnni() {
                all.push(match format {
                    QFormat::Q8_0 => ("vnni", x86::rows_q8_vnni),
                    QFormat::Q4_0 => ("vnni", x86::rows_q4_0_vnni),
                    QFormat::Q4_1 => ("vnni", x86::rows_q4_1_vnni),
                });
            }
        }
        all
    }

    /// Random raw blocks of `dtype`: every byte value in the integers (−128 included for Q8),
    /// scales `0.01·(1 + block index mod 7)`, except a negative one every 5th block and an f16
    /// subnormal every 11th (both widen exactly too), and minimums `−0.05` (Q4_1).
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
            let scale = match b {
                b if b % 11 == 3 => 3.0e-6,
                b if b % 5 == 1 => -0.02,
                b => 0.01 * (1 + b % 7) as f32,
            };
            bytes.extend(f16(scale));
            let n = match dtype {
                GgmlType::Q8_0 => BLOCK,
                GgmlType::Q4_0 => BLOCK / 2,
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
        // K = 576 and 352 are 18 and 11 blocks: the eight-block VNNI steps, then pairs and the
        // odd last block; K = 160 and 96 (5 and 3 blocks) only pairs and the odd last block.
        for (k, out) in [(576, 24), (352, 16), (160, 64), (96, 40), (64, 8)] {
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
            for dtype in [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1] {
                let encoded = QMatrix::from_ggml(dtype, &encode(dtype, &w), out, k).unwrap();
                let raw = random_blocks(dtype, out * nb, 11);
                let raw = QMatrix::from_ggml(dtype, &raw, out, k).unwrap();
                for m in [&encoded, &raw] {
                    for xs in [&x, &x_extreme] {
                        let xq = Q8Rows::quantize(xs, 1, k);
                        let all = kernels(m.format);
                        let run = |kernel: RowsFn, stride: usize| {
                            let mut y = vec![f32::NAN; out * stride];
                            kernel(&m.rows(0..out), &xq.row(0), &mut y, stride);
                            y.into_iter().step_by(stride).collect::<Vec<_>>()
                        };
                        let want = run(all[0].1, 1);
                        for (name, kernel) in &all[1..] {
                            // Stride 2 as for two rows of `x`: every other output slot.
                            for stride in [1, 2] {
                                for (j, (g, w)) in
                                    run(*kernel, stride).iter().zip(&want).enumerate()
                                {
                                    assert!(
                                        (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                                        "{dtype} k {k} row {j} {name}: {g} vs {w}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn f16c_widening_equals_the_portable_conversion_for_every_f16() {
        if !x86::has_avx2() {
            return;
        }
        for bits in 0..=u16::MAX {
            let h = f16::from_bits(bits);
            let (got, want) = (x86::widen_checked(h), h.to_f32());
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "f16 {bits:#06x}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn blocks_decode_to_the_encoded_weights_within_one_step() {
        let (out, k) = (5, 96);
        let w = values(out * k, 12);
        for dtype in [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1] {
            let m = QMatrix::from_ggml(dtype, &encode(dtype, &w), out, k).unwrap();
            for (wb, db) in w
                .chunks_exact(BLOCK)
                .zip(m.dequantize().chunks_exact(BLOCK))
            {
                let amax = wb.iter().fold(0f32, |a, v| a.max(v.abs()));
                // One quantization step of `encode` (Q4_0 clamps its top value by one step),
                // plus the f16 rounding of the scale.
                let step = match dtype {
                    GgmlType::Q8_0 => amax / 127.0,
                    GgmlType::Q4_0 => amax / 8.0,
                    _ => 2.0 * amax / 15.0,
                };
                for (a, b) in wb.iter().zip(db) {
                    assert!((a - b).abs() <= step * 1.01, "{dtype}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn blocks_keep_the_file_size() {
        let (out, k) = (3, 64);
        for (dtype, block_bytes) in [
            (GgmlType::Q8_0, 34),
            (GgmlType::Q4_0, 18),
            (GgmlType::Q4_1, 20),
        ] {
            let m = QMatrix::from_ggml(dtype, &random_blocks(dtype, out * 2, 4), out, k).unwrap();
            assert_eq!(m.n_bytes(), out * 2 * block_bytes, "{dtype}");
            assert_eq!(m.source_type(), dtype);
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
