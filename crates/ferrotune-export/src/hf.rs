//! The Hugging Face folder of a merged model, as transformers' `save_pretrained` writes it:
//! safetensors shards of at most `export_size` GB (`model-00001-of-00003.safetensors` plus
//! `model.safetensors.index.json`, or one `model.safetensors`), `config.json` and
//! `generation_config.json`.
//!
//! Sharding follows `huggingface_hub` v0.36 `split_state_dict_into_shards_factory`
//! (`serialization/_base.py`): tensors are taken in model order; a tensor that would push the
//! current shard past the limit starts a new shard; a tensor larger than the limit gets a shard
//! of its own. Sizes are in decimal units (`"5GB"` = 5·10⁹ bytes, `parse_size_to_int`).

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Tensor};
use ferrotune_model::{Activation, CausalLM, Family, ModelConfig, RopeScaling};
use serde_json::{json, Map, Value};

use crate::error::{ExportError, Result};
use crate::staging::{sync, write_json};

/// Name of an unsharded weights file.
pub const SINGLE_FILE: &str = "model.safetensors";
/// Name of the shard index.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// Element type of exported HF weights (`infer_dtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightDtype {
    /// `float32`.
    F32,
    /// `float16`.
    F16,
    /// `bfloat16`.
    BF16,
}

impl WeightDtype {
    /// The torch name written to `config.json` (`float32`, `float16`, `bfloat16`).
    pub fn torch_name(self) -> &'static str {
        match self {
            Self::F32 => "float32",
            Self::F16 => "float16",
            Self::BF16 => "bfloat16",
        }
    }

    /// Parses a torch dtype name as `config.json` stores it; `None` for other types.
    pub fn from_torch_name(name: &str) -> Option<Self> {
        match name {
            "float32" => Some(Self::F32),
            "float16" => Some(Self::F16),
            "bfloat16" => Some(Self::BF16),
            _ => None,
        }
    }

    /// The candle dtype.
    pub fn dtype(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::F16 => DType::F16,
            Self::BF16 => DType::BF16,
        }
    }

    /// Bytes per element.
    pub fn size_in_bytes(self) -> usize {
        self.dtype().size_in_bytes()
    }
}

/// Groups tensors of `sizes` (bytes, in model order) into shards of at most `max_shard_bytes`,
/// returning the indices of each shard (see the module doc for the rule). Empty input gives no
/// shard.
pub fn plan_shards(sizes: &[usize], max_shard_bytes: u64) -> Vec<Vec<usize>> {
    let mut shards = Vec::new();
    let mut current = Vec::new();
    let mut current_size = 0u64;
    for (i, &size) in sizes.iter().enumerate() {
        let size = size as u64;
        if size > max_shard_bytes {
            shards.push(vec![i]);
            continue;
        }
        if current_size + size > max_shard_bytes && !current.is_empty() {
            shards.push(std::mem::take(&mut current));
            current_size = 0;
        }
        current.push(i);
        current_size += size;
    }
    if !current.is_empty() {
        shards.push(current);
    }
    shards
}

/// What [`write_weights`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct WrittenWeights {
    /// The weight files, in shard order.
    pub files: Vec<String>,
    /// Sum of the tensors' data sizes in bytes (the index's `metadata.total_size`).
    pub total_size: u64,
    /// Number of parameters written (the index's `metadata.total_parameters`).
    pub total_parameters: u64,
}

/// Writes `tensors` (HF names, any float dtype, in model order) converted to `dtype` into `dir`
/// as safetensors files of at most `max_shard_bytes` each, plus the index when there is more
/// than one. Each file carries the metadata `{"format": "pt"}` as transformers writes it, and
/// is synced. Conversion rounds to nearest even, as torch's `.to()`.
///
/// Errors: [`ExportError::Write`] when safetensors serialization fails, [`ExportError::Io`]
/// naming the file (e.g. a full disk), [`ExportError::Candle`] for a failed conversion.
pub fn write_weights(
    dir: &Path,
    tensors: &[(String, Tensor)],
    dtype: WeightDtype,
    max_shard_bytes: u64,
) -> Result<WrittenWeights> {
    let sizes: Vec<usize> = tensors
        .iter()
        .map(|(_, t)| t.elem_count() * dtype.size_in_bytes())
        .collect();
    let shards = plan_shards(&sizes, max_shard_bytes);
    let n = shards.len();
    let file_name = |k: usize| {
        if n == 1 {
            SINGLE_FILE.to_string()
        } else {
            format!("model-{:05}-of-{n:05}.safetensors", k + 1)
        }
    };
    let metadata: Option<std::collections::HashMap<String, String>> =
        Some([("format".to_string(), "pt".to_string())].into());
    let mut weight_map = BTreeMap::new();
    let mut files = Vec::with_capacity(n);
    for (k, shard) in shards.iter().enumerate() {
        let name = file_name(k);
        let path = dir.join(&name);
        let converted: Vec<(&str, Tensor)> = shard
            .iter()
            .filter_map(|&i| tensors.get(i))
            .map(|(tensor_name, t)| Ok((tensor_name.as_str(), t.to_dtype(dtype.dtype())?)))
            .collect::<Result<_>>()?;
        safetensors::serialize_to_file(
            converted.iter().map(|(n, t)| (*n, t)),
            metadata.clone(),
            &path,
        )
        .map_err(|e| match e {
            safetensors::SafeTensorError::IoError(source) => ExportError::io(&path, source),
            other => ExportError::Write {
                path: path.clone(),
                msg: other.to_string(),
            },
        })?;
        sync(&path)?;
        for (tensor_name, _) in &converted {
            weight_map.insert((*tensor_name).to_string(), Value::from(name.clone()));
        }
        files.push(name);
    }
    let total_size: u64 = sizes.iter().map(|&s| s as u64).sum();
    let total_parameters: u64 = tensors.iter().map(|(_, t)| t.elem_count() as u64).sum();
    if n > 1 {
        let index = json!({
            "metadata": {"total_parameters": total_parameters, "total_size": total_size},
            "weight_map": Value::Object(weight_map.into_iter().collect::<Map<_, _>>()),
        });
        write_json(&dir.join(INDEX_FILE), &index)?;
    }
    Ok(WrittenWeights {
        files,
        total_size,
        total_parameters,
    })
}

/// The architecture class transformers registers for a family (`LlamaForCausalLM`, ...).
pub fn architecture_class(family: Family) -> &'static str {
    match family {
        Family::Llama => "LlamaForCausalLM",
        Family::Mistral => "MistralForCausalLM",
        Family::Qwen2 => "Qwen2ForCausalLM",
        Family::Qwen3 => "Qwen3ForCausalLM",
        Family::Gemma => "GemmaForCausalLM",
        Family::Phi3 => "Phi3ForCausalLM",
    }
}

/// A transformers `config.json` for a resolved config (a model read from a GGUF file), with the
/// fields of its family's `configuration_<family>.py` that ferrotune knows: biases (llama
/// `attention_bias`/`mlp_bias`), sliding windows, partial rotary (phi3), the activation, RoPE θ
/// and scaling, tied embeddings, special token ids and `torch_dtype`.
///
/// Errors: [`ExportError::Config`] for RoPE frequency factors read from a GGUF's
/// `rope_freqs.weight`, which `config.json` cannot express.
pub fn config_json(cfg: &ModelConfig, dtype: WeightDtype) -> Result<Value> {
    let rope_scaling = match &cfg.rope_scaling {
        RopeScaling::None => Value::Null,
        RopeScaling::Linear { factor } => json!({"rope_type": "linear", "factor": factor}),
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        } => json!({
            "rope_type": "llama3",
            "factor": factor,
            "low_freq_factor": low_freq_factor,
            "high_freq_factor": high_freq_factor,
            "original_max_position_embeddings": original_max_position_embeddings,
        }),
        RopeScaling::FreqFactors(_) => {
            return Err(ExportError::Config(
                "the model's RoPE frequency factors (GGUF `rope_freqs.weight`) cannot be written to config.json; hint: export from the model's Hugging Face folder instead of its GGUF file".into(),
            ))
        }
    };
    let act = match cfg.hidden_act {
        Activation::Silu => "silu",
        Activation::GeluTanh => "gelu_pytorch_tanh",
        Activation::GeluErf => "gelu",
    };
    let eos = match cfg.eos_token_ids.as_slice() {
        [] => Value::Null,
        [one] => json!(one),
        many => json!(many),
    };
    let mut c = json!({
        "architectures": [architecture_class(cfg.family)],
        "model_type": cfg.family.name(),
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads,
        "head_dim": cfg.head_dim,
        "hidden_act": act,
        "max_position_embeddings": cfg.max_position_embeddings,
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": cfg.rope_theta,
        "rope_scaling": rope_scaling,
        "tie_word_embeddings": cfg.tie_word_embeddings,
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": eos,
        "pad_token_id": cfg.pad_token_id,
        "torch_dtype": dtype.torch_name(),
        "use_cache": true,
    });
    if let Value::Object(map) = &mut c {
        let sw = &cfg.switches;
        match cfg.family {
            Family::Llama => {
                map.insert("attention_bias".into(), sw.qkv_bias.into());
                map.insert("mlp_bias".into(), sw.mlp_bias.into());
            }
            Family::Qwen3 => {
                map.insert("attention_bias".into(), sw.qkv_bias.into());
            }
            Family::Mistral | Family::Phi3 => {
                map.insert("sliding_window".into(), json!(cfg.sliding_window));
            }
            Family::Qwen2 => {
                map.insert("sliding_window".into(), json!(cfg.sliding_window));
                map.insert(
                    "use_sliding_window".into(),
                    cfg.sliding_window.is_some().into(),
                );
            }
            Family::Gemma => {
                map.insert("hidden_activation".into(), act.into());
            }
        }
        if cfg.family == Family::Phi3 && cfg.rotary_dim != cfg.head_dim {
            map.insert(
                "partial_rotary_factor".into(),
                json!(cfg.rotary_dim as f64 / cfg.head_dim as f64),
            );
        }
    }
    Ok(c)
}

/// The source folder's `config.json` with the export's dtype (`torch_dtype`, and `dtype` where
/// transformers 5 wrote it) and `tie_word_embeddings` (false when training untied the head).
///
/// Errors: [`ExportError::Io`] reading it, [`ExportError::Config`] when it is not a JSON object.
pub fn patched_source_config(path: &Path, model: &CausalLM, dtype: WeightDtype) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| ExportError::io(path, e))?;
    let mut value: Value = serde_json::from_str(&text)
        .map_err(|e| ExportError::Config(format!("{}: invalid JSON: {e}", path.display())))?;
    let Value::Object(map) = &mut value else {
        return Err(ExportError::Config(format!(
            "{}: expected a JSON object",
            path.display()
        )));
    };
    if map.contains_key("dtype") {
        map.insert("dtype".into(), dtype.torch_name().into());
    }
    map.insert("torch_dtype".into(), dtype.torch_name().into());
    map.insert("tie_word_embeddings".into(), model.lm_head.is_none().into());
    Ok(value)
}

/// `generation_config.json` for a model without one, as transformers'
/// `GenerationConfig.from_model_config` derives it: the bos, eos and pad ids of the config.
pub fn generation_config_json(cfg: &ModelConfig) -> Value {
    let mut map = Map::new();
    map.insert("_from_model_config".into(), true.into());
    if let Some(bos) = cfg.bos_token_id {
        map.insert("bos_token_id".into(), bos.into());
    }
    match cfg.eos_token_ids.as_slice() {
        [] => {}
        [one] => {
            map.insert("eos_token_id".into(), (*one).into());
        }
        many => {
            map.insert("eos_token_id".into(), json!(many));
        }
    }
    if let Some(pad) = cfg.pad_token_id {
        map.insert("pad_token_id".into(), pad.into());
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_follow_huggingface_hub() {
        // The example of huggingface_hub's docstring, in GB: [6, 6, 2, 6, 2, 2] at 10.
        let gb = 1_000_000_000usize;
        let sizes: Vec<usize> = [6, 6, 2, 6, 2, 2].iter().map(|s| s * gb).collect();
        assert_eq!(
            plan_shards(&sizes, 10 * gb as u64),
            vec![vec![0], vec![1, 2], vec![3, 4, 5]]
        );
        // A tensor above the limit gets its own shard, pushed before the open one.
        assert_eq!(
            plan_shards(&[3, 20, 4, 5], 10),
            vec![vec![1], vec![0, 2], vec![3]]
        );
        assert!(plan_shards(&[], 10).is_empty());
    }
}
