//! Batching of encoded examples for causal-LM training, as LLaMA-Factory's
//! `SFTDataCollatorWith4DAttentionMask` (`data/collator.py`, v0.9.5) pads them: right padding
//! of `input_ids` with `pad_token_id`, of `labels` with -100, and an `attention_mask` of 1 on
//! tokens and 0 on padding.
//!
//! Shapes: B rows in the batch, T the longest row. Rows are padded to T exactly (LLaMA-Factory
//! pads training batches to a multiple of 8; the extra padding changes no loss or gradient).
//!
//! Packed rows (`packing`) are taken as one sequence each, with an attention mask of ones on
//! their tokens: the decoder numbers positions `0..T` itself and takes no per-token position
//! ids, so `neat_packing`'s per-example positions and block-diagonal attention are not
//! honoured (the trainer warns about it).

use candle_core::{Device, Tensor};
use ferrotune_data::pipeline::TokenizedDataset;
use ferrotune_model::IGNORE_INDEX;

use crate::error::TrainError;

/// One example as the collator sees it: ids and labels of equal length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// Token ids `[T_i]`.
    pub input_ids: Vec<u32>,
    /// Targets `[T_i]`, -100 where no loss is taken.
    pub labels: Vec<i64>,
}

impl Example {
    /// Number of positions that are scored by the causal-LM loss: labels after the first
    /// position that are not -100 (position t predicts label t + 1).
    pub fn n_target_tokens(&self) -> usize {
        self.labels
            .iter()
            .skip(1)
            .filter(|&&l| l != IGNORE_INDEX)
            .count()
    }
}

/// A padded batch on a device.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `[B, T]` u32, `pad_token_id` after each row's end.
    pub input_ids: Tensor,
    /// `[B, T]` i64, -100 on padding.
    pub labels: Tensor,
    /// `[B, T]` u32, 1 on tokens, 0 on padding.
    pub attention_mask: Tensor,
    /// Scored target tokens of the batch (see [`Example::n_target_tokens`]).
    pub n_target_tokens: usize,
    /// Non-padding tokens of the batch (the sum of `attention_mask`).
    pub n_tokens: usize,
    /// B.
    pub n_rows: usize,
}

/// Takes the examples of a `sft` (supervised or packed) or `pt` dataset.
///
/// Errors: [`TrainError::Data`] for example kinds a causal-LM trainer cannot take (pairwise,
/// kto, unsupervised), naming the kind and the stage that makes it.
pub fn examples_of(dataset: &TokenizedDataset) -> Result<Vec<Example>, TrainError> {
    match dataset {
        TokenizedDataset::Supervised(v) | TokenizedDataset::Pretrain(v) => Ok(v
            .iter()
            .map(|e| Example {
                input_ids: e.input_ids.clone(),
                labels: e.labels.clone(),
            })
            .collect()),
        TokenizedDataset::Packed(v) => Ok(v
            .iter()
            .map(|e| Example {
                input_ids: e.input_ids.clone(),
                labels: e.labels.clone(),
            })
            .collect()),
        other => Err(TrainError::Data(format!(
            "the trainer takes supervised, packed or pretrain examples, got {}; hint: `stage` must be sft or pt",
            other.kind()
        ))),
    }
}

/// Pads `examples` into one [`Batch`] on `device`.
///
/// Errors: [`TrainError::Data`] for an empty batch or an example whose ids and labels differ
/// in length (naming its index in the batch); [`TrainError::Candle`] from tensor creation.
pub fn collate(
    examples: &[&Example],
    pad_token_id: u32,
    device: &Device,
) -> Result<Batch, TrainError> {
    let b = examples.len();
    let t = examples
        .iter()
        .map(|e| e.input_ids.len())
        .max()
        .unwrap_or(0);
    if b == 0 || t == 0 {
        return Err(TrainError::Data(
            "cannot collate an empty batch or empty examples".into(),
        ));
    }
    let mut ids = Vec::with_capacity(b * t);
    let mut labels = Vec::with_capacity(b * t);
    let mut mask = Vec::with_capacity(b * t);
    let (mut n_target_tokens, mut n_tokens) = (0, 0);
    for (i, e) in examples.iter().enumerate() {
        let n = e.input_ids.len();
        if e.labels.len() != n {
            return Err(TrainError::Data(format!(
                "example {i} of the batch has {n} input_ids but {} labels",
                e.labels.len()
            )));
        }
        ids.extend_from_slice(&e.input_ids);
        ids.extend(std::iter::repeat_n(pad_token_id, t - n));
        labels.extend_from_slice(&e.labels);
        labels.extend(std::iter::repeat_n(IGNORE_INDEX, t - n));
        mask.extend(std::iter::repeat_n(1u32, n));
        mask.extend(std::iter::repeat_n(0u32, t - n));
        n_target_tokens += e.n_target_tokens();
        n_tokens += n;
    }
    Ok(Batch {
        input_ids: Tensor::from_vec(ids, (b, t), device)?,
        labels: Tensor::from_vec(labels, (b, t), device)?,
        attention_mask: Tensor::from_vec(mask, (b, t), device)?,
        n_target_tokens,
        n_tokens,
        n_rows: b,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_right_with_pad_and_ignore_index() {
        let a = Example {
            input_ids: vec![5, 6, 7],
            labels: vec![-100, 6, 7],
        };
        let b = Example {
            input_ids: vec![9],
            labels: vec![9],
        };
        let batch = collate(&[&a, &b], 0, &Device::Cpu).unwrap();
        assert_eq!(
            batch.input_ids.to_vec2::<u32>().unwrap(),
            vec![vec![5, 6, 7], vec![9, 0, 0]]
        );
        assert_eq!(
            batch.labels.to_vec2::<i64>().unwrap(),
            vec![vec![-100, 6, 7], vec![9, -100, -100]]
        );
        assert_eq!(
            batch.attention_mask.to_vec2::<u32>().unwrap(),
            vec![vec![1, 1, 1], vec![1, 0, 0]]
        );
        // Row 0 scores labels 6 and 7; row 1's only label is at position 0 (never a target).
        assert_eq!(batch.n_target_tokens, 2);
        assert_eq!(batch.n_tokens, 4);
    }

    #[test]
    fn refuses_mismatched_lengths() {
        let a = Example {
            input_ids: vec![1, 2],
            labels: vec![1],
        };
        let err = collate(&[&a], 0, &Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("2 input_ids but 1 labels"), "{err}");
    }
}
