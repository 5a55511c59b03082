//! Batching of encoded examples for causal-LM training, as LLaMA-Factory's
//! `SFTDataCollatorWith4DAttentionMask` (`data/collator.py`, v0.9.5) pads them: right padding
//! of `input_ids` with `pad_token_id`, of `labels` with -100, and an `attention_mask` of 1 on
//! tokens and 0 on padding.
//!
//! Shapes: B rows in the batch, T the longest row. Rows are padded to T exactly (LLaMA-Factory
//! pads training batches to a multiple of 8; the extra padding changes no loss or gradient).
//!
//! Packed rows (`packing`) keep the attention mask the packer made: all ones (padding
//! included) for plain packing, where packed examples see each other as in LLaMA-Factory; the
//! 1-based index of each token's example for `neat_packing`, which the decoder turns into a
//! block-diagonal causal mask (see `ferrotune_model::attention_bias`). Positions run `0..T`
//! over the row, as LLaMA-Factory's eager/SDPA path gives them; rotary attention depends only
//! on position differences, and with the block-diagonal mask only differences inside one
//! example count, so each example is scored as if it stood alone.

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
    /// `[T_i]` packed rows' mask (sequence index per token, 0 on padding); `None`: ones.
    pub attention_mask: Option<Vec<u32>>,
}

impl Example {
    /// An unpacked example (attention on every token).
    pub fn new(input_ids: Vec<u32>, labels: Vec<i64>) -> Self {
        Example {
            input_ids,
            labels,
            attention_mask: None,
        }
    }

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
    /// Tokens of the batch whose `attention_mask` is not 0.
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
            .map(|e| Example::new(e.input_ids.clone(), e.labels.clone()))
            .collect()),
        TokenizedDataset::Packed(v) => Ok(v
            .iter()
            .map(|e| Example {
                input_ids: e.input_ids.clone(),
                labels: e.labels.clone(),
                attention_mask: Some(e.attention_mask.clone()),
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
        if e.labels.len() != n || e.attention_mask.as_ref().is_some_and(|m| m.len() != n) {
            return Err(TrainError::Data(format!(
                "example {i} of the batch has {n} input_ids but {} labels and {} attention_mask values",
                e.labels.len(),
                e.attention_mask.as_ref().map_or(n, Vec::len)
            )));
        }
        ids.extend_from_slice(&e.input_ids);
        ids.extend(std::iter::repeat_n(pad_token_id, t - n));
        labels.extend_from_slice(&e.labels);
        labels.extend(std::iter::repeat_n(IGNORE_INDEX, t - n));
        match &e.attention_mask {
            Some(m) => {
                mask.extend_from_slice(m);
                n_tokens += m.iter().filter(|&&v| v != 0).count();
            }
            None => {
                mask.extend(std::iter::repeat_n(1u32, n));
                n_tokens += n;
            }
        }
        mask.extend(std::iter::repeat_n(0u32, t - n));
        n_target_tokens += e.n_target_tokens();
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
        let a = Example::new(vec![5, 6, 7], vec![-100, 6, 7]);
        let b = Example::new(vec![9], vec![9]);
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
    fn packed_rows_keep_their_sequence_numbers() {
        let packed = Example {
            input_ids: vec![5, 6, 7, 8, 0],
            labels: vec![-100, 6, -100, 8, -100],
            attention_mask: Some(vec![1, 1, 2, 2, 0]),
        };
        let short = Example::new(vec![9, 10], vec![9, 10]);
        let batch = collate(&[&packed, &short], 0, &Device::Cpu).unwrap();
        assert_eq!(
            batch.attention_mask.to_vec2::<u32>().unwrap(),
            vec![vec![1, 1, 2, 2, 0], vec![1, 1, 0, 0, 0]]
        );
        assert_eq!(batch.n_tokens, 6);
        assert_eq!(batch.n_target_tokens, 3);
    }

    #[test]
    fn refuses_mismatched_lengths() {
        let a = Example::new(vec![1, 2], vec![1]);
        let err = collate(&[&a], 0, &Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("2 input_ids but 1 labels"), "{err}");
    }
}
