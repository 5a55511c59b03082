//! The tokenizer files of an HF export, as transformers' `tokenizer.save_pretrained` writes
//! them for a fast tokenizer: `tokenizer.json`, `tokenizer_config.json` (special tokens, BOS/EOS
//! flags, `padding_side: left` as LLaMA-Factory's export sets it, the chat template) and
//! `special_tokens_map.json`.

use std::path::Path;

use ferrotune_hub::tokenizer::TokenizerBundle;
use serde_json::{Map, Value};

use crate::error::{ExportError, Result};
use crate::staging::{write_file, write_json};

/// The special tokens as `(key, text)`, unset ones left out.
fn special_tokens(tok: &TokenizerBundle) -> Vec<(&'static str, &str)> {
    [
        ("bos_token", &tok.bos_token),
        ("eos_token", &tok.eos_token),
        ("pad_token", &tok.pad_token),
        ("unk_token", &tok.unk_token),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
    .collect()
}

/// Writes the three tokenizer files into `dir`, with `chat_template` (or none).
///
/// Errors: [`ExportError::Write`] when the tokenizer cannot be serialized, [`ExportError::Io`].
pub fn write_tokenizer_files(
    dir: &Path,
    tok: &TokenizerBundle,
    chat_template: Option<&str>,
) -> Result<()> {
    let path = dir.join("tokenizer.json");
    let text = tok
        .tokenizer
        .to_string(false)
        .map_err(|e| ExportError::Write {
            path: path.clone(),
            msg: e.to_string(),
        })?;
    write_file(&path, text.as_bytes())?;

    let mut config = Map::new();
    config.insert("tokenizer_class".into(), "PreTrainedTokenizerFast".into());
    for (key, text) in special_tokens(tok) {
        config.insert(key.into(), text.into());
    }
    config.insert("add_bos_token".into(), tok.add_bos_token.into());
    config.insert("add_eos_token".into(), tok.add_eos_token.into());
    config.insert(
        "additional_special_tokens".into(),
        tok.additional_special_tokens.clone().into(),
    );
    if let Some(n) = tok.model_max_length {
        config.insert("model_max_length".into(), n.into());
    }
    config.insert("padding_side".into(), "left".into());
    config.insert("clean_up_tokenization_spaces".into(), false.into());
    if let Some(t) = chat_template {
        config.insert("chat_template".into(), t.into());
    }
    write_json(&dir.join("tokenizer_config.json"), &Value::Object(config))?;

    let mut map = Map::new();
    for (key, text) in special_tokens(tok) {
        map.insert(key.into(), text.into());
    }
    if !tok.additional_special_tokens.is_empty() {
        map.insert(
            "additional_special_tokens".into(),
            tok.additional_special_tokens.clone().into(),
        );
    }
    write_json(&dir.join("special_tokens_map.json"), &Value::Object(map))
}
