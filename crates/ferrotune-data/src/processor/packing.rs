//! Packed supervised examples (LLaMA-Factory v0.9.5 `data/processor/supervised.py`
//! `PackedSupervisedDatasetProcessor`, `processor_utils.py` `greedy_knapsack`).
//!
//! Each preprocessing batch is encoded example by example ([`encode_supervised`]), the
//! examples are grouped by a greedy knapsack over their lengths, and each group becomes one row
//! of exactly `cutoff_len + 1` tokens: the examples back to back, then padding.

use std::collections::HashMap;

use ferrotune_hub::tokenizer::TokenizerBundle;
use tracing::warn;

use super::{batches, encode_supervised, template_error, EncodeOptions, Sample, IGNORE_INDEX};
use crate::error::DataError;
use crate::template::Template;

/// How packed examples are grouped and masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackOptions {
    /// Examples per preprocessing batch (`preprocessing_batch_size`, default 1000): packs
    /// never mix examples of two batches. Values below 1 count as 1.
    pub preprocessing_batch_size: usize,
    /// Number the examples of a pack in `attention_mask` (1, 2, …; 0 on padding) and record
    /// [`Packed::sequence_boundaries`], so that packed examples do not attend to each other
    /// (`neat_packing`); otherwise `attention_mask` is all ones.
    pub neat_packing: bool,
}

/// One pack: several supervised examples back to back plus padding, every column
/// `[cutoff_len + 1]` long (LLaMA-Factory's packed dataset row).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Packed {
    /// Token ids of the examples, then `pad_token_id` up to the row length.
    pub input_ids: Vec<u32>,
    /// Labels of the examples, [`IGNORE_INDEX`] on padding.
    pub labels: Vec<i64>,
    /// `neat_packing`: the 1-based index of the example each token belongs to, 0 on padding;
    /// otherwise all ones, padding included.
    pub attention_mask: Vec<u32>,
    /// Position of each token within its own example (restarting at 0), 0 on padding.
    pub position_ids: Vec<u32>,
    /// `neat_packing` only: the cumulative start of each example, then the start of the
    /// padding and the row length, e.g. `[0, 435, 511, 512]` (LLaMA-Factory's
    /// `packing_params.sequence_boundaries`). Left out of JSON when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence_boundaries: Option<Vec<usize>>,
}

/// Groups lengths into bins of at most `capacity`, as LLaMA-Factory's `greedy_knapsack`: the
/// lengths are sorted ascending, and each bin repeatedly takes the largest remaining length
/// that still fits (a binary search, Python's `bisect_right`), until none fits; bins come in
/// the order they were filled and hold their lengths in the order taken. Lengths above
/// `capacity` are left out (LLaMA-Factory would loop forever on them; its caller drops them
/// first).
pub fn greedy_knapsack(lengths: &[usize], capacity: usize) -> Vec<Vec<usize>> {
    let mut remaining: Vec<usize> = lengths.iter().copied().filter(|&l| l <= capacity).collect();
    remaining.sort_unstable();
    let mut bins = Vec::new();
    while !remaining.is_empty() {
        let mut bin = Vec::new();
        let mut room = capacity;
        loop {
            // Number of lengths <= room: the index of the largest one that fits, plus one.
            let fits = remaining.partition_point(|&l| l <= room);
            let Some(index) = fits.checked_sub(1) else {
                break;
            };
            let length = remaining.remove(index);
            room -= length;
            bin.push(length);
        }
        bins.push(bin);
    }
    bins
}

/// Encodes supervised examples and packs them, as LLaMA-Factory's
/// `PackedSupervisedDatasetProcessor` does, batch by batch:
///
/// 1. each example is encoded by [`encode_supervised`] with `opts` (invalid ones are dropped
///    as there; examples longer than `opts.cutoff_len` are dropped with a warning);
/// 2. [`greedy_knapsack`] groups the lengths into bins of `opts.cutoff_len`;
/// 3. each bin becomes a [`Packed`] row: for every length in the bin, the example of that
///    length encoded **last** among those not yet used (LLaMA-Factory pops a per-length list),
///    then padding with the tokenizer's pad id up to `opts.cutoff_len + 1` (at least one pad).
///
/// `opts.cutoff_len` is LLaMA-Factory's effective value: the written `cutoff_len` minus one,
/// which its `DataArguments.__post_init__` subtracts whenever `packing` or `neat_packing` is
/// on, so rows are as long as the written `cutoff_len`.
///
/// # Errors
/// As [`encode_supervised`]; [`DataError::PromptTemplate`] when the tokenizer has no pad
/// token (LLaMA-Factory's `fix_special_tokens`, [`Template::fix_special_tokens`], sets it).
pub fn encode_supervised_packed(
    template: &Template,
    tok: &TokenizerBundle,
    samples: &[Sample<'_>],
    opts: &EncodeOptions,
    pack: &PackOptions,
) -> Result<Vec<Packed>, DataError> {
    let pad_id = tok
        .pad_token_id()
        .ok_or_else(|| template_error(template, "packing needs a pad token and the tokenizer has none; hint: call `Template::fix_special_tokens` first"))?;
    let row_len = opts.cutoff_len + 1;
    let mut packs = Vec::new();
    let mut dropped = 0usize;
    for batch in batches(samples, pack.preprocessing_batch_size) {
        let mut examples = Vec::with_capacity(batch.len());
        let mut by_length: HashMap<usize, Vec<usize>> = HashMap::new();
        for sample in batch {
            let Some(encoded) = encode_supervised(template, tok, sample, opts)? else {
                continue;
            };
            let length = encoded.input_ids.len();
            if length > opts.cutoff_len {
                dropped += 1;
                continue;
            }
            by_length.entry(length).or_default().push(examples.len());
            examples.push(encoded);
        }
        let lengths: Vec<usize> = examples.iter().map(|e| e.input_ids.len()).collect();
        for bin in greedy_knapsack(&lengths, opts.cutoff_len) {
            let mut row = Packed {
                input_ids: Vec::with_capacity(row_len),
                labels: Vec::with_capacity(row_len),
                attention_mask: Vec::with_capacity(row_len),
                position_ids: Vec::with_capacity(row_len),
                sequence_boundaries: pack.neat_packing.then(|| vec![0]),
            };
            for (segment, length) in (1u32..).zip(bin) {
                let example = by_length
                    .get_mut(&length)
                    .and_then(Vec::pop)
                    .and_then(|index| examples.get(index));
                let Some(example) = example else {
                    // Every binned length came from `by_length`, so this cannot happen.
                    continue;
                };
                row.input_ids.extend_from_slice(&example.input_ids);
                row.labels.extend_from_slice(&example.labels);
                row.position_ids.extend(0..length as u32);
                let mask = if pack.neat_packing { segment } else { 1 };
                row.attention_mask.extend(std::iter::repeat_n(mask, length));
                if let Some(bounds) = &mut row.sequence_boundaries {
                    bounds.push(row.input_ids.len());
                }
            }
            let pad_len = row_len.saturating_sub(row.input_ids.len());
            row.input_ids.extend(std::iter::repeat_n(pad_id, pad_len));
            row.labels
                .extend(std::iter::repeat_n(IGNORE_INDEX, pad_len));
            row.position_ids.extend(std::iter::repeat_n(0, pad_len));
            let pad_mask = u32::from(!pack.neat_packing);
            row.attention_mask
                .extend(std::iter::repeat_n(pad_mask, pad_len));
            if let Some(bounds) = &mut row.sequence_boundaries {
                bounds.push(row.input_ids.len());
            }
            packs.push(row);
        }
    }
    if dropped > 0 {
        warn!(
            "dropped {dropped} example(s) longer than cutoff_len {} before packing",
            opts.cutoff_len
        );
    }
    Ok(packs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bins and their order as LLaMA-Factory's `greedy_knapsack` gives them (worked by hand
    /// from `processor_utils.py`: sorted `[1, 2, 3, 4, 5, 6, 7]`, capacity 8).
    #[test]
    fn greedy_knapsack_fills_largest_first() {
        let bins = greedy_knapsack(&[5, 1, 7, 3, 2, 6, 4], 8);
        assert_eq!(bins, vec![vec![7, 1], vec![6, 2], vec![5, 3], vec![4]]);
        assert_eq!(greedy_knapsack(&[9, 2], 8), vec![vec![2]]);
        assert!(greedy_knapsack(&[], 8).is_empty());
    }
}
