//! Preference pairs for rm, dpo, orpo and simpo (LLaMA-Factory v0.9.5
//! `data/processor/pairwise.py` `PairwiseDatasetProcessor`).

use ferrotune_hub::tokenizer::TokenizerBundle;

use super::{answer_labels, eos_id, infer_seqlen, with_response, Sample};
use crate::error::DataError;
use crate::template::Template;

/// A chosen and a rejected sequence sharing one prompt (LLaMA-Factory's pairwise dataset
/// columns; the all-ones `*_attention_mask` columns are left out). `chosen_*` are
/// `[chosen_seq]`, `rejected_*` are `[rejected_seq]`; their first `prompt` tokens are equal.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PairwiseEncoded {
    /// Prompt ids then the chosen response's ids.
    pub chosen_input_ids: Vec<u32>,
    /// [`IGNORE_INDEX`](super::IGNORE_INDEX) over the prompt, then the chosen response's ids.
    pub chosen_labels: Vec<i64>,
    /// Prompt ids then the rejected response's ids.
    pub rejected_input_ids: Vec<u32>,
    /// [`IGNORE_INDEX`](super::IGNORE_INDEX) over the prompt, then the rejected response's ids.
    pub rejected_labels: Vec<i64>,
}

/// Encodes a preference example as LLaMA-Factory's `PairwiseDatasetProcessor` does: the prompt
/// with the chosen answer (`response[0]`) and with the rejected one (`response[1]`), each by
/// [`Template::encode_oneturn`] (so the prompt ids are shared); with an `efficient_eos`
/// template both answers get the EOS id appended. Truncation treats the answers alike:
/// `infer_seqlen(prompt, max(chosen, rejected), cutoff_len)` gives one prompt length and one
/// answer length, and both answers are cut to the latter. Returns `None` for an example
/// LLaMA-Factory drops (prompt of even length, fewer than two responses).
///
/// # Errors
/// As [`Template::encode_oneturn`]; [`DataError::PromptTemplate`] when `efficient_eos` needs
/// an EOS the tokenizer lacks.
pub fn encode_pairwise(
    template: &Template,
    tok: &TokenizerBundle,
    sample: &Sample<'_>,
    cutoff_len: usize,
) -> Result<Option<PairwiseEncoded>, DataError> {
    let (Some(chosen), Some(rejected)) = (sample.response.first(), sample.response.get(1)) else {
        return Ok(None);
    };
    if sample.prompt.len() % 2 != 1 {
        return Ok(None);
    }
    let chosen_messages = with_response(sample.prompt, chosen);
    let (mut prompt_ids, mut chosen_ids) =
        template.encode_oneturn(tok, &chosen_messages, sample.system, sample.tools)?;
    let rejected_messages = with_response(sample.prompt, rejected);
    let (_, mut rejected_ids) =
        template.encode_oneturn(tok, &rejected_messages, sample.system, sample.tools)?;
    if template.efficient_eos {
        let eos = eos_id(template, tok)?;
        chosen_ids.push(eos);
        rejected_ids.push(eos);
    }
    let target = chosen_ids.len().max(rejected_ids.len());
    let (source_len, target_len) = infer_seqlen(prompt_ids.len(), target, cutoff_len);
    prompt_ids.truncate(source_len);
    chosen_ids.truncate(target_len);
    rejected_ids.truncate(target_len);

    let join = |answer: &[u32]| -> (Vec<u32>, Vec<i64>) {
        let ids = prompt_ids.iter().chain(answer).copied().collect();
        (ids, answer_labels(source_len, answer))
    };
    let (chosen_input_ids, chosen_labels) = join(&chosen_ids);
    let (rejected_input_ids, rejected_labels) = join(&rejected_ids);
    Ok(Some(PairwiseEncoded {
        chosen_input_ids,
        chosen_labels,
        rejected_input_ids,
        rejected_labels,
    }))
}
