//! The causal language-modeling loss, as transformers' `ForCausalLMLoss`
//! (`loss/loss_utils.py`): position t predicts token t + 1, labels of -100 are ignored,
//! cross-entropy in f32.
//!
//! Shapes: B batch, T sequence, V vocabulary.

use candle_core::{DType, Tensor, D};

use crate::error::{ModelError, Result};

/// The label that marks a position without a target (PyTorch's `ignore_index`).
pub const IGNORE_INDEX: i64 = -100;

/// Summed next-token cross-entropy: `logits` `[B, T, V]` (any float dtype, computed in f32)
/// and `labels` `[B, T]` i64 → (`sum` f32 scalar, `n_tokens`). Logits at position t are
/// scored against `labels[t + 1]`; labels equal to [`IGNORE_INDEX`] count for nothing. The
/// sum is differentiable with respect to the logits; `mean = sum / n_tokens` is HF's loss.
///
/// Errors: [`ModelError::Loss`] for labels of another shape or a label outside `[0, V)`
/// other than -100; [`ModelError::Candle`] for logits that are not `[B, T, V]`.
pub fn causal_lm_loss(logits: &Tensor, labels: &Tensor) -> Result<(Tensor, usize)> {
    let (b, t, v) = logits.dims3()?;
    let (lb, lt) = labels.dims2()?;
    if (lb, lt) != (b, t) {
        return Err(ModelError::Loss {
            msg: format!("labels have shape [{lb}, {lt}], logits [{b}, {t}, {v}]; expected labels [{b}, {t}]"),
        });
    }
    let dev = logits.device();
    if t < 2 {
        return Ok((Tensor::zeros((), DType::F32, dev)?, 0));
    }
    let rows = labels.to_dtype(DType::I64)?.to_vec2::<i64>()?;
    // Targets for positions 0..T-1 are labels 1..T.
    let mut target = Vec::with_capacity(b * (t - 1));
    let mut weight = Vec::with_capacity(b * (t - 1));
    for (i, row) in rows.iter().enumerate() {
        for (j, &l) in row.iter().enumerate().skip(1) {
            if l == IGNORE_INDEX {
                target.push(0u32);
                weight.push(0f32);
            } else if (0..v as i64).contains(&l) {
                target.push(l as u32);
                weight.push(1f32);
            } else {
                return Err(ModelError::Loss {
                    msg: format!("label {l} at [{i}, {j}] is outside the vocabulary [0, {v}) and not {IGNORE_INDEX}"),
                });
            }
        }
    }
    let n_tokens = weight.iter().filter(|w| **w > 0.0).count();
    let n = b * (t - 1);
    let logits = logits
        .narrow(1, 0, t - 1)?
        .to_dtype(DType::F32)?
        .reshape((n, v))?;
    // log_softmax from differentiable ops; the max is detached (it cancels out).
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let shifted = logits.broadcast_sub(&max)?;
    let log_z = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?; // [n, 1]
    let target = Tensor::from_vec(target, (n, 1), dev)?;
    let picked = shifted.gather(&target, 1)?; // [n, 1]
    let nll = (log_z - picked)?.squeeze(1)?; // [n]
    let weight = Tensor::from_vec(weight, n, dev)?;
    Ok(((nll * weight)?.sum_all()?, n_tokens))
}

/// HF's mean loss `sum / n_tokens` (see [`causal_lm_loss`]), an f32 scalar.
///
/// Errors: [`ModelError::Loss`] when every label is -100 (HF would return NaN).
pub fn causal_lm_loss_mean(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let (sum, n) = causal_lm_loss(logits, labels)?;
    if n == 0 {
        return Err(ModelError::Loss {
            msg: "no label to score: every shifted label is -100; hint: check cutoff_len and train_on_prompt".into(),
        });
    }
    Ok((sum / n as f64)?)
}
