//! Conversations to `input_ids` and `labels`, as LLaMA-Factory v0.9.5's dataset processors
//! build them (`data/processor/processor_utils.py`, `supervised.py`, `unsupervised.py`,
//! `pretrain.py`).
//!
//! Labels are `i64` with [`IGNORE_INDEX`] (-100) where no loss is taken; ids are `u32`.
//!
//! ```
//! use ferrotune_data::processor::infer_seqlen;
//! // A 3000-token prompt and a 2000-token answer cut to 1000 tokens keep their 3:2 ratio.
//! assert_eq!(infer_seqlen(3000, 2000, 1000), (600, 400));
//! ```

use ferrotune_hub::tokenizer::TokenizerBundle;

use crate::error::DataError;
use crate::message::{Message, Role};
use crate::template::Template;

/// The label of positions that take no loss (PyTorch's `CrossEntropyLoss` `ignore_index`).
pub const IGNORE_INDEX: i64 = -100;

/// One example, as LLaMA-Factory's converters hand it to the processors (`_prompt`,
/// `_response`, `_system`, `_tools`).
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// The conversation up to the last user turn: odd length, alternating user-side and
    /// assistant-side roles.
    pub prompt: &'a [Message],
    /// The answer(s) to the last prompt turn: one message for supervised data.
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

/// An encoded example: `input_ids` `[seq]` and `labels` `[seq]` (pretraining and unsupervised
/// examples may have labels of another length, as in LLaMA-Factory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Token ids.
    pub input_ids: Vec<u32>,
    /// Target ids, [`IGNORE_INDEX`] where no loss is taken.
    pub labels: Vec<i64>,
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

/// Encodes a pretraining text without packing, as LLaMA-Factory's `PretrainDatasetProcessor`
/// does: `text` plus the EOS token text (`<|end_of_text|>` for the `llama3` template),
/// preceded by the BOS text when the tokenizer adds BOS, tokenized without special tokens and
/// cut to `cutoff_len`. Labels equal the ids (the collator shifts them).
///
/// # Errors
/// [`DataError::PromptTemplate`] when the tokenizer has no EOS token; tokenizer errors.
pub fn encode_pretrain(
    template_name: Option<&str>,
    tok: &TokenizerBundle,
    text: &str,
    cutoff_len: usize,
) -> Result<Encoded, DataError> {
    let eos = match template_name {
        Some("llama3") => "<|end_of_text|>",
        _ => tok
            .eos_token
            .as_deref()
            .ok_or_else(|| DataError::PromptTemplate {
                template: template_name.unwrap_or_default().to_owned(),
                message: "pretraining needs an EOS token and the tokenizer has none".to_owned(),
            })?,
    };
    let bos = match (tok.add_bos_token, tok.bos_token.as_deref()) {
        (true, Some(bos)) => bos,
        _ => "",
    };
    let mut input_ids = tok.encode(&format!("{bos}{text}{eos}"), false)?;
    input_ids.truncate(cutoff_len);
    let labels = input_ids.iter().map(|&id| i64::from(id)).collect();
    Ok(Encoded { input_ids, labels })
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
