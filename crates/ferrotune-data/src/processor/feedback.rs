//! KTO examples: the example's own pair plus a mismatched pair for the KL term (LLaMA-Factory
//! v0.9.5 `data/processor/feedback.py` `FeedbackDatasetProcessor`).

use ferrotune_hub::tokenizer::TokenizerBundle;
use tracing::warn;

use super::{answer_labels, batches, eos_id, infer_seqlen, template_error, with_response};
use super::{BatchOptions, Sample};
use crate::error::DataError;
use crate::message::Message;
use crate::template::Template;

/// One KTO example (LLaMA-Factory's feedback dataset columns; the all-ones
/// `attention_mask`/`kl_attention_mask` columns are left out): `input_ids`/`labels` are
/// `[seq]`, `kl_input_ids`/`kl_labels` are `[kl_seq]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KtoEncoded {
    /// Prompt ids then the example's answer ids.
    pub input_ids: Vec<u32>,
    /// [`IGNORE_INDEX`](super::IGNORE_INDEX) over the prompt, then the answer ids.
    pub labels: Vec<i64>,
    /// The same prompt's ids then the answer of the previous example in the batch.
    pub kl_input_ids: Vec<u32>,
    /// [`IGNORE_INDEX`](super::IGNORE_INDEX) over the prompt, then that answer's ids.
    pub kl_labels: Vec<i64>,
    /// Whether the answer is desirable (`kto_tag` true).
    pub kto_tags: bool,
}

/// Encodes KTO examples as LLaMA-Factory's `FeedbackDatasetProcessor` does, batch by batch.
///
/// A KTO sample's response is `[answer, ""]` when desirable and `["", answer]` when not; the
/// tag is "the first response is non-empty". The KL pair of the example at position `i` of
/// its preprocessing batch uses that example's prompt (and system, tools) with the answer of
/// the example at `i - 1`, the first example taking the batch's last; the rotation runs over
/// the batch as given, dropped examples included. The example's pair and its KL pair are each
/// encoded by [`Template::encode_oneturn`] (EOS appended to the answer for `efficient_eos`
/// templates) and truncated on their own by `infer_seqlen(prompt, answer, cutoff_len)`.
/// Examples LLaMA-Factory drops (prompt of even length, fewer than two responses) are left
/// out; a batch holding only one kind of tag logs a warning, as LLaMA-Factory does.
///
/// # Errors
/// As [`Template::encode_oneturn`]; [`DataError::PromptTemplate`] when the borrowed KL answer
/// is missing (a neighbour with an empty first response and no second one, where
/// LLaMA-Factory fails with an `IndexError`), or `efficient_eos` needs an EOS the tokenizer
/// lacks.
pub fn encode_feedback(
    template: &Template,
    tok: &TokenizerBundle,
    samples: &[Sample<'_>],
    opts: &BatchOptions,
) -> Result<Vec<KtoEncoded>, DataError> {
    let mut encoded = Vec::with_capacity(samples.len());
    let mut start = 0usize;
    for batch in batches(samples, opts.preprocessing_batch_size) {
        let batch_start = encoded.len();
        for (i, sample) in batch.iter().enumerate() {
            let (Some(first), Some(second)) = (sample.response.first(), sample.response.get(1))
            else {
                continue;
            };
            if sample.prompt.len() % 2 != 1 {
                continue;
            }
            let kto_tags = !first.content.is_empty();
            let answer = if kto_tags { first } else { second };
            let neighbour = batch
                .get(i.checked_sub(1).unwrap_or(batch.len() - 1))
                .map_or(&[][..], |s| s.response);
            let kl_answer = match neighbour {
                [first, ..] if !first.content.is_empty() => first,
                [_, second, ..] => second,
                _ => {
                    return Err(template_error(
                        template,
                        &format!(
                            "kto example {} borrows the answer of example {} for its KL pair, \
                             which has no answer; hint: give every kto example two responses",
                            start + i,
                            start + (i + batch.len() - 1) % batch.len(),
                        ),
                    ))
                }
            };
            let (input_ids, labels) = encode_one(template, tok, sample, answer, opts.cutoff_len)?;
            let (kl_input_ids, kl_labels) =
                encode_one(template, tok, sample, kl_answer, opts.cutoff_len)?;
            encoded.push(KtoEncoded {
                input_ids,
                labels,
                kl_input_ids,
                kl_labels,
                kto_tags,
            });
        }
        let tags = encoded.get(batch_start..).unwrap_or_default();
        let desirable = tags.iter().filter(|e| e.kto_tags).count();
        if desirable == 0 || desirable == tags.len() {
            warn!("the kto data has only one preference type (desirable or undesirable)");
        }
        start += batch.len();
    }
    Ok(encoded)
}

/// `sample`'s prompt with `answer`, encoded and truncated: ids and labels.
fn encode_one(
    template: &Template,
    tok: &TokenizerBundle,
    sample: &Sample<'_>,
    answer: &Message,
    cutoff_len: usize,
) -> Result<(Vec<u32>, Vec<i64>), DataError> {
    let messages = with_response(sample.prompt, answer);
    let (mut prompt_ids, mut answer_ids) =
        template.encode_oneturn(tok, &messages, sample.system, sample.tools)?;
    if template.efficient_eos {
        answer_ids.push(eos_id(template, tok)?);
    }
    let (source_len, target_len) = infer_seqlen(prompt_ids.len(), answer_ids.len(), cutoff_len);
    prompt_ids.truncate(source_len);
    answer_ids.truncate(target_len);
    let labels = answer_labels(source_len, &answer_ids);
    prompt_ids.extend_from_slice(&answer_ids);
    Ok((prompt_ids, labels))
}
