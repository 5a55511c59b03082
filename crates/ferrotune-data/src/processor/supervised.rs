//! Supervised and prompt-only examples, one at a time (LLaMA-Factory v0.9.5
//! `data/processor/supervised.py` `SupervisedDatasetProcessor` and `unsupervised.py`).

use ferrotune_hub::tokenizer::TokenizerBundle;

use super::{eos_id, infer_seqlen, template_error, EncodeOptions, Encoded, Sample, IGNORE_INDEX};
use crate::error::DataError;
use crate::message::{Message, Role};
use crate::template::Template;

/// Encodes a supervised example as LLaMA-Factory's `SupervisedDatasetProcessor` does: turn by
/// turn, each turn cut to the budget left by [`infer_seqlen`], prompts masked with
/// [`IGNORE_INDEX`] unless `train_on_prompt`; with `mask_history` the turns are budgeted
/// last-first and only the last answer is trained on; with `efficient_eos` one EOS ends the
/// sequence and each later prompt's first label is EOS. Returns `None` for an example
/// LLaMA-Factory drops (prompt of even length, or not exactly one response).
///
/// # Errors
/// [`DataError::PromptTemplate`] for `train_on_prompt` with an `efficient_eos` template or a
/// tokenizer without EOS where one is needed; encoding errors of
/// [`Template::encode_multiturn`].
pub fn encode_supervised(
    template: &Template,
    tok: &TokenizerBundle,
    sample: &Sample<'_>,
    opts: &EncodeOptions,
) -> Result<Option<Encoded>, DataError> {
    if sample.prompt.len() % 2 != 1 || sample.response.len() != 1 {
        return Ok(None);
    }
    if opts.train_on_prompt && template.efficient_eos {
        return Err(template_error(
            template,
            "does not support `train_on_prompt` (efficient_eos)",
        ));
    }
    let messages: Vec<Message> = sample
        .prompt
        .iter()
        .chain(sample.response)
        .cloned()
        .collect();
    let discard_history_cot = opts.mask_history && !template.preserve_thinking;
    let mut turns = template.encode_multiturn(
        tok,
        &messages,
        sample.system,
        sample.tools,
        discard_history_cot,
    )?;
    let eos = if template.efficient_eos {
        Some(eos_id(template, tok)?)
    } else {
        None
    };
    let mut total_length = usize::from(eos.is_some());
    if opts.mask_history {
        turns.reverse();
    }
    let mut input_ids: Vec<u32> = Vec::new();
    let mut labels: Vec<i64> = Vec::new();
    for (turn_idx, (source_ids, target_ids)) in turns.into_iter().enumerate() {
        if total_length >= opts.cutoff_len {
            break;
        }
        let (source_len, target_len) = infer_seqlen(
            source_ids.len(),
            target_ids.len(),
            opts.cutoff_len - total_length,
        );
        let source_ids = &source_ids[..source_len];
        let target_ids = &target_ids[..target_len];
        total_length += source_len + target_len;

        let mut turn_labels: Vec<i64> = match eos {
            _ if opts.train_on_prompt => source_ids.iter().map(|&id| i64::from(id)).collect(),
            // As in LLaMA-Factory, a prompt cut to nothing still contributes its EOS label.
            Some(eos) if turn_idx != 0 => std::iter::once(i64::from(eos))
                .chain(std::iter::repeat_n(
                    IGNORE_INDEX,
                    source_len.saturating_sub(1),
                ))
                .collect(),
            _ => vec![IGNORE_INDEX; source_len],
        };
        if opts.mask_history && turn_idx != 0 {
            turn_labels.extend(std::iter::repeat_n(IGNORE_INDEX, target_len));
        } else {
            turn_labels.extend(target_ids.iter().map(|&id| i64::from(id)));
        }
        let turn_ids = source_ids.iter().chain(target_ids).copied();
        if opts.mask_history {
            input_ids.splice(0..0, turn_ids);
            labels.splice(0..0, turn_labels);
        } else {
            input_ids.extend(turn_ids);
            labels.extend(turn_labels);
        }
    }
    if let Some(eos) = eos {
        input_ids.push(eos);
        labels.push(i64::from(eos));
    }
    Ok(Some(Encoded { input_ids, labels }))
}

/// Encodes a prompt-only example as LLaMA-Factory's `UnsupervisedDatasetProcessor` does: the
/// prompt as `input_ids`, the response (or an empty assistant turn) as `labels`, both cut by
/// [`infer_seqlen`]. Returns `None` for a prompt of even length (dropped).
///
/// # Errors
/// As [`Template::encode_oneturn`]; [`DataError::PromptTemplate`] when `efficient_eos` needs an
/// EOS the tokenizer lacks.
pub fn encode_unsupervised(
    template: &Template,
    tok: &TokenizerBundle,
    sample: &Sample<'_>,
    cutoff_len: usize,
) -> Result<Option<Encoded>, DataError> {
    if sample.prompt.len() % 2 != 1 {
        return Ok(None);
    }
    let mut messages = sample.prompt.to_vec();
    match sample.response {
        [one] => messages.push(one.clone()),
        _ => messages.push(Message::new(Role::Assistant, "")),
    }
    let (mut input_ids, response) =
        template.encode_oneturn(tok, &messages, sample.system, sample.tools)?;
    let mut labels: Vec<i64> = response.into_iter().map(i64::from).collect();
    if template.efficient_eos {
        labels.push(i64::from(eos_id(template, tok)?));
    }
    let (source_len, target_len) = infer_seqlen(input_ids.len(), labels.len(), cutoff_len);
    input_ids.truncate(source_len);
    labels.truncate(target_len);
    Ok(Some(Encoded { input_ids, labels }))
}
