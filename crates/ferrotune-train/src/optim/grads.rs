//! Gradients lined up with an optimizer's parameters, and global-norm clipping as
//! `torch.nn.utils.clip_grad_norm_` (torch 2.x `torch/nn/utils/clip_grad.py`).

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, Storage, Tensor};

use super::{AdamW, OptimError};

/// One optional gradient per optimizer parameter (in optimizer order), plus the clipping
/// coefficient that [`AdamW::step`] multiplies into them. Clipping never rewrites the gradient
/// tensors: the coefficient is applied inside the update, with the same f32 rounding as
/// torch's in-place `grad.mul_(clip_coef)`.
#[derive(Debug, Clone)]
pub struct Gradients {
    tensors: Vec<Option<Tensor>>,
    /// Parameter name of each slot, for error messages.
    names: Vec<String>,
    scale: f32,
}

impl Gradients {
    /// The gradients `backward()` computed for the optimizer's parameters; a parameter the
    /// loss does not depend on gets none.
    pub fn from_grad_store(optimizer: &AdamW, store: &GradStore) -> Self {
        let tensors = optimizer
            .params()
            .map(|p| store.get(p.var.as_tensor()).cloned())
            .collect();
        Gradients::aligned(optimizer, tensors)
    }

    /// Gradients keyed by parameter name (e.g. read from a safetensors file or summed over
    /// accumulation steps); parameters absent from `grads` get none.
    ///
    /// # Errors
    /// [`OptimError::UnknownGrads`] naming every key the optimizer does not hold.
    pub fn from_named(
        optimizer: &AdamW,
        mut grads: HashMap<String, Tensor>,
    ) -> Result<Self, OptimError> {
        let tensors = optimizer.params().map(|p| grads.remove(&p.name)).collect();
        if !grads.is_empty() {
            let mut names: Vec<&String> = grads.keys().collect();
            names.sort();
            return Err(OptimError::UnknownGrads {
                names: optimizer.unknown_names(names.into_iter()),
            });
        }
        Ok(Gradients::aligned(optimizer, tensors))
    }

    fn aligned(optimizer: &AdamW, tensors: Vec<Option<Tensor>>) -> Self {
        let names = optimizer.params().map(|p| p.name.clone()).collect();
        Gradients {
            tensors,
            names,
            scale: 1.0,
        }
    }

    /// The gradient slots, in optimizer order (unscaled).
    pub fn tensors(&self) -> &[Option<Tensor>] {
        &self.tensors
    }

    /// The clipping coefficient the next step multiplies into the gradients (1 when not
    /// clipped), f32 as torch's `clip_coef_clamped`.
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// Divides the gradients by `loss_scale` (the fp16 loss scale they were computed with):
    /// folded into the coefficient, as clipping is, so no tensor is rewritten.
    pub fn unscale(&mut self, loss_scale: f32) {
        self.scale /= loss_scale;
    }

    /// L2 norm over all gradients (as if concatenated), scale included, accumulated in f64.
    ///
    /// # Errors
    /// [`OptimError::Tensor`] when a gradient cannot be read.
    pub fn total_norm(&self) -> Result<f64, OptimError> {
        let mut sum_sq = 0f64;
        for (name, grad) in self.names.iter().zip(&self.tensors) {
            if let Some(grad) = grad {
                sum_sq += sum_of_squares(grad).map_err(|source| OptimError::Tensor {
                    name: name.clone(),
                    source,
                })?;
            }
        }
        Ok(sum_sq.sqrt() * self.scale as f64)
    }

    /// Clips the global gradient norm to `max_norm` as `clip_grad_norm_` does and returns the
    /// norm before clipping (what the Hugging Face Trainer logs as `grad_norm`).
    ///
    /// The coefficient is `max_norm / (norm + 1e-6)` in f32, clamped to at most 1, so
    /// gradients are scaled only when the norm exceeds `max_norm`; a NaN or infinite norm
    /// propagates into the update as in torch (`error_if_nonfinite=False`). The Trainer clips
    /// only when `max_grad_norm > 0`.
    ///
    /// # Errors
    /// As [`Gradients::total_norm`].
    pub fn clip_norm(&mut self, max_norm: f64) -> Result<f64, OptimError> {
        let norm = self.total_norm()?;
        self.clip_to(norm, max_norm);
        Ok(norm)
    }

    /// [`Gradients::clip_norm`] with the norm already computed by
    /// [`Gradients::total_norm`] (the fp16 loss scaler checks it first).
    pub fn clip_to(&mut self, norm: f64, max_norm: f64) {
        // torch: `max_norm / (total_norm + 1e-6)` on an f32 tensor is
        // `(total_norm + 1e-6).reciprocal() * max_norm` (`Tensor.__rtruediv__`).
        let coef = (1.0 / (norm as f32 + 1e-6)) * max_norm as f32;
        let clamped = if coef > 1.0 { 1.0 } else { coef };
        self.scale *= clamped;
    }

    /// Checks that these gradients were built for `optimizer`'s parameters.
    pub(super) fn check_matches(&self, optimizer: &AdamW) -> Result<(), OptimError> {
        if self.tensors.len() != optimizer.slots_len() {
            return Err(OptimError::GradCount {
                got: self.tensors.len(),
                expected: optimizer.slots_len(),
            });
        }
        for ((name, shape), grad) in optimizer.shapes().zip(&self.tensors) {
            if let Some(grad) = grad {
                if grad.dims() != shape {
                    return Err(OptimError::GradShape {
                        name: name.to_string(),
                        param: shape.to_vec(),
                        grad: grad.dims().to_vec(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Sum of squared elements in f64: a direct pass over contiguous CPU f32 storage, tensor ops
/// otherwise.
fn sum_of_squares(t: &Tensor) -> candle_core::Result<f64> {
    {
        let (storage, layout) = t.storage_and_layout();
        if let (Storage::Cpu(CpuStorage::F32(data)), Some((start, end))) =
            (&*storage, layout.contiguous_offsets())
        {
            if let Some(values) = data.get(start..end) {
                return Ok(values.iter().map(|&x| (x as f64) * (x as f64)).sum());
            }
        }
    }
    t.to_dtype(DType::F64)?.sqr()?.sum_all()?.to_scalar::<f64>()
}
