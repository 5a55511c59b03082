//! Checkpoints (`output_dir/checkpoint-N`) and resuming from them, as the Hugging Face
//! Trainer lays them out: the trainable weights (PEFT adapter or full model), the optimizer
//! state (`optimizer.safetensors`, ferrotune's format of [`AdamW::save_state`], in place of
//! torch's `optimizer.pt`), and `trainer_state.json` with `global_step`, `log_history` and,
//! under `ferrotune`, the data position needed to continue the same example order.
//!
//! Data order is a pure function of (`seed` or `data_seed`, epoch), so the position is the
//! epoch and the number of micro-batches consumed in it; resuming regenerates the order and
//! skips them (`ignore_data_skip` starts the epoch over instead).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use ferrotune_model::adapters::AdapterSet;
use ferrotune_model::CausalLM;
use serde::{Deserialize, Serialize};

use crate::error::TrainError;
use crate::logging::HistoryEntry;
use crate::optim::AdamW;
use crate::outputs::{save_full_model, write_json};

/// File of the optimizer state inside a checkpoint.
pub const OPTIMIZER_STATE: &str = "optimizer.safetensors";
/// File of the trainer state inside a checkpoint and in `output_dir`.
pub const TRAINER_STATE: &str = "trainer_state.json";

/// How the trainable weights are written (final output and checkpoints).
#[derive(Debug, Clone)]
pub enum WeightsFormat {
    /// PEFT adapter files (`adapter_config.json`, `adapter_model.safetensors`).
    Peft {
        /// The adapters (their vars are the trained tensors).
        adapters: AdapterSet,
        /// `base_model_name_or_path` written into `adapter_config.json`.
        base_model: String,
    },
    /// The whole model: `model.safetensors` + `config.json` (copied from this file when the
    /// model came from an HF folder).
    Full {
        /// The source `config.json`, if any.
        source_config: Option<PathBuf>,
    },
    /// Nothing is written (tests that drive the loop alone).
    None,
}

impl WeightsFormat {
    /// Writes the trainable weights of `model` into `dir`.
    ///
    /// Errors: model and I/O errors naming the file.
    pub fn save(&self, dir: &Path, model: &CausalLM) -> Result<(), TrainError> {
        match self {
            WeightsFormat::Peft {
                adapters,
                base_model,
            } => Ok(adapters.save_peft(dir, base_model)?),
            WeightsFormat::Full { source_config } => {
                save_full_model(dir, model, source_config.as_deref())
            }
            WeightsFormat::None => Ok(()),
        }
    }

    /// The weights file a checkpoint of this format holds.
    fn weights_file(&self) -> &'static str {
        match self {
            WeightsFormat::Peft { .. } => ferrotune_model::adapters::ADAPTER_WEIGHTS,
            _ => "model.safetensors",
        }
    }
}

/// Where the loop stands: what `trainer_state.json` records beyond Hugging Face's fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoopPosition {
    /// Optimizer steps done.
    pub global_step: u64,
    /// Index of the current epoch (0-based).
    pub epoch_index: u64,
    /// Micro-batches of that epoch already consumed.
    pub batches_done: usize,
    /// Examples seen.
    pub samples: u64,
    /// Non-padding input tokens seen.
    pub tokens: u64,
    /// Loss of every step so far.
    pub step_losses: Vec<f64>,
    /// The logged entries so far.
    pub log_history: Vec<HistoryEntry>,
    /// Summed loss of the steps since the last log, and that log's step.
    pub window_loss: f64,
    /// Step of the last log.
    pub last_logged: u64,
}

/// `trainer_state.json` of a checkpoint.
#[derive(Debug, Serialize, Deserialize)]
struct CheckpointState {
    global_step: u64,
    epoch: f64,
    max_steps: u64,
    log_history: Vec<HistoryEntry>,
    ferrotune: LoopPosition,
}

/// What a checkpoint holds besides the weights format.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointData<'a> {
    /// The model being trained.
    pub model: &'a CausalLM,
    /// The optimizer, or `None` with `save_only_model`.
    pub optimizer: Option<&'a AdamW>,
    /// Where the loop stands.
    pub position: &'a LoopPosition,
    /// Fractional epochs done.
    pub epoch: f64,
    /// Optimizer steps planned.
    pub max_steps: u64,
}

/// Writes `output_dir/checkpoint-{step}` and deletes the oldest checkpoints beyond
/// `save_total_limit`.
///
/// Errors: I/O, model and optimizer errors naming the file.
pub fn save_checkpoint(
    output_dir: &Path,
    format: &WeightsFormat,
    data: &CheckpointData<'_>,
    save_total_limit: Option<u32>,
) -> Result<PathBuf, TrainError> {
    let CheckpointData {
        model,
        optimizer,
        position,
        epoch,
        max_steps,
    } = *data;
    let dir = output_dir.join(format!("checkpoint-{}", position.global_step));
    std::fs::create_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
    format.save(&dir, model)?;
    if let Some(opt) = optimizer {
        opt.save_state(dir.join(OPTIMIZER_STATE))?;
    }
    let state = CheckpointState {
        global_step: position.global_step,
        epoch,
        max_steps,
        log_history: position.log_history.clone(),
        ferrotune: position.clone(),
    };
    write_json(&dir.join(TRAINER_STATE), &state)?;
    if let Some(limit) = save_total_limit {
        let mut steps: Vec<u64> = std::fs::read_dir(output_dir)
            .map_err(|e| TrainError::io(output_dir, e))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_prefix("checkpoint-")?
                    .parse()
                    .ok()
            })
            .collect();
        steps.sort_unstable();
        let excess = steps.len().saturating_sub(limit.max(1) as usize);
        for step in &steps[..excess] {
            let old = output_dir.join(format!("checkpoint-{step}"));
            std::fs::remove_dir_all(&old).map_err(|e| TrainError::io(&old, e))?;
        }
    }
    Ok(dir)
}

/// Restores the trainable weights and the optimizer state from checkpoint folder `dir` and
/// returns the loop position to continue from.
///
/// Errors: [`TrainError::Io`]/[`TrainError::Config`] for a missing or unreadable
/// `trainer_state.json` (naming the folder), [`TrainError::Data`] listing weights the
/// checkpoint lacks or holds extra, optimizer state errors.
pub fn load_checkpoint(
    dir: &Path,
    format: &WeightsFormat,
    optimizer: &mut AdamW,
) -> Result<LoopPosition, TrainError> {
    let state_path = dir.join(TRAINER_STATE);
    let text = std::fs::read_to_string(&state_path).map_err(|e| TrainError::io(&state_path, e))?;
    let state: CheckpointState = serde_json::from_str(&text).map_err(|e| {
        TrainError::Config(format!(
            "{}: not a ferrotune checkpoint state ({e}); hint: `resume_from_checkpoint` takes a checkpoint-N folder written by ferrotune",
            state_path.display()
        ))
    })?;
    let weights_path = dir.join(format.weights_file());
    let mut tensors: BTreeMap<String, candle_core::Tensor> =
        candle_core::safetensors::load(&weights_path, &Device::Cpu)?
            .into_iter()
            .collect();
    let mut missing = Vec::new();
    for p in optimizer.params() {
        match tensors.remove(&p.name) {
            Some(t) if t.dims() == p.var.as_tensor().dims() => {
                let dev = p.var.as_tensor().device();
                p.var.set(&t.to_dtype(DType::F32)?.to_device(dev)?)?;
            }
            _ => missing.push(p.name.clone()),
        }
    }
    if !missing.is_empty() || !tensors.is_empty() {
        return Err(TrainError::Data(format!(
            "{}: missing or mis-shaped tensors [{}], unexpected tensors [{}]; hint: resume with the same finetuning_type, lora_rank and lora_target",
            weights_path.display(),
            missing.join(", "),
            tensors.keys().cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    let opt_path = dir.join(OPTIMIZER_STATE);
    if opt_path.is_file() {
        optimizer.load_state(&opt_path)?;
    } else {
        tracing::warn!(path = %opt_path.display(), "no optimizer state in the checkpoint (save_only_model); AdamW starts over");
    }
    Ok(state.ferrotune)
}
