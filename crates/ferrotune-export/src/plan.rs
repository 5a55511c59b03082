//! The export settings of a config, checked once: where to write, in which format and dtype,
//! which adapters to merge (LLaMA-Factory v0.9.5 `export_model` in `train/tuner.py`).

use std::path::PathBuf;

use ferrotune_config::args::{ExportFormat, ExportQuantization, InferDtype};
use ferrotune_config::Config;

use crate::error::{ExportError, Result};

/// Bytes in the `GB` of `export_size` (decimal, as `huggingface_hub.parse_size_to_int`).
pub const BYTES_PER_GB: u64 = 1_000_000_000;

/// A validated export request.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportPlan {
    /// `model_name_or_path`: HF folder, GGUF file or hub id.
    pub model_name_or_path: String,
    /// `adapter_name_or_path`: PEFT adapter folders merged in order.
    pub adapters: Vec<PathBuf>,
    /// `export_dir`: the folder written.
    pub export_dir: PathBuf,
    /// `export_format`.
    pub format: ExportFormat,
    /// `export_size` in bytes: the largest safetensors shard.
    pub max_shard_bytes: u64,
    /// `infer_dtype`: dtype of HF weights (`auto` resolves per source, see
    /// `crate::resolve_dtype`).
    pub infer_dtype: InferDtype,
    /// `export_quantization`: tensor type of a GGUF export.
    pub quantization: ExportQuantization,
    /// `overwrite_output_dir`: replace an `export_dir` that exists and is not empty.
    pub overwrite: bool,
}

impl ExportPlan {
    /// Reads and checks the export keys of `cfg`.
    ///
    /// Errors: [`ExportError::Config`] naming the key: no `export_dir` or
    /// `model_name_or_path`, `export_size: 0`, `quantization_bit` set (adapters cannot be
    /// merged into quantized weights), an adapter entry that is not a folder.
    pub fn from_config(cfg: &Config) -> Result<Self> {
        let m = &cfg.model;
        let export_dir = m.export_dir.as_deref().ok_or_else(|| {
            ExportError::Config(
                "`export_dir` is not set; hint: set `export_dir: <folder>` to the folder the exported model is written to".into(),
            )
        })?;
        let model_name_or_path = m.model_name_or_path.clone().ok_or_else(|| {
            ExportError::Config(
                "`model_name_or_path` is not set; hint: set it to the base model (HF folder, .gguf file or hub id)".into(),
            )
        })?;
        if let Some(bits) = m.quantization_bit {
            return Err(ExportError::Config(format!(
                "`quantization_bit: {bits}` loads the base quantized, and adapters cannot be merged into quantized weights; hint: remove `quantization_bit` to merge into the full-precision base (for a quantized file use `export_format: gguf` with `export_quantization: q8_0`)"
            )));
        }
        if m.export_size == 0 {
            return Err(ExportError::Config(
                "`export_size` is 0; hint: give the largest shard size in GB, e.g. `export_size: 5`".into(),
            ));
        }
        let adapters = m
            .adapter_name_or_path
            .iter()
            .map(|a| {
                let p = PathBuf::from(a);
                if p.is_dir() {
                    Ok(p)
                } else {
                    Err(ExportError::Config(format!(
                        "`adapter_name_or_path`: `{a}` is not a folder; hint: give the folder holding adapter_config.json and adapter_model.safetensors"
                    )))
                }
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            model_name_or_path,
            adapters,
            export_dir: PathBuf::from(export_dir),
            format: m.export_format,
            max_shard_bytes: m.export_size.saturating_mul(BYTES_PER_GB),
            infer_dtype: m.infer_dtype,
            quantization: m.export_quantization,
            overwrite: cfg.training.overwrite_output_dir,
        })
    }
}
