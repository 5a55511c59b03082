//! The tokenizer files of an HF export, as transformers' `tokenizer.save_pretrained` writes
//! them for a fast tokenizer: `tokenizer.json`, `tokenizer_config.json` (special tokens, BOS/EOS
//! flags, `padding_side: left` as LLaMA-Factory's export sets it, the chat template) and
//! `special_tokens_map.json`.

use std::path::Path;

use ferrotune_hub::tokenizer::TokenizerBundle;
use serde_json::Value;

use crate::error::{ExportError, Result};
use crate::staging::{write_file, write_json};

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

    let mut config = tok.hf_tokenizer_config(chat_template);
    config.insert("padding_side".into(), "left".into());
    config.insert("clean_up_tokenization_spaces".into(), false.into());
    write_json(&dir.join("tokenizer_config.json"), &Value::Object(config))?;
    write_json(
        &dir.join("special_tokens_map.json"),
        &Value::Object(tok.hf_special_tokens_map()),
    )
}
