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
use crate::outputs::{save_full_model, sync_path, write_json};

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

/// Writes `output_dir/checkpoint-{step}` and then deletes the oldest checkpoints beyond
/// `save_total_limit` (never the one just written); returns the checkpoint folder.
///
/// The folder is written whole under the temporary name `.checkpoint-{step}.tmp`, every file
/// and the folder are flushed to disk (`fsync`), and only then is it renamed to
/// `checkpoint-{step}`: a run killed at any moment leaves the earlier checkpoints complete
/// and no half-written folder under a checkpoint name ([`crate::recipe::resume_point`] only
/// considers `checkpoint-N` folders). Temporary folders left by a killed run are removed
/// first. A `checkpoint-{step}` that already exists (a run resumed from an older
/// checkpoint) is replaced.
///
/// Errors: [`TrainError::Write`] naming the checkpoint folder, with the cause (the file that
/// failed, e.g. a full disk) and a hint; the temporary folder is removed and the earlier
/// checkpoints are untouched. [`TrainError::Io`] naming the folder when an old checkpoint
/// cannot be deleted.
pub fn save_checkpoint(
    output_dir: &Path,
    format: &WeightsFormat,
    data: &CheckpointData<'_>,
    save_total_limit: Option<u32>,
) -> Result<PathBuf, TrainError> {
    let step = data.position.global_step;
    let dir = output_dir.join(format!("{CHECKPOINT_PREFIX}{step}"));
    let tmp = output_dir.join(format!(".{CHECKPOINT_PREFIX}{step}.tmp"));
    let written = remove_stale_temp_dirs(output_dir)
        .and_then(|()| write_checkpoint_files(&tmp, format, data))
        .and_then(|()| publish(&tmp, &dir));
    if let Err(e) = written {
        // Best effort: the error of the save is the one worth reporting.
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(TrainError::Write {
            path: dir,
            msg: format!(
                "checkpoint not saved: {e}; the earlier checkpoints are untouched; hint: free space on the disk of `output_dir` (or check that it is writable), then rerun the same command to resume from the last checkpoint"
            ),
        });
    }
    if let Some(limit) = save_total_limit {
        rotate_checkpoints(output_dir, limit, step)?;
    }
    Ok(dir)
}

/// Name of a checkpoint folder before its step number (`checkpoint-N`, as the Hugging Face
/// Trainer's `PREFIX_CHECKPOINT_DIR`).
pub const CHECKPOINT_PREFIX: &str = "checkpoint-";

/// Removes the `.checkpoint-N.tmp` / `.checkpoint-N.old` folders a killed save left in
/// `output_dir` (creating `output_dir` if needed).
fn remove_stale_temp_dirs(output_dir: &Path) -> Result<(), TrainError> {
    std::fs::create_dir_all(output_dir).map_err(|e| TrainError::io(output_dir, e))?;
    let entries = std::fs::read_dir(output_dir).map_err(|e| TrainError::io(output_dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| TrainError::io(output_dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let stale = name
            .strip_prefix('.')
            .and_then(|n| n.strip_prefix(CHECKPOINT_PREFIX))
            .is_some_and(|n| n.ends_with(".tmp") || n.ends_with(".old"));
        if stale {
            let path = entry.path();
            tracing::info!(path = %path.display(), "removing the unfinished checkpoint of an interrupted run");
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.map_err(|e| TrainError::io(&path, e))?;
        }
    }
    Ok(())
}

/// Writes every file of a checkpoint into the new folder `tmp` and flushes them to disk.
fn write_checkpoint_files(
    tmp: &Path,
    format: &WeightsFormat,
    data: &CheckpointData<'_>,
) -> Result<(), TrainError> {
    let CheckpointData {
        model,
        optimizer,
        position,
        epoch,
        max_steps,
    } = *data;
    std::fs::create_dir(tmp).map_err(|e| TrainError::io(tmp, e))?;
    format.save(tmp, model)?;
    if let Some(opt) = optimizer {
        opt.save_state(tmp.join(OPTIMIZER_STATE))?;
    }
    let state = CheckpointState {
        global_step: position.global_step,
        epoch,
        max_steps,
        log_history: position.log_history.clone(),
        ferrotune: position.clone(),
    };
    // Written last: `trainer_state.json` marks a complete checkpoint.
    write_json(&tmp.join(TRAINER_STATE), &state)?;
    let entries = std::fs::read_dir(tmp).map_err(|e| TrainError::io(tmp, e))?;
    for entry in entries {
        let path = entry.map_err(|e| TrainError::io(tmp, e))?.path();
        if path.is_file() {
            sync_path(&path)?;
        }
    }
    sync_path(tmp)
}

/// Renames the complete folder `tmp` to `dir` (replacing an existing `dir` through
/// `dir`'s `.old` sibling) and flushes the parent folder.
fn publish(tmp: &Path, dir: &Path) -> Result<(), TrainError> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    if dir.exists() {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("checkpoint");
        let old = parent.join(format!(".{name}.old"));
        std::fs::rename(dir, &old).map_err(|e| TrainError::io(dir, e))?;
        std::fs::rename(tmp, dir).map_err(|e| TrainError::io(dir, e))?;
        std::fs::remove_dir_all(&old).map_err(|e| TrainError::io(&old, e))?;
    } else {
        std::fs::rename(tmp, dir).map_err(|e| TrainError::io(dir, e))?;
    }
    sync_path(parent)
}

/// Deletes the lowest-numbered `checkpoint-N` folders of `output_dir` until at most `limit`
/// (at least 1) remain, never `checkpoint-{keep}`.
fn rotate_checkpoints(output_dir: &Path, limit: u32, keep: u64) -> Result<(), TrainError> {
    let mut steps: Vec<u64> = std::fs::read_dir(output_dir)
        .map_err(|e| TrainError::io(output_dir, e))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix(CHECKPOINT_PREFIX)?
                .parse()
                .ok()
        })
        .collect();
    steps.sort_unstable();
    let excess = steps.len().saturating_sub(limit.max(1) as usize);
    for step in steps.into_iter().filter(|&s| s != keep).take(excess) {
        let old = output_dir.join(format!("{CHECKPOINT_PREFIX}{step}"));
        std::fs::remove_dir_all(&old).map_err(|e| TrainError::io(&old, e))?;
    }
    Ok(())
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
    if !weights_path.is_file() {
        return Err(TrainError::Config(format!(
            "{}: the checkpoint has no {}; hint: resume with the `finetuning_type` the checkpoint was trained with",
            dir.display(),
            format.weights_file()
        )));
    }
    let mut tensors: BTreeMap<String, candle_core::Tensor> =
        candle_core::safetensors::load(&weights_path, &Device::Cpu)
            .map_err(|e| {
                TrainError::io(
                    &weights_path,
                    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
                )
            })?
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
    // A full-model checkpoint also holds the frozen weights (freeze tuning): they come from
    // the base model, not from the checkpoint.
    if matches!(format, WeightsFormat::Full { .. }) {
        tensors.clear();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> CausalLM {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny/llama");
        ferrotune_model::load_hf_dir(&dir, &Device::Cpu).unwrap()
    }

    fn save(
        out: &Path,
        model: &CausalLM,
        format: &WeightsFormat,
        step: u64,
        limit: Option<u32>,
    ) -> Result<PathBuf, TrainError> {
        let position = LoopPosition {
            global_step: step,
            ..LoopPosition::default()
        };
        let data = CheckpointData {
            model,
            optimizer: None,
            position: &position,
            epoch: 0.5,
            max_steps: 10,
        };
        save_checkpoint(out, format, &data, limit)
    }

    /// The names in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn saved_step(dir: &Path) -> u64 {
        let text = std::fs::read_to_string(dir.join(TRAINER_STATE)).unwrap();
        serde_json::from_str::<CheckpointState>(&text)
            .unwrap()
            .global_step
    }

    /// Leftovers of a killed save are removed, `save_total_limit` keeps the newest, and a
    /// step saved again (a run resumed from an older checkpoint) replaces its folder while
    /// the rotation spares it.
    #[test]
    fn saves_through_a_temporary_folder_and_rotates() {
        let model = tiny();
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path();
        std::fs::create_dir_all(out.join(".checkpoint-9.tmp")).unwrap();
        std::fs::write(
            out.join(".checkpoint-9.tmp/adapter_model.safetensors"),
            b"half",
        )
        .unwrap();
        std::fs::write(out.join(".checkpoint-8.old"), b"junk").unwrap();
        for step in 1..=3 {
            let dir = save(out, &model, &WeightsFormat::None, step, Some(2)).unwrap();
            assert_eq!(dir, out.join(format!("checkpoint-{step}")));
        }
        assert_eq!(names(out), ["checkpoint-2", "checkpoint-3"]);
        assert_eq!(saved_step(&out.join("checkpoint-3")), 3);

        std::fs::write(out.join("checkpoint-2/marker"), b"old").unwrap();
        save(out, &model, &WeightsFormat::None, 2, Some(1)).unwrap();
        assert_eq!(names(out), ["checkpoint-2"]);
        assert_eq!(names(&out.join("checkpoint-2")), [TRAINER_STATE]);
        assert_eq!(saved_step(&out.join("checkpoint-2")), 2);
    }

    /// A save that fails part-way (here: the source `config.json` of a full model is gone)
    /// leaves no folder under the checkpoint's name nor a temporary one, and names both the
    /// checkpoint and the file at fault.
    #[test]
    fn failed_save_leaves_earlier_checkpoints_only() {
        let model = tiny();
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path();
        save(out, &model, &WeightsFormat::None, 1, None).unwrap();
        let missing = out.join("gone/config.json");
        let format = WeightsFormat::Full {
            source_config: Some(missing.clone()),
        };
        let err = save(out, &model, &format, 2, None).unwrap_err().to_string();
        for part in [
            out.join("checkpoint-2").display().to_string(),
            missing.display().to_string(),
            "earlier checkpoints are untouched".into(),
        ] {
            assert!(err.contains(&part), "`{part}` is not in: {err}");
        }
        assert_eq!(names(out), ["checkpoint-1"]);
    }
}
