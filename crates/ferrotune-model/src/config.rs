//! Model configuration: the raw `config.json` as Hugging Face writes it ([`HfConfig`]),
//! and the resolved form the decoder runs on ([`ModelConfig`], no `Option`s left).
//!
//! Family-specific defaults and switches are decided in `families/<family>.rs`;
//! this file only holds the types and the fields every family shares.

use std::path::Path;

use serde::Deserialize;

use crate::error::{ModelError, Result};
use crate::families::Family;

/// `config.json` of an HF model folder, as written by transformers.
///
/// Only the fields a decoder of our families reads are listed; others are ignored.
/// Every field is optional here: [`ModelConfig::from_hf_config_file`] checks which
/// ones the family needs and names the missing one in its error.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HfConfig {
    /// Architecture family, e.g. `"llama"`, `"qwen2"`.
    pub model_type: Option<String>,
    /// Vocabulary size V.
    pub vocab_size: Option<usize>,
    /// Model width C.
    pub hidden_size: Option<usize>,
    /// MLP inner width.
    pub intermediate_size: Option<usize>,
    /// Number of decoder layers L.
    pub num_hidden_layers: Option<usize>,
    /// Query heads.
    pub num_attention_heads: Option<usize>,
    /// Key/value heads (GQA); defaults to `num_attention_heads`.
    pub num_key_value_heads: Option<usize>,
    /// Per-head width; defaults to `hidden_size / num_attention_heads`.
    pub head_dim: Option<usize>,
    /// Epsilon of RMSNorm.
    pub rms_norm_eps: Option<f64>,
    /// RoPE base θ.
    pub rope_theta: Option<f64>,
    /// RoPE scaling (`{"rope_type": "llama3" | "linear", ...}`), or null.
    pub rope_scaling: Option<serde_json::Value>,
    /// transformers ≥ 5 folds `rope_theta` and scaling into this object.
    pub rope_parameters: Option<serde_json::Value>,
    /// Fraction of the head dimension that is rotated (phi3 variants).
    pub partial_rotary_factor: Option<f64>,
    /// Context length the model was trained for.
    pub max_position_embeddings: Option<usize>,
    /// Whether lm_head shares the embedding matrix.
    pub tie_word_embeddings: Option<bool>,
    /// MLP activation name (`silu`, `gelu_pytorch_tanh`, ...).
    pub hidden_act: Option<String>,
    /// Gemma's activation field, preferred over `hidden_act` when present.
    pub hidden_activation: Option<String>,
    /// Bias on q/k/v/o projections (llama, qwen3).
    pub attention_bias: Option<bool>,
    /// Bias on the MLP projections (llama).
    pub mlp_bias: Option<bool>,
    /// Sliding attention window in tokens (mistral, qwen2, phi3).
    pub sliding_window: Option<usize>,
    /// Whether qwen2 actually uses its sliding window.
    pub use_sliding_window: Option<bool>,
    /// Token id of bos (an int, or a list for some models).
    pub bos_token_id: Option<serde_json::Value>,
    /// Token id(s) of eos.
    pub eos_token_id: Option<serde_json::Value>,
    /// Token id of pad.
    pub pad_token_id: Option<serde_json::Value>,
}

/// Activation of the gated MLP: `down(act(gate(x)) * up(x))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// SiLU / swish, `x·σ(x)` (llama, mistral, qwen, phi3).
    Silu,
    /// GELU with the tanh approximation (`gelu_pytorch_tanh`, Gemma).
    GeluTanh,
    /// Exact GELU with erf (`gelu`).
    GeluErf,
}

impl Activation {
    /// Parses a transformers activation name (`ACT2FN` keys).
    pub fn from_hf_name(name: &str) -> Option<Self> {
        match name {
            "silu" | "swish" => Some(Self::Silu),
            "gelu_pytorch_tanh" | "gelu_new" | "gelu_fast" | "gelu_tanh" => Some(Self::GeluTanh),
            "gelu" => Some(Self::GeluErf),
            _ => None,
        }
    }
}

/// How RoPE frequencies are rescaled for longer contexts.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE (Su et al. 2021, RoFormer eq. 34).
    None,
    /// Position interpolation: every frequency divided by `factor` (Chen et al. 2023).
    Linear {
        /// Division factor.
        factor: f64,
    },
    /// Llama 3.1's wavelength-dependent scaling (transformers' `_compute_llama3_parameters`).
    Llama3 {
        /// Scale for low frequencies.
        factor: f64,
        /// Wavelengths longer than `original / low_freq_factor` are fully scaled.
        low_freq_factor: f64,
        /// Wavelengths shorter than `original / high_freq_factor` are kept.
        high_freq_factor: f64,
        /// Context length of pre-training.
        original_max_position_embeddings: f64,
    },
    /// Per-frequency divisors stored in a GGUF's `rope_freqs.weight` (llama.cpp), `[head_dim / 2]`.
    FreqFactors(Vec<f32>),
}

/// Per-family switches of the generic decoder. Set by each family in `families/*.rs`.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchSwitches {
    /// Bias on q_proj, k_proj, v_proj.
    pub qkv_bias: bool,
    /// Bias on o_proj.
    pub o_bias: bool,
    /// Bias on gate/up/down projections.
    pub mlp_bias: bool,
    /// RMSNorm over head_dim on queries and keys before RoPE (qwen3's q_norm/k_norm).
    pub qk_norm: bool,
    /// One fused `qkv_proj` instead of q/k/v (phi3).
    pub fused_qkv: bool,
    /// One fused `gate_up_proj` instead of gate/up (phi3).
    pub fused_gate_up: bool,
    /// Multiply embeddings by √hidden_size (gemma).
    pub scale_embeddings: bool,
    /// RMSNorm multiplies by `(offset + w)`: 0 for most, 1 for gemma.
    pub norm_weight_offset: f64,
}

impl Default for ArchSwitches {
    fn default() -> Self {
        Self {
            qkv_bias: false,
            o_bias: false,
            mlp_bias: false,
            qk_norm: false,
            fused_qkv: false,
            fused_gate_up: false,
            scale_embeddings: false,
            norm_weight_offset: 0.0,
        }
    }
}

/// The resolved configuration the decoder runs on.
///
/// Shape legend used across this crate: B batch, T sequence, C `hidden_size`,
/// H `num_attention_heads`, K `num_key_value_heads`, D `head_dim`, V `vocab_size`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// Architecture family.
    pub family: Family,
    /// V.
    pub vocab_size: usize,
    /// C.
    pub hidden_size: usize,
    /// MLP inner width.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// H.
    pub num_attention_heads: usize,
    /// K (divides H).
    pub num_key_value_heads: usize,
    /// D.
    pub head_dim: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base θ.
    pub rope_theta: f64,
    /// RoPE frequency scaling.
    pub rope_scaling: RopeScaling,
    /// Rotated width of each head, `D` unless partial rotary.
    pub rotary_dim: usize,
    /// Context length.
    pub max_position_embeddings: usize,
    /// lm_head shares embed_tokens.
    pub tie_word_embeddings: bool,
    /// MLP activation.
    pub hidden_act: Activation,
    /// Sliding window attention span in tokens, when the family uses one.
    pub sliding_window: Option<usize>,
    /// Family switches.
    pub switches: ArchSwitches,
    /// bos id, when known.
    pub bos_token_id: Option<u32>,
    /// eos ids (several for some models), possibly empty.
    pub eos_token_ids: Vec<u32>,
    /// pad id, when known.
    pub pad_token_id: Option<u32>,
}

impl ModelConfig {
    /// Reads and resolves an HF `config.json`.
    ///
    /// Errors: [`ModelError::Io`], [`ModelError::Config`] (bad JSON, wrong types),
    /// [`ModelError::MissingField`], [`ModelError::UnsupportedArchitecture`], [`ModelError::Unsupported`].
    pub fn from_hf_config_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let raw: HfConfig = serde_json::from_str(&text).map_err(|e| ModelError::Config {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        Self::from_hf(&raw, path)
    }

    /// Resolves a parsed `config.json`; `path` is only used in error messages.
    pub fn from_hf(raw: &HfConfig, path: &Path) -> Result<Self> {
        let model_type = raw
            .model_type
            .as_deref()
            .ok_or_else(|| ModelError::MissingField {
                path: path.to_path_buf(),
                field: "model_type".into(),
                hint: String::new(),
            })?;
        let family =
            Family::from_name(model_type).ok_or_else(|| ModelError::UnsupportedArchitecture {
                path: path.to_path_buf(),
                arch: model_type.to_string(),
            })?;
        family.resolve_hf(raw, path)
    }

    /// Number of query heads sharing one key/value head, `H / K`.
    pub fn n_rep(&self) -> usize {
        self.num_attention_heads / self.num_key_value_heads
    }

    /// Checks the invariants the decoder relies on (heads divide, widths non-zero).
    pub(crate) fn check(self, path: &Path) -> Result<Self> {
        let bad = |msg: String| ModelError::Config {
            path: path.to_path_buf(),
            msg,
        };
        for (name, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("head_dim", self.head_dim),
        ] {
            if v == 0 {
                return Err(bad(format!("`{name}` must be positive, got 0")));
            }
        }
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            return Err(bad(format!(
                "`num_attention_heads` ({}) must be a multiple of `num_key_value_heads` ({})",
                self.num_attention_heads, self.num_key_value_heads
            )));
        }
        if !self.rotary_dim.is_multiple_of(2) || self.rotary_dim > self.head_dim {
            return Err(bad(format!(
                "rotary dimension {} must be even and at most head_dim {}",
                self.rotary_dim, self.head_dim
            )));
        }
        if let RopeScaling::FreqFactors(f) = &self.rope_scaling {
            if f.len() != self.rotary_dim / 2 {
                return Err(bad(format!(
                    "rope frequency factors have {} entries, expected rotary_dim/2 = {}",
                    f.len(),
                    self.rotary_dim / 2
                )));
            }
        }
        Ok(self)
    }
}

/// Reads a token id field that may be an int, a list of ints, or null.
pub(crate) fn token_ids(v: &Option<serde_json::Value>) -> Vec<u32> {
    match v {
        Some(serde_json::Value::Number(n)) => {
            n.as_u64().map(|x| vec![x as u32]).unwrap_or_default()
        }
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_u64().map(|x| x as u32))
            .collect(),
        _ => Vec::new(),
    }
}
