//! The files a run leaves in `output_dir`, as the Hugging Face Trainer and LLaMA-Factory
//! name them: `train_results.json`, `all_results.json`, `trainer_state.json`, the tokenizer
//! files, and the full model (`model.safetensors` + `config.json`) for `finetuning_type: full`.
//! Every file is written under a temporary name, flushed to disk and renamed into place
//! ([`write_atomic`]), so that a run killed at any moment leaves each file old or whole.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use ferrotune_hub::tokenizer::TokenizerBundle;
use ferrotune_model::{CausalLM, ModelConfig, RopeScaling};
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::TrainError;
use crate::logging::HistoryEntry;

/// Writes `bytes` to `path` through `path.tmp`, flushed to disk (`fsync`) and renamed over
/// `path`, then flushes the folder: readers, and a run killed at any moment, see the old
/// file or the whole new one.
///
/// Errors: [`TrainError::Io`] naming the file (the temporary one when writing it fails,
/// e.g. on a full disk); the temporary file is removed then.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let tmp = temp_path(path);
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .map_err(|e| TrainError::io(&tmp, e));
    if let Err(e) = written {
        // Best effort: the write error is the one worth reporting.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|e| TrainError::io(path, e))?;
    sync_path(parent_of(path))
}

/// `path` with `.tmp` appended to its file name.
fn temp_path(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    PathBuf::from(tmp)
}

/// The folder holding `path` (`.` for a bare file name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Flushes the file or folder `path` to disk (`fsync`; for a folder, the names it holds,
/// so that a rename into it survives a crash).
///
/// Errors: [`TrainError::Io`] naming `path`.
pub fn sync_path(path: &Path) -> Result<(), TrainError> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| TrainError::io(path, e))
}

/// Creates `output_dir` (and its parents) and checks that files can be written in it, by
/// writing and removing a small probe file, so that an unwritable folder is reported before
/// training rather than at the first checkpoint.
///
/// Errors: [`TrainError::Config`] naming the folder, the cause and the fix (`output_dir`).
pub fn prepare_output_dir(output_dir: &Path) -> Result<(), TrainError> {
    let unwritable = |e: std::io::Error| {
        TrainError::Config(format!(
            "`output_dir` {} cannot be created or written to: {e}; hint: set `output_dir` to a folder you can write to",
            output_dir.display()
        ))
    };
    std::fs::create_dir_all(output_dir).map_err(unwritable)?;
    let probe = output_dir.join(".ferrotune-write-test");
    std::fs::write(&probe, b"ok").map_err(unwritable)?;
    std::fs::remove_file(&probe).map_err(unwritable)
}

/// Writes `value` as indented JSON (2 spaces, as transformers' `save_metrics`) with a final
/// newline.
///
/// Errors: [`TrainError::Write`], [`TrainError::Io`].
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<(), TrainError> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| TrainError::Write {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// The metrics of a finished run (`train_results.json`; `all_results.json` holds the same
/// until evaluation metrics are added).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainMetrics {
    /// Fractional epochs done.
    pub epoch: f64,
    /// Mean step loss over the run (HF `train_loss`: the summed step losses / steps).
    pub train_loss: f64,
    /// Seconds of the loop, 4 decimals.
    pub train_runtime: f64,
    /// Examples per second (HF: steps · batch · accumulation / runtime), 3 decimals.
    pub train_samples_per_second: f64,
    /// Optimizer steps per second, 3 decimals.
    pub train_steps_per_second: f64,
    /// Non-padding input tokens per second, 3 decimals.
    pub train_tokens_per_second: f64,
    /// Peak resident memory of the process in MiB (`VmHWM` of `/proc/self/status`), 0 where
    /// the file does not exist.
    pub peak_memory_mb: f64,
}

/// Peak resident set size of this process in MiB, from `VmHWM` in `/proc/self/status`
/// (Linux); `None` elsewhere.
pub fn peak_memory_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Writes `{split}_results.json` (`eval`, `predict`) with `metrics` and merges them into
/// `all_results.json` (keys of an existing file kept, as HF's `save_metrics(split, metrics,
/// combined=True)`).
///
/// Errors: [`TrainError::Io`]/[`TrainError::Write`] naming the file, also for an existing
/// `all_results.json` that is not a JSON object.
pub fn save_split_metrics(
    dir: &Path,
    split: &str,
    metrics: &serde_json::Map<String, Value>,
) -> Result<(), TrainError> {
    write_json(&dir.join(format!("{split}_results.json")), metrics)?;
    let all_path = dir.join("all_results.json");
    let mut all: serde_json::Map<String, Value> = match std::fs::read_to_string(&all_path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| TrainError::Write {
            path: all_path.clone(),
            msg: format!("existing file is not a JSON object: {e}"),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::Map::new(),
        Err(e) => return Err(TrainError::io(&all_path, e)),
    };
    all.extend(metrics.clone());
    write_json(&all_path, &all)
}

/// Writes `train_results.json` and `all_results.json`.
///
/// Errors: as [`write_json`].
pub fn save_metrics(dir: &Path, metrics: &TrainMetrics) -> Result<(), TrainError> {
    write_json(&dir.join("train_results.json"), metrics)?;
    write_json(&dir.join("all_results.json"), metrics)
}

/// Writes a `trainer_state.json` with the fields LLaMA-Factory's `plot_loss` and readers of
/// Hugging Face checkpoints use: `global_step`, `max_steps`, `num_train_epochs`, `epoch`,
/// `logging_steps`, `train_batch_size`, `log_history`.
///
/// Errors: as [`write_json`].
pub fn save_trainer_state(
    dir: &Path,
    state: &TrainerStateSummary,
    log_history: &[HistoryEntry],
) -> Result<(), TrainError> {
    let value = json!({
        "epoch": state.epoch,
        "global_step": state.global_step,
        "max_steps": state.max_steps,
        "num_train_epochs": state.num_train_epochs,
        "logging_steps": state.logging_steps,
        "train_batch_size": state.train_batch_size,
        "log_history": log_history,
    });
    write_json(&dir.join("trainer_state.json"), &value)
}

/// The scalar fields of `trainer_state.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainerStateSummary {
    /// Fractional epochs done.
    pub epoch: f64,
    /// Optimizer steps done.
    pub global_step: u64,
    /// Optimizer steps planned.
    pub max_steps: u64,
    /// Epochs planned (whole).
    pub num_train_epochs: u64,
    /// Steps between logs.
    pub logging_steps: u64,
    /// `per_device_train_batch_size`.
    pub train_batch_size: usize,
}

/// Writes `tokenizer.json` and a `tokenizer_config.json` with the special tokens and the
/// chat template (`chat_template` given, else the tokenizer's own).
///
/// Errors: [`TrainError::Write`] when the tokenizer cannot be serialized, [`TrainError::Io`].
pub fn save_tokenizer(
    dir: &Path,
    tok: &TokenizerBundle,
    chat_template: Option<&str>,
) -> Result<(), TrainError> {
    let path = dir.join("tokenizer.json");
    let text = tok
        .tokenizer
        .to_string(false)
        .map_err(|e| TrainError::Write {
            path: path.clone(),
            msg: e.to_string(),
        })?;
    write_atomic(&path, text.as_bytes())?;
    let config = tok.hf_tokenizer_config(chat_template.or(tok.chat_template.as_deref()));
    write_json(&dir.join("tokenizer_config.json"), &Value::Object(config))
}

/// Saves every weight of `model` as `model.safetensors` (f32, HF names, a tied head once)
/// and `config.json`: copied from `source_config` when the model came from an HF folder,
/// else built from the resolved [`ModelConfig`] (see [`config_json`]). Each file is written
/// under a temporary name, flushed and renamed.
///
/// Errors: [`TrainError::Config`] for a RoPE scaling [`config_json`] cannot write,
/// [`TrainError::Write`] naming the weights file, [`TrainError::Io`] naming the file.
pub fn save_full_model(
    dir: &Path,
    model: &CausalLM,
    source_config: Option<&Path>,
) -> Result<(), TrainError> {
    let tensors: HashMap<String, Tensor> = model.named_tensors().into_iter().collect();
    let path = dir.join("model.safetensors");
    let tmp = temp_path(&path);
    let written = candle_core::safetensors::save(&tensors, &tmp)
        .map_err(|e| TrainError::Write {
            path: tmp.clone(),
            msg: e.to_string(),
        })
        .and_then(|()| sync_path(&tmp));
    if let Err(e) = written {
        // Best effort: the write error is the one worth reporting.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, &path).map_err(|e| TrainError::io(&path, e))?;
    let config_path = dir.join("config.json");
    match source_config {
        Some(src) => {
            let bytes = std::fs::read(src).map_err(|e| TrainError::io(src, e))?;
            write_atomic(&config_path, &bytes)
        }
        None => write_json(&config_path, &config_json(&model.config)?),
    }
}

/// A transformers `config.json` for a resolved config (models read from GGUF files): the
/// fields ferrotune's loader reads back, with `torch_dtype: float32`.
///
/// Errors: [`TrainError::Config`] for RoPE scalings other than none and linear.
pub fn config_json(cfg: &ModelConfig) -> Result<Value, TrainError> {
    let rope_scaling = match &cfg.rope_scaling {
        RopeScaling::None => Value::Null,
        RopeScaling::Linear { factor } => json!({"rope_type": "linear", "factor": factor}),
        other => {
            return Err(TrainError::Config(format!(
                "cannot write config.json for rope scaling {other:?}; hint: train from the HF folder of the model"
            )))
        }
    };
    let family = cfg.family.name();
    let act = match cfg.hidden_act {
        ferrotune_model::Activation::Silu => "silu",
        ferrotune_model::Activation::GeluTanh => "gelu_pytorch_tanh",
        ferrotune_model::Activation::GeluErf => "gelu",
    };
    Ok(json!({
        "architectures": [format!("{}ForCausalLM", capitalize(family))],
        "model_type": family,
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads,
        "head_dim": cfg.head_dim,
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": cfg.rope_theta,
        "rope_scaling": rope_scaling,
        "max_position_embeddings": cfg.max_position_embeddings,
        "tie_word_embeddings": cfg.tie_word_embeddings,
        "hidden_act": act,
        "sliding_window": cfg.sliding_window,
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_ids.first(),
        "pad_token_id": cfg.pad_token_id,
        "torch_dtype": "float32",
    }))
}

/// `llama` → `Llama`, as in `LlamaForCausalLM` (`qwen2` → `Qwen2`).
fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
