//! Fused causal self-attention with grouped-query heads, tiled with an online softmax
//! (Milakov & Gimelshein 2018, "Online normalizer calculation for softmax"; the tiling of
//! Dao et al. 2022, "FlashAttention", Algorithms 1 and 2, here on the CPU): no `[T, T]` score
//! or probability matrix is stored, for the forward or for the backward.
//!
//! `O = softmax(Q·Kᵀ·scale + M)·V` per query head, `M` the additive mask of
//! [`crate::layers::attention_bias`]. Query head `h` reads key/value head `h / (H/K)` (GQA,
//! Ainslie et al. 2023), without copying keys or values. Everything is read and written in
//! the `[B, T, heads, D]` layout of the projections, so no transpose is needed around it.
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

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Storage, Tensor};
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
    let (mb, m1, mt, ms) = mask.dims4()?;
    let shapes_fit = (kb, kt, kd) == (b, t, d)
        && kh > 0
        && h % kh == 0
        && v.dims() == k.dims()
        && (mb == b || mb == 1)
        && (m1, mt, ms) == (1, t, t);
    if !shapes_fit {
        return Ok(None);
    }
    let op = AttentionOp {
        mask: mask.contiguous()?,
        scale: scale as f32,
        lse: Mutex::new(Vec::new()),
    };
    Ok(Some(q.contiguous()?.apply_op3(
        &k.contiguous()?,
        &v.contiguous()?,
        op,
    )?))
}

/// The op; operands `(q, k, v)`.
struct AttentionOp {
    /// `[B or 1, 1, T, T]` f32 contiguous.
    mask: Tensor,
    scale: f32,
    /// `[B, H, T]` log-sum-exp of every score row, written by the forward.
    lse: Mutex<Vec<f32>>,
}

/// `(q, k, v, o, dO)` of a backward, all in the `[B, T, heads, D]` layout.
type Operands<'a> = (&'a [f32], &'a [f32], &'a [f32], &'a [f32], &'a [f32]);

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
}

impl Dims {
    fn of(q: &Shape, k: &Shape, mask: &Shape) -> candle_core::Result<Self> {
        let (b, t, h, d) = q.dims4()?;
        let (_, _, kv, _) = k.dims4()?;
        let (mb, _, _, _) = mask.dims4()?;
        Ok(Dims {
            b,
            t,
            h,
            kv,
            d,
            mask_per_row: mb == b && b > 1,
        })
    }

    /// Offset of `(row, position, head)` in a `[B, T, heads, D]` tensor.
    fn at(&self, row: usize, pos: usize, head: usize, heads: usize) -> usize {
        ((row * self.t + pos) * heads + head) * self.d
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
    let (h, kv, d) = (dims.h, dims.kv, dims.d);
    let q_blk = Mat {
        data: &q[dims.at(row, i0, head, h)..],
        rs: h * d,
        cs: 1,
    };
    let k_t = Mat {
        data: &k[dims.at(row, j0, kvh, kv)..],
        rs: 1,
        cs: kv * d,
    };
    gemm(m, nk, d, s, BK, false, q_blk, k_t, scale, false)?;
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
                data: &v[dims.at(row, j0, kvh, kv)..],
                rs: kv * d,
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
                let at = dims.at(row, i, head, h);
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
                data: &q[dims.at(row, i0, head, h)..],
                rs: h * d,
                cs: 1,
            };
            let g_blk = Mat {
                data: &g[dims.at(row, i0, head, h)..],
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
                    data: &v[dims.at(row, j0, kvh, kv)..],
                    rs: 1,
                    cs: kv * d,
                };
                gemm(m, nk, d, &mut dp, BK, false, g_blk, v_t, 1.0, false)?;
                ds_tile(&mut dp, &p, nk, &delta[i0..i1]);
                let k_tile = Mat {
                    data: &k[dims.at(row, j0, kvh, kv)..],
                    rs: kv * d,
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
        let dims = Dims::of(l1.shape(), l2.shape(), self.mask.shape())?;
        let (q, k, v) = (cpu_slice(s1, l1)?, cpu_slice(s2, l2)?, cpu_slice(s3, l3)?);
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
                self.forward_block(&dims, q, k, v, mask, (rh / h, rh % h), blk * BQ)
            })
            .collect::<candle_core::Result<_>>()?;
        let mut y = vec![0f32; b * t * h * d];
        let mut lse = vec![0f32; b * h * t];
        for (task, (o, l)) in results.iter().enumerate() {
            let (rh, blk) = (task / blocks, task % blocks);
            let (row, head, i0) = (rh / h, rh % h, blk * BQ);
            for (r, orow) in o.chunks_exact(d).enumerate() {
                let at = dims.at(row, i0 + r, head, h);
                y[at..at + d].copy_from_slice(orow);
            }
            lse[rh * t + i0..rh * t + i0 + l.len()].copy_from_slice(l);
        }
        match self.lse.lock() {
            Ok(mut slot) => *slot = lse,
            Err(_) => candle_core::bail!("fused-causal-attention: poisoned lock"),
        }
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
        let dims = Dims::of(q.shape(), k.shape(), self.mask.shape())?;
        let (b, t, h, kv, d) = (dims.b, dims.t, dims.h, dims.kv, dims.d);
        let lse = match self.lse.lock() {
            Ok(l) => l.clone(),
            Err(_) => candle_core::bail!("fused-causal-attention: poisoned lock"),
        };
        if lse.len() != b * h * t {
            candle_core::bail!("fused-causal-attention: backward before forward");
        }
        let per_head = with_slice(q, |qs| {
            with_slice(k, |ks| {
                with_slice(v, |vs| {
                    with_slice(res, |os| {
                        with_slice(grad, |gs| {
                            with_slice(&self.mask, |mask| {
                                (0..b * h)
                                    .into_par_iter()
                                    .map(|rh| {
                                        self.backward_head(
                                            &dims,
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
        })???????;
        let mut dq = vec![0f32; b * t * h * d];
        let mut dk = vec![0f32; b * t * kv * d];
        let mut dv = vec![0f32; b * t * kv * d];
        let n_rep = h / kv;
        for (rh, [hq, hk, hv]) in per_head.iter().enumerate() {
            let (row, head) = (rh / h, rh % h);
            let kvh = head / n_rep;
            for i in 0..t {
                let src = i * d..(i + 1) * d;
                let at = dims.at(row, i, head, h);
                dq[at..at + d].copy_from_slice(&hq[src.clone()]);
                let at = dims.at(row, i, kvh, kv);
                for ((a, x), (c, y)) in dk[at..at + d]
                    .iter_mut()
                    .zip(&hk[src.clone()])
                    .zip(dv[at..at + d].iter_mut().zip(&hv[src.clone()]))
                {
                    *a += x;
                    *c += y;
                }
            }
        }
        let dev = q.device();
        Ok((
            Some(Tensor::from_vec(dq, q.shape(), dev)?),
            Some(Tensor::from_vec(dk, k.shape(), dev)?),
            Some(Tensor::from_vec(dv, v.shape(), dev)?),
        ))
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
}
