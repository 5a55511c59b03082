//! Evaluation of a causal LM on held-out examples, as the Hugging Face Trainer's
//! `evaluate` → `evaluation_loop` computes `eval_loss` (transformers ≥ 4.46 `trainer.py`):
//! batches of `per_device_eval_batch_size` in dataset order, each batch's mean loss over its
//! scored tokens repeated once per row, and the mean of those per-row values. The metrics
//! files follow `Trainer.save_metrics("eval", …)` and LLaMA-Factory's `eval_perplexity`
//! (v0.9.5 `train/pt/workflow.py`).
//!
//! Shapes: B batch rows, T longest row, V vocabulary.

use std::path::Path;
use std::time::Instant;

use candle_core::Device;
use ferrotune_model::adapters::set_training;
use ferrotune_model::{causal_lm_loss, CausalLM};
use serde_json::{Map, Value};

use crate::checkpoint::LoopPosition;
use crate::collate::{collate, Example};
use crate::error::TrainError;
use crate::logging::{round_to, TrainLogger};
use crate::trainer::Trainer;

/// What one evaluation measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalStats {
    /// HF's `eval_loss`: per batch the mean loss over its scored tokens, averaged over the
    /// examples (each example carries its batch's mean).
    pub eval_loss: f64,
    /// The token-weighted mean: summed loss over every scored token / their count (equals
    /// `eval_loss` when every batch has the same tokens per row).
    pub token_loss: f64,
    /// Scored target tokens of the whole set.
    pub n_tokens: usize,
    /// Examples evaluated.
    pub n_samples: usize,
    /// Batches run (`⌈n_samples / batch size⌉`).
    pub n_batches: usize,
    /// Seconds of the evaluation.
    pub runtime_s: f64,
}

impl EvalStats {
    /// The metrics HF's `evaluate` returns, with LLaMA-Factory's perplexity: `eval_loss`,
    /// `eval_runtime` (4 decimals), `eval_samples_per_second`, `eval_steps_per_second`
    /// (3 decimals, HF `speed_metrics`), `eval_perplexity` (`exp(eval_loss)`, inf on
    /// overflow), and `epoch` when given (HF adds it after training).
    pub fn metrics(&self, epoch: Option<f64>) -> Map<String, Value> {
        let rt = self.runtime_s.max(1e-9);
        let mut m = Map::new();
        if let Some(e) = epoch {
            m.insert("epoch".into(), e.into());
        }
        m.insert("eval_loss".into(), self.eval_loss.into());
        m.insert("eval_perplexity".into(), perplexity(self.eval_loss).into());
        m.insert("eval_runtime".into(), round_to(self.runtime_s, 4).into());
        m.insert(
            "eval_samples_per_second".into(),
            round_to(self.n_samples as f64 / rt, 3).into(),
        );
        m.insert(
            "eval_steps_per_second".into(),
            round_to(self.n_batches as f64 / rt, 3).into(),
        );
        m
    }
}

/// `exp(loss)`; `f64::MAX` where it overflows (JSON has no infinity; LLaMA-Factory writes
/// `inf`, which Python's json module emits as the non-standard `Infinity`).
pub fn perplexity(loss: f64) -> f64 {
    let p = loss.exp();
    if p.is_finite() {
        p
    } else {
        f64::MAX
    }
}

/// Evaluates `model` on `examples` in order, `batch_size` rows per batch padded with
/// `pad_token_id`. No gradient is taken: the losses are read as numbers and their graphs
/// dropped, so the weights are left as they were. Put the model in eval mode first
/// (`ferrotune_model::adapters::set_training(model, false)`) so that LoRA dropout is off.
///
/// Errors: [`TrainError::Config`] for a zero `batch_size`, [`TrainError::Data`] for an empty
/// set or one without a scored token, collate, model and tensor errors.
pub fn evaluate(
    model: &CausalLM,
    examples: &[Example],
    batch_size: usize,
    pad_token_id: u32,
    device: &Device,
) -> Result<EvalStats, TrainError> {
    if batch_size == 0 {
        return Err(TrainError::Config(
            "`per_device_eval_batch_size` must be >= 1".into(),
        ));
    }
    if examples.is_empty() {
        return Err(TrainError::Data(
            "the evaluation set is empty; hint: raise `val_size` or set `eval_dataset`".into(),
        ));
    }
    let start = Instant::now();
    let (mut row_weighted, mut token_sum, mut n_tokens, mut scored_rows) = (0.0, 0.0, 0, 0);
    for chunk in examples.chunks(batch_size) {
        let rows: Vec<&Example> = chunk.iter().collect();
        let batch = collate(&rows, pad_token_id, device)?;
        // [B, T] → [B, T, V] logits; loss summed over the batch's scored tokens.
        let logits = model.forward(&batch.input_ids, Some(&batch.attention_mask))?;
        let (sum, count) = causal_lm_loss(&logits, &batch.labels)?;
        let sum = f64::from(sum.detach().to_scalar::<f32>()?);
        if count > 0 {
            // HF: a batch without a scored token has a NaN mean and is dropped as non-finite.
            row_weighted += sum / count as f64 * chunk.len() as f64;
            scored_rows += chunk.len();
        }
        token_sum += sum;
        n_tokens += count;
    }
    if n_tokens == 0 {
        return Err(TrainError::Data(
            "the evaluation set has no scored label (every label is -100); hint: check cutoff_len and train_on_prompt".into(),
        ));
    }
    Ok(EvalStats {
        eval_loss: row_weighted / scored_rows as f64,
        token_loss: token_sum / n_tokens as f64,
        n_tokens,
        n_samples: examples.len(),
        n_batches: examples.len().div_ceil(batch_size),
        runtime_s: start.elapsed().as_secs_f64(),
    })
}

/// Writes `eval_results.json` with `metrics` and merges them into `all_results.json` (kept
/// keys of an existing file, as HF's `save_metrics(…, combined=True)`).
///
/// Errors: [`TrainError::Io`]/[`TrainError::Write`] naming the file.
pub fn save_eval_metrics(dir: &Path, metrics: &Map<String, Value>) -> Result<(), TrainError> {
    crate::outputs::save_split_metrics(dir, "eval", metrics)
}

impl Trainer {
    /// Evaluates the model on the evaluation set in eval mode (LoRA dropout off), then puts
    /// it back in training mode; `None` without an evaluation set.
    ///
    /// Errors: as [`evaluate`].
    pub fn evaluate(&mut self) -> Result<Option<EvalStats>, TrainError> {
        if self.eval_examples.is_empty() {
            return Ok(None);
        }
        set_training(&mut self.model, false);
        let stats = evaluate(
            &self.model,
            &self.eval_examples,
            self.args.per_device_eval_batch_size,
            self.options.pad_token_id,
            &self.device,
        );
        set_training(&mut self.model, true);
        stats.map(Some)
    }

    /// Evaluates and logs the result at the current step (nothing without an evaluation set).
    pub(crate) fn evaluate_and_log(
        &mut self,
        logger: &mut TrainLogger,
        pos: &mut LoopPosition,
        epoch: f64,
        max_steps: u64,
    ) -> Result<(), TrainError> {
        if let Some(stats) = self.evaluate()? {
            logger.log_eval(pos, &stats, epoch, max_steps)?;
        }
        Ok(())
    }
}
