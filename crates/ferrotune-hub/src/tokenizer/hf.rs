//! Loading a tokenizer from a Hugging Face folder: `tokenizer.json` + `tokenizer_config.json`.
//!
//! Which file wins follows transformers 5.x (`tokenization_utils_base.py`): a separate
//! `chat_template.jinja` (or the older `chat_template.json`) overrides the `chat_template` key of
//! `tokenizer_config.json`; `special_tokens_map.json` fills in special tokens the config lacks.

use super::TokenizerBundle;
use crate::error::{HubError, Result};
use serde_json::Value;
use std::path::Path;

/// transformers writes `int(1e30)` as `model_max_length` to mean "no limit".
const NO_LIMIT: f64 = 1e18;

/// See [`TokenizerBundle::from_hf_dir`].
pub(super) fn load(dir: &Path) -> Result<TokenizerBundle> {
    let tok_path = dir.join("tokenizer.json");
    if !tok_path.is_file() {
        return Err(HubError::Tokenizer {
            path: tok_path,
            msg:
                "file not found; hint: the folder needs a fast-tokenizer tokenizer.json (save one \
                  with transformers' `AutoTokenizer.from_pretrained(...).save_pretrained(...)`)"
                    .to_string(),
        });
    }
    let tokenizer =
        tokenizers::Tokenizer::from_file(&tok_path).map_err(|e| HubError::Tokenizer {
            path: tok_path.clone(),
            msg: format!("cannot parse: {e}"),
        })?;
    let config = read_json_object(&dir.join("tokenizer_config.json"))?.unwrap_or_default();
    let special_map = read_json_object(&dir.join("special_tokens_map.json"))?.unwrap_or_default();
    let config_path = dir.join("tokenizer_config.json");

    let token = |key: &str| -> Result<Option<String>> {
        match config.get(key).filter(|v| !v.is_null()) {
            Some(v) => token_text(v, &config_path, key),
            None => match special_map.get(key).filter(|v| !v.is_null()) {
                Some(v) => token_text(v, &dir.join("special_tokens_map.json"), key),
                None => Ok(None),
            },
        }
    };
    let flag = |key: &str| -> Result<Option<bool>> {
        match config.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(bad(&config_path, key, "a bool", other)),
        }
    };
    let explicit = config.contains_key("add_bos_token") || config.contains_key("add_eos_token");
    let mut bundle = TokenizerBundle {
        tokenizer,
        bos_token: token("bos_token")?,
        eos_token: token("eos_token")?,
        pad_token: token("pad_token")?,
        unk_token: token("unk_token")?,
        add_bos_token: flag("add_bos_token")?.unwrap_or(false),
        add_eos_token: flag("add_eos_token")?.unwrap_or(false),
        chat_template: chat_template(dir, &config, &config_path)?,
        additional_special_tokens: additional_special_tokens(&config, &special_map, dir)?,
        model_max_length: model_max_length(&config, &config_path)?,
        source: dir.to_path_buf(),
        fast: Default::default(),
    };
    bundle.apply_bos_eos(explicit)?;
    Ok(bundle)
}

/// Parses `path` as a JSON object; `Ok(None)` when the file does not exist.
fn read_json_object(path: &Path) -> Result<Option<serde_json::Map<String, Value>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(HubError::io(path, e)),
    };
    match serde_json::from_str(&text) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(other) => Err(HubError::Tokenizer {
            path: path.to_path_buf(),
            msg: format!("expected a json object, found {}", json_kind(&other)),
        }),
        Err(e) => Err(HubError::Tokenizer {
            path: path.to_path_buf(),
            msg: format!("invalid json: {e}"),
        }),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn bad(path: &Path, key: &str, expected: &str, got: &Value) -> HubError {
    HubError::Tokenizer {
        path: path.to_path_buf(),
        msg: format!("`{key}` should be {expected}, found {}", json_kind(got)),
    }
}

/// A special token given as `"<s>"` or as an AddedToken object `{"content": "<s>", ...}`.
fn token_text(v: &Value, path: &Path, key: &str) -> Result<Option<String>> {
    match v {
        Value::String(s) => Ok(Some(s.clone())),
        Value::Object(o) => match o.get("content") {
            Some(Value::String(s)) => Ok(Some(s.clone())),
            _ => Err(bad(
                path,
                key,
                "a string or an object with a string `content`",
                v,
            )),
        },
        other => Err(bad(
            path,
            key,
            "a string or an object with a string `content`",
            other,
        )),
    }
}

/// `chat_template.jinja` > `chat_template.json` > `tokenizer_config.json` `chat_template`.
fn chat_template(
    dir: &Path,
    config: &serde_json::Map<String, Value>,
    config_path: &Path,
) -> Result<Option<String>> {
    let jinja = dir.join("chat_template.jinja");
    match std::fs::read_to_string(&jinja) {
        Ok(text) => return Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(HubError::io(jinja, e)),
    }
    let json_path = dir.join("chat_template.json");
    if let Some(obj) = read_json_object(&json_path)? {
        if let Some(v) = obj.get("chat_template") {
            return template_value(v, &json_path);
        }
    }
    match config.get("chat_template") {
        None => Ok(None),
        Some(v) => template_value(v, config_path),
    }
}

/// A template given as a string, or as a list of `{name, template}` (the `default` one is used).
fn template_value(v: &Value, path: &Path) -> Result<Option<String>> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Array(items) => {
            let mut names = Vec::new();
            for item in items {
                let name = item.get("name").and_then(Value::as_str);
                let template = item.get("template").and_then(Value::as_str);
                match (name, template) {
                    (Some("default"), Some(t)) => return Ok(Some(t.to_string())),
                    (Some(n), Some(_)) => names.push(n.to_string()),
                    _ => {
                        return Err(bad(
                            path,
                            "chat_template",
                            "a list of {name, template}",
                            item,
                        ))
                    }
                }
            }
            tracing::warn!(path = %path.display(), ?names, "chat_template list has no `default` entry; none used");
            Ok(None)
        }
        other => Err(bad(
            path,
            "chat_template",
            "a string or a list of {name, template}",
            other,
        )),
    }
}

/// `additional_special_tokens` (or transformers 5's `extra_special_tokens` list) from the
/// config, else from `special_tokens_map.json`.
fn additional_special_tokens(
    config: &serde_json::Map<String, Value>,
    special_map: &serde_json::Map<String, Value>,
    dir: &Path,
) -> Result<Vec<String>> {
    let sources = [
        (config, "tokenizer_config.json", "additional_special_tokens"),
        (config, "tokenizer_config.json", "extra_special_tokens"),
        (
            special_map,
            "special_tokens_map.json",
            "additional_special_tokens",
        ),
    ];
    for (map, file, key) in sources {
        match map.get(key) {
            Some(Value::Array(items)) => {
                let path = dir.join(file);
                return items
                    .iter()
                    .map(|v| token_text(v, &path, key).map(Option::unwrap_or_default))
                    .collect();
            }
            // transformers 5 also allows a {name: token} mapping for extra_special_tokens;
            // those are named extras, not additional special tokens.
            Some(Value::Object(_)) | Some(Value::Null) | None => continue,
            Some(other) => return Err(bad(&dir.join(file), key, "a list of tokens", other)),
        }
    }
    Ok(Vec::new())
}

/// `model_max_length`, unless absent or transformers' "no limit" placeholder (`1e30`).
fn model_max_length(
    config: &serde_json::Map<String, Value>,
    config_path: &Path,
) -> Result<Option<usize>> {
    match config.get("model_max_length") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(v), _) if (v as f64) < NO_LIMIT => Ok(usize::try_from(v).ok()),
            (_, Some(f)) if f >= NO_LIMIT => Ok(None),
            _ => Err(bad(
                config_path,
                "model_max_length",
                "a positive integer",
                &Value::Number(n.clone()),
            )),
        },
        Some(other) => Err(bad(
            config_path,
            "model_max_length",
            "a positive integer",
            other,
        )),
    }
}
