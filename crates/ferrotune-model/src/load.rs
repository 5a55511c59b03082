//! Loading a [`CausalLM`] from an HF model folder or a GGUF file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::Device;
use ferrotune_hub::gguf::{GgmlType, GgufFile, GgufTensorInfo};
use ferrotune_hub::resolve::ModelSource;

use crate::config::ModelConfig;
use crate::decoder::CausalLM;
use crate::error::{ModelError, Result};
use crate::families::Family;
use crate::layers::{QMatrix, QuantizedWeight};
use crate::weights::WeightStore;

/// Loads a model from a resolved source (see `ferrotune_hub::resolve::resolve_model`).
pub fn load_model(source: &ModelSource, device: &Device) -> Result<CausalLM> {
    match source {
        ModelSource::HfDir(dir) => load_hf_dir(dir, device),
        ModelSource::Gguf(path) => load_gguf(&GgufFile::open(path)?, device),
    }
}

/// Loads an HF folder: `config.json` and `model.safetensors` or the shards listed in
/// `model.safetensors.index.json`; bf16/f16/f32 weights, computed in f32.
///
/// Errors name the file: a missing or invalid config, a missing weight file, a lying
/// safetensors header, missing or unexpected tensors, a shape that disagrees with the config.
pub fn load_hf_dir(dir: &Path, device: &Device) -> Result<CausalLM> {
    let config = ModelConfig::from_hf_config_file(&dir.join("config.json"))?;
    let files = safetensors_files(dir)?;
    let weights = WeightStore::from_safetensors(dir, &files, device)?;
    CausalLM::from_weights(config, weights)
}

/// The safetensors files of an HF folder, from the index when the model is sharded.
pub fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if !index.is_file() {
        return Err(ModelError::Weights {
            path: dir.to_path_buf(),
            msg: "no model.safetensors or model.safetensors.index.json in this folder".into(),
        });
    }
    let text = std::fs::read_to_string(&index).map_err(|source| ModelError::Io {
        path: index.clone(),
        source,
    })?;
    let bad = |msg: String| ModelError::Weights {
        path: index.clone(),
        msg,
    };
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| bad("missing object `weight_map`".into()))?;
    let mut files: Vec<String> = map
        .values()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| bad(format!("`weight_map` value {v} is not a file name")))
        })
        .collect::<Result<_>>()?;
    files.sort();
    files.dedup();
    files
        .into_iter()
        .map(|f| {
            if f.contains('/') || f.contains('\\') || f == ".." {
                return Err(bad(format!(
                    "shard name `{f}` must be a file name inside the folder"
                )));
            }
            let p = dir.join(&f);
            if p.is_file() {
                Ok(p)
            } else {
                Err(bad(format!(
                    "shard `{f}` listed in weight_map does not exist"
                )))
            }
        })
        .collect()
}

/// The model config of a GGUF file from its `<arch>.*` metadata and tensor names alone (no
/// tensor data is read), as [`load_gguf`] resolves it.
///
/// Errors: [`ModelError::UnsupportedArchitecture`] for an architecture no family reads,
/// [`ModelError::Config`] and hub errors for missing or invalid keys.
pub fn gguf_model_config(file: &GgufFile) -> Result<ModelConfig> {
    Ok(gguf_family_config(file)?.1)
}

/// The family that reads a GGUF file's `general.architecture`.
fn gguf_family(file: &GgufFile) -> Result<Family> {
    let arch = file.architecture()?;
    Family::from_name(arch).ok_or_else(|| ModelError::UnsupportedArchitecture {
        path: file.path().to_path_buf(),
        arch: arch.to_string(),
    })
}

fn gguf_family_config(file: &GgufFile) -> Result<(Family, ModelConfig)> {
    let family = gguf_family(file)?;
    Ok((family, family.resolve_gguf(file)?))
}

/// Loads a GGUF file: the config from `<arch>.*` metadata, every tensor dequantized
/// to f32 exactly as llama.cpp does and renamed to HF names, with the family's fixes
/// (llama's Q/K row permutation undone, gemma's norm offset removed).
pub fn load_gguf(file: &GgufFile, device: &Device) -> Result<CausalLM> {
    let (family, config) = gguf_family_config(file)?;
    let mut tensors = BTreeMap::new();
    for info in file.tensors() {
        if info.name == "rope_freqs.weight" {
            continue; // already read into the config's RoPE scaling
        }
        let t = file.dequantize(&info.name, device)?;
        match family.gguf_to_hf_name(&info.name) {
            Some(hf) => {
                let t = family.fix_gguf_tensor(&hf, t, &config)?;
                tensors.insert(hf, t);
            }
            // Unknown names stay as they are so that loading reports them.
            None => {
                tensors.insert(info.name.clone(), t);
            }
        }
    }
    CausalLM::from_weights(config, WeightStore::new(file.path(), tensors))
}

/// Loads a GGUF file for inference: as [`load_gguf`], and in addition every linear weight and
/// the LM head (`lm_head`, or `embed_tokens` when tied) stored as Q8_0, Q4_0 or Q4_1 is kept in
/// its blocks ([`QuantizedWeight`]), with llama's Q/K rows reordered like the f32 copy. Decode
/// steps (at most [`crate::layers::GEMV_MAX_ROWS`] rows, no gradients) then read the blocks,
/// about 6× fewer bytes than f32 for Q4_1; prefill, adapters and export keep using the f32
/// weights, which stay in memory. Not for training: see [`QuantizedWeight`].
///
/// On a device other than the CPU nothing is kept quantized (the kernels are CPU-only).
///
/// Errors: as [`load_gguf`], and [`ModelError::Weights`] when a quantized tensor's bytes do not
/// match its shape (naming the tensor).
pub fn load_gguf_quantized(file: &GgufFile, device: &Device) -> Result<CausalLM> {
    let mut model = load_gguf(file, device)?;
    if !device.is_cpu() {
        return Ok(model);
    }
    let family = gguf_family(file)?;
    let by_hf_name: BTreeMap<String, &GgufTensorInfo> = file
        .tensors()
        .iter()
        .filter_map(|info| family.gguf_to_hf_name(&info.name).map(|hf| (hf, info)))
        .collect();
    let config = model.config.clone();
    let blocks = |hf_name: &str| -> Result<Option<QMatrix>> {
        let Some(info) = by_hf_name.get(hf_name) else {
            return Ok(None);
        };
        read_blocks(file, family, &config, hf_name, info)
    };
    for (path, linear) in crate::adapters::linears_mut(&mut model) {
        if let Some(q) = blocks(&format!("{path}.weight"))? {
            linear.quantized = Some(QuantizedWeight::new(&linear.weight, q));
        }
    }
    let (head_name, head) = match &model.lm_head {
        Some(head) => ("lm_head.weight", head),
        None => ("model.embed_tokens.weight", &model.embed_tokens),
    };
    if let Some(q) = blocks(head_name)? {
        model.quantized_head = Some(QuantizedWeight::new(head, q));
    }
    Ok(model)
}

/// The blocks of a 2-D Q8_0/Q4_0/Q4_1 tensor, its rows in the order the family's GGUF fix gives
/// the f32 copy (found by applying the fix to the row indices); `None` for other types, or when
/// the fix does more than reorder rows.
fn read_blocks(
    file: &GgufFile,
    family: Family,
    config: &ModelConfig,
    hf_name: &str,
    info: &GgufTensorInfo,
) -> Result<Option<QMatrix>> {
    let kept = matches!(info.dtype, GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q4_1);
    let &[out, k] = info.dims.as_slice() else {
        return Ok(None);
    };
    if !kept {
        return Ok(None);
    }
    let bad = |msg: String| ModelError::Weights {
        path: file.path().to_path_buf(),
        msg: format!("tensor `{}`: {msg}", info.name),
    };
    let matrix = QMatrix::from_ggml(info.dtype, file.tensor_bytes(info), out, k).map_err(bad)?;
    let rows: Vec<f32> = (0..out).map(|i| i as f32).collect();
    let rows = candle_core::Tensor::from_vec(rows, out, &Device::Cpu)?;
    let order: Vec<usize> = family
        .fix_gguf_tensor(hf_name, rows, config)?
        .to_vec1::<f32>()?
        .into_iter()
        .map(|v| v as usize)
        .collect();
    if order.iter().enumerate().all(|(i, &p)| i == p) {
        return Ok(Some(matrix));
    }
    Ok(matrix.permute_rows(&order).ok())
}
