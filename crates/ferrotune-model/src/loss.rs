//! The causal language-modeling loss, as transformers' `ForCausalLMLoss`
//! (`loss/loss_utils.py`): position t predicts token t + 1, labels of -100 are ignored,
//! cross-entropy in f32.
//!
//! Two forms:
//! - [`causal_lm_loss`] scores full logits `[B, T, V]` with differentiable candle ops (the
//!   graph reaches the logits; evaluation and the trainer's path without checkpointing);
//! - [`chunked_causal_lm_loss`] starts from the final hidden states and the LM head and never
//!   holds the whole logits: it takes the scored positions a chunk of rows at a time, computes
//!   their logits, loss and, on request, the gradient of the loss with respect to the hidden
//!   states and the head in closed form, and drops the chunk. Logits of the 135M demo model for
//!   a 4×512 batch are 4·512·49,152 f32 = 400 MB; a chunk holds [`LOSS_CHUNK_BYTES`].
//!
//! Shapes: B batch, T sequence, C hidden, V vocabulary, N scored positions.

use candle_core::{DType, Tensor, D};
use rayon::prelude::*;

use crate::error::{ModelError, Result};

/// The label that marks a position without a target (PyTorch's `ignore_index`).
pub const IGNORE_INDEX: i64 = -100;

/// Bytes of f32 logits one chunk of [`chunked_causal_lm_loss`] holds at most (32 MiB: 170
/// rows of a 49,152-token vocabulary); see [`loss_chunk_rows`].
pub const LOSS_CHUNK_BYTES: usize = 32 << 20;

/// Rows per chunk for a vocabulary of `vocab_size` tokens: as many `[V]` f32 logit rows as
/// fit in [`LOSS_CHUNK_BYTES`], at least 1.
pub fn loss_chunk_rows(vocab_size: usize) -> usize {
    (LOSS_CHUNK_BYTES / (4 * vocab_size.max(1))).max(1)
}

/// The shifted targets of `labels` `[B, T]` (any integer dtype) for logits of `[B, T, V]`:
/// for every row `i` and position `j < T - 1`, the target `labels[i, j + 1]` and whether it
/// is scored (not [`IGNORE_INDEX`]), in row-major order (`B·(T − 1)` entries; 0 where not
/// scored).
///
/// Errors: [`ModelError::Loss`] for labels of another shape or a label outside `[0, V)` other
/// than -100.
fn shifted_targets(labels: &Tensor, b: usize, t: usize, v: usize) -> Result<(Vec<u32>, Vec<bool>)> {
    let (lb, lt) = labels.dims2()?;
    if (lb, lt) != (b, t) {
        return Err(ModelError::Loss {
            msg: format!("labels have shape [{lb}, {lt}], logits [{b}, {t}, {v}]; expected labels [{b}, {t}]"),
        });
    }
    let rows = labels.to_dtype(DType::I64)?.to_vec2::<i64>()?;
    let n = b * t.saturating_sub(1);
    let mut target = Vec::with_capacity(n);
    let mut scored = Vec::with_capacity(n);
    for (i, row) in rows.iter().enumerate() {
        for (j, &l) in row.iter().enumerate().skip(1) {
            if l == IGNORE_INDEX {
                target.push(0u32);
                scored.push(false);
            } else if (0..v as i64).contains(&l) {
                target.push(l as u32);
                scored.push(true);
            } else {
                return Err(ModelError::Loss {
                    msg: format!("label {l} at [{i}, {j}] is outside the vocabulary [0, {v}) and not {IGNORE_INDEX}"),
                });
            }
        }
    }
    Ok((target, scored))
}

/// Summed next-token cross-entropy: `logits` `[B, T, V]` (any float dtype, computed in f32)
/// and `labels` `[B, T]` i64 → (`sum` f32 scalar, `n_tokens`). Logits at position t are
/// scored against `labels[t + 1]`; labels equal to [`IGNORE_INDEX`] count for nothing. The
/// sum is differentiable with respect to the logits; `mean = sum / n_tokens` is HF's loss.
///
/// Errors: [`ModelError::Loss`] for labels of another shape or a label outside `[0, V)`
/// other than -100; [`ModelError::Candle`] for logits that are not `[B, T, V]`.
pub fn causal_lm_loss(logits: &Tensor, labels: &Tensor) -> Result<(Tensor, usize)> {
    let (b, t, v) = logits.dims3()?;
    let (target, scored) = shifted_targets(labels, b, t, v)?;
    let dev = logits.device();
    if t < 2 {
        return Ok((Tensor::zeros((), DType::F32, dev)?, 0));
    }
    let weight: Vec<f32> = scored.iter().map(|&s| if s { 1.0 } else { 0.0 }).collect();
    let n_tokens = scored.iter().filter(|&&s| s).count();
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

/// Which gradients [`chunked_causal_lm_loss`] returns, of `scale · sum`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossGradRequest {
    /// Factor on the summed loss whose gradient is returned (the trainer's `1 / scored tokens
    /// of the window`).
    pub scale: f64,
    /// Also the gradient with respect to the head (when the LM head, or the tied embedding,
    /// trains).
    pub head: bool,
}

/// The result of [`chunked_causal_lm_loss`].
#[derive(Debug, Clone)]
pub struct ChunkedLoss {
    /// Summed cross-entropy over the scored tokens (each token's term computed in f32, the
    /// sum in f64); not scaled.
    pub sum: f64,
    /// Scored tokens (labels after the first position that are not -100).
    pub n_tokens: usize,
    /// `d(scale · sum) / d hidden` `[B, T, C]` f32 (zero on unscored positions), when
    /// gradients were asked for.
    pub grad_hidden: Option<Tensor>,
    /// `d(scale · sum) / d head` `[V, C]` f32, when [`LossGradRequest::head`] was set.
    pub grad_head: Option<Tensor>,
}

/// The causal-LM loss of [`causal_lm_loss`] from the final hidden states, with the logits
/// computed `chunk_rows` scored positions at a time and never kept whole.
///
/// `hidden` `[B, T, C]` (after the final norm; any float dtype, used in f32), `head` `[V, C]`
/// (the LM head or tied embedding; used in f32), `labels` `[B, T]`: logits `hidden · headᵀ`
/// at position t are scored against `labels[t + 1]`. Only scored positions get logits (a
/// prompt masked with -100 costs nothing). Per chunk of rows, in f32: `m = max_v z`,
/// `s = Σ_v exp(z − m)` (accumulated in f64), `nll = ln s − (z_target − m)`; with `grad` also
/// `dz = scale · (softmax(z) − onehot(target))` (the softmax cross-entropy gradient; Goodfellow,
/// Bengio and Courville 2016, *Deep Learning* §6.2.2.3), `d hidden_rows = dz · head` and
/// `d head += dzᵀ · hidden_rows`. Peak extra memory is about two chunks of logits plus the
/// `[V, C]` head gradient when asked for.
///
/// Equal to [`causal_lm_loss`] on `hidden · headᵀ` (and to its autograd gradients) up to f32
/// rounding. Nothing returned tracks a gradient: the inputs are used detached.
///
/// Errors: [`ModelError::Loss`] for labels of another shape or a label outside `[0, V)`
/// other than -100, a head whose width is not C, or `chunk_rows` 0; [`ModelError::Candle`]
/// for `hidden` that is not `[B, T, C]`.
pub fn chunked_causal_lm_loss(
    hidden: &Tensor,
    head: &Tensor,
    labels: &Tensor,
    grad: Option<LossGradRequest>,
    chunk_rows: usize,
) -> Result<ChunkedLoss> {
    let (b, t, c) = hidden.dims3()?;
    let (v, hc) = head.dims2()?;
    if hc != c || chunk_rows == 0 {
        return Err(ModelError::Loss {
            msg: format!(
                "chunked loss: head [{v}, {hc}] for hidden [{b}, {t}, {c}] with {chunk_rows} rows per chunk; expected head [V, {c}] and at least 1 row per chunk"
            ),
        });
    }
    let (target, scored) = shifted_targets(labels, b, t, v)?;
    let dev = hidden.device();
    // Flattened position of each scored row: row i, position j → i·T + j.
    let t1 = t.saturating_sub(1);
    let rows: Vec<(u32, u32)> = scored
        .iter()
        .zip(&target)
        .enumerate()
        .filter(|(_, (&s, _))| s)
        .map(|(k, (_, &tg))| (((k / t1) * t + k % t1) as u32, tg))
        .collect();
    // Detached: the closed-form gradients below must not carry a graph back to a trainable
    // head (nor to the hidden states), and no graph is kept for the chunk's logits.
    let hidden = hidden.detach().to_dtype(DType::F32)?.reshape((b * t, c))?;
    let head = head.detach().to_dtype(DType::F32)?;
    // Mixed precision: the head's products read bf16/fp16-rounded operands (the head once).
    let precision = crate::kernels::precision::matmul_precision();
    let head = match precision {
        crate::kernels::precision::MatmulPrecision::F32 => head,
        p => {
            let rounded = crate::kernels::with_slice(&head, |w| {
                crate::kernels::precision::round_operand(w, p).into_owned()
            })?;
            Tensor::from_vec(rounded, (v, c), dev)?
        }
    };
    let mut sum = 0f64;
    let mut grad_rows = Vec::new();
    let mut grad_head: Option<Vec<f32>> = None;
    for chunk in rows.chunks(chunk_rows) {
        let n = chunk.len();
        let index: Vec<u32> = chunk.iter().map(|&(p, _)| p).collect();
        let index = Tensor::from_vec(index, n, dev)?;
        let h = hidden.index_select(&index, 0)?; // [n, C]
                                                 // [n·V]; through the fused kernels' GEMM (oneDNN when loaded; mixed precision).
        let mut z = crate::kernels::with_slice(&h, |hs| {
            crate::kernels::with_slice(&head, |ws| {
                let hs = crate::kernels::precision::round_operand(hs, precision);
                crate::kernels::matmul_nt(&hs, ws, n, v, c)
            })
        })???;
        let coef = grad.map(|g| g.scale as f32);
        let nll: Vec<f64> = z
            .par_chunks_mut(v)
            .zip(chunk.par_iter())
            .map(|(row, &(_, tg))| softmax_row(row, tg as usize, coef))
            .collect();
        sum += nll.iter().sum::<f64>();
        let Some(g) = grad else { continue };
        let dh_rows = crate::kernels::with_slice(&head, |ws| {
            let dz = crate::kernels::precision::round_operand(&z, precision);
            crate::kernels::matmul_nn(&dz, ws, n, v, c)
        })??;
        grad_rows.push((index, Tensor::from_vec(dh_rows, (n, c), dev)?)); // [n, C]
        if g.head {
            // [V, C] += dzᵀ·h, by the kernels' GEMM (oneDNN when loaded), summed in place over
            // the chunks: one [V, C] buffer per step, not one per chunk.
            let acc = grad_head.get_or_insert_with(|| vec![0f32; v * c]);
            crate::kernels::with_slice(&h, |hs| {
                crate::kernels::matmul_tn_into(acc, true, &z, hs, (n, v, c))
            })??;
        }
    }
    let (grad_hidden, grad_head) = match grad {
        None => (None, None),
        Some(g) => {
            let mut gh = Tensor::zeros((b * t, c), DType::F32, dev)?;
            for (index, rows) in &grad_rows {
                gh = gh.index_add(index, rows, 0)?;
            }
            let head_grad = match (g.head, grad_head) {
                (false, _) => None,
                (true, Some(h)) => Some(Tensor::from_vec(h, (v, c), dev)?),
                (true, None) => Some(Tensor::zeros((v, c), DType::F32, dev)?),
            };
            (Some(gh.reshape((b, t, c))?), head_grad)
        }
    };
    Ok(ChunkedLoss {
        sum,
        n_tokens: rows.len(),
        grad_hidden,
        grad_head,
    })
}

crate::kernels::simd::multiversion! {
    /// One row of logits `z` `[V]` scored against `target`: returns `ln Σ exp(z − m) − (z_target
    /// − m)` (`m` the row max; the sum in f64) and, with `coef`, overwrites `z` with
    /// `coef · (softmax(z) − onehot(target))`.
    fn softmax_row(z: &mut [f32], target: usize, coef: Option<f32>) -> f64 {
        let m = crate::kernels::simd::lane_max(z);
        let picked = z.get(target).copied().unwrap_or(f32::NAN) - m;
        for x in z.iter_mut() {
            *x = crate::kernels::exp::exp_f32(*x - m);
        }
        let s = crate::kernels::simd::lane_sum::<f64>(z);
        if let Some(coef) = coef {
            let k = (f64::from(coef) / s) as f32;
            for x in z.iter_mut() {
                *x *= k;
            }
            if let Some(x) = z.get_mut(target) {
                *x -= coef;
            }
        }
        s.ln() - f64::from(picked)
    }
}
