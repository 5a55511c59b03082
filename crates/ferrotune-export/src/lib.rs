//! Merging adapters into a model and writing it for other tools, as LLaMA-Factory v0.9.5's
//! `llamafactory-cli export` (`export_model` in `train/tuner.py`) does, plus a GGUF export.
//!
//! | module | what it does |
//! |---|---|
//! | [`plan`] | the export keys of a config, checked ([`ExportPlan`]) |
//! | [`hf`] | safetensors shards + index, `config.json`, `generation_config.json` |
//! | [`tokenizer_files`] | `tokenizer.json`, `tokenizer_config.json`, `special_tokens_map.json` |
//! | [`template`] | the prompt template as a Jinja chat template and as an Ollama `Modelfile` |
//! | [`gguf`] | a GGUF v3 file (llama, mistral, qwen2, qwen3): metadata, tokenizer, f32/f16/bf16/q8_0/q4_0/q4_1 tensors |
//! | [`staging`] | write into a temporary folder, rename onto `export_dir` when complete |
//!
//! ```no_run
//! let cfg = ferrotune_config::Config::from_overrides(&[
//!     "model_name_or_path=models/SmolLM2-135M-Instruct.Q4_1.gguf".into(),
//!     "adapter_name_or_path=saves/smollm2-lora".into(),
//!     "template=smollm2".into(),
//!     "export_dir=exports/smollm2-merged".into(),
//! ])?;
//! let summary = ferrotune_export::export_model(&cfg)?;
//! println!("{:?} in {}", summary.files, summary.export_dir.display());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod error;
pub mod gguf;
pub mod hf;
pub mod plan;
pub mod staging;
pub mod template;
pub mod tokenizer_files;

use std::path::{Path, PathBuf};

use candle_core::Device;
use ferrotune_config::args::{ExportFormat, ExportQuantization, InferDtype};
use ferrotune_config::Config;
use ferrotune_data::pipeline::prepare_tokenizer_and_template;
use ferrotune_hub::gguf::{GgmlType, GgufFile};
use ferrotune_hub::resolve::{resolve_model, HubOptions, ModelSource};
use ferrotune_hub::tokenizer::TokenizerBundle;
use ferrotune_model::adapters::merge_adapter_dirs;
use ferrotune_model::{load_model, CausalLM};
use tracing::info;

pub use error::{ExportError, Result};
pub use hf::WeightDtype;
pub use plan::ExportPlan;
pub use staging::Staging;
pub use template::ChatTemplateSource;

/// What [`export_model`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportSummary {
    /// The finished `export_dir`.
    pub export_dir: PathBuf,
    /// `hf`, `gguf` or `peft`.
    pub format: ExportFormat,
    /// Dtype of the HF weights (`None` for GGUF exports).
    pub dtype: Option<WeightDtype>,
    /// Tensor type of a GGUF export (`None` for HF exports).
    pub quantization: Option<ExportQuantization>,
    /// Files written, relative to `export_dir`, in writing order.
    pub files: Vec<String>,
    /// Where the embedded chat template came from.
    pub chat_template: ChatTemplateSource,
    /// Number of adapters merged.
    pub adapters_merged: usize,
}

/// File name of a GGUF export inside `export_dir`: `model-<quantization>.gguf`.
pub fn gguf_file_name(q: ExportQuantization) -> String {
    format!("model-{}.gguf", q.as_str())
}

/// The dtype of HF weights for `infer_dtype`, as LLaMA-Factory's export decides it: an explicit
/// dtype is used as given; `auto` takes the source's stored dtype, except that f32 becomes
/// bf16 (`infer_optim_dtype(bfloat16)`). An HF folder's stored dtype is its config.json
/// `torch_dtype` (or transformers 5's `dtype`), f32 when absent; a GGUF's is f16 (or bf16)
/// when all its matrices are stored so, else — quantized or f32 — bf16.
///
/// Errors: [`ExportError::Io`]/[`ExportError::Hub`] reading the source.
pub fn resolve_dtype(infer_dtype: InferDtype, source: &ModelSource) -> Result<WeightDtype> {
    let stored = match infer_dtype {
        InferDtype::Float32 => return Ok(WeightDtype::F32),
        InferDtype::Float16 => return Ok(WeightDtype::F16),
        InferDtype::Bfloat16 => return Ok(WeightDtype::BF16),
        InferDtype::Auto => match source {
            ModelSource::HfDir(dir) => hf_stored_dtype(&dir.join("config.json"))?,
            ModelSource::Gguf(path) => {
                let file = GgufFile::open(path)?;
                let mut types = file
                    .tensors()
                    .iter()
                    .filter(|t| t.dims.len() >= 2)
                    .map(|t| t.dtype);
                let first = types.next();
                match first {
                    Some(GgmlType::F16) if types.all(|t| t == GgmlType::F16) => WeightDtype::F16,
                    _ => WeightDtype::BF16,
                }
            }
        },
    };
    Ok(match stored {
        WeightDtype::F32 => WeightDtype::BF16,
        other => other,
    })
}

/// `torch_dtype` (or `dtype`) of a config.json; f32 when absent or not a float type.
fn hf_stored_dtype(path: &Path) -> Result<WeightDtype> {
    let text = std::fs::read_to_string(path).map_err(|e| ExportError::io(path, e))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| ExportError::Config(format!("{}: invalid JSON: {e}", path.display())))?;
    Ok(["torch_dtype", "dtype"]
        .iter()
        .find_map(|k| json.get(*k).and_then(|v| v.as_str()))
        .and_then(WeightDtype::from_torch_name)
        .unwrap_or(WeightDtype::F32))
}

/// Loads the base model and merges every adapter into it, in order (each merged before the
/// next is applied, as PEFT's `merge_and_unload` per adapter in LLaMA-Factory's
/// `init_adapter`). Returns the merged model (f32) and the number of adapters.
///
/// Errors: model loading, adapter loading (base mismatch names every tensor), merging.
pub fn load_merged(
    source: &ModelSource,
    adapters: &[PathBuf],
    device: &Device,
) -> Result<CausalLM> {
    let model = load_model(source, device)?;
    let merged = merge_adapter_dirs(model, adapters)?;
    info!(adapters = adapters.len(), "adapters merged");
    Ok(merged)
}

/// Runs an export as `llamafactory-cli export` does: loads the tokenizer and fixes it for the
/// template, loads the model on the CPU, merges `adapter_name_or_path`, then writes
/// `export_dir` through a temporary folder renamed when complete:
///
/// - `export_format: hf`: safetensors shards of at most `export_size` GB in the `infer_dtype`
///   dtype, `config.json`, `generation_config.json`, tokenizer files with the chat template,
///   and an Ollama `Modelfile` (`FROM .`);
/// - `export_format: gguf`: `model-<export_quantization>.gguf` and a `Modelfile` naming it.
///
/// Errors: every [`ExportError`]; on any error nothing is left at `export_dir` that was not
/// there before.
pub fn export_model(cfg: &Config) -> Result<ExportSummary> {
    let plan = ExportPlan::from_config(cfg)?;
    let mut hub = HubOptions::from_env();
    if let Some(dir) = &cfg.model.cache_dir {
        hub.cache_dir = Some(PathBuf::from(dir));
    }
    if let Some(token) = &cfg.model.hf_hub_token {
        hub.token = Some(token.clone());
    }
    let source = resolve_model(&plan.model_name_or_path, &hub)?;
    let tok = match &source {
        ModelSource::Gguf(path) => TokenizerBundle::from_gguf(&GgufFile::open(path)?)?,
        ModelSource::HfDir(dir) => TokenizerBundle::from_hf_dir(dir)?,
    };
    let (tok, template) = prepare_tokenizer_and_template(cfg, tok)?;
    // Refuse an occupied export_dir before the slow part.
    let staging = Staging::begin(&plan.export_dir, plan.overwrite)?;
    let (chat_template, chat_source) = template::export_chat_template(&template, &tok);
    if plan.format == ExportFormat::Peft {
        let chat = (chat_template.as_deref(), chat_source);
        return export_adapter(&plan, &source, &tok, chat, staging);
    }
    let model = load_merged(&source, &plan.adapters, &Device::Cpu)?;
    let dir = staging.dir().to_path_buf();
    let mut files = Vec::new();
    let (dtype, quantization, from) = match plan.format {
        ExportFormat::Hf => {
            let dtype = resolve_dtype(plan.infer_dtype, &source)?;
            info!(dtype = dtype.torch_name(), "writing safetensors");
            let written =
                hf::write_weights(&dir, &model.named_tensors(), dtype, plan.max_shard_bytes)?;
            let sharded = written.files.len() > 1;
            files.extend(written.files);
            if sharded {
                files.push(hf::INDEX_FILE.into());
            }
            let config = match &source {
                ModelSource::HfDir(src) => {
                    hf::patched_source_config(&src.join("config.json"), &model, dtype)?
                }
                ModelSource::Gguf(_) => hf::config_json(&model.config, dtype)?,
            };
            staging::write_json(&dir.join("config.json"), &config)?;
            files.push("config.json".into());
            let generation_path = match &source {
                ModelSource::HfDir(src) => Some(src.join("generation_config.json")),
                ModelSource::Gguf(_) => None,
            };
            match generation_path.filter(|p| p.is_file()) {
                Some(src) => {
                    let bytes = std::fs::read(&src).map_err(|e| ExportError::io(&src, e))?;
                    staging::write_file(&dir.join("generation_config.json"), &bytes)?;
                }
                None => staging::write_json(
                    &dir.join("generation_config.json"),
                    &hf::generation_config_json(&model.config),
                )?,
            }
            files.push("generation_config.json".into());
            tokenizer_files::write_tokenizer_files(&dir, &tok, chat_template.as_deref())?;
            files.extend(
                [
                    "tokenizer.json",
                    "tokenizer_config.json",
                    "special_tokens_map.json",
                ]
                .map(String::from),
            );
            (Some(dtype), None, ".".to_string())
        }
        ExportFormat::Peft => unreachable!("adapter exports return above"),
        ExportFormat::Gguf => {
            let name = gguf_file_name(plan.quantization);
            let source_file = match &source {
                ModelSource::Gguf(path) => Some(GgufFile::open(path)?),
                ModelSource::HfDir(_) => None,
            };
            let general_name = source_file
                .as_ref()
                .and_then(|f| {
                    f.get_str_opt("general.name")
                        .ok()
                        .flatten()
                        .map(String::from)
                })
                .unwrap_or_else(|| model_label(&plan.model_name_or_path));
            let vocab = gguf::vocab::tokenizer_metadata(
                &tok,
                source_file.as_ref(),
                model.config.vocab_size,
                chat_template.as_deref(),
            )?;
            info!(file = %name, quantization = %plan.quantization, "writing gguf");
            gguf::write_gguf(
                &dir.join(&name),
                &model,
                plan.quantization,
                &general_name,
                &vocab,
            )?;
            let from = format!("./{name}");
            files.push(name);
            (None, Some(plan.quantization), from)
        }
    };
    staging::write_file(
        &dir.join("Modelfile"),
        template::modelfile(&template, &tok, &from).as_bytes(),
    )?;
    files.push("Modelfile".into());
    let export_dir = staging.commit()?;
    Ok(ExportSummary {
        export_dir,
        format: plan.format,
        dtype,
        quantization,
        files,
        chat_template: chat_source,
        adapters_merged: plan.adapters.len(),
    })
}

/// `export_format: peft`: the single adapter of `adapter_name_or_path` (an adapter folder or
/// a trainer's `checkpoint-N`) is loaded onto the base, which checks every tensor's name and
/// shape, and written again in PEFT's format (`adapter_config.json` with
/// `base_model_name_or_path: model_name_or_path`, `adapter_model.safetensors`) with the
/// tokenizer files (chat template as for HF exports), through the staging folder.
///
/// Errors: [`ExportError::Config`] unless exactly one adapter is listed; adapter load errors
/// (a base it does not fit names the tensor and both shapes); write errors.
fn export_adapter(
    plan: &ExportPlan,
    source: &ModelSource,
    tok: &TokenizerBundle,
    (chat_template, chat_source): (Option<&str>, ChatTemplateSource),
    staging: Staging,
) -> Result<ExportSummary> {
    let [adapter] = plan.adapters.as_slice() else {
        return Err(ExportError::Config(format!(
            "`export_format: peft` exports one adapter, `adapter_name_or_path` lists {}; hint: name the adapter folder or checkpoint-N to export",
            plan.adapters.len()
        )));
    };
    let mut model = load_model(source, &Device::Cpu)?;
    let set = ferrotune_model::adapters::load_peft(adapter, &mut model)?;
    let dir = staging.dir().to_path_buf();
    set.save_peft(&dir, &plan.model_name_or_path)?;
    tokenizer_files::write_tokenizer_files(&dir, tok, chat_template)?;
    let files = [
        ferrotune_model::adapters::ADAPTER_CONFIG,
        ferrotune_model::adapters::ADAPTER_WEIGHTS,
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ]
    .map(String::from)
    .to_vec();
    let export_dir = staging.commit()?;
    Ok(ExportSummary {
        export_dir,
        format: ExportFormat::Peft,
        dtype: None,
        quantization: None,
        files,
        chat_template: chat_source,
        adapters_merged: 0,
    })
}

/// A short model name from `model_name_or_path`: its last path component without `.gguf`.
fn model_label(name_or_path: &str) -> String {
    let last = name_or_path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(name_or_path);
    last.trim_end_matches(".gguf").to_string()
}
