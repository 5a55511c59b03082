//! Conversations to model inputs, as LLaMA-Factory v0.9.5's dataset processors build them
//! (`data/processor/*.py`): one function per processor, returning the columns LLaMA-Factory's
//! tokenized dataset holds, under the same names.
//!
//! | stage | function | LLaMA-Factory processor | rows |
//! |---|---|---|---|
//! | sft | [`encode_supervised`] | `SupervisedDatasetProcessor` | [`Encoded`] per example |
//! | sft, `packing` | [`encode_supervised_packed`] | `PackedSupervisedDatasetProcessor` | [`Packed`] per pack |
//! | predict | [`encode_unsupervised`] | `UnsupervisedDatasetProcessor` | [`Encoded`] per example |
//! | rm, dpo, orpo, simpo | [`encode_pairwise`] | `PairwiseDatasetProcessor` | [`PairwiseEncoded`] per example |
//! | kto | [`encode_feedback`] | `FeedbackDatasetProcessor` | [`KtoEncoded`] per example |
//! | pt | [`encode_pretrain`] / [`encode_pretrain_packed`] | `PretrainDatasetProcessor` | [`Encoded`] per text / block |
//!
//! Labels are `i64` with [`IGNORE_INDEX`] (-100) where no loss is taken; ids are `u32`. The row
//! structs serialize (serde) to objects keyed by LLaMA-Factory's column names, as in
//! `fixtures/data/*.jsonl`.
//!
//! LLaMA-Factory runs its processors over `preprocessing_batch_size` examples at a time
//! (`Dataset.map(batched=True)`); packing and KTO's mismatched KL pairs never cross a batch, so
//! the functions that need it take that size ([`BatchOptions`], [`PackOptions`]) and cut the
//! examples the same way (one worker: `preprocessing_num_workers` > 1 would shard first).
//!
//! ```
//! use ferrotune_data::processor::infer_seqlen;
//! // A 3000-token prompt and a 2000-token answer cut to 1000 tokens keep their 3:2 ratio.
//! assert_eq!(infer_seqlen(3000, 2000, 1000), (600, 400));
//! ```

mod feedback;
mod packing;
mod pairwise;
mod pretrain;
mod supervised;

use ferrotune_hub::tokenizer::TokenizerBundle;

use crate::error::DataError;
use crate::message::Message;
use crate::template::Template;

pub use feedback::{encode_feedback, KtoEncoded};
pub use packing::{encode_supervised_packed, greedy_knapsack, PackOptions, Packed};
pub use pairwise::{encode_pairwise, PairwiseEncoded};
pub use pretrain::{encode_pretrain, encode_pretrain_packed, lm_labels};
pub use supervised::{encode_supervised, encode_unsupervised};

/// The label of positions that take no loss (PyTorch's `CrossEntropyLoss` `ignore_index`).
pub const IGNORE_INDEX: i64 = -100;

/// One example, as LLaMA-Factory's converters hand it to the processors (`_prompt`,
/// `_response`, `_system`, `_tools`).
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// The conversation up to the last user turn: odd length, alternating user-side and
    /// assistant-side roles.
    pub prompt: &'a [Message],
    /// The answer(s) to the last prompt turn: one message for supervised data; chosen then
    /// rejected for pairwise data; `[answer, ""]` (desirable) or `["", answer]` for KTO.
    pub response: &'a [Message],
    /// The example's system prompt; `None` or empty uses the template's default.
    pub system: Option<&'a str>,
    /// The example's tool schemas as a JSON text.
    pub tools: Option<&'a str>,
}

/// The data arguments that shape an encoded example.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Longest `input_ids` kept (`cutoff_len`).
    pub cutoff_len: usize,
    /// Take loss on prompt tokens too (`train_on_prompt`).
    pub train_on_prompt: bool,
    /// Take loss on the last turn only, keeping it whole first when truncating (`mask_history`).
    pub mask_history: bool,
}

/// An encoded example: `input_ids` `[seq]` and `labels` `[seq]` (unsupervised examples have
/// labels of another length, as in LLaMA-Factory).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Encoded {
    /// Token ids.
    pub input_ids: Vec<u32>,
    /// Target ids, [`IGNORE_INDEX`] where no loss is taken.
    pub labels: Vec<i64>,
}

/// The options of the processors that work on a whole preprocessing batch at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOptions {
    /// Longest sequence kept, or the block length of packed pretraining (`cutoff_len` as
    /// LLaMA-Factory holds it: the written value minus one when `packing`/`neat_packing` is
    /// written, see [`Packed`]).
    pub cutoff_len: usize,
    /// Examples per preprocessing batch (`preprocessing_batch_size`, default 1000); values
    /// below 1 count as 1.
    pub preprocessing_batch_size: usize,
}

/// How many prompt and response tokens to keep within `cutoff_len` (LLaMA-Factory's
/// `infer_seqlen`): a response shorter than half the budget is kept whole, else a prompt
/// shorter than half is, else both shrink in proportion to their lengths.
pub fn infer_seqlen(source_len: usize, target_len: usize, cutoff_len: usize) -> (usize, usize) {
    let max_target_len = if target_len * 2 < cutoff_len {
        cutoff_len
    } else if source_len * 2 < cutoff_len {
        cutoff_len - source_len
    } else {
        // Python's int(cutoff * (target / (source + target))): float math, truncated.
        (cutoff_len as f64 * (target_len as f64 / (source_len + target_len) as f64)) as usize
    };
    let new_target_len = max_target_len.min(target_len);
    let new_source_len = cutoff_len.saturating_sub(new_target_len).min(source_len);
    (new_source_len, new_target_len)
}

/// LLaMA-Factory's printed example (`print_data_example`): `input_ids`, the decoded inputs,
/// `label_ids` and the decoded labels without [`IGNORE_INDEX`] positions, each after its name
/// on its own line, special tokens kept in the decoded text.
///
/// # Errors
/// [`DataError::Tokenizer`] if decoding fails.
pub fn print_example(
    tok: &TokenizerBundle,
    input_ids: &[u32],
    labels: &[i64],
) -> Result<String, DataError> {
    let inputs = tok.decode(input_ids, false)?;
    let valid: Vec<u32> = labels
        .iter()
        .filter_map(|&l| u32::try_from(l).ok())
        .collect();
    let label_text = tok.decode(&valid, false)?;
    Ok(format!(
        "input_ids:\n{input_ids:?}\ninputs:\n{inputs}\nlabel_ids:\n{labels:?}\nlabels:\n{label_text}\n"
    ))
}

/// The examples cut into LLaMA-Factory's preprocessing batches (`Dataset.map(batched=True,
/// batch_size=...)`, one worker): consecutive runs of `batch_size` (at least 1), the last
/// one shorter.
fn batches<T>(items: &[T], batch_size: usize) -> std::slice::Chunks<'_, T> {
    items.chunks(batch_size.max(1))
}

/// Labels of a prompt of `prompt_len` tokens followed by `answer`: [`IGNORE_INDEX`] over the
/// prompt, the answer ids after it.
fn answer_labels(prompt_len: usize, answer: &[u32]) -> Vec<i64> {
    std::iter::repeat_n(IGNORE_INDEX, prompt_len)
        .chain(answer.iter().map(|&id| i64::from(id)))
        .collect()
}

/// `prompt` followed by `response`, the message list that `encode_oneturn` takes.
fn with_response(prompt: &[Message], response: &Message) -> Vec<Message> {
    let mut messages = Vec::with_capacity(prompt.len() + 1);
    messages.extend_from_slice(prompt);
    messages.push(response.clone());
    messages
}

/// The tokenizer's EOS id, required by `efficient_eos` templates.
fn eos_id(template: &Template, tok: &TokenizerBundle) -> Result<u32, DataError> {
    tok.eos_token_id().ok_or_else(|| {
        template_error(
            template,
            "uses efficient_eos but the tokenizer has no EOS token",
        )
    })
}

/// A [`DataError::PromptTemplate`] for `template`.
fn template_error(template: &Template, message: &str) -> DataError {
    DataError::PromptTemplate {
        template: template.name.clone(),
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// LLaMA-Factory's own `infer_seqlen` cases (tests/data/processor/test_processor_utils.py).
    #[test]
    fn infer_seqlen_matches_llamafactory() {
        let cases = [
            ((3000, 2000, 1000), (600, 400)),
            ((2000, 3000, 1000), (400, 600)),
            ((1000, 100, 1000), (900, 100)),
            ((100, 1000, 1000), (100, 900)),
            ((100, 500, 1000), (100, 500)),
            ((500, 100, 1000), (500, 100)),
            ((10, 10, 1000), (10, 10)),
        ];
        for ((s, t, c), want) in cases {
            assert_eq!(infer_seqlen(s, t, c), want, "infer_seqlen({s}, {t}, {c})");
        }
    }
}
