//! Pretraining texts, one by one or packed into fixed blocks (LLaMA-Factory v0.9.5
//! `data/processor/pretrain.py` `PretrainDatasetProcessor`), with the labels that the pt
//! workflow's collator makes (`transformers.DataCollatorForLanguageModeling(mlm=False)`).

use ferrotune_hub::tokenizer::TokenizerBundle;

use super::{batches, BatchOptions, Encoded, IGNORE_INDEX};
use crate::error::DataError;

/// Language-modelling labels of one row, as `DataCollatorForLanguageModeling(mlm=False)` makes
/// them: the ids, with [`IGNORE_INDEX`] wherever the id is `pad_token_id`. When the pad token is
/// the EOS token (LLaMA-Factory's fallback for tokenizers without one) every EOS is masked too.
/// The shift by one happens in the loss, not here.
pub fn lm_labels(input_ids: &[u32], pad_token_id: Option<u32>) -> Vec<i64> {
    input_ids
        .iter()
        .map(|&id| match pad_token_id {
            Some(pad) if pad == id => IGNORE_INDEX,
            _ => i64::from(id),
        })
        .collect()
}

/// Encodes a pretraining text without packing, as LLaMA-Factory's `PretrainDatasetProcessor`
/// does: `text` plus the EOS token text (`<|end_of_text|>` for the `llama3` template),
/// preceded by the BOS text when the tokenizer adds BOS, tokenized without special tokens and
/// cut to `cutoff_len`. Labels are [`lm_labels`] of the ids (pad ids masked, as the pt
/// collator does).
///
/// # Errors
/// [`DataError::PromptTemplate`] when the tokenizer has no EOS token; tokenizer errors.
pub fn encode_pretrain(
    template_name: Option<&str>,
    tok: &TokenizerBundle,
    text: &str,
    cutoff_len: usize,
) -> Result<Encoded, DataError> {
    let eos = eos_text(template_name, tok)?;
    let bos = match (tok.add_bos_token, tok.bos_token.as_deref()) {
        (true, Some(bos)) => bos,
        _ => "",
    };
    let mut input_ids = tok.encode(&format!("{bos}{text}{eos}"), false)?;
    input_ids.truncate(cutoff_len);
    let labels = lm_labels(&input_ids, tok.pad_token_id());
    Ok(Encoded { input_ids, labels })
}

/// Encodes pretraining texts with packing, as LLaMA-Factory's `PretrainDatasetProcessor` does
/// when `packing` is on: within each preprocessing batch, every `text + EOS text` is
/// tokenized without special tokens, the ids are concatenated and cut into blocks of
/// `opts.cutoff_len` tokens, and the incomplete last block of the batch is dropped. When the
/// tokenizer adds BOS, the first id of every block is overwritten with the BOS id (no BOS text
/// is added to the texts). Labels are [`lm_labels`] of each block.
///
/// `opts.cutoff_len` is LLaMA-Factory's effective value: one less than written when `packing:
/// true` is written explicitly (its `DataArguments.__post_init__` hook), unchanged when pt
/// turns packing on by default.
///
/// # Errors
/// [`DataError::PromptTemplate`] when the tokenizer has no EOS token (or no BOS id while it
/// adds BOS) or `opts.cutoff_len` is 0; tokenizer errors.
pub fn encode_pretrain_packed(
    template_name: Option<&str>,
    tok: &TokenizerBundle,
    texts: &[&str],
    opts: &BatchOptions,
) -> Result<Vec<Encoded>, DataError> {
    let block_len = opts.cutoff_len;
    if block_len == 0 {
        return Err(pt_error(
            template_name,
            "packed pretraining needs blocks of at least one token; hint: raise `cutoff_len` \
             (packing uses `cutoff_len - 1`)",
        ));
    }
    let eos = eos_text(template_name, tok)?;
    let bos_id = if tok.add_bos_token {
        Some(tok.bos_token_id().ok_or_else(|| {
            pt_error(
                template_name,
                "the tokenizer adds BOS but has no BOS token id",
            )
        })?)
    } else {
        None
    };
    let pad = tok.pad_token_id();
    let mut blocks = Vec::new();
    for batch in batches(texts, opts.preprocessing_batch_size) {
        let mut concatenated: Vec<u32> = Vec::new();
        for text in batch {
            concatenated.extend(tok.encode(&format!("{text}{eos}"), false)?);
        }
        for chunk in concatenated.chunks_exact(block_len) {
            let mut input_ids = chunk.to_vec();
            if let (Some(bos), Some(first)) = (bos_id, input_ids.first_mut()) {
                *first = bos;
            }
            let labels = lm_labels(&input_ids, pad);
            blocks.push(Encoded { input_ids, labels });
        }
    }
    Ok(blocks)
}

/// The text appended to every pretraining example: `<|end_of_text|>` for `llama3`, else the
/// tokenizer's EOS token.
fn eos_text<'a>(
    template_name: Option<&str>,
    tok: &'a TokenizerBundle,
) -> Result<&'a str, DataError> {
    match template_name {
        Some("llama3") => Ok("<|end_of_text|>"),
        _ => tok.eos_token.as_deref().ok_or_else(|| {
            pt_error(
                template_name,
                "pretraining needs an EOS token and the tokenizer has none",
            )
        }),
    }
}

/// A [`DataError::PromptTemplate`] for pretraining with `template_name`.
fn pt_error(template_name: Option<&str>, message: &str) -> DataError {
    DataError::PromptTemplate {
        template: template_name.unwrap_or_default().to_owned(),
        message: message.to_owned(),
    }
}
