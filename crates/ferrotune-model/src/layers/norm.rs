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
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
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
}
