//! Which llama.cpp architecture each ferrotune family is written as, and what sets the
//! families apart in a GGUF file. Facts from llama.cpp's `convert_hf_to_gguf.py`
//! (`LlamaModel`, `Qwen2Model`, `Qwen3Model`, `GemmaModel`, `Phi3MiniModel`) and
//! `gguf-py/gguf/constants.py`:
//!
//! | family  | `general.architecture` | Q/K rows permuted | stored differently from HF |
//! |---------|------------------------|-------------------|----------------------------|
//! | llama   | `llama`                | yes               | `rope_freqs` (Llama 3 RoPE) |
//! | mistral | `llama` (the converter registers `MistralForCausalLM` as a llama model) | yes | as llama |
//! | qwen2   | `qwen2`                | no                | `attn_q/k/v.bias` |
//! | qwen3   | `qwen3`                | no                | `attn_q_norm`, `attn_k_norm` |
//! | gemma   | `gemma` (Gemma 1)      | no                | every RMSNorm weight stored as `1 + w`; no `output` (the head is `token_embd`) |
//! | phi3    | `phi3`                 | no                | fused `attn_qkv` and `ffn_up` (gate rows first); `phi3.attention.sliding_window` (0 for none) |
//!
//! llama.cpp's gemma graph multiplies by the stored norm weight as it is (hence the `+ 1` of the
//! converter, `GemmaModel.modify_tensors`) and scales the embeddings by √C itself; its phi3
//! graph splits `ffn_up` into gate and up halves (SwiGLU) and `attn_qkv` into q, k, v rows.
//! Tensor names are shared (see [`super::gguf_name`]).

use ferrotune_hub::gguf::GgufValue;
use ferrotune_model::{Activation, Family, ModelConfig, RopeScaling};
use tracing::warn;

use crate::error::{ExportError, Result};

/// How one family is laid out in a GGUF file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GgufLayout {
    /// `general.architecture` and the prefix of the hyper-parameter keys (`llama`, `qwen2`,
    /// `qwen3`, `gemma`, `phi3`).
    pub arch: &'static str,
    /// Whether q_proj/k_proj rows are permuted to llama.cpp's interleaved RoPE order
    /// (`LlamaModel.permute`); the qwen, gemma and phi3 architectures use NeoX-style RoPE and
    /// keep HF's order.
    pub permute_qk: bool,
    /// Added to every RMSNorm weight (HF names ending in `norm.weight`) before it is stored:
    /// 1 for gemma, whose HF norm computes `x̂ · (1 + w)` while llama.cpp computes `x̂ · w`;
    /// 0 otherwise.
    pub norm_weight_offset: f32,
    /// Whether llama.cpp's architecture has a sliding-window key (`<arch>.attention.sliding_window`).
    pub has_sliding_window: bool,
}

impl GgufLayout {
    const fn plain(arch: &'static str, permute_qk: bool) -> Self {
        Self {
            arch,
            permute_qk,
            norm_weight_offset: 0.0,
            has_sliding_window: false,
        }
    }
}

/// The GGUF layout of `cfg`'s family.
///
/// A sliding window is stored only for phi3 (`phi3.attention.sliding_window`, as the converter
/// writes it); llama.cpp's `llama`, `qwen2`, `qwen3` and `gemma` architectures have none and
/// the converter drops it, so a window shorter than the context is logged as a warning there
/// (the exported model attends to the whole context).
///
/// Errors: [`ExportError::NotBuilt`] for a qwen3 model with `attention_bias` (ferrotune's qwen3
/// GGUF loader reads no q/k/v/o biases), and for gemma or phi3 models that llama.cpp's graph
/// for the architecture cannot express (see [`check_gemma`], [`check_phi3`]).
pub fn layout(cfg: &ModelConfig) -> Result<GgufLayout> {
    let layout = match cfg.family {
        Family::Llama | Family::Mistral => GgufLayout::plain("llama", true),
        Family::Qwen2 => GgufLayout::plain("qwen2", false),
        Family::Qwen3 => {
            if cfg.switches.qkv_bias || cfg.switches.o_bias {
                return Err(ExportError::NotBuilt {
                    what: "gguf export of a qwen3 model with `attention_bias: true`".into(),
                    supported: "supported: qwen3 without attention biases; hint: use \
                                `export_format: hf`"
                        .into(),
                });
            }
            GgufLayout::plain("qwen3", false)
        }
        Family::Gemma => {
            check_gemma(cfg)?;
            GgufLayout {
                norm_weight_offset: cfg.switches.norm_weight_offset as f32,
                ..GgufLayout::plain("gemma", false)
            }
        }
        Family::Phi3 => {
            check_phi3(cfg)?;
            GgufLayout {
                has_sliding_window: true,
                ..GgufLayout::plain("phi3", false)
            }
        }
    };
    if let Some(window) = cfg.sliding_window {
        if window < cfg.max_position_embeddings && !layout.has_sliding_window {
            warn!(
                family = cfg.family.name(),
                sliding_window = window,
                context_length = cfg.max_position_embeddings,
                "the gguf `{}` architecture has no sliding window: the exported model attends \
                 to the whole context, as llama.cpp's converter does",
                layout.arch
            );
        }
    }
    Ok(layout)
}

/// The family-specific `<arch>.*` keys written after the shared ones: phi3's
/// `attention.sliding_window` (the window, or 0 for none, as `Phi3MiniModel` writes it).
pub fn family_metadata(layout: &GgufLayout, cfg: &ModelConfig) -> Vec<(String, GgufValue)> {
    let mut m = Vec::new();
    if layout.has_sliding_window {
        m.push((
            format!("{}.attention.sliding_window", layout.arch),
            GgufValue::U32(cfg.sliding_window.unwrap_or(0) as u32),
        ));
    }
    m
}

/// A [`ExportError::NotBuilt`] for `family` naming what is refused and the HF export as the way
/// out.
fn refuse(cfg: &ModelConfig, what: &str, why: &str) -> ExportError {
    ExportError::NotBuilt {
        what: format!("gguf export of a `{}` model with {what}", cfg.family.name()),
        supported: format!("{why}; hint: use `export_format: hf`"),
    }
}

/// Refuses the bias and RoPE settings neither llama.cpp's gemma nor its phi3 graph has: q/k/v/o
/// and MLP biases, and RoPE scaling stored as a frequency tensor (Llama 3), which those graphs
/// do not read.
fn check_no_biases_or_freq_tensor(cfg: &ModelConfig) -> Result<()> {
    let arch = cfg.family.name();
    if cfg.switches.qkv_bias || cfg.switches.o_bias || cfg.switches.mlp_bias {
        return Err(refuse(
            cfg,
            "attention or MLP biases",
            &format!("llama.cpp's `{arch}` architecture has no bias tensors"),
        ));
    }
    if matches!(
        cfg.rope_scaling,
        RopeScaling::Llama3 { .. } | RopeScaling::FreqFactors(_)
    ) {
        return Err(refuse(
            cfg,
            "llama3 RoPE scaling",
            &format!("llama.cpp's `{arch}` architecture reads no `rope_freqs` tensor"),
        ));
    }
    Ok(())
}

/// Gemma 1 as llama.cpp's `gemma` architecture: a tied head (the converter drops `lm_head`
/// and llama.cpp projects with `token_embd`), GELU-tanh MLP (`ggml_gelu`), no biases.
///
/// Errors: [`ExportError::NotBuilt`] for an untied head, another activation, biases or Llama 3
/// RoPE scaling.
pub fn check_gemma(cfg: &ModelConfig) -> Result<()> {
    check_no_biases_or_freq_tensor(cfg)?;
    if !cfg.tie_word_embeddings {
        return Err(refuse(
            cfg,
            "`tie_word_embeddings: false`",
            "llama.cpp's `gemma` architecture projects logits with `token_embd` and has no \
             `output` tensor",
        ));
    }
    if cfg.hidden_act != Activation::GeluTanh {
        return Err(refuse(
            cfg,
            &format!("activation {:?}", cfg.hidden_act),
            "llama.cpp's `gemma` architecture applies GELU with the tanh approximation \
             (`gelu_pytorch_tanh`)",
        ));
    }
    Ok(())
}

/// Phi-3 as llama.cpp's `phi3` architecture: SiLU-gated MLP, full rotary dimension (ferrotune
/// refuses partial rotary and long-rope phi3 models at load), no biases.
///
/// Errors: [`ExportError::NotBuilt`] for another activation, biases or Llama 3 RoPE scaling.
pub fn check_phi3(cfg: &ModelConfig) -> Result<()> {
    check_no_biases_or_freq_tensor(cfg)?;
    if cfg.hidden_act != Activation::Silu {
        return Err(refuse(
            cfg,
            &format!("activation {:?}", cfg.hidden_act),
            "llama.cpp's `phi3` architecture applies SwiGLU (SiLU)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mistral_is_written_as_llama_and_qwen_unpermuted() {
        let cfg = |family| ModelConfig { family, ..tiny() };
        assert_eq!(
            layout(&cfg(Family::Mistral)).unwrap(),
            GgufLayout::plain("llama", true)
        );
        assert_eq!(
            layout(&cfg(Family::Qwen2)).unwrap(),
            GgufLayout::plain("qwen2", false)
        );
        let phi3 = layout(&cfg(Family::Phi3)).unwrap();
        assert_eq!((phi3.arch, phi3.permute_qk), ("phi3", false));
        let window = family_metadata(&phi3, &cfg(Family::Phi3));
        assert_eq!(
            window,
            vec![(
                "phi3.attention.sliding_window".to_string(),
                GgufValue::U32(0)
            )]
        );
        let mut biased = cfg(Family::Qwen3);
        biased.switches.qkv_bias = true;
        let err = layout(&biased).unwrap_err().to_string();
        assert!(err.contains("attention_bias"), "{err}");
    }

    #[test]
    fn gemma_stores_norms_plus_one_and_refuses_what_llama_cpp_lacks() {
        let gemma = ModelConfig {
            family: Family::Gemma,
            hidden_act: Activation::GeluTanh,
            switches: ferrotune_model::ArchSwitches {
                norm_weight_offset: 1.0,
                scale_embeddings: true,
                ..Default::default()
            },
            ..tiny()
        };
        let l = layout(&gemma).unwrap();
        assert_eq!(
            (l.arch, l.permute_qk, l.norm_weight_offset),
            ("gemma", false, 1.0)
        );
        assert!(family_metadata(&l, &gemma).is_empty());
        let untied = ModelConfig {
            tie_word_embeddings: false,
            ..gemma.clone()
        };
        let err = layout(&untied).unwrap_err().to_string();
        assert!(err.contains("tie_word_embeddings"), "{err}");
        let erf = ModelConfig {
            hidden_act: Activation::GeluErf,
            ..gemma.clone()
        };
        assert!(layout(&erf).is_err());
        let mut biased = gemma;
        biased.switches.o_bias = true;
        let err = layout(&biased).unwrap_err().to_string();
        assert!(err.contains("biases"), "{err}");
    }

    fn tiny() -> ModelConfig {
        ModelConfig {
            family: Family::Llama,
            vocab_size: 8,
            hidden_size: 8,
            intermediate_size: 16,
            num_hidden_layers: 1,
            num_attention_heads: 2,
            num_key_value_heads: 2,
            head_dim: 4,
            rms_norm_eps: 1e-6,
            rope_theta: 10000.0,
            rope_scaling: ferrotune_model::RopeScaling::None,
            rotary_dim: 4,
            max_position_embeddings: 16,
            tie_word_embeddings: true,
            hidden_act: ferrotune_model::Activation::Silu,
            sliding_window: None,
            switches: Default::default(),
            bos_token_id: None,
            eos_token_ids: vec![],
            pad_token_id: None,
        }
    }
}
