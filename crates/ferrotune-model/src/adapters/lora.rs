//! One LoRA/DoRA adapter on one linear layer, and its forward.
//!
//! Shapes: N rows (batch·seq flattened), `in`/`out` the base layer's features, r the rank.
//! A is `lora_A.weight` `[r, in]`, B is `lora_B.weight` `[out, r]`, s the scaling.

use candle_core::{Tensor, Var, D};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::Result;

/// How the low-rank update enters the layer's output; the one place variants differ.
#[derive(Debug, Clone)]
pub enum LoraVariant {
    /// LoRA (Hu et al. 2021, eq. 3): `y = x·Wᵀ + s·B(A(dropout(x)))`.
    Plain,
    /// DoRA (Liu et al. 2024, eq. 5): `y = m ⊙ (x·Wᵀ + s·B(A(x))) / ‖W + s·B·A‖_c`, the
    /// per-output-row norm treated as a constant (no gradient), as §4.3 of the paper and
    /// PEFT's `tuners/lora/dora.py` (`DoraLinearLayer.forward`, v0.21.2) do.
    Dora {
        /// `lora_magnitude_vector` `[out]` f32, trainable; initialized to `‖W + s·B·A‖_c`.
        magnitude: Var,
    },
}

/// A low-rank adapter on a frozen `[out, in]` weight. Its tensors are candle [`Var`]s so an
/// optimizer can update them in place; the base weight is never changed by the forward.
#[derive(Debug, Clone)]
pub struct LoraAdapter {
    /// `lora_A.weight` `[r, in]` f32.
    pub lora_a: Var,
    /// `lora_B.weight` `[out, r]` f32.
    pub lora_b: Var,
    /// `s = lora_alpha / r`, or `lora_alpha / √r` with rsLoRA (Kalajdzievski 2023).
    pub scaling: f64,
    /// Dropout probability on the adapter's input, applied only while `training`.
    pub dropout: f32,
    /// Whether dropout is active (set by [`crate::adapters::set_training`]).
    pub training: bool,
    /// Seed of this layer's next dropout mask (set by [`crate::adapters::set_dropout_seed`]):
    /// the mask is a pure function of it, so a run and its resumed copy drop the same units.
    pub dropout_seed: u64,
    /// Plain LoRA or DoRA.
    pub variant: LoraVariant,
}

impl LoraAdapter {
    /// The rank r.
    pub fn rank(&self) -> Result<usize> {
        Ok(self.lora_a.as_tensor().dim(0)?)
    }

    /// `s·B·A` `[out, in]`, the update LoRA adds to the base weight (tracked for gradients).
    pub fn delta_weight(&self) -> Result<Tensor> {
        let ba = self.lora_b.as_tensor().matmul(self.lora_a.as_tensor())?;
        Ok((ba * self.scaling)?)
    }

    /// DoRA's `‖W + s·B·A‖_c`: the L2 norm of each output row of the adapted weight `[out]`,
    /// detached (PEFT `get_weight_norm` with `lora_weight.detach()`). `weight` `[out, in]`.
    pub fn weight_norm(&self, weight: &Tensor) -> Result<Tensor> {
        let adapted = (weight + self.delta_weight()?.detach())?;
        Ok(adapted.sqr()?.sum(D::Minus1)?.sqrt()?.detach())
    }

    /// `x` `[N, in]`, the frozen `weight` `[out, in]` and `base = x·Wᵀ` `[N, out]` (no bias)
    /// → the adapted bias-free output `[N, out]`.
    ///
    /// LoRA: `base + s·(d(x)·Aᵀ)·Bᵀ` with `d` the dropout. DoRA follows PEFT's
    /// `DoraLinearVariant.forward`: with `k = m / ‖W + s·B·A‖_c` `[out]`,
    /// `base + (k − 1)·(d(x)·Wᵀ) + k·s·(d(x)·Aᵀ)·Bᵀ`, which is `k ⊙ (base + s·B(A(x)))`
    /// when dropout is off.
    pub fn forward(&self, x: &Tensor, weight: &Tensor, base: Tensor) -> Result<Tensor> {
        let dropped = self.dropout(x)?;
        let xd = dropped.as_ref().unwrap_or(x);
        let lora = (xd
            .matmul(&self.lora_a.as_tensor().t()?)? // [N, r]
            .matmul(&self.lora_b.as_tensor().t()?)? // [N, out]
            * self.scaling)?;
        match &self.variant {
            LoraVariant::Plain => Ok((base + lora)?),
            LoraVariant::Dora { magnitude } => {
                let k = magnitude
                    .as_tensor()
                    .div(&self.weight_norm(weight)?)?
                    .unsqueeze(0)?; // [1, out]
                match &dropped {
                    None => Ok((base + lora)?.broadcast_mul(&k)?),
                    Some(xd) => {
                        let base_d = xd.matmul(&weight.t()?)?;
                        let extra =
                            (base_d.broadcast_mul(&(&k - 1.0)?)? + lora.broadcast_mul(&k)?)?;
                        Ok((base + extra)?)
                    }
                }
            }
        }
    }

    /// Inverted dropout (Srivastava et al. 2014) on `x`: `None` when inactive, else
    /// `x ⊙ mask / (1 − p)` with `mask ~ Bernoulli(1 − p)` drawn from a [`StdRng`] seeded
    /// with [`LoraAdapter::dropout_seed`] (not torch's generator: masks differ from PEFT's,
    /// their distribution does not).
    fn dropout(&self, x: &Tensor) -> Result<Option<Tensor>> {
        let p = self.dropout;
        if !self.training || p <= 0.0 {
            return Ok(None);
        }
        let scale = 1.0 / (1.0 - p);
        let mut rng = StdRng::seed_from_u64(self.dropout_seed);
        let keep: Vec<f32> = (0..x.elem_count())
            .map(|_| if rng.random::<f32>() >= p { scale } else { 0.0 })
            .collect();
        let keep = Tensor::from_vec(keep, x.shape(), x.device())?.to_dtype(x.dtype())?;
        Ok(Some((x * keep)?))
    }
}
