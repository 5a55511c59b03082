//! Fused causal self-attention with grouped-query heads, tiled with an online softmax
//! (Milakov & Gimelshein 2018, "Online normalizer calculation for softmax"; the tiling of
//! Dao et al. 2022, "FlashAttention", Algorithms 1 and 2, here on the CPU): no `[T, T]` score
//! or probability matrix is stored, for the forward or for the backward.
//!
//! `O = softmax(Q·Kᵀ·scale + M)·V` per query head, `M` the additive mask of
//! [`crate::layers::attention_bias`]. Query head `h` reads key/value head `h / (H/K)` (GQA,
//! Ainslie et al. 2023), without copying keys or values. Everything is read and written in
//! the layout of the projections, so no transpose is needed around it: three tensors
//! `[B, T, heads, D]` ([`causal_attention`]) or one `[B, T, (H + 2·K)·D]` holding each
//! position's query, key and value heads side by side ([`causal_attention_packed`], whose
//! gradient comes back in the same layout); the output is `[B, T, H, D]`.
//!
//! Forward, per (row b, head h, block of `BQ` queries), over key tiles of `BK` up to the
//! block's last query (keys after a query are skipped: the mask is causal): scores
//! `S = scale·Q_blk·K_tileᵀ + M`, running row max `m` and sum `l`, and `O_blk` rescaled by
//! `exp(m_old − m_new)` before adding `exp(S − m_new)·V_tile`; at the end `O = O_blk / l` and
//! the log-sum-exp `L = m + ln l` is kept (`B·H·T` floats) for the backward.
//!
//! Backward, per (b, h), recomputing each tile's probabilities `P = exp(S − L)`:
//! `dV += Pᵀ·dO`, `dP = dO·Vᵀ`, `dS = P ⊙ (dP − rowsum(dO ⊙ O))`, `dQ += scale·dS·K`,
//! `dK += scale·dSᵀ·Q` (Dao et al. 2022, eq. in §B.2); the `H/K` query heads of a key/value
//! head are summed into its `dK`, `dV`.
//!
//! A query whose every visible key is masked (a padding query before any token) averages the
//! values of keys `0..=i` here, where the unfused path averages all T keys; such rows are never
//! scored and no scored row reads them.
//!
//! Shapes: B rows, T positions, H query heads, K key/value heads, D head width.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Shape, Storage, Tensor};
use rayon::prelude::*;

use super::exp::exp_f32;
use super::simd::{lane_max, lane_sum, multiversion};
use super::{cpu_slice, eligible, gemm, with_slice, Mat};
use crate::error::Result;

/// Queries per block.
const BQ: usize = 64;
/// Keys per tile.
const BK: usize = 64;

/// Causal attention `q` `[B, T, H, D]`, `k`/`v` `[B, T, K, D]`, additive `mask`
/// `[B or 1, 1, T, T]` (causal: key j > query i must be masked) → `[B, T, H, D]`, with the
/// backward of the module docs for q, k and v. `None` when the fused kernels are off, a
/// tensor is not f32 on the CPU, or the shapes do not fit (use the tensor ops).
pub fn causal_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    scale: f64,
) -> Result<Option<Tensor>> {
    if !eligible(&[q, k, v, mask]) || q.rank() != 4 || k.rank() != 4 || mask.rank() != 4 {
        return Ok(None);
    }
    let (b, t, h, d) = q.dims4()?;
    let (kb, kt, kh, kd) = k.dims4()?;
    let shapes_fit = (kb, kt, kd) == (b, t, d)
        && kh > 0
        && h % kh == 0
        && v.dims() == k.dims()
        && mask_fits(mask, b, t)?;
    if !shapes_fit {
        return Ok(None);
    }
    let op = AttentionOp::new(mask, scale, (h, kh))?;
    Ok(Some(q.contiguous()?.apply_op3(
        &k.contiguous()?,
        &v.contiguous()?,
        op,
    )?))
}

/// [`causal_attention`] on the projections side by side: `qkv` `[B, T, (H + 2·K)·D]`, each
/// position's H query heads, then K key heads, then K value heads (as
/// [`crate::kernels::lora_block::lora_projections_rope`] writes them) → `[B, T, H, D]`, with
/// the gradient of `qkv` in the same layout (no split, copy or sum of per-part gradients).
/// `None` as for [`causal_attention`], or when `H` is not a multiple of `K` or the width is
/// not `(H + 2·K)·D` for a whole `D`.
pub fn causal_attention_packed(
    qkv: &Tensor,
    (h, kv): (usize, usize),
    mask: &Tensor,
    scale: f64,
) -> Result<Option<Tensor>> {
    if !eligible(&[qkv, mask]) || qkv.rank() != 3 || mask.rank() != 4 {
        return Ok(None);
    }
    let (b, t, width) = qkv.dims3()?;
    let shapes_fit = kv > 0 && h % kv == 0 && width % (h + 2 * kv) == 0 && mask_fits(mask, b, t)?;
    if !shapes_fit {
        return Ok(None);
    }
    let op = AttentionOp::new(mask, scale, (h, kv))?;
    Ok(Some(qkv.contiguous()?.apply_op1(op)?))
}

/// Whether `mask` (rank 4) is `[B or 1, 1, T, T]` for `b` rows of `t` positions.
fn mask_fits(mask: &Tensor, b: usize, t: usize) -> Result<bool> {
    let (mb, m1, mt, ms) = mask.dims4()?;
    Ok((mb == b || mb == 1) && (m1, mt, ms) == (1, t, t))
}

/// The op; operands `(q, k, v)` ([`causal_attention`]) or `qkv` ([`causal_attention_packed`]).
struct AttentionOp {
    /// `[B or 1, 1, T, T]` f32 contiguous.
    mask: Tensor,
    scale: f32,
    /// `[B, H, T]` log-sum-exp of every score row, written by the forward.
    lse: Mutex<Vec<f32>>,
    /// (H, K).
    heads: (usize, usize),
}

/// `(q, k, v, o, dO)` of a backward: q, k, v at the call's [`Packing`] (the same slice when
/// packed), o and dO `[B, T, H, D]`.
type Operands<'a> = (&'a [f32], &'a [f32], &'a [f32], &'a [f32], &'a [f32]);

/// Where queries, keys and values sit in the buffers they are read from (and their
/// gradients written to): values per position of each, and where key and value head 0 of
/// position 0 start.
#[derive(Clone, Copy)]
struct Packing {
    q_stride: usize,
    kv_stride: usize,
    k_base: usize,
    v_base: usize,
}

impl Packing {
    /// Three tensors `[B, T, H, D]`, `[B, T, K, D]`, `[B, T, K, D]`.
    fn separate(h: usize, kv: usize, d: usize) -> Self {
        Packing {
            q_stride: h * d,
            kv_stride: kv * d,
            k_base: 0,
            v_base: 0,
        }
    }

    /// One tensor `[B, T, (H + 2·K)·D]`: queries, keys, values side by side.
    fn packed(h: usize, kv: usize, d: usize) -> Self {
        let width = (h + 2 * kv) * d;
        Packing {
            q_stride: width,
            kv_stride: width,
            k_base: h * d,
            v_base: (h + kv) * d,
        }
    }
}

/// Sizes of one call.
#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    t: usize,
    h: usize,
    kv: usize,
    d: usize,
    /// Whether the mask has one `[T, T]` plane per row (else one for all).
    mask_per_row: bool,
    /// The layout of q, k and v.
    packing: Packing,
}

impl Dims {
    /// Sizes of `op` on an input of `shape`: `qkv` `[B, T, (H + 2·K)·D]` (rank 3) or `q`
    /// `[B, T, H, D]` (rank 4, keys and values separate).
    fn of(op: &AttentionOp, shape: &Shape) -> candle_core::Result<Self> {
        let (h, kv) = op.heads;
        let (mb, _, _, _) = op.mask.dims4()?;
        let (b, t, d, packing) = match shape.dims() {
            &[b, t, width] => {
                let d = width / (h + 2 * kv);
                (b, t, d, Packing::packed(h, kv, d))
            }
            _ => {
                let (b, t, _, d) = shape.dims4()?;
                (b, t, d, Packing::separate(h, kv, d))
            }
        };
        Ok(Dims {
            b,
            t,
            h,
            kv,
            d,
            mask_per_row: mb == b && b > 1,
            packing,
        })
    }

    /// Offset of query head `head` of `(row, pos)`.
    fn q_at(&self, row: usize, pos: usize, head: usize) -> usize {
        (row * self.t + pos) * self.packing.q_stride + head * self.d
    }

    /// Offset of key head `kvh` of `(row, pos)`.
    fn k_at(&self, row: usize, pos: usize, kvh: usize) -> usize {
        self.packing.k_base + (row * self.t + pos) * self.packing.kv_stride + kvh * self.d
    }

    /// Offset of value head `kvh` of `(row, pos)`.
    fn v_at(&self, row: usize, pos: usize, kvh: usize) -> usize {
        self.packing.v_base + (row * self.t + pos) * self.packing.kv_stride + kvh * self.d
    }

    /// Offset of head `head` of `(row, pos)` in the output `[B, T, H, D]` (and its gradient).
    fn o_at(&self, row: usize, pos: usize, head: usize) -> usize {
        ((row * self.t + pos) * self.h + head) * self.d
    }

    /// The mask from query `i`, key `j` of batch row `row` on: row `r` below query `i` starts
    /// at `r·T`.
    fn mask_from<'a>(&self, mask: &'a [f32], row: usize, i: usize, j: usize) -> &'a [f32] {
        let plane = if self.mask_per_row { row } else { 0 };
        &mask[(plane * self.t + i) * self.t + j..]
    }
}

/// Scores of a query block against a key tile into `s` (`[m, BK]`, row stride `BK`):
/// `scale·Q·Kᵀ + mask`, keys after the query set to −∞.
///
/// Errors: from [`gemm`] (a block that does not fit its slice).
#[allow(clippy::too_many_arguments)]
fn tile_scores(
    dims: &Dims,
    q: &[f32],
    k: &[f32],
    mask: &[f32],
    scale: f32,
    (row, head, kvh): (usize, usize, usize),
    (i0, m): (usize, usize),
    (j0, nk): (usize, usize),
    s: &mut [f32],
) -> candle_core::Result<()> {
    let q_blk = Mat {
        data: &q[dims.q_at(row, i0, head)..],
        rs: dims.packing.q_stride,
        cs: 1,
    };
    let k_t = Mat {
        data: &k[dims.k_at(row, j0, kvh)..],
        rs: 1,
        cs: dims.packing.kv_stride,
    };
    gemm(m, nk, dims.d, s, BK, false, q_blk, k_t, scale, false)?;
    let mask = dims.mask_from(mask, row, i0, j0);
    mask_tile(s, mask, dims.t, (i0, j0), m, nk);
    Ok(())
}

multiversion! {
    /// Adds the mask to the first `nk` columns of the `m` rows of a score tile `s` `[m, BK]`
    /// and sets each row's keys after its query to −∞ (the tile's first query is `i0`, its
    /// first key `j0`). `mask` starts at the tile's first (query, key) with row stride `t`.
    fn mask_tile(s: &mut [f32], mask: &[f32], t: usize, first: (usize, usize), m: usize, nk: usize) {
        let (i0, j0) = first;
        for r in 0..m {
            let visible = (i0 + r + 1).saturating_sub(j0).min(nk);
            let srow = &mut s[r * BK..r * BK + nk];
            for (x, mv) in srow[..visible].iter_mut().zip(&mask[r * t..r * t + visible]) {
                *x += mv;
            }
            srow[visible..].fill(f32::NEG_INFINITY);
        }
    }
}

multiversion! {
    /// The online-softmax step of one score tile `s` `[m, BK]` (first `nk` columns; `m` =
    /// `mx.len()`): each row becomes `exp(s − m_new)` with `m_new` the new running max
    /// `mx` `[m]`; the running sum `l` `[m]` and the output rows `o` `[m, d]` are rescaled
    /// by `exp(m_old − m_new)` (Milakov & Gimelshein 2018, Algorithm 3).
    fn softmax_tile(s: &mut [f32], nk: usize, mx: &mut [f32], l: &mut [f32], o: &mut [f32], d: usize) {
        for r in 0..mx.len() {
            let srow = &mut s[r * BK..r * BK + nk];
            let m_new = mx[r].max(lane_max(srow));
            if m_new == f32::NEG_INFINITY {
                srow.fill(0.0);
                continue;
            }
            let corr = (mx[r] - m_new).exp();
            for x in srow.iter_mut() {
                *x = exp_f32(*x - m_new);
            }
            l[r] = l[r] * corr + lane_sum::<f32>(srow);
            mx[r] = m_new;
            if corr != 1.0 {
                for x in &mut o[r * d..(r + 1) * d] {
                    *x *= corr;
                }
            }
        }
    }
}

multiversion! {
    /// The probabilities of a recomputed score tile, in place: `p[r, j] = exp(p[r, j] −
    /// lse[r])` over the first `nk` columns of `p` `[m, BK]` (`m` = `lse.len()`).
    fn probs_tile(p: &mut [f32], nk: usize, lse: &[f32]) {
        for (r, li) in lse.iter().enumerate() {
            for x in &mut p[r * BK..r * BK + nk] {
                *x = exp_f32(*x - li);
            }
        }
    }
}

multiversion! {
    /// `dS = P ⊙ (dP − δ)` in place of `dp` `[m, BK]` (first `nk` columns; `m` =
    /// `delta.len()`), `δ[r] = rowsum(dO ⊙ O)` of query `r`.
    fn ds_tile(dp: &mut [f32], p: &[f32], nk: usize, delta: &[f32]) {
        for (r, di) in delta.iter().enumerate() {
            let (pr, dpr) = (&p[r * BK..r * BK + nk], &mut dp[r * BK..r * BK + nk]);
            for (x, pv) in dpr.iter_mut().zip(pr) {
                *x = pv * (*x - di);
            }
        }
    }
}

impl AttentionOp {
    /// One (row, head, query block) of the forward: the `[m, D]` output rows and their
    /// log-sum-exp.
    #[allow(clippy::too_many_arguments)]
    fn forward_block(
        &self,
        dims: &Dims,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        mask: &[f32],
        (row, head): (usize, usize),
        i0: usize,
    ) -> candle_core::Result<(Vec<f32>, Vec<f32>)> {
        let (d, kv) = (dims.d, dims.kv);
        let kvh = head / (dims.h / kv);
        let m = BQ.min(dims.t - i0);
        let i1 = i0 + m;
        let mut o = vec![0f32; m * d];
        let mut mx = vec![f32::NEG_INFINITY; m];
        let mut l = vec![0f32; m];
        let mut s = vec![0f32; m * BK];
        for j0 in (0..i1).step_by(BK) {
            let nk = BK.min(i1 - j0);
            let ids = (row, head, kvh);
            tile_scores(dims, q, k, mask, self.scale, ids, (i0, m), (j0, nk), &mut s)?;
            softmax_tile(&mut s, nk, &mut mx, &mut l, &mut o, d);
            let v_tile = Mat {
                data: &v[dims.v_at(row, j0, kvh)..],
                rs: dims.packing.kv_stride,
                cs: 1,
            };
            gemm(
                m,
                d,
                nk,
                &mut o,
                d,
                true,
                Mat::rows(&s, BK),
                v_tile,
                1.0,
                false,
            )?;
        }
        let mut lse = vec![0f32; m];
        for r in 0..m {
            let inv = 1.0 / l[r];
            for x in &mut o[r * d..(r + 1) * d] {
                *x *= inv;
            }
            lse[r] = mx[r] + l[r].ln();
        }
        Ok((o, lse))
    }

    /// The backward of one (row, head): `dQ` `[T, D]` of the head and its contributions to
    /// `dK`, `dV` `[T, D]` of its key/value head.
    #[allow(clippy::too_many_arguments)]
    fn backward_head(
        &self,
        dims: &Dims,
        (q, k, v, o, g): Operands<'_>,
        mask: &[f32],
        lse: &[f32],
        (row, head): (usize, usize),
    ) -> candle_core::Result<[Vec<f32>; 3]> {
        let (t, h, kv, d) = (dims.t, dims.h, dims.kv, dims.d);
        let kvh = head / (h / kv);
        let mut dq = vec![0f32; t * d];
        let mut dk = vec![0f32; t * d];
        let mut dv = vec![0f32; t * d];
        let lse = &lse[(row * h + head) * t..(row * h + head + 1) * t];
        // rowsum(dO ⊙ O) per query.
        let delta: Vec<f32> = (0..t)
            .map(|i| {
                let at = dims.o_at(row, i, head);
                g[at..at + d]
                    .iter()
                    .zip(&o[at..at + d])
                    .map(|(a, b)| a * b)
                    .sum()
            })
            .collect();
        let mut p = vec![0f32; BQ * BK];
        let mut dp = vec![0f32; BQ * BK];
        for i0 in (0..t).step_by(BQ) {
            let m = BQ.min(t - i0);
            let i1 = i0 + m;
            let q_blk = Mat {
                data: &q[dims.q_at(row, i0, head)..],
                rs: dims.packing.q_stride,
                cs: 1,
            };
            let g_blk = Mat {
                data: &g[dims.o_at(row, i0, head)..],
                rs: h * d,
                cs: 1,
            };
            for j0 in (0..i1).step_by(BK) {
                let nk = BK.min(i1 - j0);
                let ids = (row, head, kvh);
                tile_scores(dims, q, k, mask, self.scale, ids, (i0, m), (j0, nk), &mut p)?;
                probs_tile(&mut p, nk, &lse[i0..i1]);
                let p_t = Mat {
                    data: &p,
                    rs: 1,
                    cs: BK,
                };
                gemm(nk, d, m, &mut dv[j0 * d..], d, true, p_t, g_blk, 1.0, false)?;
                let v_t = Mat {
                    data: &v[dims.v_at(row, j0, kvh)..],
                    rs: 1,
                    cs: dims.packing.kv_stride,
                };
                gemm(m, nk, d, &mut dp, BK, false, g_blk, v_t, 1.0, false)?;
                ds_tile(&mut dp, &p, nk, &delta[i0..i1]);
                let k_tile = Mat {
                    data: &k[dims.k_at(row, j0, kvh)..],
                    rs: dims.packing.kv_stride,
                    cs: 1,
                };
                let ds = Mat::rows(&dp, BK);
                gemm(
                    m,
                    d,
                    nk,
                    &mut dq[i0 * d..],
                    d,
                    true,
                    ds,
                    k_tile,
                    self.scale,
                    false,
                )?;
                let ds_t = Mat {
                    data: &dp,
                    rs: 1,
                    cs: BK,
                };
                gemm(
                    nk,
                    d,
                    m,
                    &mut dk[j0 * d..],
                    d,
                    true,
                    ds_t,
                    q_blk,
                    self.scale,
                    false,
                )?;
            }
        }
        Ok([dq, dk, dv])
    }
}

impl AttentionOp {
    /// The op for `mask`, `scale` and `(H, K)` heads, with no log-sum-exp yet.
    fn new(mask: &Tensor, scale: f64, heads: (usize, usize)) -> Result<Self> {
        Ok(AttentionOp {
            mask: mask.contiguous()?,
            scale: scale as f32,
            lse: Mutex::new(Vec::new()),
            heads,
        })
    }

    /// The forward over all (row, head, query block) tasks: the output `[B, T, H, D]`; the
    /// log-sum-exp goes to `self.lse`. `q`, `k`, `v` are read at `dims`' packing (the same
    /// slice when packed).
    fn forward(
        &self,
        dims: &Dims,
        (q, k, v): (&[f32], &[f32], &[f32]),
    ) -> candle_core::Result<Vec<f32>> {
        let (m_storage, m_layout) = self.mask.storage_and_layout();
        let Storage::Cpu(m_cpu) = &*m_storage else {
            candle_core::bail!("fused-causal-attention: mask must be on the CPU");
        };
        let mask = cpu_slice(m_cpu, m_layout)?;
        let (b, t, h, d) = (dims.b, dims.t, dims.h, dims.d);
        let blocks = t.div_ceil(BQ);
        let results: Vec<(Vec<f32>, Vec<f32>)> = (0..b * h * blocks)
            .into_par_iter()
            .map(|task| {
                let (rh, blk) = (task / blocks, task % blocks);
                self.forward_block(dims, q, k, v, mask, (rh / h, rh % h), blk * BQ)
            })
            .collect::<candle_core::Result<_>>()?;
        let mut y = vec![0f32; b * t * h * d];
        let mut lse = vec![0f32; b * h * t];
        for (task, (o, l)) in results.iter().enumerate() {
            let (rh, blk) = (task / blocks, task % blocks);
            let (row, head, i0) = (rh / h, rh % h, blk * BQ);
            for (r, orow) in o.chunks_exact(d).enumerate() {
                let at = dims.o_at(row, i0 + r, head);
                y[at..at + d].copy_from_slice(orow);
            }
            lse[rh * t + i0..rh * t + i0 + l.len()].copy_from_slice(l);
        }
        match self.lse.lock() {
            Ok(mut slot) => *slot = lse,
            Err(_) => candle_core::bail!("fused-causal-attention: poisoned lock"),
        }
        Ok(y)
    }

    /// The backward of every (row, head): `dQ`, and the `dK`, `dV` contributions of each
    /// query head, as [`AttentionOp::backward_head`] returns them.
    fn backward(
        &self,
        dims: &Dims,
        (q, k, v): (&Tensor, &Tensor, &Tensor),
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Vec<[Vec<f32>; 3]>> {
        let (b, t, h) = (dims.b, dims.t, dims.h);
        let lse = match self.lse.lock() {
            Ok(l) => l.clone(),
            Err(_) => candle_core::bail!("fused-causal-attention: poisoned lock"),
        };
        if lse.len() != b * h * t {
            candle_core::bail!("fused-causal-attention: backward before forward");
        }
        with_slice(q, |qs| {
            with_slice(k, |ks| {
                with_slice(v, |vs| {
                    with_slice(res, |os| {
                        with_slice(grad, |gs| {
                            with_slice(&self.mask, |mask| {
                                (0..b * h)
                                    .into_par_iter()
                                    .map(|rh| {
                                        self.backward_head(
                                            dims,
                                            (qs, ks, vs, os, gs),
                                            mask,
                                            &lse,
                                            (rh / h, rh % h),
                                        )
                                    })
                                    .collect::<candle_core::Result<Vec<_>>>()
                            })
                        })
                    })
                })
            })
        })??????
    }
}

/// Writes the per-head gradients of [`AttentionOp::backward`] at `dims`' packing: `dQ` into
/// `dq`, the `dK`, `dV` contributions summed into `dkv` when given (separate tensors), else
/// into `dq` too (the packed layout).
fn scatter(
    dims: &Dims,
    per_head: &[[Vec<f32>; 3]],
    dq: &mut [f32],
    mut dkv: Option<(&mut [f32], &mut [f32])>,
) {
    let (t, h, d) = (dims.t, dims.h, dims.d);
    let n_rep = h / dims.kv;
    let add = |dst: &mut [f32], src: &[f32]| {
        for (a, x) in dst.iter_mut().zip(src) {
            *a += x;
        }
    };
    for (rh, [hq, hk, hv]) in per_head.iter().enumerate() {
        let (row, head) = (rh / h, rh % h);
        let kvh = head / n_rep;
        for i in 0..t {
            let src = i * d..(i + 1) * d;
            let at = dims.q_at(row, i, head);
            dq[at..at + d].copy_from_slice(&hq[src.clone()]);
            let (ka, va) = (dims.k_at(row, i, kvh), dims.v_at(row, i, kvh));
            match dkv.as_mut() {
                Some((dk, dv)) => {
                    add(&mut dk[ka..ka + d], &hk[src.clone()]);
                    add(&mut dv[va..va + d], &hv[src]);
                }
                None => {
                    add(&mut dq[ka..ka + d], &hk[src.clone()]);
                    add(&mut dq[va..va + d], &hv[src]);
                }
            }
        }
    }
}

impl CustomOp3 for AttentionOp {
    fn name(&self) -> &'static str {
        "fused-causal-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = Dims::of(self, l1.shape())?;
        let qkv = (cpu_slice(s1, l1)?, cpu_slice(s2, l2)?, cpu_slice(s3, l3)?);
        let y = self.forward(&dims, qkv)?;
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dims = Dims::of(self, q.shape())?;
        let per_head = self.backward(&dims, (q, k, v), res, grad)?;
        let mut dq = vec![0f32; q.elem_count()];
        let mut dk = vec![0f32; k.elem_count()];
        let mut dv = vec![0f32; v.elem_count()];
        scatter(&dims, &per_head, &mut dq, Some((&mut dk, &mut dv)));
        let dev = q.device();
        Ok((
            Some(Tensor::from_vec(dq, q.shape(), dev)?),
            Some(Tensor::from_vec(dk, k.shape(), dev)?),
            Some(Tensor::from_vec(dv, v.shape(), dev)?),
        ))
    }
}

/// The packed form ([`causal_attention_packed`]): one operand `qkv` `[B, T, (H + 2·K)·D]`,
/// output `[B, T, H, D]`.
impl CustomOp1 for AttentionOp {
    fn name(&self) -> &'static str {
        "fused-causal-attention-packed"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = Dims::of(self, layout.shape())?;
        let qkv = cpu_slice(storage, layout)?;
        let y = self.forward(&dims, (qkv, qkv, qkv))?;
        Ok((
            CpuStorage::F32(y),
            Shape::from((dims.b, dims.t, dims.h, dims.d)),
        ))
    }

    fn bwd(
        &self,
        qkv: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let dims = Dims::of(self, qkv.shape())?;
        let per_head = self.backward(&dims, (qkv, qkv, qkv), res, grad)?;
        let mut dqkv = vec![0f32; qkv.elem_count()];
        scatter(&dims, &per_head, &mut dqkv, None);
        Ok(Some(Tensor::from_vec(dqkv, qkv.shape(), qkv.device())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{rel_err, test_tensor, with_fused};
    use crate::layers::attention_bias;
    use candle_core::{DType, Device, Var, D};

    /// The unfused reference: `[B, T, heads, D]` in, the tensor ops of `layers/attention.rs`
    /// (K/V repeated per query head), `[B, T, H, D]` out.
    fn reference(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, scale: f64) -> Tensor {
        let f = || -> candle_core::Result<Tensor> {
            let (b, t, h, d) = q.dims4()?;
            let kv = k.dim(2)?;
            let rep = |x: &Tensor| -> candle_core::Result<Tensor> {
                let x = x.transpose(1, 2)?; // [B, K, T, D]
                let x = x
                    .unsqueeze(2)?
                    .broadcast_as((b, kv, h / kv, t, d))?
                    .reshape((b, h, t, d))?;
                x.contiguous()
            };
            let qh = q.transpose(1, 2)?.contiguous()?;
            let scores = (qh.matmul(&rep(k)?.t()?)? * scale)?.broadcast_add(mask)?;
            let max = scores.max_keepdim(D::Minus1)?.detach();
            let e = scores.broadcast_sub(&max)?.exp()?;
            let p = e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?;
            p.matmul(&rep(v)?)?.transpose(1, 2)?.contiguous()
        };
        f().unwrap_or_else(|e| panic!("reference attention: {e}"))
    }

    /// Values and the gradients of q, k and v against the unfused softmax attention through
    /// autograd, f32, with GQA (H = 6, K = 2), T = 150 (three partial query blocks and key
    /// tiles), a causal mask, a packed (block-diagonal) mask with padding and a shared mask:
    /// within 2e-5 relative (max |Δ| / max |reference|).
    #[test]
    fn matches_the_tensor_ops_values_and_gradients() -> Result<()> {
        let (b, t, h, kv, d) = (2, 150, 6, 2, 16);
        let dev = Device::Cpu;
        let mut segs = vec![1u32; t];
        for (i, s) in segs.iter_mut().enumerate() {
            *s = if i < 70 {
                1
            } else if i < 140 {
                2
            } else {
                0
            };
        }
        let packed = Tensor::from_vec([vec![1u32; t], segs].concat(), (b, t), &dev)?;
        let masks = [
            attention_bias(t, None, None, &dev)?,
            attention_bias(t, None, Some(&packed), &dev)?,
            attention_bias(
                t,
                Some(40),
                Some(&Tensor::ones((b, t), DType::U32, &dev)?),
                &dev,
            )?,
        ];
        for (mi, mask) in masks.iter().enumerate() {
            let q = Var::from_tensor(&(test_tensor(&[b, t, h, d], 21) * 2.0)?)?;
            let k = Var::from_tensor(&(test_tensor(&[b, t, kv, d], 22) * 2.0)?)?;
            let v = Var::from_tensor(&test_tensor(&[b, t, kv, d], 23))?;
            let g = test_tensor(&[b, t, h, d], 24);
            let scale = 1.0 / (d as f64).sqrt();
            let (qt, kt, vt) = (q.as_tensor(), k.as_tensor(), v.as_tensor());
            let y_ref = reference(qt, kt, vt, mask, scale);
            let s_ref = (&y_ref * &g)?.sum_all()?.backward()?;
            let y = with_fused(true, || causal_attention(qt, kt, vt, mask, scale))?
                .ok_or_else(|| candle_core::Error::Msg("not eligible".into()))?;
            let s = (&y * &g)?.sum_all()?.backward()?;
            let e = rel_err(&y, &y_ref);
            assert!(e < 2e-5, "mask {mi}: y differs by {e}");
            for (name, x) in [("q", qt), ("k", kt), ("v", vt)] {
                let (Some(a), Some(r)) = (s.get(x), s_ref.get(x)) else {
                    panic!("missing gradient of {name}")
                };
                let e = rel_err(a, r);
                assert!(e < 2e-5, "mask {mi}: d{name} differs by {e}");
            }
        }
        Ok(())
    }

    /// The packed form ([`causal_attention_packed`] on `[q | k | v]` concatenated per
    /// position) against the three-tensor form, f32, GQA (H = 6, K = 2), T = 100, a packed
    /// mask: the values and the gradients of q, k and v (through the concatenation) within
    /// 1e-6 relative.
    #[test]
    fn packed_layout_matches_the_separate_tensors() -> Result<()> {
        let (b, t, h, kv, d) = (2, 100, 6, 2, 16);
        let dev = Device::Cpu;
        let segs: Vec<u32> = (0..2 * t).map(|i| if i < t + 60 { 1 } else { 2 }).collect();
        let mask = attention_bias(t, None, Some(&Tensor::from_vec(segs, (b, t), &dev)?), &dev)?;
        let q = Var::from_tensor(&(test_tensor(&[b, t, h, d], 31) * 2.0)?)?;
        let k = Var::from_tensor(&(test_tensor(&[b, t, kv, d], 32) * 2.0)?)?;
        let v = Var::from_tensor(&test_tensor(&[b, t, kv, d], 33))?;
        let g = test_tensor(&[b, t, h, d], 34);
        let scale = 1.0 / (d as f64).sqrt();
        let (qt, kt, vt) = (q.as_tensor(), k.as_tensor(), v.as_tensor());
        let y = with_fused(true, || causal_attention(qt, kt, vt, &mask, scale))?
            .ok_or_else(|| candle_core::Error::Msg("not eligible".into()))?;
        let s = (&y * &g)?.sum_all()?.backward()?;
        let qkv = Tensor::cat(
            &[
                qt.reshape((b, t, h * d))?,
                kt.reshape((b, t, kv * d))?,
                vt.reshape((b, t, kv * d))?,
            ],
            2,
        )?;
        let yp = with_fused(true, || {
            causal_attention_packed(&qkv, (h, kv), &mask, scale)
        })?
        .ok_or_else(|| candle_core::Error::Msg("packed not eligible".into()))?;
        assert_eq!(yp.dims(), y.dims());
        let e = rel_err(&yp, &y);
        assert!(e < 1e-6, "packed y differs by {e}");
        let sp = (&yp * &g)?.sum_all()?.backward()?;
        for (name, x) in [("q", qt), ("k", kt), ("v", vt)] {
            let (Some(a), Some(r)) = (sp.get(x), s.get(x)) else {
                panic!("missing gradient of {name}")
            };
            let e = rel_err(a, r);
            assert!(e < 1e-6, "packed d{name} differs by {e}");
        }
        Ok(())
    }
}
