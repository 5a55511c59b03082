//! Optimizers over named candle [`Var`]s: AdamW as `torch.optim.AdamW` computes it, global
//! gradient-norm clipping as `torch.nn.utils.clip_grad_norm_`, Hugging Face's weight-decay
//! grouping, per-parameter learning-rate multipliers for LoRA+, and checkpointable state.
//!
//! One optimizer step of the trainer reads:
//!
//! ```
//! use candle_core::{Device, Tensor, Var};
//! use ferrotune_train::optim::{AdamW, AdamWConfig, Gradients, TrainableParam};
//!
//! let weight = Var::new(&[1.0f32, -2.0], &Device::Cpu)?;
//! let bias = Var::new(&[0.5f32], &Device::Cpu)?;
//! let params = vec![
//!     TrainableParam::new("model.layers.0.mlp.up_proj.weight", weight.clone()),
//!     TrainableParam::new("model.layers.0.mlp.up_proj.bias", bias.clone()), // no decay
//! ];
//! let config = AdamWConfig { weight_decay: 0.1, ..AdamWConfig::default() };
//! let mut optimizer = AdamW::new(params, config)?;
//!
//! let loss = (weight.as_tensor().sqr()?.sum_all()? + bias.as_tensor().sum_all()?)?;
//! let mut grads = Gradients::from_grad_store(&optimizer, &loss.backward()?);
//! let grad_norm = grads.clip_norm(1.0)?; // pre-clip L2 norm: |(2, -4, 1)| = sqrt(21)
//! assert!((grad_norm - 21f64.sqrt()).abs() < 1e-6);
//! optimizer.step(&grads, 1e-3)?;
//! // Adam's first step moves every element by about lr against the sign of its gradient.
//! let w = weight.as_tensor().to_vec1::<f32>()?;
//! assert!((w[0] - (1.0 - 1e-3 * 0.1 - 1e-3)).abs() < 1e-6);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod adamw;
mod error;
mod grads;
mod kernels;
mod state;
#[cfg(test)]
mod tests;

pub use adamw::{AdamW, AdamWConfig, ParamState};
use candle_core::Var;
pub use error::OptimError;
pub use grads::Gradients;

/// A tensor the optimizer trains, with its Hugging Face name and its parameter-group settings.
#[derive(Debug, Clone)]
pub struct TrainableParam {
    /// The parameter's name as `named_parameters()` gives it (e.g.
    /// `model.layers.0.self_attn.q_proj.lora_B.default.weight` or a PEFT on-disk name); it
    /// keys the optimizer state on disk.
    pub name: String,
    /// The values, updated in place by [`AdamW::step`].
    pub var: Var,
    /// Whether decoupled weight decay applies (see [`applies_weight_decay`]).
    pub weight_decay: bool,
    /// Multiplier of the scheduled learning rate for this parameter, dimensionless: 1 for
    /// plain training; LLaMA-Factory's LoRA+ gives `lora_B` matrices (and 1-D adapter tensors)
    /// `loraplus_lr_ratio` (`train/trainer_utils.py`, `_create_loraplus_optimizer`).
    pub lr_scale: f64,
}

impl TrainableParam {
    /// A parameter with weight decay decided by [`applies_weight_decay`] on `name` and a
    /// learning-rate multiplier of 1.
    pub fn new(name: impl Into<String>, var: Var) -> Self {
        let name = name.into();
        TrainableParam {
            weight_decay: applies_weight_decay(&name),
            name,
            var,
            lr_scale: 1.0,
        }
    }

    /// Sets the learning-rate multiplier (LoRA+ ratio); must be finite and >= 0, which
    /// [`AdamW::new`] checks.
    pub fn with_lr_scale(mut self, lr_scale: f64) -> Self {
        self.lr_scale = lr_scale;
        self
    }

    /// Overrides whether weight decay applies.
    pub fn with_weight_decay(mut self, weight_decay: bool) -> Self {
        self.weight_decay = weight_decay;
        self
    }
}

/// Whether the Hugging Face Trainer applies weight decay to the parameter named `name`.
///
/// transformers' `Trainer.get_decay_parameter_names` (5.x) leaves out parameters of
/// `nn.LayerNorm` modules and those whose lower-cased name matches `bias`, `layernorm`,
/// `rmsnorm`, `(^|\.)norm($|\.)` or `_norm($|\.)`. The architectures ferrotune supports
/// (llama, mistral, qwen2, qwen3, gemma, phi3) name every norm so that the name rule alone
/// decides: `*.bias`, `*_layernorm.weight`, `model.norm.weight`, `*.q_norm.weight` have no decay;
/// projections, embeddings, LoRA `A`/`B` matrices and DoRA magnitude vectors have it.
pub fn applies_weight_decay(name: &str) -> bool {
    let lower = name.to_lowercase();
    let norm_segment = lower
        .split('.')
        .any(|segment| segment == "norm" || segment.ends_with("_norm"));
    !(lower.contains("bias")
        || lower.contains("layernorm")
        || lower.contains("rmsnorm")
        || norm_segment)
}
