//! A tokenizer together with what its configuration says about it: special tokens, whether BOS
//! and EOS are added, and the chat template.
//!
//! Two sources, one result ([`TokenizerBundle`]):
//! - a Hugging Face folder: `tokenizer.json` plus `tokenizer_config.json` (module `hf`);
//! - GGUF metadata (`tokenizer.ggml.*`), rebuilt with the `tokenizers` crate (module `gguf`).
//!
//! Encoding follows transformers' `TokenizersBackend`: when the configuration states
//! `add_bos_token`/`add_eos_token`, or the tokenizer has no post-processor, a template
//! post-processor adding exactly those tokens replaces the one in `tokenizer.json`
//! (transformers 5.x, `tokenization_utils_tokenizers.py`, `update_post_processor`).

mod fast;
mod gguf;
mod hf;

use crate::error::{HubError, Result};
use std::path::{Path, PathBuf};
use tokenizers::processors::template::TemplateProcessing;

/// A tokenizer plus what `tokenizer_config.json` or GGUF metadata says about it.
#[derive(Clone)]
pub struct TokenizerBundle {
    /// The tokenizer itself (normalizer, pre-tokenizer, model, post-processor, decoder).
    pub tokenizer: tokenizers::Tokenizer,
    /// Beginning-of-sequence token text, e.g. `<|im_start|>` or `<s>`.
    pub bos_token: Option<String>,
    /// End-of-sequence token text, e.g. `<|im_end|>`.
    pub eos_token: Option<String>,
    /// Padding token text.
    pub pad_token: Option<String>,
    /// Unknown token text.
    pub unk_token: Option<String>,
    /// Whether [`TokenizerBundle::encode`] with `add_special_tokens` puts the BOS token first.
    pub add_bos_token: bool,
    /// Whether [`TokenizerBundle::encode`] with `add_special_tokens` puts the EOS token last.
    pub add_eos_token: bool,
    /// The default Jinja chat template, if any.
    pub chat_template: Option<String>,
    /// Further special tokens named by the configuration (e.g. `<|im_start|>`), in its order.
    pub additional_special_tokens: Vec<String>,
    /// Longest input the model was trained for, when the configuration states a real limit.
    pub model_max_length: Option<usize>,
    /// The folder or GGUF file the tokenizer was built from; errors name it.
    pub source: PathBuf,
    /// The fast byte-level BPE encoder of [`TokenizerBundle::encode`], built on first use.
    fast: fast::FastSlot,
}

impl std::fmt::Debug for TokenizerBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenizerBundle")
            .field("source", &self.source)
            .field("vocab_size", &self.tokenizer.get_vocab_size(true))
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .field("pad_token", &self.pad_token)
            .field("unk_token", &self.unk_token)
            .field("add_bos_token", &self.add_bos_token)
            .field("add_eos_token", &self.add_eos_token)
            .field("has_chat_template", &self.chat_template.is_some())
            .finish()
    }
}

impl TokenizerBundle {
    /// The special tokens as `(key, text)` in transformers' order, unset ones left out.
    fn special_token_texts(&self) -> Vec<(&'static str, &str)> {
        [
            ("bos_token", &self.bos_token),
            ("eos_token", &self.eos_token),
            ("pad_token", &self.pad_token),
            ("unk_token", &self.unk_token),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
        .collect()
    }

    /// The `tokenizer_config.json` object transformers' `save_pretrained` writes for a fast
    /// tokenizer: `tokenizer_class`, the special tokens, `add_bos_token`/`add_eos_token`,
    /// `additional_special_tokens`, `model_max_length` when known and `chat_template` when
    /// given. Callers add their own keys (e.g. `padding_side`).
    pub fn hf_tokenizer_config(
        &self,
        chat_template: Option<&str>,
    ) -> serde_json::Map<String, serde_json::Value> {
        let mut config = serde_json::Map::new();
        config.insert("tokenizer_class".into(), "PreTrainedTokenizerFast".into());
        for (key, text) in self.special_token_texts() {
            config.insert(key.into(), text.into());
        }
        config.insert("add_bos_token".into(), self.add_bos_token.into());
        config.insert("add_eos_token".into(), self.add_eos_token.into());
        config.insert(
            "additional_special_tokens".into(),
            self.additional_special_tokens.clone().into(),
        );
        if let Some(n) = self.model_max_length {
            config.insert("model_max_length".into(), n.into());
        }
        if let Some(t) = chat_template {
            config.insert("chat_template".into(), t.into());
        }
        config
    }

    /// The `special_tokens_map.json` object: the set special tokens and, when any,
    /// `additional_special_tokens`.
    pub fn hf_special_tokens_map(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut map = serde_json::Map::new();
        for (key, text) in self.special_token_texts() {
            map.insert(key.into(), text.into());
        }
        if !self.additional_special_tokens.is_empty() {
            map.insert(
                "additional_special_tokens".into(),
                self.additional_special_tokens.clone().into(),
            );
        }
        map
    }

    /// Loads `dir/tokenizer.json` (required) and `dir/tokenizer_config.json` (optional), the way
    /// transformers' `AutoTokenizer.from_pretrained(dir)` does for a fast tokenizer.
    ///
    /// The chat template comes from `chat_template.jinja`, else `chat_template.json`, else
    /// `tokenizer_config.json` (a string, or a list of `{name, template}` of which `default` is
    /// taken). Special tokens may be strings or `{"content": ...}` objects; missing ones are
    /// looked up in `special_tokens_map.json`.
    ///
    /// Errors: [`HubError::Tokenizer`] naming the file that is missing or malformed.
    pub fn from_hf_dir(dir: &Path) -> Result<Self> {
        hf::load(dir)
    }

    /// Rebuilds the tokenizer described by a GGUF file's `tokenizer.ggml.*` metadata.
    ///
    /// `tokenizer.ggml.model` `gpt2` gives a byte-level BPE whose pre-tokenizer follows
    /// `tokenizer.ggml.pre`; `llama` gives a SentencePiece-style BPE with byte fallback.
    /// Tokens typed control (3) or user-defined (4) become special added tokens.
    ///
    /// Errors: [`HubError::MissingKey`]/[`HubError::WrongType`] for unusable metadata,
    /// [`HubError::Tokenizer`] for an unknown model or pre-tokenizer type.
    pub fn from_gguf(file: &crate::gguf::GgufFile) -> Result<Self> {
        gguf::build(file)
    }

    /// The id of `token` in the vocabulary or among the added tokens.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.tokenizer.token_to_id(token)
    }

    /// The id of [`TokenizerBundle::bos_token`].
    pub fn bos_token_id(&self) -> Option<u32> {
        self.bos_token.as_deref().and_then(|t| self.token_to_id(t))
    }

    /// The id of [`TokenizerBundle::eos_token`].
    pub fn eos_token_id(&self) -> Option<u32> {
        self.eos_token.as_deref().and_then(|t| self.token_to_id(t))
    }

    /// The id of [`TokenizerBundle::pad_token`].
    pub fn pad_token_id(&self) -> Option<u32> {
        self.pad_token.as_deref().and_then(|t| self.token_to_id(t))
    }

    /// Token ids of `text`; with `add_special_tokens`, BOS/EOS are added as configured.
    ///
    /// Byte-level BPE tokenizers of a recognized layout (GPT-2 style, e.g. SmolLM2's) go
    /// through a faster encoder that gives the same ids as `tokenizers` (module `fast`); the
    /// others, and those changed since in a way the fast encoder does not handle, through
    /// `tokenizers` itself.
    ///
    /// Errors: [`HubError::Tokenizer`] if the tokenizer fails.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        if let Some(ids) = self.fast.encode(&self.tokenizer, text, add_special_tokens) {
            return ids.map_err(|e| self.error(format!("encoding failed: {e}")));
        }
        let encoding = self
            .tokenizer
            .encode_fast(text, add_special_tokens)
            .map_err(|e| self.error(format!("encoding failed: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Whether [`TokenizerBundle::encode`] (without special tokens) takes the fast byte-level
    /// BPE path for this tokenizer rather than `tokenizers`' general pipeline.
    pub fn uses_fast_encoder(&self) -> bool {
        self.fast.is_fast(&self.tokenizer)
    }

    /// The text of `ids`; with `skip_special_tokens`, special tokens are left out.
    ///
    /// Errors: [`HubError::Tokenizer`] if the tokenizer fails.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.tokenizer
            .decode(ids, skip_special_tokens)
            .map_err(|e| self.error(format!("decoding failed: {e}")))
    }

    fn error(&self, msg: String) -> HubError {
        HubError::Tokenizer {
            path: self.source.clone(),
            msg,
        }
    }

    /// Installs the BOS/EOS template post-processor (see the module doc) when `explicit` (the
    /// configuration states `add_bos_token`/`add_eos_token`) or there is no post-processor.
    fn apply_bos_eos(&mut self, explicit: bool) -> Result<()> {
        if !explicit && self.tokenizer.get_post_processor().is_some() {
            return Ok(());
        }
        let mut special = Vec::new();
        let mut single = Vec::new();
        let mut pair = Vec::new();
        let mut add = |flag: bool, token: &Option<String>, name: &str| -> Result<Option<String>> {
            let (true, Some(token)) = (flag, token) else {
                return Ok(None);
            };
            let id = self.tokenizer.token_to_id(token).ok_or_else(|| HubError::Tokenizer {
                path: self.source.clone(),
                msg: format!("add_{name}_token is set but {name}_token {token:?} is not in the vocabulary"),
            })?;
            special.push((token.clone(), id));
            Ok(Some(token.clone()))
        };
        let bos = add(self.add_bos_token, &self.bos_token, "bos")?;
        let eos = add(self.add_eos_token, &self.eos_token, "eos")?;
        for (seq, type_id) in [("$A", 0), ("$B", 1)] {
            let target = if type_id == 0 { &mut single } else { &mut pair };
            if let Some(bos) = &bos {
                target.push(format!("{bos}:{type_id}"));
            }
            target.push(format!("{seq}:{type_id}"));
            if let Some(eos) = &eos {
                target.push(format!("{eos}:{type_id}"));
            }
        }
        let pair: Vec<String> = single.iter().cloned().chain(pair).collect();
        let template = TemplateProcessing::builder()
            .try_single(single)
            .and_then(|b| b.try_pair(pair))
            .map_err(|e| self.error(format!("bos/eos template: {e}")))?
            .special_tokens(special)
            .build()
            .map_err(|e| self.error(format!("bos/eos template: {e}")))?;
        self.tokenizer.with_post_processor(Some(template));
        Ok(())
    }
}
