//! The tokenizer of a GGUF export (`tokenizer.ggml.*` and `tokenizer.chat_template`, llama.cpp's
//! key names): copied from the source GGUF when the model came from one, else derived from
//! `tokenizer.json`:
//! - byte-level BPE (SmolLM2, Qwen, Llama 3) as llama.cpp's `convert_hf_to_gguf.py`
//!   (`_set_vocab_gpt2`, `get_vocab_base`) writes it: `tokenizer.ggml.model = "gpt2"`, the
//!   pre-tokenizer's name, merges, token types 1 normal, 3 control (special added tokens), 4
//!   user-defined (other added tokens), 5 unused (`[PAD<id>]` filling ids the tokenizer does
//!   not use);
//! - SentencePiece-style BPE with byte fallback (Llama 2, Mistral, Gemma, Phi-3) as its
//!   `llama` vocabulary with scores: see the `sentencepiece` module.

mod sentencepiece;

use std::path::Path;

use ferrotune_hub::gguf::{GgufFile, GgufValue};
use ferrotune_hub::tokenizer::TokenizerBundle;
use serde_json::Value;

use crate::error::{ExportError, Result};

/// Qwen2's split regex (transformers `models/qwen2/tokenization_qwen2.py`), `pre = qwen2`.
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama 3's split regex (digits in groups of up to three), `pre = llama-bpe`.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// GGUF token types (`gguf-py` `TokenType`; [`sentencepiece`] adds 2 unknown and 6 byte).
const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const UNUSED: i32 = 5;

/// Tokenizer metadata for a model of `vocab_size` rows: from `source` (the GGUF the model was
/// read from) when given, else from the tokenizer's `tokenizer.json`. The special token ids are
/// those of `tok` (after the template's fixes) and the chat template is `chat_template`.
///
/// Errors: [`ExportError::Tokenizer`] when a special token or added token lies outside the
/// model's vocabulary, [`ExportError::NotBuilt`] for tokenizers other than byte-level BPE and
/// SentencePiece-style BPE from an HF folder.
pub fn tokenizer_metadata(
    tok: &TokenizerBundle,
    source: Option<&GgufFile>,
    vocab_size: usize,
    chat_template: Option<&str>,
) -> Result<Vec<(String, GgufValue)>> {
    let mut meta = match source {
        Some(file) => copied_from_gguf(file, vocab_size)?,
        None => from_tokenizer_json(tok, vocab_size)?,
    };
    let err = |msg: String| ExportError::Tokenizer {
        path: tok.source.clone(),
        msg,
    };
    for (key, token) in [
        ("bos_token_id", &tok.bos_token),
        ("eos_token_id", &tok.eos_token),
        ("unknown_token_id", &tok.unk_token),
        ("padding_token_id", &tok.pad_token),
    ] {
        let Some(token) = token else { continue };
        let id = tok
            .token_to_id(token)
            .filter(|&id| (id as usize) < vocab_size)
            .ok_or_else(|| {
                err(format!(
                    "{key}: token {token:?} is not among the model's {vocab_size} tokens; hint: the template added it, which needs `resize_vocab` (not built yet); pick a `template` whose stop words the tokenizer has"
                ))
            })?;
        meta.push((format!("tokenizer.ggml.{key}"), GgufValue::U32(id)));
    }
    meta.push((
        "tokenizer.ggml.add_bos_token".into(),
        GgufValue::Bool(tok.add_bos_token),
    ));
    meta.push((
        "tokenizer.ggml.add_eos_token".into(),
        GgufValue::Bool(tok.add_eos_token),
    ));
    if let Some(t) = chat_template {
        meta.push((
            "tokenizer.chat_template".into(),
            GgufValue::String(t.to_string()),
        ));
    }
    Ok(meta)
}

/// The `tokenizer.ggml.*` keys of `file` that describe the vocabulary (model, pre-tokenizer,
/// tokens, types, scores, merges, space prefix); ids, flags and the chat template are set by
/// the caller.
fn copied_from_gguf(file: &GgufFile, vocab_size: usize) -> Result<Vec<(String, GgufValue)>> {
    let tokens = file.get_str_array("tokenizer.ggml.tokens")?.len();
    if tokens != vocab_size {
        return Err(ExportError::Tokenizer {
            path: file.path().to_path_buf(),
            msg: format!(
                "tokenizer.ggml.tokens has {tokens} tokens but the model has {vocab_size} embedding rows"
            ),
        });
    }
    let skip = |k: &str| {
        k.ends_with("_token_id") || k.ends_with("_token") || k == "tokenizer.chat_template"
    };
    Ok(file
        .metadata()
        .iter()
        .filter(|(k, _)| k.starts_with("tokenizer.") && !skip(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect())
}

/// The `tokenizer.ggml.pre` name of a byte-level pre-tokenizer as ferrotune's GGUF tokenizer
/// loader rebuilds it, or `None` for another pre-tokenizer.
fn pre_name(pre: &Value) -> Option<&'static str> {
    let ty = |v: &Value| v.get("type").and_then(Value::as_str).map(str::to_string);
    match ty(pre).as_deref()? {
        "ByteLevel" => Some("gpt2"),
        "Sequence" => {
            let parts = pre.get("pretokenizers")?.as_array()?;
            let [first, second] = parts.as_slice() else {
                return None;
            };
            if ty(second).as_deref() != Some("ByteLevel") {
                return None;
            }
            match ty(first).as_deref()? {
                "Digits" if first.get("individual_digits") == Some(&Value::Bool(true)) => {
                    Some("smollm")
                }
                "Split" => match first.get("pattern")?.get("Regex")?.as_str()? {
                    QWEN2_SPLIT => Some("qwen2"),
                    LLAMA3_SPLIT => Some("llama-bpe"),
                    _ => None,
                },
                _ => None,
            }
        }
        _ => None,
    }
}

/// The merges of a BPE `model` (a `tokenizer.json`'s `model` object), in rank order; each is
/// stored as `"left right"` (tokenizers < 0.20) or `["left", "right"]`. Errors name the
/// malformed entry.
fn merge_pairs(model: &Value) -> std::result::Result<Vec<(String, String)>, String> {
    let malformed = |m: &Value| format!("malformed merge {m}");
    model["merges"]
        .as_array()
        .ok_or_else(|| "model.merges is not a list".to_string())?
        .iter()
        .map(|m| match m {
            Value::String(s) => s
                .split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| malformed(m)),
            Value::Array(pair) => match pair.as_slice() {
                [Value::String(a), Value::String(b)] => Ok((a.clone(), b.clone())),
                _ => Err(malformed(m)),
            },
            _ => Err(malformed(m)),
        })
        .collect()
}

/// Vocabulary metadata from `tokenizer.json` for byte-level BPE tokenizers, or for
/// SentencePiece-style ones through [`sentencepiece::metadata`].
fn from_tokenizer_json(
    tok: &TokenizerBundle,
    vocab_size: usize,
) -> Result<Vec<(String, GgufValue)>> {
    let path: &Path = &tok.source;
    let err = |msg: String| ExportError::Tokenizer {
        path: path.to_path_buf(),
        msg,
    };
    let text = tok
        .tokenizer
        .to_string(false)
        .map_err(|e| err(format!("cannot serialize the tokenizer: {e}")))?;
    let json: Value =
        serde_json::from_str(&text).map_err(|e| err(format!("tokenizer.json: {e}")))?;
    if sentencepiece::is_sentencepiece_bpe(&json) {
        return sentencepiece::metadata(&json, tok, vocab_size);
    }
    let model = &json["model"];
    let byte_level_bpe =
        model["type"].as_str() == Some("BPE") && model["byte_fallback"].as_bool() != Some(true);
    let pre = pre_name(&json["pre_tokenizer"]);
    let (true, Some(pre)) = (byte_level_bpe, pre) else {
        return Err(ExportError::NotBuilt {
            what: format!(
                "gguf export of the tokenizer in {} (model type {}, pre-tokenizer {})",
                path.display(),
                model["type"],
                json["pre_tokenizer"]["type"]
            ),
            supported: "supported from HF folders: byte-level BPE tokenizers (gpt2, smollm, qwen2, llama-bpe pre-tokenizers) and sentencepiece-style BPE with byte fallback; a model read from a GGUF keeps its own tokenizer".into(),
        });
    };
    let tokens = token_table(
        &json,
        vocab_size,
        &err,
        |_| NORMAL,
        |text, special| {
            (
                text.to_string(),
                if special { CONTROL } else { USER_DEFINED },
            )
        },
    )?;
    let (texts, types): (Vec<GgufValue>, Vec<GgufValue>) = tokens
        .into_iter()
        .map(|(text, ty)| (GgufValue::String(text), GgufValue::I32(ty)))
        .unzip();
    let merges = merge_pairs(model)
        .map_err(err)?
        .into_iter()
        .map(|(a, b)| GgufValue::String(format!("{a} {b}")))
        .collect();
    Ok(vec![
        (
            "tokenizer.ggml.model".into(),
            GgufValue::String("gpt2".into()),
        ),
        ("tokenizer.ggml.pre".into(), GgufValue::String(pre.into())),
        ("tokenizer.ggml.tokens".into(), GgufValue::Array(texts)),
        ("tokenizer.ggml.token_type".into(), GgufValue::Array(types)),
        ("tokenizer.ggml.merges".into(), GgufValue::Array(merges)),
    ])
}

/// One GGUF token per embedding row of a tokenizer.json: each `model.vocab` entry at its id,
/// typed by `vocab_type(text)`, then each added token as `added(content, special)` gives its
/// text and type; rows no token names become `[PAD<id>]` of type UNUSED, as llama.cpp's
/// converter fills them. Returns `vocab_size` (text, token type) pairs.
///
/// Errors (through `err`): a token id at or beyond `vocab_size`, a `model.vocab` that is not
/// an object or holds a non-integer id, a malformed added token.
pub(super) fn token_table(
    json: &Value,
    vocab_size: usize,
    err: &dyn Fn(String) -> ExportError,
    vocab_type: impl Fn(&str) -> i32,
    added: impl Fn(&str, bool) -> (String, i32),
) -> Result<Vec<(String, i32)>> {
    let mut tokens: Vec<Option<(String, i32)>> = vec![None; vocab_size];
    let mut place = |id: u64, text: String, ty: i32| -> Result<()> {
        let slot = tokens.get_mut(id as usize).ok_or_else(|| {
            err(format!(
                "token {text:?} has id {id}, outside the model's {vocab_size} embedding rows; hint: resizing the vocabulary (`resize_vocab`) is not built yet"
            ))
        })?;
        *slot = Some((text, ty));
        Ok(())
    };
    let vocab = json["model"]["vocab"]
        .as_object()
        .ok_or_else(|| err("model.vocab is not an object".into()))?;
    for (text, id) in vocab {
        let id = id
            .as_u64()
            .ok_or_else(|| err(format!("model.vocab[{text:?}] is not an id")))?;
        place(id, text.clone(), vocab_type(text))?;
    }
    for token in json["added_tokens"].as_array().into_iter().flatten() {
        let (Some(id), Some(content)) = (token["id"].as_u64(), token["content"].as_str()) else {
            return Err(err(format!("malformed added token {token}")));
        };
        let (text, ty) = added(content, token["special"].as_bool() == Some(true));
        place(id, text, ty)?;
    }
    Ok(tokens
        .into_iter()
        .enumerate()
        .map(|(i, t)| t.unwrap_or_else(|| (format!("[PAD{i}]"), UNUSED)))
        .collect())
}
