//! Where templates meet the tokenizer: slot elements to ids, and the special-token fixes
//! LLaMA-Factory applies to the tokenizer before encoding (`Template.fix_special_tokens`,
//! `_add_or_replace_eos_token` and `_convert_elements_to_ids` in v0.9.5 `data/template.py`).

use ferrotune_hub::tokenizer::TokenizerBundle;
use tokenizers::AddedToken;

use super::{Element, Template};
use crate::error::DataError;

/// EOS token LLaMA-Factory gives a tokenizer that has none.
const FALLBACK_EOS: &str = "<|endoftext|>";

/// Ids of filled slot elements: text encoded without special tokens (empty text gives nothing),
/// a named token as its one id, BOS/EOS as the tokenizer's ids when it has them.
///
/// # Errors
/// [`DataError::PromptTemplate`] when a named token is not in the vocabulary;
/// [`DataError::Tokenizer`] if encoding fails.
pub(super) fn elements_to_ids(
    template: &Template,
    tok: &TokenizerBundle,
    elements: &[Element],
) -> Result<Vec<u32>, DataError> {
    let mut ids = Vec::new();
    for element in elements {
        match element {
            Element::Text(text) if text.is_empty() => {}
            Element::Text(text) => ids.extend(tok.encode(text, false)?),
            Element::Token(token) => ids.push(tok.token_to_id(token).ok_or_else(|| {
                template.error(format!(
                    "slot token {token:?} is not in the tokenizer vocabulary"
                ))
            })?),
            Element::Bos => ids.extend(tok.bos_token_id()),
            Element::Eos => ids.extend(tok.eos_token_id()),
        }
    }
    Ok(ids)
}

impl Template {
    /// Prepares `tok` for this template as LLaMA-Factory's `fix_special_tokens` does:
    /// with `replace_eos` the first stop word becomes the EOS token; a tokenizer without EOS
    /// gets `<|endoftext|>`; a missing pad token becomes the EOS token; the remaining stop words
    /// are added as special tokens. A token not yet in the vocabulary is appended with the next
    /// free id, as transformers' `add_special_tokens` does (the model's embeddings then need
    /// `resize_vocab`). Returns the number of tokens appended.
    ///
    /// # Errors
    /// [`DataError::PromptTemplate`] when `replace_eos` is set without stop words.
    pub fn fix_special_tokens(&self, tok: &mut TokenizerBundle) -> Result<usize, DataError> {
        let mut stop_words: &[String] = &self.stop_words;
        let mut added = 0;
        if self.replace_eos {
            let Some((first, rest)) = stop_words.split_first() else {
                return Err(
                    self.error("stop words are required to replace the EOS token".to_owned())
                );
            };
            added += add_or_replace_eos(tok, first);
            stop_words = rest;
        }
        if tok.eos_token_id().is_none() {
            added += add_or_replace_eos(tok, FALLBACK_EOS);
        }
        if tok.pad_token_id().is_none() {
            tok.pad_token = tok.eos_token.clone();
        }
        if !stop_words.is_empty() {
            let specials: Vec<AddedToken> = stop_words
                .iter()
                .map(|w| AddedToken::from(w.clone(), true))
                .collect();
            added += add_new_special_tokens(tok, &specials);
            for word in stop_words {
                if !tok.additional_special_tokens.contains(word) {
                    tok.additional_special_tokens.push(word.clone());
                }
            }
        }
        Ok(added)
    }

    /// Token ids that end generation: the EOS id and each stop word's id.
    pub fn stop_token_ids(&self, tok: &TokenizerBundle) -> Vec<u32> {
        let mut ids: Vec<u32> = tok.eos_token_id().into_iter().collect();
        for id in self.stop_words.iter().filter_map(|w| tok.token_to_id(w)) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    }
}

/// Makes `eos` the EOS token, adding it as a special token; returns how many tokens were new.
fn add_or_replace_eos(tok: &mut TokenizerBundle, eos: &str) -> usize {
    if tok.eos_token.as_deref() == Some(eos) {
        return 0;
    }
    let added = add_new_special_tokens(tok, &[AddedToken::from(eos.to_owned(), true)]);
    tok.eos_token = Some(eos.to_owned());
    added
}

/// Registers `tokens` as special added tokens; returns how many were not in the vocabulary.
fn add_new_special_tokens(tok: &mut TokenizerBundle, tokens: &[AddedToken]) -> usize {
    let new = tokens
        .iter()
        .filter(|t| tok.token_to_id(&t.content).is_none())
        .count();
    tok.tokenizer.add_special_tokens(tokens);
    new
}
