//! The architecture families and what sets each apart.
//!
//! The decoder (`crate::decoder`) is generic; a family decides (a) how its
//! `config.json` and GGUF metadata resolve into a [`ModelConfig`] with its
//! [`ArchSwitches`], and (b) how its GGUF tensors map onto HF tensor names.
//! Each family's quirks live in its own file here, never in shared code.

mod gemma;
pub mod llama;
mod mistral;
mod phi3;
mod qwen2;
mod qwen3;

use std::path::Path;

use candle_core::Tensor;
use ferrotune_hub::gguf::GgufFile;

use crate::config::{token_ids, Activation, ArchSwitches, HfConfig, ModelConfig, RopeScaling};
use crate::error::{ModelError, Result};

/// A supported decoder architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Llama 1/2/3, SmolLM, TinyLlama (Touvron et al. 2023).
    Llama,
    /// Mistral 7B (Jiang et al. 2023): llama with a sliding window.
    Mistral,
    /// Qwen2 / Qwen2.5: q/k/v biases.
    Qwen2,
    /// Qwen3: q/k RMSNorm per head.
    Qwen3,
    /// Gemma 1 (Gemma Team 2024): scaled embeddings, GELU-tanh, `(1 + w)` RMSNorm.
    Gemma,
    /// Phi-3 (Abdin et al. 2024): fused qkv and gate/up projections.
    Phi3,
}

impl Family {
    /// Maps an HF `model_type` or GGUF `general.architecture` to a family.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "llama" => Some(Self::Llama),
            "mistral" => Some(Self::Mistral),
            "qwen2" => Some(Self::Qwen2),
            "qwen3" => Some(Self::Qwen3),
            "gemma" => Some(Self::Gemma),
            "phi3" => Some(Self::Phi3),
            _ => None,
        }
    }

    /// The name used in config.json's `model_type` and GGUF's `general.architecture`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Mistral => "mistral",
            Self::Qwen2 => "qwen2",
            Self::Qwen3 => "qwen3",
            Self::Gemma => "gemma",
            Self::Phi3 => "phi3",
        }
    }

    /// Resolves an HF config of this family. `path` names the file in errors.
    pub(crate) fn resolve_hf(self, raw: &HfConfig, path: &Path) -> Result<ModelConfig> {
        let mut cfg = common_hf(self, raw, path)?;
        match self {
            Self::Llama => llama::adjust_hf(&mut cfg, raw),
            Self::Mistral => mistral::adjust_hf(&mut cfg, raw),
            Self::Qwen2 => qwen2::adjust_hf(&mut cfg, raw),
            Self::Qwen3 => qwen3::adjust_hf(&mut cfg, raw),
            Self::Gemma => gemma::adjust_hf(&mut cfg, raw),
            Self::Phi3 => phi3::adjust_hf(&mut cfg, raw, path)?,
        }
        cfg.check(path)
    }

    /// Resolves the GGUF metadata (`<arch>.*` keys) of this family.
    pub(crate) fn resolve_gguf(self, file: &GgufFile) -> Result<ModelConfig> {
        let mut cfg = common_gguf(self, file)?;
        match self {
            Self::Llama | Self::Mistral => {
                cfg.switches = ArchSwitches::default();
                if self == Self::Mistral {
                    mistral::adjust_gguf(&mut cfg, file)?;
                }
            }
            Self::Qwen2 => qwen2::adjust_gguf(&mut cfg),
            Self::Qwen3 => qwen3::adjust_gguf(&mut cfg),
            Self::Gemma => gemma::adjust_gguf(&mut cfg),
            Self::Phi3 => phi3::adjust_gguf(&mut cfg, file)?,
        }
        cfg.check(file.path())
    }

    /// The HF name of a GGUF tensor (`blk.3.attn_q.weight` → `model.layers.3.self_attn.q_proj.weight`),
    /// or `None` for tensors that are not weights of the decoder (e.g. `rope_freqs.weight`).
    pub(crate) fn gguf_to_hf_name(self, name: &str) -> Option<String> {
        match name {
            "token_embd.weight" => return Some("model.embed_tokens.weight".into()),
            "output_norm.weight" => return Some("model.norm.weight".into()),
            "output.weight" => return Some("lm_head.weight".into()),
            _ => {}
        }
        let rest = name.strip_prefix("blk.")?;
        let (layer, rest) = rest.split_once('.')?;
        let layer: usize = layer.parse().ok()?;
        let (part, kind) = rest.rsplit_once('.')?;
        let hf = match (self, part) {
            (Self::Phi3, "ffn_up") => "mlp.gate_up_proj",
            (_, "attn_q") => "self_attn.q_proj",
            (_, "attn_k") => "self_attn.k_proj",
            (_, "attn_v") => "self_attn.v_proj",
            (_, "attn_qkv") => "self_attn.qkv_proj",
            (_, "attn_output") => "self_attn.o_proj",
            (_, "attn_q_norm") => "self_attn.q_norm",
            (_, "attn_k_norm") => "self_attn.k_norm",
            (_, "ffn_gate") => "mlp.gate_proj",
            (_, "ffn_up") => "mlp.up_proj",
            (_, "ffn_down") => "mlp.down_proj",
            (_, "attn_norm") => "input_layernorm",
            (_, "ffn_norm") => "post_attention_layernorm",
            _ => return None,
        };
        Some(format!("model.layers.{layer}.{hf}.{kind}"))
    }

    /// Undoes what llama.cpp's converter did to a tensor of this family, given its HF name.
    pub(crate) fn fix_gguf_tensor(
        self,
        hf_name: &str,
        t: Tensor,
        cfg: &ModelConfig,
    ) -> Result<Tensor> {
        match self {
            Self::Llama | Self::Mistral => {
                llama::reorder_qk(hf_name, t, cfg, llama::QkOrder::FromGguf)
            }
            Self::Gemma => gemma::fix_gguf_norm(hf_name, t),
            Self::Qwen2 | Self::Qwen3 | Self::Phi3 => Ok(t),
        }
    }
}

fn required(path: &Path, field: &str, v: Option<usize>) -> Result<usize> {
    v.ok_or_else(|| ModelError::MissingField {
        path: path.to_path_buf(),
        field: field.into(),
        hint: String::new(),
    })
}

/// RoPE θ and scaling from either `rope_theta` + `rope_scaling` (transformers 4)
/// or `rope_parameters` (transformers 5).
fn rope_from_hf(raw: &HfConfig, path: &Path) -> Result<(f64, RopeScaling)> {
    let params = raw.rope_parameters.as_ref().and_then(|v| v.as_object());
    let theta = raw
        .rope_theta
        .or_else(|| {
            params
                .and_then(|p| p.get("rope_theta"))
                .and_then(|v| v.as_f64())
        })
        .unwrap_or(10000.0);
    let scaling = raw
        .rope_scaling
        .as_ref()
        .and_then(|v| v.as_object())
        .or(params);
    let Some(s) = scaling else {
        return Ok((theta, RopeScaling::None));
    };
    let kind = s
        .get("rope_type")
        .or_else(|| s.get("type"))
        .and_then(|v| v.as_str())
        .unwrap_or("default");
    let num = |key: &str| -> Result<f64> {
        s.get(key)
            .and_then(|v| v.as_f64())
            .ok_or_else(|| ModelError::MissingField {
                path: path.to_path_buf(),
                field: format!("rope_scaling.{key}"),
                hint: format!("; needed by rope_type `{kind}`"),
            })
    };
    let scaling = match kind {
        "default" => RopeScaling::None,
        "linear" => RopeScaling::Linear {
            factor: num("factor")?,
        },
        "llama3" => RopeScaling::Llama3 {
            factor: num("factor")?,
            low_freq_factor: num("low_freq_factor")?,
            high_freq_factor: num("high_freq_factor")?,
            original_max_position_embeddings: num("original_max_position_embeddings")?,
        },
        other => {
            return Err(ModelError::Unsupported {
                path: path.to_path_buf(),
                what: format!("rope_scaling type `{other}` (supported: default, linear, llama3)"),
            })
        }
    };
    Ok((theta, scaling))
}

/// The fields every family reads the same way from config.json.
fn common_hf(family: Family, raw: &HfConfig, path: &Path) -> Result<ModelConfig> {
    let hidden_size = required(path, "hidden_size", raw.hidden_size)?;
    let num_attention_heads = required(path, "num_attention_heads", raw.num_attention_heads)?;
    if num_attention_heads == 0 {
        return Err(ModelError::Config {
            path: path.to_path_buf(),
            msg: "`num_attention_heads` must be positive, got 0".into(),
        });
    }
    let head_dim = raw.head_dim.unwrap_or(hidden_size / num_attention_heads);
    let (rope_theta, rope_scaling) = rope_from_hf(raw, path)?;
    let act_name = raw
        .hidden_activation
        .as_deref()
        .or(raw.hidden_act.as_deref())
        .unwrap_or("silu");
    let hidden_act = Activation::from_hf_name(act_name).ok_or_else(|| ModelError::Unsupported {
        path: path.to_path_buf(),
        what: format!("activation `{act_name}` (supported: silu, gelu_pytorch_tanh, gelu)"),
    })?;
    let rotary_dim = (head_dim as f64 * raw.partial_rotary_factor.unwrap_or(1.0)) as usize;
    Ok(ModelConfig {
        family,
        vocab_size: required(path, "vocab_size", raw.vocab_size)?,
        hidden_size,
        intermediate_size: required(path, "intermediate_size", raw.intermediate_size)?,
        num_hidden_layers: required(path, "num_hidden_layers", raw.num_hidden_layers)?,
        num_attention_heads,
        num_key_value_heads: raw.num_key_value_heads.unwrap_or(num_attention_heads),
        head_dim,
        rms_norm_eps: raw.rms_norm_eps.unwrap_or(1e-6),
        rope_theta,
        rope_scaling,
        rotary_dim,
        max_position_embeddings: raw.max_position_embeddings.unwrap_or(2048),
        tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(false),
        hidden_act,
        sliding_window: None,
        switches: ArchSwitches::default(),
        bos_token_id: token_ids(&raw.bos_token_id).first().copied(),
        eos_token_ids: token_ids(&raw.eos_token_id),
        pad_token_id: token_ids(&raw.pad_token_id).first().copied(),
    })
}

/// The `<arch>.*` GGUF keys every family shares (llama.cpp's `LLM_KV_*` names).
fn common_gguf(family: Family, file: &GgufFile) -> Result<ModelConfig> {
    let arch = family.name();
    let key = |k: &str| format!("{arch}.{k}");
    let u = |k: &str| -> Result<usize> { Ok(file.get_u32(&key(k))? as usize) };
    let hidden_size = u("embedding_length")?;
    let num_attention_heads = u("attention.head_count")?;
    if num_attention_heads == 0 {
        return Err(ModelError::Config {
            path: file.path().to_path_buf(),
            msg: format!("`{}` must be positive, got 0", key("attention.head_count")),
        });
    }
    let num_key_value_heads = file
        .get_u32_opt(&key("attention.head_count_kv"))?
        .map_or(num_attention_heads, |v| v as usize);
    let head_dim = file
        .get_u32_opt(&key("attention.key_length"))?
        .map_or(hidden_size / num_attention_heads, |v| v as usize);
    let rotary_dim = file
        .get_u32_opt(&key("rope.dimension_count"))?
        .map_or(head_dim, |v| v as usize);
    let vocab_size = match file.get_u32_opt(&key("vocab_size"))? {
        Some(v) => v as usize,
        None => match file.tensor_info("token_embd.weight") {
            Some(info) => info.dims.first().copied().unwrap_or(0),
            None => file.get_str_array("tokenizer.ggml.tokens")?.len(),
        },
    };
    let rope_scaling = gguf_rope_scaling(file, &key)?;
    let eos = file.get_u32_opt("tokenizer.ggml.eos_token_id")?;
    Ok(ModelConfig {
        family,
        vocab_size,
        hidden_size,
        intermediate_size: u("feed_forward_length")?,
        num_hidden_layers: u("block_count")?,
        num_attention_heads,
        num_key_value_heads,
        head_dim,
        rms_norm_eps: file
            .get_f32_opt(&key("attention.layer_norm_rms_epsilon"))?
            .map_or(1e-6, f64::from),
        rope_theta: file
            .get_f32_opt(&key("rope.freq_base"))?
            .map_or(10000.0, f64::from),
        rope_scaling,
        rotary_dim,
        max_position_embeddings: file
            .get_u32_opt(&key("context_length"))?
            .map_or(2048, |v| v as usize),
        tie_word_embeddings: file.tensor_info("output.weight").is_none(),
        hidden_act: Activation::Silu,
        sliding_window: None,
        switches: ArchSwitches::default(),
        bos_token_id: file.get_u32_opt("tokenizer.ggml.bos_token_id")?,
        eos_token_ids: eos.into_iter().collect(),
        pad_token_id: file.get_u32_opt("tokenizer.ggml.padding_token_id")?,
    })
}

/// RoPE scaling as llama.cpp stores it: `rope.scaling.type` + `rope.scaling.factor`,
/// or a `rope_freqs.weight` tensor of per-frequency divisors (Llama 3.1).
fn gguf_rope_scaling(file: &GgufFile, key: &dyn Fn(&str) -> String) -> Result<RopeScaling> {
    if file.tensor_info("rope_freqs.weight").is_some() {
        let t = file.dequantize("rope_freqs.weight", &candle_core::Device::Cpu)?;
        let factors = t.flatten_all()?.to_vec1::<f32>()?;
        return Ok(RopeScaling::FreqFactors(factors));
    }
    match file.get_str_opt(&key("rope.scaling.type"))? {
        None | Some("none") => Ok(RopeScaling::None),
        Some("linear") => {
            let factor = file.get_f32(&key("rope.scaling.factor"))? as f64;
            Ok(RopeScaling::Linear { factor })
        }
        Some(other) => Err(ModelError::Unsupported {
            path: file.path().to_path_buf(),
            what: format!("rope scaling type `{other}` (supported: none, linear, rope_freqs)"),
        }),
    }
}
