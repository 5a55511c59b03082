//! RMSNorm (Zhang & Sennrich 2019, eq. 4): `y = x / sqrt(mean(x²) + ε) · (offset + w)`,
//! computed in f32. `offset` is 0 for llama-style models and 1 for Gemma.

use candle_core::{DType, Tensor, D};

use crate::error::Result;
use crate::weights::WeightStore;

/// Root-mean-square layer norm over the last dimension.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    /// `[C]` f32 (or `[D]` for per-head q/k norms).
    pub weight: Tensor,
    /// ε added to the mean square.
    pub eps: f64,
    /// Added to `weight` before scaling: 1 for Gemma's `(1 + w)`, else 0.
    pub offset: f64,
}

impl RmsNorm {
    /// Takes `{prefix}.weight` `[dim]`.
    pub fn load(
        w: &mut WeightStore,
        prefix: &str,
        dim: usize,
        eps: f64,
        offset: f64,
    ) -> Result<Self> {
        Ok(Self {
            weight: w.take(&format!("{prefix}.weight"), &[dim])?,
            eps,
            offset,
        })
    }

    /// Calls `f` with `{prefix}.weight`.
    pub fn visit_tensors(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        f(&format!("{prefix}.weight"), &self.weight);
    }

    /// `x` `[..., dim]` → same shape and dtype; the statistics are taken in f32.
    ///
    /// Without gradients (inference; f32 on the CPU) it takes `RmsNorm::forward_rows`: the
    /// sums of squares as tensor ops, the rest in one pass over slices instead of seven more
    /// tensor ops, with the same values bit for bit.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if let Some(y) = self.forward_rows(x)? {
            return Ok(y);
        }
        // Training and prefill: one fused pass with a hand-written backward (f32, CPU).
        if let Some(y) = crate::kernels::rmsnorm::rms_norm(x, &self.weight, self.eps, self.offset)?
        {
            return Ok(y);
        }
        let dtype = x.dtype();
        let x = x.to_dtype(DType::F32)?;
        let inv_rms = (x.sqr()?.mean_keepdim(D::Minus1)? + self.eps)?
            .sqrt()?
            .recip()?;
        let normed = x.broadcast_mul(&inv_rms)?;
        let scale = if self.offset == 0.0 {
            self.weight.clone()
        } else {
            (&self.weight + self.offset)?
        };
        Ok(normed.broadcast_mul(&scale)?.to_dtype(dtype)?)
    }

    /// The norm with the tensor path's exact roundings: `Some` when `x` and `weight` are f32
    /// on the CPU and neither tracks a gradient, else `None` (use the tensor ops).
    ///
    /// The sums of squares come from the same tensor ops as in the tensor path (`sqr`, then a
    /// sum over the last dimension, whose summation order is candle's); then per value, with
    /// candle's f32 roundings of `mean_keepdim` (a product with `1/dim`), `+ ε`, `sqrt`,
    /// `recip` and the two products: `y = (x · 1/sqrt(Σx² · (1/dim) + ε)) · (w + offset)`.
    fn forward_rows(&self, x: &Tensor) -> Result<Option<Tensor>> {
        let eligible = !x.track_op()
            && !self.weight.track_op()
            && x.device().is_cpu()
            && x.dtype() == DType::F32
            && self.weight.dtype() == DType::F32;
        let dim = x.dim(D::Minus1)?;
        if !eligible || dim == 0 || self.weight.dims() != [dim] {
            return Ok(None);
        }
        let x = x.contiguous()?;
        let sums = x
            .sqr()?
            .sum_keepdim(D::Minus1)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let xs = x.flatten_all()?.to_vec1::<f32>()?;
        let inv_dim = (1.0 / dim as f64) as f32;
        let (eps, offset) = (self.eps as f32, self.offset as f32);
        let mut scale = self.weight.to_vec1::<f32>()?;
        if self.offset != 0.0 {
            for w in &mut scale {
                *w += offset;
            }
        }
        let mut out = Vec::with_capacity(xs.len());
        for (row, sum) in xs.chunks_exact(dim).zip(sums) {
            let inv_rms = ((sum * inv_dim) + eps).sqrt().recip();
            out.extend(row.iter().zip(&scale).map(|(v, s)| (v * inv_rms) * s));
        }
        Ok(Some(Tensor::from_vec(out, x.shape(), x.device())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use candle_core::{Device, Var};

    #[test]
    fn row_path_equals_the_tensor_ops_bit_for_bit() -> Result<()> {
        let dev = Device::Cpu;
        for (shape, dim) in [((3, 1, 40), 40), ((2, 5, 576), 576)] {
            let n = shape.0 * shape.1 * shape.2;
            let x = Tensor::from_vec(crate::layers::test_values(n, 41), shape, &dev)?;
            for offset in [0.0, 1.0] {
                let norm = RmsNorm {
                    weight: Tensor::from_vec(crate::layers::test_values(dim, 42), dim, &dev)?,
                    eps: 1e-5,
                    offset,
                };
                let fast = norm.forward(&x)?;
                // A tracked input takes the tensor ops.
                let slow = norm.forward(Var::from_tensor(&x)?.as_tensor())?;
                assert_eq!(fast.dims(), slow.dims());
                let diff = (fast - slow.detach())?
                    .abs()?
                    .max_all()?
                    .to_scalar::<f32>()?;
                assert_eq!(diff, 0.0, "{shape:?} offset {offset}");
            }
        }
        Ok(())
    }
}
