//! `generation_config.json`: the decoding defaults a model ships with (transformers'
//! `GenerationConfig`). Generation stops on any of its eos ids, which may differ from the
//! tokenizer's single eos token (Llama 3 lists several).

use std::path::Path;

use serde::Deserialize;

use crate::error::{HubError, Result};

/// The fields of `generation_config.json` that decoding uses; absent fields are `None`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct GenerationConfig {
    /// bos id.
    #[serde(default, deserialize_with = "one_or_many")]
    pub bos_token_id: Vec<u32>,
    /// Every id that ends generation (an int or a list in the file).
    #[serde(default, deserialize_with = "one_or_many")]
    pub eos_token_id: Vec<u32>,
    /// pad id(s).
    #[serde(default, deserialize_with = "one_or_many")]
    pub pad_token_id: Vec<u32>,
    /// Sample instead of greedy decoding.
    pub do_sample: Option<bool>,
    /// Softmax temperature.
    pub temperature: Option<f64>,
    /// Nucleus sampling mass.
    pub top_p: Option<f64>,
    /// Top-k sampling.
    pub top_k: Option<u64>,
    /// Repetition penalty (CTRL, Keskar et al. 2019, eq. in §4.1).
    pub repetition_penalty: Option<f64>,
    /// New-token budget.
    pub max_new_tokens: Option<u64>,
    /// Total length budget (prompt + new tokens).
    pub max_length: Option<u64>,
}

impl GenerationConfig {
    /// Reads `dir/generation_config.json`; `Ok(None)` when the folder has none.
    ///
    /// Errors: [`HubError::Io`] when it cannot be read, [`HubError::Json`] (with line and
    /// column) when it is malformed or a field has the wrong type.
    pub fn from_hf_dir(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join("generation_config.json");
        if !path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| HubError::io(&path, e))?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| HubError::Json {
                path,
                msg: e.to_string(),
            })
    }
}

/// Accepts `null`, an id, or a list of ids.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<u32>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    let id = |x: &serde_json::Value| x.as_u64().and_then(|x| u32::try_from(x).ok());
    let bad = || {
        serde::de::Error::custom(format!(
            "expected a token id or a list of token ids, got {v}"
        ))
    };
    match &v {
        serde_json::Value::Null => Ok(Vec::new()),
        serde_json::Value::Array(a) => a.iter().map(|x| id(x).ok_or_else(bad)).collect(),
        x => id(x).map(|x| vec![x]).ok_or_else(bad),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("generation_config.json"), text).unwrap();
        dir
    }

    #[test]
    fn reads_the_tiny_fixture() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny/gemma");
        let g = GenerationConfig::from_hf_dir(&dir).unwrap().unwrap();
        assert_eq!(g.bos_token_id, vec![2]);
        assert_eq!(g.eos_token_id, vec![1]);
        assert_eq!(g.pad_token_id, vec![0]);
    }

    #[test]
    fn eos_list_and_sampling_fields() {
        let d = write(
            r#"{"eos_token_id": [128001, 128008, 128009], "do_sample": true, "temperature": 0.6, "top_p": 0.9, "pad_token_id": null}"#,
        );
        let g = GenerationConfig::from_hf_dir(d.path()).unwrap().unwrap();
        assert_eq!(g.eos_token_id, vec![128001, 128008, 128009]);
        assert_eq!(g.do_sample, Some(true));
        assert_eq!(g.temperature, Some(0.6));
        assert!(g.pad_token_id.is_empty());
    }

    #[test]
    fn absent_file_is_none_and_bad_file_names_line() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(GenerationConfig::from_hf_dir(d.path()).unwrap(), None);
        let d = write("{\n  \"eos_token_id\": \"two\"\n}");
        let e = GenerationConfig::from_hf_dir(d.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("generation_config.json")
                && e.contains("expected a token id")
                && e.contains("\"two\""),
            "{e}"
        );
    }
}
