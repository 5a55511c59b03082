//! Fused RMSNorm (Zhang & Sennrich 2019, "Root Mean Square Layer Normalization", eq. 4) with
//! a hand-written backward.
//!
//! Forward, per row `x` of C values: `r = 1 / sqrt(Σx²·(1/C) + ε)`, `y = (x · r) · s` with
//! `s = w + offset` (offset 1 for Gemma's `(1 + w)`, else 0). The sums of squares come from
//! candle's `sqr` and `sum_keepdim` and every later step rounds as the tensor ops do, so the
//! values equal [`crate::layers::RmsNorm`]'s tensor path bit for bit.
//! Backward, from `g = dL/dy` (differentiating `y_j = x_j r s_j` with `∂r/∂x_j = −r³ x_j / C`):
//! `dx_j = r·g_j·s_j − x_j·r³/C · Σ_i g_i s_i x_i` and `dw_i = Σ_rows g_i · x_i · r`.
//! The op keeps `r` (N floats) for the backward.
//!
//! Shapes: N rows (all leading dims flattened), C the normalized width.

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor, D};
use rayon::prelude::*;

use super::{cpu_slice, eligible, with_slice};
use crate::error::Result;

/// Rows per rayon task.
const ROWS_PER_TASK: usize = 16;

/// `x` `[..., C]` normalized over the last dim and scaled by `weight + offset` (`weight`
/// `[C]`), f32 on the CPU, with a backward for `x` and `weight`; `None` when the fused kernels
/// are off or the inputs are not f32 CPU tensors of matching width (use the tensor ops).
///
/// Equal to [`crate::layers::RmsNorm::forward`]'s tensor ops bit for bit (tested).
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64, offset: f64) -> Result<Option<Tensor>> {
    if !eligible(&[x, weight]) || x.rank() == 0 {
        return Ok(None);
    }
    let c = x.dim(D::Minus1)?;
    if c == 0 || weight.dims() != [c] {
        return Ok(None);
    }
    let dims = x.dims().to_vec();
    let rows = x.elem_count() / c;
    let x2 = x.reshape((rows, c))?.contiguous()?;
    let sums = x2
        .detach()
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let inv_dim = (1.0 / c as f64) as f32;
    let eps = eps as f32;
    let inv = sums
        .iter()
        .map(|s| ((s * inv_dim) + eps).sqrt().recip())
        .collect();
    let op = RmsNormOp {
        inv,
        offset: offset as f32,
    };
    let y = x2.apply_op2(&weight.contiguous()?, op)?;
    Ok(Some(y.reshape(dims)?))
}

/// The op: `x` `[N, C]`, `w` `[C]` → `[N, C]`.
struct RmsNormOp {
    /// `r` of every row `[N]`.
    inv: Vec<f32>,
    offset: f32,
}

impl CustomOp2 for RmsNormOp {
    fn name(&self) -> &'static str {
        "fused-rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, c) = l1.shape().dims2()?;
        let x = cpu_slice(s1, l1)?;
        let w = cpu_slice(s2, l2)?;
        if w.len() != c {
            candle_core::bail!(
                "fused-rms-norm: weight has {} values for width {c}",
                w.len()
            );
        }
        let scale: Vec<f32> = w.iter().map(|w| w + self.offset).collect();
        if self.inv.len() != n {
            candle_core::bail!("fused-rms-norm: {} row norms for {n} rows", self.inv.len());
        }
        let mut y = vec![0f32; n * c];
        y.par_chunks_mut(c * ROWS_PER_TASK)
            .zip(x.par_chunks(c * ROWS_PER_TASK))
            .zip(self.inv.par_chunks(ROWS_PER_TASK))
            .for_each(|((yb, xb), ib)| {
                for ((yr, xr), r) in yb.chunks_exact_mut(c).zip(xb.chunks_exact(c)).zip(ib) {
                    for ((y, x), s) in yr.iter_mut().zip(xr).zip(&scale) {
                        *y = (x * r) * s;
                    }
                }
            });
        Ok((CpuStorage::F32(y), Shape::from((n, c))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (n, c) = x.dims2()?;
        let want_dw = w.track_op();
        let scale: Vec<f32> = with_slice(w, |w| w.iter().map(|w| w + self.offset).collect())?;
        let (dx, dw) = with_slice(x, |xs| {
            with_slice(grad, |gs| {
                let mut dx = vec![0f32; n * c];
                let partial_dw: Vec<Vec<f32>> = dx
                    .par_chunks_mut(c * ROWS_PER_TASK)
                    .zip(xs.par_chunks(c * ROWS_PER_TASK))
                    .zip(gs.par_chunks(c * ROWS_PER_TASK))
                    .zip(self.inv.par_chunks(ROWS_PER_TASK))
                    .map(|(((db, xb), gb), ib)| {
                        let mut dw = if want_dw { vec![0f32; c] } else { Vec::new() };
                        for (((dr, xr), gr), &r) in db
                            .chunks_exact_mut(c)
                            .zip(xb.chunks_exact(c))
                            .zip(gb.chunks_exact(c))
                            .zip(ib)
                        {
                            let dot: f32 = gr
                                .iter()
                                .zip(&scale)
                                .zip(xr)
                                .map(|((g, s), x)| g * s * x)
                                .sum();
                            let k = r * r * r * dot / c as f32;
                            for (((d, g), s), x) in dr.iter_mut().zip(gr).zip(&scale).zip(xr) {
                                *d = r * g * s - x * k;
                            }
                            if want_dw {
                                for ((dw, g), x) in dw.iter_mut().zip(gr).zip(xr) {
                                    *dw += g * x * r;
                                }
                            }
                        }
                        dw
                    })
                    .collect();
                let dw = want_dw.then(|| {
                    let mut sum = vec![0f32; c];
                    for p in &partial_dw {
                        for (s, v) in sum.iter_mut().zip(p) {
                            *s += v;
                        }
                    }
                    sum
                });
                (dx, dw)
            })
        })??;
        let dx = Tensor::from_vec(dx, (n, c), x.device())?;
        let dw = match dw {
            Some(dw) => Some(Tensor::from_vec(dw, c, w.device())?),
            None => None,
        };
        Ok((Some(dx), dw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{rel_err, test_tensor, with_fused};
    use crate::layers::RmsNorm;
    use candle_core::Var;

    /// Values (bit for bit) and gradients (x and weight; within 1e-5 relative, max |Δ| /
    /// max |reference|) against the tensor-op RmsNorm, f32.
    #[test]
    fn matches_the_tensor_ops_values_and_gradients() -> Result<()> {
        for offset in [0.0, 1.0] {
            let x = Var::from_tensor(&test_tensor(&[2, 5, 40], 1))?;
            let w = Var::from_tensor(&test_tensor(&[40], 2))?;
            let g = test_tensor(&[2, 5, 40], 3);
            let norm = RmsNorm {
                weight: w.as_tensor().clone(),
                eps: 1e-5,
                offset,
            };
            let y_ref = with_fused(false, || norm.forward(x.as_tensor()))?;
            let s_ref = (&y_ref * &g)?.sum_all()?.backward()?;
            let off = with_fused(false, || {
                rms_norm(x.as_tensor(), w.as_tensor(), 1e-5, offset)
            })?;
            assert!(off.is_none(), "off means the tensor ops");
            let y = rms_norm(x.as_tensor(), w.as_tensor(), 1e-5, offset)?
                .ok_or_else(|| candle_core::Error::Msg("not eligible".into()))?;
            let s = (&y * &g)?.sum_all()?.backward()?;
            assert_eq!(rel_err(&y, &y_ref), 0.0, "y, offset {offset}");
            for (name, t) in [("x", x.as_tensor()), ("w", w.as_tensor())] {
                let (a, b) = (s.get(t), s_ref.get(t));
                let (Some(a), Some(b)) = (a, b) else {
                    panic!("no gradient for {name}")
                };
                let e = rel_err(a, b);
                assert!(e < 1e-5, "d{name} offset {offset}: {e}");
            }
        }
        Ok(())
    }
}
