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
        let mut ys = Self::forward_many(&[self], x)?;
        ys.pop()
            .ok_or_else(|| candle_core::Error::Msg("no linear output".into()).into())
    }

    /// [`Linear::forward`] of several layers with the same input width on one `x`
    /// `[..., in]` (q/k/v, gate/up) → one `[..., out_p]` per layer. When every layer's
    /// quantized blocks serve the product, the products run together (one quantization of `x`,
    /// one parallel region: [`QuantizedWeight::try_matmul_many`]); otherwise one by one.
    pub fn forward_many(layers: &[&Self], x: &Tensor) -> Result<Vec<Tensor>> {
        let dims = x.dims();
        let inp = x.dim(D::Minus1)?;
        let rows = x.elem_count() / inp.max(1);
        let x = x.reshape((rows, inp))?;
        // LoRA layers in training: base and low-rank products in one fused op each.
        if let Some(ys) = crate::kernels::lora::fused_forward_many(layers, &x, dims)? {
            return Ok(ys);
        }
        let pairs: Option<Vec<(&QuantizedWeight, &Tensor)>> = layers
            .iter()
            .map(|l| l.quantized.as_ref().map(|q| (q, &l.weight)))
            .collect();
        let quantized = match pairs {
            Some(pairs) => QuantizedWeight::try_matmul_many(&pairs, &x)?,
            None => None,
        };
        let products = match quantized {
            Some(ys) => ys,
            None => layers
                .iter()
                .map(|l| {
                    let y = match &l.quantized {
                        Some(q) => q.try_matmul(&x, &l.weight)?,
                        None => None,
                    };
                    match y {
                        Some(y) => Ok(y),
                        None => crate::layers::matmul_wt(&x, &l.weight), // [rows, out]
                    }
                })
                .collect::<Result<Vec<_>>>()?,
        };
        layers
            .iter()
            .zip(products)
            .map(|(l, y)| l.finish(&x, y, dims))
            .collect()
    }

    /// Adds the adapter and the bias to the base product `y` `[rows, out]` of `x` `[rows, in]`
    /// and restores the leading dims of the input (`dims`).
    fn finish(&self, x: &Tensor, mut y: Tensor, dims: &[usize]) -> Result<Tensor> {
        if let Some(adapter) = &self.adapter {
            y = adapter.forward(x, &self.weight, y)?;
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
