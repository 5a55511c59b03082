//! AdamW with decoupled weight decay (Loshchilov & Hutter, "Decoupled Weight Decay
//! Regularization", ICLR 2019, Algorithm 2), exactly as `torch.optim.AdamW` computes it
//! (torch 2.x `torch/optim/adam.py`, `_single_tensor_adam` with `decoupled_weight_decay`):
//!
//! ```text
//! t      += 1
//! p      *= 1 - lr * wd                          (only parameters with decay, wd != 0)
//! m       = lerp(m, g, 1 - beta1)                 = beta1 * m + (1 - beta1) * g
//! v       = beta2 * v + (1 - beta2) * g * g
//! p      += -(lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
//! ```
//!
//! Unlike the paper, torch (and so this) multiplies the decay by the scheduled `lr` and adds
//! `eps` after bias-correcting the square root. Moments are f32 whatever the parameter dtype.
//! Scalars (`lr`, bias corrections) are computed in f64 as Python floats, then rounded to f32.

use candle_core::{DType, Tensor, Var};
use ferrotune_config::TrainingArguments;

use super::error::join_names;
use super::kernels::{FirstMoment, ParamUpdate, SecondMoment};
use super::{Gradients, OptimError, TrainableParam};

/// AdamW hyperparameters other than the learning rate, which comes with every step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    /// First-moment decay, in `[0, 1)` (`adam_beta1`, default 0.9).
    pub beta1: f64,
    /// Second-moment decay, in `[0, 1)` (`adam_beta2`, default 0.999).
    pub beta2: f64,
    /// Added to the bias-corrected `sqrt(v)`, >= 0 (`adam_epsilon`, default 1e-8).
    pub eps: f64,
    /// Decoupled weight decay per unit of learning rate, >= 0 (`weight_decay`, default 0).
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    /// The Hugging Face `TrainingArguments` defaults (torch's own default decay is 0.01).
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

impl AdamWConfig {
    /// Reads `adam_beta1`, `adam_beta2`, `adam_epsilon` and `weight_decay`.
    pub fn from_training_args(args: &TrainingArguments) -> Self {
        AdamWConfig {
            beta1: args.adam_beta1,
            beta2: args.adam_beta2,
            eps: args.adam_epsilon,
            weight_decay: args.weight_decay,
        }
    }

    /// The checks of `torch.optim.Adam.__init__`.
    fn validate(&self) -> Result<(), OptimError> {
        let beta = "in [0, 1)";
        let non_negative = "finite and >= 0";
        let checks = [
            (
                "adam_beta1",
                self.beta1,
                (0.0..1.0).contains(&self.beta1),
                beta,
            ),
            (
                "adam_beta2",
                self.beta2,
                (0.0..1.0).contains(&self.beta2),
                beta,
            ),
            (
                "adam_epsilon",
                self.eps,
                finite_non_negative(self.eps),
                non_negative,
            ),
            (
                "weight_decay",
                self.weight_decay,
                finite_non_negative(self.weight_decay),
                non_negative,
            ),
        ];
        match checks.into_iter().find(|c| !c.2) {
            None => Ok(()),
            Some((key, value, _, expected)) => Err(OptimError::Hyperparameter {
                key: key.to_string(),
                value,
                expected,
            }),
        }
    }
}

fn finite_non_negative(x: f64) -> bool {
    x.is_finite() && x >= 0.0
}

/// One parameter with its optimizer state.
#[derive(Debug)]
struct Slot {
    param: TrainableParam,
    /// First moment `m`, f32, the parameter's shape and device.
    exp_avg: Var,
    /// Second moment `v`, f32, the parameter's shape and device.
    exp_avg_sq: Var,
    /// Updates applied so far (torch's per-parameter `step`).
    step: u64,
}

/// A read-only view of one parameter's optimizer state.
#[derive(Debug, Clone, Copy)]
pub struct ParamState<'a> {
    /// First moment, f32, the parameter's shape.
    pub exp_avg: &'a Tensor,
    /// Second moment, f32, the parameter's shape.
    pub exp_avg_sq: &'a Tensor,
    /// Updates applied so far.
    pub step: u64,
}

/// AdamW over a fixed list of named parameters (see the module doc for the update).
#[derive(Debug)]
pub struct AdamW {
    config: AdamWConfig,
    slots: Vec<Slot>,
}

impl AdamW {
    /// An optimizer with zeroed moments for `params`, in that order.
    ///
    /// # Errors
    /// [`OptimError::Hyperparameter`] for settings torch rejects or a negative or non-finite
    /// `lr_scale`, [`OptimError::DuplicateParam`] for a repeated name,
    /// [`OptimError::Tensor`] when the moments cannot be allocated.
    pub fn new(params: Vec<TrainableParam>, config: AdamWConfig) -> Result<Self, OptimError> {
        config.validate()?;
        let mut seen = std::collections::HashSet::new();
        let mut slots = Vec::with_capacity(params.len());
        for param in params {
            if !seen.insert(param.name.clone()) {
                return Err(OptimError::DuplicateParam { name: param.name });
            }
            if !finite_non_negative(param.lr_scale) {
                return Err(OptimError::Hyperparameter {
                    key: format!("lr_scale of `{}`", param.name),
                    value: param.lr_scale,
                    expected: "finite and >= 0",
                });
            }
            let t = param.var.as_tensor();
            let zeros = || Var::zeros(t.shape(), DType::F32, t.device());
            let (exp_avg, exp_avg_sq) = zeros()
                .and_then(|m| Ok((m, zeros()?)))
                .map_err(|source| tensor_error(&param.name, source))?;
            slots.push(Slot {
                param,
                exp_avg,
                exp_avg_sq,
                step: 0,
            });
        }
        Ok(AdamW { config, slots })
    }

    /// [`AdamW::new`] with the hyperparameters of `args` ([`AdamWConfig::from_training_args`]).
    ///
    /// # Errors
    /// As [`AdamW::new`].
    pub fn from_training_args(
        params: Vec<TrainableParam>,
        args: &TrainingArguments,
    ) -> Result<Self, OptimError> {
        AdamW::new(params, AdamWConfig::from_training_args(args))
    }

    /// The hyperparameters.
    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }

    /// The trained parameters, in optimizer order.
    pub fn params(&self) -> impl ExactSizeIterator<Item = &TrainableParam> {
        self.slots.iter().map(|s| &s.param)
    }

    /// The state of the parameter named `name`, if the optimizer holds it.
    pub fn state(&self, name: &str) -> Option<ParamState<'_>> {
        let slot = self.slots.iter().find(|s| s.param.name == name)?;
        Some(ParamState {
            exp_avg: slot.exp_avg.as_tensor(),
            exp_avg_sq: slot.exp_avg_sq.as_tensor(),
            step: slot.step,
        })
    }

    /// Applies one AdamW update with learning rate `lr` (times each parameter's `lr_scale`) to
    /// every parameter that has a gradient, after multiplying gradients by the clipping scale
    /// of `grads`. Parameters without a gradient are skipped, state and step count included,
    /// as torch skips parameters whose `.grad` is `None`.
    ///
    /// CPU f32 parameters are updated in place with no allocation (three passes over the
    /// parameter); other devices and dtypes go through tensor ops and [`Var::set`].
    ///
    /// # Errors
    /// [`OptimError::Hyperparameter`] for a negative or non-finite `lr`,
    /// [`OptimError::GradCount`] / [`OptimError::GradShape`] for gradients that do not match the
    /// parameters, [`OptimError::Tensor`] when a tensor op fails.
    pub fn step(&mut self, grads: &Gradients, lr: f64) -> Result<(), OptimError> {
        self.step_impl(grads, lr, false)
    }

    /// [`AdamW::step`] through the tensor-op path whatever the device, to test it on the CPU.
    #[cfg(test)]
    pub(super) fn step_with_tensor_ops(
        &mut self,
        grads: &Gradients,
        lr: f64,
    ) -> Result<(), OptimError> {
        self.step_impl(grads, lr, true)
    }

    fn step_impl(
        &mut self,
        grads: &Gradients,
        lr: f64,
        tensor_ops: bool,
    ) -> Result<(), OptimError> {
        if !finite_non_negative(lr) {
            return Err(OptimError::Hyperparameter {
                key: "learning_rate".into(),
                value: lr,
                expected: "finite and >= 0",
            });
        }
        grads.check_matches(self)?;
        let cfg = self.config;
        let grad_scale = grads.scale();
        for (slot, grad) in self.slots.iter_mut().zip(grads.tensors()) {
            let Some(grad) = grad else { continue };
            slot.step += 1;
            let lr = lr * slot.param.lr_scale;
            let t = slot.step as f64;
            let bias_correction1 = 1.0 - cfg.beta1.powf(t);
            let bias_correction2 = 1.0 - cfg.beta2.powf(t);
            let decays = slot.param.weight_decay && cfg.weight_decay != 0.0;
            let update = ParamUpdate {
                decay: decays.then_some((1.0 - lr * cfg.weight_decay) as f32),
                neg_step_size: (-(lr / bias_correction1)) as f32,
                bc2_sqrt: bias_correction2.powf(0.5) as f32,
                eps: cfg.eps as f32,
            };
            let first = FirstMoment {
                weight: (1.0 - cfg.beta1) as f32,
                grad_scale,
            };
            let second = SecondMoment {
                beta2: cfg.beta2 as f32,
                weight: (1.0 - cfg.beta2) as f32,
                grad_scale,
            };
            let result = if tensor_ops {
                slot.update_with_tensor_ops(grad, &first, &second, &update)
            } else {
                slot.update(grad, &first, &second, &update)
            };
            result.map_err(|source| tensor_error(&slot.param.name, source))?;
        }
        Ok(())
    }

    pub(super) fn slots_len(&self) -> usize {
        self.slots.len()
    }

    /// Names and shapes in optimizer order.
    pub(super) fn shapes(&self) -> impl Iterator<Item = (&str, &[usize])> {
        self.slots
            .iter()
            .map(|s| (s.param.name.as_str(), s.param.var.as_tensor().dims()))
    }

    /// `(name, exp_avg, exp_avg_sq, step)` of every parameter, in optimizer order.
    pub(super) fn state_entries(&self) -> impl Iterator<Item = (&str, &Var, &Var, u64)> {
        self.slots.iter().map(|s| {
            let name = s.param.name.as_str();
            (name, &s.exp_avg, &s.exp_avg_sq, s.step)
        })
    }

    /// Replaces every parameter's state; `states` is in optimizer order and already checked.
    pub(super) fn replace_state(&mut self, states: Vec<(Var, Var, u64)>) {
        for (slot, (exp_avg, exp_avg_sq, step)) in self.slots.iter_mut().zip(states) {
            slot.exp_avg = exp_avg;
            slot.exp_avg_sq = exp_avg_sq;
            slot.step = step;
        }
    }

    /// Unknown names among `names`, for [`OptimError::UnknownGrads`].
    pub(super) fn unknown_names<'a>(&self, names: impl Iterator<Item = &'a String>) -> String {
        let unknown: Vec<String> = names
            .filter(|n| !self.slots.iter().any(|s| &s.param.name == *n))
            .cloned()
            .collect();
        join_names(&unknown)
    }
}

impl Slot {
    fn update(
        &self,
        grad: &Tensor,
        first: &FirstMoment,
        second: &SecondMoment,
        update: &ParamUpdate,
    ) -> candle_core::Result<()> {
        let param = self.param.var.as_tensor();
        let cpu_f32 = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32;
        if cpu_f32(param) && cpu_f32(grad) {
            let grad = grad.contiguous()?; // no copy when already contiguous
            self.exp_avg.inplace_op2(&grad, first)?;
            self.exp_avg_sq.inplace_op2(&grad, second)?;
            param.inplace_op3(&self.exp_avg, &self.exp_avg_sq, update)
        } else {
            self.update_with_tensor_ops(grad, first, second, update)
        }
    }

    /// The same update from candle tensor ops, for other devices and dtypes (divisions by a
    /// scalar become multiplications by its reciprocal: results may differ in the last bit).
    fn update_with_tensor_ops(
        &self,
        grad: &Tensor,
        first: &FirstMoment,
        second: &SecondMoment,
        update: &ParamUpdate,
    ) -> candle_core::Result<()> {
        let param = self.param.var.as_tensor();
        let g = grad
            .to_device(param.device())?
            .to_dtype(DType::F32)?
            .affine(first.grad_scale as f64, 0.0)?;
        let m = self.exp_avg.as_tensor();
        let m_new = (m + ((&g - m)? * first.weight as f64)?)?;
        let v = self.exp_avg_sq.as_tensor();
        let v_new = ((v * second.beta2 as f64)? + ((&g * second.weight as f64)? * &g)?)?;
        self.exp_avg.set(&m_new)?;
        self.exp_avg_sq.set(&v_new)?;
        let mut p = param.to_dtype(DType::F32)?;
        if let Some(decay) = update.decay {
            p = p.affine(decay as f64, 0.0)?;
        }
        let denom = ((v_new.sqrt()? / update.bc2_sqrt as f64)? + update.eps as f64)?;
        let p_new = (p + ((&m_new * update.neg_step_size as f64)? / denom)?)?;
        self.param.var.set(&p_new.to_dtype(param.dtype())?)
    }
}

fn tensor_error(name: &str, source: candle_core::Error) -> OptimError {
    OptimError::Tensor {
        name: name.to_string(),
        source,
    }
}
