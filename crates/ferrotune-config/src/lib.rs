//! LLaMA-Factory-compatible configuration for ferrotune.
//!
//! A config is a YAML (or JSON) mapping of keys exactly as LLaMA-Factory v0.9.5 and Hugging
//! Face `TrainingArguments` spell them, optionally followed by `key=value` overrides as on
//! LLaMA-Factory's command line. Loading runs in two stages: a raw key map that remembers
//! where every key was written ([`raw::RawArgs`]), then the typed, resolved and validated
//! [`Config`] with its five argument groups. Every known key has a status in [`registry`]:
//! supported, not built yet (an error when set), or accepted with no effect (logged).
//!
//! ```
//! use ferrotune_config::{Config, args::Stage};
//!
//! let yaml = "model_name_or_path: HuggingFaceTB/SmolLM2-135M-Instruct\n\
//!             stage: sft\ndo_train: true\ndataset: alpaca_en_demo\nlora_target: q_proj,v_proj\n";
//! let overrides = ["lora_rank=16".to_string()];
//! let cfg = Config::parse(yaml, "train.yaml".as_ref(), &overrides)?;
//! assert_eq!(cfg.finetuning.stage, Stage::Sft);
//! assert_eq!(cfg.finetuning.lora_target, ["q_proj", "v_proj"]);
//! assert_eq!(cfg.finetuning.lora_alpha, 32); // unset: 2 * lora_rank
//! # Ok::<(), ferrotune_config::ConfigError>(())
//! ```

#![warn(missing_docs)]

#[macro_use]
mod value;

pub mod args;
mod error;
pub mod raw;
pub mod registry;
mod validate;

use std::path::{Path, PathBuf};

pub use args::{
    DataArguments, FinetuningArguments, GeneratingArguments, ModelArguments, TrainingArguments,
};
pub use error::{ConfigError, Origin};
use raw::RawArgs;
use registry::KeyStatus;

/// A complete, typed and validated run configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// Model, tokenizer, quantization, export and inference-engine keys.
    pub model: ModelArguments,
    /// Dataset, template and tokenization keys.
    pub data: DataArguments,
    /// Stage, fine-tuning method, LoRA/freeze and preference-loss keys.
    pub finetuning: FinetuningArguments,
    /// Hugging Face trainer keys (optimizer, schedule, precision, logging, checkpoints).
    pub training: TrainingArguments,
    /// Decoding keys.
    pub generating: GeneratingArguments,
    /// The config file it was loaded from; `None` when built from overrides or in code.
    pub source: Option<PathBuf>,
    /// The sequence budget the data pipeline uses, in tokens: `cutoff_len - 1` when the
    /// config sets `packing: true` or `neat_packing: true`, else `cutoff_len`. LLaMA-Factory
    /// 0.9.5 reduces it in `DataArguments.__post_init__`, before the pt stage turns packing on
    /// by default, so packing by default does not reduce it.
    pub effective_cutoff_len: usize,
    /// Every key as the user wrote it (file lines, then `key=value` overrides replacing them),
    /// in writing order: what `training_args.yaml` records of a run.
    pub written: Vec<(String, serde_json::Value)>,
}

impl Config {
    /// The keys as written ([`Config::written`]) as a YAML document, one `key: value` per line
    /// in writing order: a config that reproduces the run (`training_args.yaml`).
    pub fn written_yaml(&self) -> String {
        let mut out = String::new();
        for (key, value) in &self.written {
            let mut map = serde_json::Map::new();
            map.insert(key.clone(), value.clone());
            // A one-key mapping always serializes; an empty line would only lose that key.
            out.push_str(&serde_norway::to_string(&map).unwrap_or_default());
        }
        out
    }

    /// Loads a `.yaml`/`.yml` (or `.json`) config file and applies `key=value` overrides on top.
    ///
    /// # Errors
    /// [`ConfigError::Io`] when the file cannot be read, then as [`Config::parse`].
    pub fn from_yaml_file(
        path: impl AsRef<Path>,
        overrides: &[String],
    ) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path, overrides)
    }

    /// Parses config text; `path` names the document in messages and picks the format
    /// (`.json` is JSON, anything else YAML).
    ///
    /// # Errors
    /// [`ConfigError::Syntax`], [`ConfigError::NotAMapping`], [`ConfigError::BadOverride`],
    /// then as [`Config::from_raw`].
    pub fn parse(text: &str, path: &Path, overrides: &[String]) -> Result<Config, ConfigError> {
        let mut raw = RawArgs::parse(text, path)?;
        raw.apply_overrides(overrides)?;
        Config::from_raw(raw)
    }

    /// Builds a config from `key=value` arguments alone (no file).
    ///
    /// # Errors
    /// As [`Config::parse`].
    pub fn from_overrides(overrides: &[String]) -> Result<Config, ConfigError> {
        let mut raw = RawArgs::default();
        raw.apply_overrides(overrides)?;
        Config::from_raw(raw)
    }

    /// Stage two: checks every key is known, converts values to their types, resolves the keys
    /// whose default depends on others, enforces the key status registry, then [`validate`]s.
    ///
    /// Resolution, as LLaMA-Factory does it: `lora_alpha` unset or 0 becomes `2 * lora_rank`;
    /// `packing` unset becomes `stage == pt`, and `neat_packing` forces it on; `report_to: none`
    /// becomes the empty list; `eval_steps` unset (or 0) with `eval_strategy: steps` becomes
    /// `logging_steps`.
    ///
    /// # Errors
    /// [`ConfigError::UnknownKey`] (with the closest known key), [`ConfigError::WrongType`],
    /// [`ConfigError::NotSupported`], [`ConfigError::Invalid`].
    ///
    /// [`validate`]: Config::validate
    pub fn from_raw(mut raw: RawArgs) -> Result<Config, ConfigError> {
        for (key, entry) in raw.entries() {
            if registry::lookup(key).is_none() {
                return Err(ConfigError::UnknownKey {
                    key: key.to_string(),
                    origin: entry.origin.clone(),
                    suggestion: registry::suggest(key),
                });
            }
        }
        let written = raw.clone();
        let lora_alpha: Option<u32> = take_optional(&mut raw, "lora_alpha")?.flatten();
        let packing: Option<bool> = take_optional(&mut raw, "packing")?.flatten();

        let mut cfg = Config {
            model: ModelArguments::from_raw(&mut raw)?,
            data: DataArguments::from_raw(&mut raw)?,
            finetuning: FinetuningArguments::from_raw(&mut raw)?,
            training: TrainingArguments::from_raw(&mut raw)?,
            generating: GeneratingArguments::from_raw(&mut raw)?,
            source: raw.source.clone(),
            effective_cutoff_len: 0,
            written: written
                .entries()
                .map(|(k, e)| (k.to_string(), e.value.clone()))
                .collect(),
        };
        let packing_written = packing == Some(true) || cfg.data.neat_packing;
        cfg.effective_cutoff_len = cfg
            .data
            .cutoff_len
            .saturating_sub(usize::from(packing_written));

        let ft = &mut cfg.finetuning;
        ft.lora_alpha = lora_alpha
            .filter(|alpha| *alpha > 0)
            .unwrap_or(2 * ft.lora_rank);
        cfg.data.packing = cfg.data.neat_packing || packing.unwrap_or(ft.stage == args::Stage::Pt);
        let tr = &mut cfg.training;
        tr.report_to.retain(|r| r != "none");
        if tr.eval_strategy == args::IntervalStrategy::Steps
            && tr.eval_steps.is_none_or(|s| s == 0.0)
        {
            tr.eval_steps = Some(tr.logging_steps);
        }

        cfg.check_key_status(&written)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks LLaMA-Factory's cross-key rules (and a few range checks of ours) on the typed
    /// config; see the `validate` module for the list and their sources.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the keys in conflict.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate::validate(self)
    }

    /// Keys set to a non-default value, across all groups, in group order.
    pub fn non_default_keys(&self) -> Vec<&'static str> {
        let mut keys = self.model.non_default_keys();
        keys.extend(self.data.non_default_keys());
        keys.extend(self.finetuning.non_default_keys());
        keys.extend(self.training.non_default_keys());
        keys.extend(self.generating.non_default_keys());
        keys
    }

    /// Errors on the first non-default unbuilt key or unbuilt value; logs the no-effect keys
    /// once.
    fn check_key_status(&self, written: &RawArgs) -> Result<(), ConfigError> {
        let not_supported = |key: &'static str, group: &'static str| {
            let (value, origin) = match written.get(key) {
                Some(entry) => (value::describe(&entry.value), entry.origin.clone()),
                None => (
                    "a non-default value".to_string(),
                    Origin::File {
                        path: self.source.clone().unwrap_or_default(),
                        line: None,
                    },
                ),
            };
            ConfigError::NotSupported {
                key,
                group,
                value,
                origin,
            }
        };
        let mut no_effect = Vec::new();
        for key in self.non_default_keys() {
            let Some(info) = registry::lookup(key) else {
                continue;
            };
            match info.status {
                KeyStatus::Supported => {}
                KeyStatus::Unbuilt => return Err(not_supported(info.key, info.group)),
                KeyStatus::NoEffect => no_effect.push(key),
            }
        }
        for (key, value) in registry::UNBUILT_VALUES {
            let set = written
                .get(key)
                .is_some_and(|entry| entry.value.as_str() == Some(value));
            if let (true, Some(info)) = (set, registry::lookup(key)) {
                return Err(not_supported(info.key, info.group));
            }
        }
        if !no_effect.is_empty() {
            tracing::info!(
                "config keys with no effect in ferrotune (Python machinery), ignored: {}",
                no_effect.join(", ")
            );
        }
        Ok(())
    }
}

/// Takes a key whose default is resolved from other keys, as `Some(value)` when it was given.
fn take_optional<T: value::ArgValue>(
    raw: &mut RawArgs,
    key: &'static str,
) -> Result<Option<T>, ConfigError> {
    raw.take(key).map(|entry| entry.convert(key)).transpose()
}
