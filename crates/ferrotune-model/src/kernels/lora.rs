//! The fused LoRA linear (Hu et al. 2021, "LoRA", eq. 3): `y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ` for a frozen
//! `W`, as one op whose forward writes a single output buffer (the low-rank path is added by
//! the GEMM into the base product; the `[out, in]` update `B·A` is never formed) and whose
//! backward is hand-written:
//!
//! ```text
//! gb = g·B                      [N, r]
//! dx = g·W + s·gb·A             [N, in]   (only when x needs a gradient)
//! dA = s·gbᵀ·x                  [r, in]
//! dB = s·gᵀ·(x·Aᵀ)              [out, r]  (x·Aᵀ recomputed: N·in·r multiply-adds)
//! ```
//!
//! `W` gets no gradient (it is captured by the op, not an operand). The op (`Projections`)
//! takes several projections of one input side by side, their `A` and `B` packed in one
//! vector (candle's custom ops take at most three operands); [`lora_linear`] is its
//! one-projection form, [`crate::kernels::lora_block`] builds the layer's blocks on it. With
//! several projections (q/k/v, gate/up) the products that read `x` or write `dx` run once for
//! all of them, on the `A`s and `W`s stacked: `x·A_stackedᵀ` `[N, Σ r]`, `dx = g·W_stacked +
//! gb·A_stacked` and `dA_stacked = gbᵀ·x`, one pass over `x` or `dx` each instead of one per
//! projection (the rank-r products are memory-bound).
//!
//! Shapes: N rows, `in`/`out` the layer's features, r the rank, s the scaling.

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};

use super::precision::{matmul_precision, round_operand, MatmulPrecision};
use super::rope::Rotation;
use super::{cpu_slice, eligible, gemm, with_slice, Mat};
use crate::adapters::{LoraAdapter, LoraVariant};
use crate::error::Result;

/// `x` `[N, in]` · `weight`ᵀ (`[out, in]`, frozen) `+ scaling · (x·aᵀ)·bᵀ` with `a` `[r, in]`
/// and `b` `[out, r]` → `[N, out]`, with the backward of the module docs; `None` when the
/// fused kernels are off, a tensor is not f32 on the CPU, `weight` tracks a gradient or the
/// shapes do not chain (use the tensor ops).
pub fn lora_linear(
    x: &Tensor,
    weight: &Tensor,
    a: &Tensor,
    b: &Tensor,
    scaling: f64,
) -> Result<Option<Tensor>> {
    if !eligible(&[x, weight, a, b]) || weight.track_op() {
        return Ok(None);
    }
    let (Ok((_, inp)), Ok((out, w_in)), Ok((r, a_in)), Ok((b_out, b_r))) =
        (x.dims2(), weight.dims2(), a.dims2(), b.dims2())
    else {
        return Ok(None);
    };
    if w_in != inp || a_in != inp || b_out != out || b_r != r {
        return Ok(None);
    }
    let proj = Proj {
        weight: weight.contiguous()?,
        out,
        r,
        scaling: scaling as f32,
        offset: 0,
    };
    let pack = Tensor::cat(&[a.flatten_all()?, b.flatten_all()?], 0)?;
    Ok(Some(
        x.contiguous()?.apply_op2(&pack, Projections::one(proj))?,
    ))
}

/// The products of LoRA layers sharing one input through the fused kernel
/// ([`crate::kernels::lora::lora_linear`]: base and low-rank path in one op, hand-written
/// backward): `x` `[N, in]` (flattened), `dims` the input's original dims → one
/// `[..., out_p]` per layer, bias added. `None` (use the generic path) unless every layer has
/// a plain LoRA adapter whose dropout is inactive, a frozen f32 weight, and `x` has more rows
/// than a decode step ([`crate::layers::GEMV_MAX_ROWS`]), with the fused kernels on.
pub fn fused_forward_many(
    layers: &[&crate::layers::Linear],
    x: &Tensor,
    dims: &[usize],
) -> Result<Option<Vec<Tensor>>> {
    let rows = x.dim(0)?;
    let all_plain = layers
        .iter()
        .all(|l| l.adapter.as_ref().is_some_and(plain_product));
    if !all_plain || layers.is_empty() || rows <= crate::layers::GEMV_MAX_ROWS {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(layers.len());
    for l in layers {
        let Some(a) = &l.adapter else {
            return Ok(None);
        };
        let Some(y) = crate::kernels::lora::lora_linear(
            x,
            &l.weight,
            a.lora_a.as_tensor(),
            a.lora_b.as_tensor(),
            a.scaling,
        )?
        else {
            return Ok(None);
        };
        let y = match &l.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out_dims = dims.to_vec();
        if let Some(last) = out_dims.last_mut() {
            *last = l.weight.dim(0)?;
        }
        out.push(y.reshape(out_dims)?);
    }
    Ok(Some(out))
}

/// Whether `a` computes exactly `s·(x·Aᵀ)·Bᵀ`: plain LoRA (not DoRA) whose dropout is
/// inactive, the product the fused ops implement.
pub(crate) fn plain_product(a: &LoraAdapter) -> bool {
    matches!(a.variant, LoraVariant::Plain) && (!a.training || a.dropout <= 0.0)
}

/// One projection of a [`Projections`] op: the frozen weight, and where its `A` and `B`
/// sit in the op's packed adapter vector `[A_1, B_1, A_2, B_2, …]` (each flattened
/// row-major).
#[derive(Debug, Clone)]
pub(crate) struct Proj {
    /// `[out, in]` f32, contiguous, on the CPU, frozen.
    pub weight: Tensor,
    pub out: usize,
    pub r: usize,
    pub scaling: f32,
    /// Where `A` `[r, in]` starts in the pack; `B` `[out, r]` follows it.
    pub offset: usize,
}

impl Proj {
    /// This projection's `B` `[out, r]` in `pack`, for input width `inp`.
    pub(crate) fn b<'a>(&self, pack: &'a [f32], inp: usize) -> &'a [f32] {
        let a_end = self.offset + self.r * inp;
        &pack[a_end..a_end + self.out * self.r]
    }

    /// This projection's `dA` and `dB` in the pack's gradient `dpack`.
    pub(crate) fn grads<'a>(
        &self,
        dpack: &'a mut [f32],
        inp: usize,
    ) -> (&'a mut [f32], &'a mut [f32]) {
        let end = self.offset + self.r * inp + self.out * self.r;
        dpack[self.offset..end].split_at_mut(self.r * inp)
    }
}

/// Calls `f` with the f32 elements of `p`'s weight as the products read them at `prec`.
pub(crate) fn with_weight<R>(
    p: &Proj,
    prec: MatmulPrecision,
    f: impl FnOnce(&[f32]) -> candle_core::Result<R>,
) -> candle_core::Result<R> {
    with_slice(&p.weight, |w| f(&round_operand(w, prec)))?
}

/// Projections sharing one input as one op, operands `(x [N, in], pack)` → `[N, Σ out_j]`,
/// the outputs side by side, with the backward of the module docs (one `dx` summed over the
/// projections); optionally RoPE on the first heads of each output row, undone on the
/// upstream gradient first in backward. Used by [`lora_linear`] (one projection) and by
/// [`crate::kernels::lora_block`].
pub(crate) struct Projections {
    pub projs: Vec<Proj>,
    /// `Σ out_j`, the output's width.
    pub total: usize,
    /// RoPE on the first heads of each output row: the tables, the head count and width.
    pub rope: Option<(Rotation, usize, usize)>,
}

impl CustomOp2 for Projections {
    fn name(&self) -> &'static str {
        "fused-lora-projections"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, inp) = l1.shape().dims2()?;
        let y = self.forward(cpu_slice(s1, l1)?, cpu_slice(s2, l2)?, (n, inp))?;
        Ok((CpuStorage::F32(y), Shape::from((n, self.total))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        pack: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (n, inp) = x.dims2()?;
        let mut dpack = pack.track_op().then(|| vec![0f32; pack.elem_count()]);
        let dx = with_slice(x, |xs| {
            with_slice(pack, |ps| {
                with_slice(grad, |gs| {
                    self.backward(xs, ps, gs, (n, inp), x.track_op(), dpack.as_deref_mut())
                })
            })
        })????;
        let dev = x.device();
        Ok((
            dx.map(|v| Tensor::from_vec(v, (n, inp), dev)).transpose()?,
            dpack
                .map(|v| Tensor::from_vec(v, pack.shape(), dev))
                .transpose()?,
        ))
    }
}

impl Projections {
    /// The op of one projection, without RoPE.
    pub(crate) fn one(proj: Proj) -> Self {
        Projections {
            total: proj.out,
            projs: vec![proj],
            rope: None,
        }
    }

    /// `Σ_j r_j`, the width of the stacked low-rank activations.
    fn rank_total(&self) -> usize {
        self.projs.iter().map(|p| p.r).sum()
    }

    /// Every projection's `A` `[r_j, inp]` from `pack`, stacked: `[Σ r_j, inp]`.
    fn stacked_a(&self, pack: &[f32], inp: usize) -> Vec<f32> {
        let mut a = Vec::with_capacity(self.rank_total() * inp);
        for p in &self.projs {
            a.extend_from_slice(&pack[p.offset..p.offset + p.r * inp]);
        }
        a
    }

    /// Calls `f` with the projections' weights stacked, `[total, inp]`, as the products read
    /// them at `prec` (a single projection's weight is not copied).
    fn with_stacked_weights<R>(
        &self,
        inp: usize,
        prec: MatmulPrecision,
        f: impl FnOnce(&[f32]) -> candle_core::Result<R>,
    ) -> candle_core::Result<R> {
        if let [p] = self.projs.as_slice() {
            return with_weight(p, prec, f);
        }
        let mut w = Vec::with_capacity(self.total * inp);
        for p in &self.projs {
            with_weight(p, prec, |wp| {
                w.extend_from_slice(wp);
                Ok(())
            })?;
        }
        f(&w)
    }

    /// `u = x·A_stackedᵀ` `[n, Σ r_j]` (one pass over `x` for every projection), rounded to
    /// `prec` as the products read it.
    fn low_rank_input(
        x: &[f32],
        a_stacked: &[f32],
        (n, inp, r_total): (usize, usize, usize),
        prec: MatmulPrecision,
    ) -> candle_core::Result<Vec<f32>> {
        let mut u = vec![0f32; n * r_total];
        let (xm, a_t) = (Mat::rows(x, inp), Mat::rows_t(a_stacked, inp));
        gemm(n, r_total, inp, &mut u, r_total, false, xm, a_t, 1.0, true)?;
        Ok(round_operand(&u, prec).into_owned())
    }

    /// The forward on slices: `x` `[n, inp]` and the pack (both as stored, unrounded) →
    /// `[n, total]`, the projections side by side, RoPE applied when set.
    ///
    /// Errors: from [`gemm`] (a pack or input shorter than the projections read).
    pub(crate) fn forward(
        &self,
        x: &[f32],
        pack: &[f32],
        (n, inp): (usize, usize),
    ) -> candle_core::Result<Vec<f32>> {
        let mut y = vec![0f32; n * self.total];
        self.forward_into(x, pack, (n, inp), &mut y, false)?;
        Ok(y)
    }

    /// [`Projections::forward`] written into `y` `[n, total]`, added to what it holds when
    /// `accumulate`: per projection j, `y_j (+)= x·W_jᵀ + s_j·u_j·B_jᵀ` with `x`, `A`, `B`
    /// and `W` rounded to the matmul precision, and `u = x·A_stackedᵀ` `[n, Σ r_j]` (one
    /// product for all projections, rounded before it multiplies `B`).
    ///
    /// Errors: from [`gemm`] (a pack, input or output shorter than the projections read).
    pub(crate) fn forward_into(
        &self,
        x: &[f32],
        pack: &[f32],
        (n, inp): (usize, usize),
        y: &mut [f32],
        accumulate: bool,
    ) -> candle_core::Result<()> {
        let prec = matmul_precision();
        let x = round_operand(x, prec);
        let pack = round_operand(pack, prec);
        let r_total = self.rank_total();
        let u = Self::low_rank_input(&x, &self.stacked_a(&pack, inp), (n, inp, r_total), prec)?;
        let (mut col, mut q) = (0, 0);
        for p in &self.projs {
            with_weight(p, prec, |w| {
                let (w_t, y) = (Mat::rows_t(w, inp), &mut y[col..]);
                let xm = Mat::rows(&x, inp);
                gemm(n, p.out, inp, y, self.total, accumulate, xm, w_t, 1.0, true)?;
                let uj = Mat {
                    data: &u[q..],
                    rs: r_total,
                    cs: 1,
                };
                let b_t = Mat::rows_t(p.b(&pack, inp), p.r);
                gemm(n, p.out, p.r, y, self.total, true, uj, b_t, p.scaling, true)
            })?;
            col += p.out;
            q += p.r;
        }
        if let Some((rotation, heads, d)) = &self.rope {
            rotation.rotate_rows(y, self.total, (*heads, *d), false);
        }
        Ok(())
    }

    /// The backward on slices from the upstream gradient `g` `[n, total]` (of the rotated
    /// output when RoPE is set): returns `dx` `[n, inp]` when `want_x`, and writes each
    /// projection's `dA`, `dB` into its part of `dpack` (the pack's shape) when given,
    /// leaving the rest of `dpack` as it is.
    ///
    /// The module docs' formulas for every projection j, with the products that read `x` or
    /// write `dx` done once for all projections: `gb_j = g_j·B_j` (rounded, then
    /// scaled by `s_j`) side by side as `gb` `[n, Σ r_j]`, `dx = g·W_stacked + gb·A_stacked`
    /// (two products instead of two per projection), `dA_stacked = gbᵀ·x` and
    /// `u = x·A_stackedᵀ` (one pass over `x` each), `dB_j = s_j·g_jᵀ·u_j`.
    ///
    /// Errors: from [`gemm`] (buffers shorter than their shapes).
    pub(crate) fn backward(
        &self,
        x: &[f32],
        pack: &[f32],
        g: &[f32],
        (n, inp): (usize, usize),
        want_x: bool,
        dpack: Option<&mut [f32]>,
    ) -> candle_core::Result<Option<Vec<f32>>> {
        let prec = matmul_precision();
        // The gradient before the rotation: the transposed rotation of `g`.
        let unrotated = self.rope.as_ref().map(|(rotation, heads, d)| {
            let mut g = g.to_vec();
            rotation.rotate_rows(&mut g, self.total, (*heads, *d), true);
            g
        });
        let g = unrotated.as_deref().unwrap_or(g);
        let (xs, ps, gs) = (
            round_operand(x, prec),
            round_operand(pack, prec),
            round_operand(g, prec),
        );
        let (total, r_total) = (self.total, self.rank_total());
        let a_stacked = self.stacked_a(&ps, inp);
        // gb_j = g_j·B_j, rounded, then scaled by s_j: [n, Σ r_j].
        let mut gb = vec![0f32; n * r_total];
        let (mut col, mut q) = (0, 0);
        for p in &self.projs {
            let gj = Mat {
                data: &gs[col..],
                rs: total,
                cs: 1,
            };
            let b = Mat::rows(p.b(&ps, inp), p.r);
            gemm(
                n,
                p.r,
                p.out,
                &mut gb[q..],
                r_total,
                false,
                gj,
                b,
                1.0,
                true,
            )?;
            col += p.out;
            q += p.r;
        }
        let mut gb = round_operand(&gb, prec).into_owned();
        for row in gb.chunks_exact_mut(r_total) {
            let mut q = 0;
            for p in &self.projs {
                for v in &mut row[q..q + p.r] {
                    *v *= p.scaling;
                }
                q += p.r;
            }
        }
        let gbm = Mat::rows(&gb, r_total);
        let dx = if want_x {
            let mut dx = vec![0f32; n * inp];
            self.with_stacked_weights(inp, prec, |w| {
                let gm = Mat::rows(&gs, total);
                gemm(
                    n,
                    inp,
                    total,
                    &mut dx,
                    inp,
                    false,
                    gm,
                    Mat::rows(w, inp),
                    1.0,
                    true,
                )
            })?;
            let a = Mat::rows(&a_stacked, inp);
            gemm(n, inp, r_total, &mut dx, inp, true, gbm, a, 1.0, true)?;
            Some(dx)
        } else {
            None
        };
        let Some(dpack) = dpack else {
            return Ok(dx);
        };
        let xm = Mat::rows(&xs, inp);
        let mut da = vec![0f32; r_total * inp];
        let gb_t = Mat::rows_t(&gb, r_total);
        gemm(r_total, inp, n, &mut da, inp, false, gb_t, xm, 1.0, true)?;
        let u = Self::low_rank_input(&xs, &a_stacked, (n, inp, r_total), prec)?;
        let (mut col, mut q) = (0, 0);
        for p in &self.projs {
            let (da_j, db_j) = p.grads(dpack, inp);
            da_j.copy_from_slice(&da[q * inp..(q + p.r) * inp]);
            let gj_t = Mat {
                data: &gs[col..],
                rs: 1,
                cs: total,
            };
            let uj = Mat {
                data: &u[q..],
                rs: r_total,
                cs: 1,
            };
            gemm(p.out, p.r, n, db_j, p.r, false, gj_t, uj, p.scaling, true)?;
            col += p.out;
            q += p.r;
        }
        Ok(dx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{rel_err, test_tensor, with_fused};
    use candle_core::Var;

    /// Values and the gradients of x, A and B against `x·Wᵀ + s·(x·Aᵀ)·Bᵀ` from candle's
    /// matmuls through autograd, f32: within 1e-5 relative (max |Δ| / max |reference|); the
    /// frozen W gets no gradient.
    #[test]
    fn matches_the_tensor_ops_values_and_gradients() -> Result<()> {
        let (n, inp, out, r) = (37, 48, 40, 4);
        let x = Var::from_tensor(&test_tensor(&[n, inp], 11))?;
        let w = test_tensor(&[out, inp], 12);
        let a = Var::from_tensor(&test_tensor(&[r, inp], 13))?;
        let b = Var::from_tensor(&test_tensor(&[out, r], 14))?;
        let g = test_tensor(&[n, out], 15);
        let s = 2.0;
        let (xt, at, bt) = (x.as_tensor(), a.as_tensor(), b.as_tensor());
        let y_ref = (xt.matmul(&w.t()?)? + (xt.matmul(&at.t()?)?.matmul(&bt.t()?)? * s)?)?;
        let s_ref = (&y_ref * &g)?.sum_all()?.backward()?;
        let y = with_fused(true, || lora_linear(xt, &w, at, bt, s))?
            .ok_or_else(|| candle_core::Error::Msg("not eligible".into()))?;
        let st = (&y * &g)?.sum_all()?.backward()?;
        let e = rel_err(&y, &y_ref);
        assert!(e < 1e-5, "y differs by {e}");
        for (name, t) in [("x", xt), ("A", at), ("B", bt)] {
            let (Some(p), Some(q)) = (st.get(t), s_ref.get(t)) else {
                panic!("missing gradient of {name}")
            };
            let e = rel_err(p, q);
            assert!(e < 1e-5, "d{name} differs by {e}");
        }
        assert!(st.get(&w).is_none());
        // A frozen input gets no gradient computed.
        let y = with_fused(true, || lora_linear(&xt.detach(), &w, at, bt, s))?
            .ok_or_else(|| candle_core::Error::Msg("not eligible".into()))?;
        let st = (&y * &g)?.sum_all()?.backward()?;
        let (Some(p), Some(q)) = (st.get(at), s_ref.get(at)) else {
            panic!("missing gradient of A")
        };
        assert!(rel_err(p, q) < 1e-5);
        Ok(())
    }

    /// bf16 mixed precision: the forward equals `x̂·Ŵᵀ + s·round(x̂·Âᵀ)·B̂ᵀ` with every operand
    /// rounded to bf16 (hats) and f32 accumulation, within 1e-6 relative (summation order);
    /// the gradients stay within bf16's 2^-8 relative rounding of the f32 ones (bound 2e-2)
    /// and differ from them (the rounding is applied).
    #[test]
    fn bf16_products_round_every_operand() -> Result<()> {
        use crate::kernels::precision::{round_bf16, with_matmul_precision, MatmulPrecision};
        let (n, inp, out, r) = (37, 48, 40, 4);
        let x = Var::from_tensor(&test_tensor(&[n, inp], 21))?;
        let w = test_tensor(&[out, inp], 22);
        let a = Var::from_tensor(&test_tensor(&[r, inp], 23))?;
        let b = Var::from_tensor(&test_tensor(&[out, r], 24))?;
        let g = test_tensor(&[n, out], 25);
        let s = 2.0;
        let (xt, at, bt) = (x.as_tensor(), a.as_tensor(), b.as_tensor());
        let round = |t: &Tensor| -> candle_core::Result<Tensor> {
            let v: Vec<f32> = t
                .flatten_all()?
                .to_vec1::<f32>()?
                .into_iter()
                .map(round_bf16)
                .collect();
            Tensor::from_vec(v, t.dims(), t.device())
        };
        let (xr, wr, ar, br) = (round(xt)?, round(&w)?, round(at)?, round(bt)?);
        let u = round(&xr.matmul(&ar.t()?)?)?;
        let y_ref = (xr.matmul(&wr.t()?)? + (u.matmul(&br.t()?)? * s)?)?;
        let y = with_matmul_precision(MatmulPrecision::Bf16, || {
            with_fused(true, || lora_linear(xt, &w, at, bt, s))
        })?
        .ok_or_else(|| candle_core::Error::Msg("not eligible".into()))?;
        let e = rel_err(&y, &y_ref);
        assert!(e < 1e-6, "bf16 y differs from the rounded reference by {e}");
        // Backward reads the setting when it runs, so it runs under bf16 too.
        let st = with_matmul_precision(MatmulPrecision::Bf16, || (&y * &g)?.sum_all()?.backward())?;
        let y32 = with_fused(true, || lora_linear(xt, &w, at, bt, s))?
            .ok_or_else(|| candle_core::Error::Msg("not eligible".into()))?;
        let s32 = (&y32 * &g)?.sum_all()?.backward()?;
        assert!(rel_err(&y, &y32) > 1e-5, "bf16 forward equals f32's");
        for (name, t) in [("x", xt), ("A", at), ("B", bt)] {
            let (Some(p), Some(q)) = (st.get(t), s32.get(t)) else {
                panic!("missing gradient of {name}")
            };
            let e = rel_err(p, q);
            assert!(e < 2e-2 && e > 1e-5, "bf16 d{name} vs f32: {e}");
        }
        Ok(())
    }
}
