//! A chat model from a config, as LLaMA-Factory's `ChatModel` (`chat/chat_model.py` and
//! `chat/hf_engine.py`, v0.9.5): the model of `model_name_or_path` with the adapters of
//! `adapter_name_or_path` merged into it, the prompt template of `template` (tokenizer fixed
//! for it), and the generating keys; a conversation is rendered with the template's one-turn
//! encoding (history + the new user message + an empty assistant turn) and answered by the
//! [`Generator`].

use std::path::PathBuf;

use candle_core::Device;
use ferrotune_config::Config;
use ferrotune_data::message::{Message, Role};
use ferrotune_data::pipeline::prepare_tokenizer_and_template;
use ferrotune_data::template::Template;
use ferrotune_hub::generation_config::GenerationConfig;
use ferrotune_hub::gguf::GgufFile;
use ferrotune_hub::resolve::{resolve_model, HubOptions, ModelSource};
use ferrotune_hub::tokenizer::TokenizerBundle;
use ferrotune_model::adapters::merge_adapter_dirs;
use ferrotune_model::{load_gguf, load_gguf_quantized, load_hf_dir, CausalLM};
use tracing::info;

use crate::engine::{Generator, TextGeneration};
use crate::error::{InferError, Result};
use crate::params::GenerationParams;

/// A model, its tokenizer and where they came from, loaded as a config names them.
#[derive(Debug)]
pub struct LoadedModel {
    /// The resolved `model_name_or_path` (HF folder or GGUF file).
    pub source: ModelSource,
    /// The tokenizer of the source (`tokenizer.json` or the GGUF's `tokenizer.ggml.*`).
    pub tokenizer: TokenizerBundle,
    /// The model, f32.
    pub model: CausalLM,
}

/// How [`load_from_config`] keeps a GGUF model's weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadFor {
    /// f32 weights only (training, evaluation, export).
    Training,
    /// Also keep the GGUF's Q8_0/Q4_0/Q4_1 blocks for fast decoding
    /// (`ferrotune_model::load_gguf_quantized`); f32 weights stay for prefill and adapters.
    Generation,
}

/// Resolves `model_name_or_path` (a local folder or `.gguf` file, the Hugging Face cache, or
/// a download, with `cache_dir` and `hf_hub_token`) and loads the tokenizer and the model.
///
/// Errors: [`InferError::Config`] without `model_name_or_path`; resolution, tokenizer and
/// model loading errors naming the file.
pub fn load_from_config(cfg: &Config, device: &Device, load_for: LoadFor) -> Result<LoadedModel> {
    let name = cfg.model.model_name_or_path.as_deref().ok_or_else(|| {
        InferError::Config(
            "`model_name_or_path` is not set; hint: set it to a folder, a .gguf file or a hub id"
                .into(),
        )
    })?;
    let mut hub = HubOptions::from_env();
    if let Some(dir) = &cfg.model.cache_dir {
        hub.cache_dir = Some(PathBuf::from(dir));
    }
    if let Some(token) = &cfg.model.hf_hub_token {
        hub.token = Some(token.clone());
    }
    let source = resolve_model(name, &hub)?;
    let (tokenizer, model) = match &source {
        ModelSource::Gguf(path) => {
            let file = GgufFile::open(path)?;
            let model = match load_for {
                LoadFor::Training => load_gguf(&file, device)?,
                LoadFor::Generation => load_gguf_quantized(&file, device)?,
            };
            (TokenizerBundle::from_gguf(&file)?, model)
        }
        ModelSource::HfDir(dir) => (
            TokenizerBundle::from_hf_dir(dir)?,
            load_hf_dir(dir, device)?,
        ),
    };
    info!(parameters = model.num_parameters(), "model loaded");
    Ok(LoadedModel {
        source,
        tokenizer,
        model,
    })
}

/// A model ready to chat: generator, template and generating settings.
#[derive(Debug)]
pub struct ChatModel {
    generator: Generator,
    template: Template,
    params: GenerationParams,
}

impl ChatModel {
    /// Loads what `cfg` names: the model, the merged adapters, the template (and the tokenizer
    /// fixed for it), stop ids (eos, the template's stop words, `generation_config.json`'s
    /// `eos_token_id`), and the generating keys with `seed`.
    ///
    /// Errors: loading errors of [`load_from_config`] and of merging the adapters, template
    /// errors, and [`InferError::InvalidParam`] for generating keys that cannot be used.
    pub fn from_config(cfg: &Config, device: &Device) -> Result<Self> {
        let loaded = load_from_config(cfg, device, LoadFor::Generation)?;
        let model = merge_adapter_dirs(loaded.model, &cfg.model.adapter_name_or_path)?;
        let (tokenizer, template) = prepare_tokenizer_and_template(cfg, loaded.tokenizer)
            .map_err(|e| InferError::Config(e.to_string()))?;
        let mut stop = template.stop_token_ids(&tokenizer);
        if let ModelSource::HfDir(dir) = &loaded.source {
            if let Some(gc) = GenerationConfig::from_hf_dir(dir)? {
                stop.extend(gc.eos_token_id);
            }
        }
        let params = GenerationParams::from_args(&cfg.generating, cfg.training.seed);
        params.validate()?;
        Ok(Self {
            generator: Generator::new(model, tokenizer).with_stop_token_ids(stop),
            template,
            params,
        })
    }

    /// The generator (model and tokenizer).
    pub fn generator(&self) -> &Generator {
        &self.generator
    }

    /// The generating settings used by [`ChatModel::chat`].
    pub fn params(&self) -> &GenerationParams {
        &self.params
    }

    /// Prompt ids for `messages` (user/assistant turns, the last one from the user) with
    /// `system` (`None`: the template's default system) and `tools` (JSON list), as
    /// LLaMA-Factory's `_process_args`: the messages plus an empty assistant turn, encoded
    /// one-turn.
    ///
    /// Errors: [`InferError::Config`] when the last message is not the user's (or an
    /// observation) or the template cannot encode the conversation.
    pub fn prompt_ids(
        &self,
        messages: &[Message],
        system: Option<&str>,
        tools: Option<&str>,
    ) -> Result<Vec<u32>> {
        match messages.last().map(|m| m.role) {
            Some(Role::User | Role::Observation) => {}
            other => {
                return Err(InferError::Config(format!(
                    "a chat must end with a user message, it ends with {}",
                    other.map_or("nothing".to_string(), |r| r.to_string())
                )))
            }
        }
        let mut turns = messages.to_vec();
        turns.push(Message::new(Role::Assistant, ""));
        let (prompt, _) = self
            .template
            .encode_oneturn(self.generator.tokenizer(), &turns, system, tools)
            .map_err(|e| InferError::Config(e.to_string()))?;
        Ok(prompt)
    }

    /// Answers the conversation, streaming the text to `on_text` as it is generated (never a
    /// broken character); returns the answer, its tokens and speed.
    ///
    /// Errors: as [`ChatModel::prompt_ids`] and [`Generator::generate_text`].
    pub fn chat(
        &self,
        messages: &[Message],
        system: Option<&str>,
        tools: Option<&str>,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<TextGeneration> {
        let prompt = self.prompt_ids(messages, system, tools)?;
        self.generator.generate_text(&prompt, &self.params, on_text)
    }
}
