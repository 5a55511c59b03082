//! A dense projection `y = x·Wᵀ + b`, optionally carrying a low-rank adapter.

use candle_core::{Tensor, D};

use crate::adapters::LoraAdapter;
use crate::error::Result;
use crate::layers::QuantizedWeight;
use crate::weights::WeightStore;

/// A linear layer with the PyTorch weight layout.
#[derive(Debug, Clone)]
pub struct Linear {
    /// `[out, in]` f32, the frozen base weight.
    pub weight: Tensor,
    /// `[out]` f32, when the layer has a bias.
    pub bias: Option<Tensor>,
    /// A LoRA/DoRA adapter added to the base output; set by [`crate::adapters::apply_lora`].
    pub adapter: Option<LoraAdapter>,
    /// The weight's GGUF blocks, kept for inference by [`crate::load_gguf_quantized`]: products
    /// of a few rows without gradients (decode steps) read them instead of `weight`.
    pub quantized: Option<QuantizedWeight>,
}

impl Linear {
    /// Takes `{prefix}.weight` `[out, in]` and, with `bias`, `{prefix}.bias` `[out]`.
    pub fn load(
        w: &mut WeightStore,
        prefix: &str,
        out: usize,
        inp: usize,
        bias: bool,
    ) -> Result<Self> {
        let weight = w.take(&format!("{prefix}.weight"), &[out, inp])?;
        let bias = if bias {
            Some(w.take(&format!("{prefix}.bias"), &[out])?)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            adapter: None,
            quantized: None,
        })
    }

    /// Calls `f` with `{prefix}.weight` and `{prefix}.bias` (the base weights, not the adapter's).
    pub fn visit_tensors(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        f(&format!("{prefix}.weight"), &self.weight);
        if let Some(b) = &self.bias {
            f(&format!("{prefix}.bias"), b);
        }
    }

    /// `x` `[..., in]` → `[..., out]`, computed as one GEMM over the flattened leading dims;
    /// the adapter, when set, acts on the bias-free product before the bias is added. The
    /// product reads the quantized blocks when they serve it (see
    /// [`QuantizedWeight::try_matmul`]), else `weight`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims();
        let inp = x.dim(D::Minus1)?;
        let rows = x.elem_count() / inp.max(1);
        let x = x.reshape((rows, inp))?;
        let quantized = match &self.quantized {
            Some(q) => q.try_matmul(&x, &self.weight)?,
            None => None,
        };
        let mut y = match quantized {
            Some(y) => y,
            None => crate::layers::matmul_wt(&x, &self.weight)?, // [rows, out]
        };
        if let Some(adapter) = &self.adapter {
            y = adapter.forward(&x, &self.weight, y)?;
        }
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out_dims = dims.to_vec();
        if let Some(last) = out_dims.last_mut() {
            *last = self.weight.dim(0)?;
        }
        Ok(y.reshape(out_dims)?)
    }
}
