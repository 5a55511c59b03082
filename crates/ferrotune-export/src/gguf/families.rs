//! Which llama.cpp architecture each ferrotune family is written as, and what sets the
//! families apart in a GGUF file. Facts from llama.cpp's `convert_hf_to_gguf.py` and
//! `gguf-py/gguf/constants.py`:
//!
//! | family  | `general.architecture` | Q/K rows permuted | extra tensors |
//! |---------|------------------------|-------------------|---------------|
//! | llama   | `llama`                | yes               | `rope_freqs` (Llama 3 RoPE) |
//! | mistral | `llama` (the converter registers `MistralForCausalLM` as a llama model) | yes | as llama |
//! | qwen2   | `qwen2`                | no                | `attn_q/k/v.bias` |
//! | qwen3   | `qwen3`                | no                | `attn_q_norm`, `attn_k_norm` |
//!
//! Tensor names are shared (see [`super::gguf_name`]); only the architecture, the Q/K
//! permutation and the `<arch>.*` metadata prefix differ.

use ferrotune_model::{Family, ModelConfig};
use tracing::warn;

use crate::error::{ExportError, Result};

/// How one family is laid out in a GGUF file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GgufLayout {
    /// `general.architecture` and the prefix of the hyper-parameter keys (`llama`, `qwen2`,
    /// `qwen3`).
    pub arch: &'static str,
    /// Whether q_proj/k_proj rows are permuted to llama.cpp's interleaved RoPE order
    /// (`LlamaModel.permute`); the qwen architectures use NeoX-style RoPE and keep HF's order.
    pub permute_qk: bool,
}

/// The GGUF layout of `cfg`'s family.
///
/// A sliding window is not stored: llama.cpp's `llama`, `qwen2` and `qwen3` architectures have
/// none and its converter drops it too, so a window shorter than the context is logged as a
/// warning (the exported model attends to the whole context).
///
/// Errors: [`ExportError::NotBuilt`] for gemma and phi3, and for a qwen3 model with
/// `attention_bias` (ferrotune's qwen3 GGUF loader reads no q/k/v/o biases).
pub fn layout(cfg: &ModelConfig) -> Result<GgufLayout> {
    let layout = match cfg.family {
        Family::Llama | Family::Mistral => GgufLayout {
            arch: "llama",
            permute_qk: true,
        },
        Family::Qwen2 => GgufLayout {
            arch: "qwen2",
            permute_qk: false,
        },
        Family::Qwen3 => {
            if cfg.switches.qkv_bias || cfg.switches.o_bias {
                return Err(ExportError::NotBuilt {
                    what: "gguf export of a qwen3 model with `attention_bias: true`".into(),
                    supported: "supported: qwen3 without attention biases; hint: use \
                                `export_format: hf`"
                        .into(),
                });
            }
            GgufLayout {
                arch: "qwen3",
                permute_qk: false,
            }
        }
        Family::Gemma | Family::Phi3 => {
            return Err(ExportError::NotBuilt {
                what: format!("gguf export of the `{}` family", cfg.family.name()),
                supported: "supported: llama, mistral, qwen2, qwen3; hint: use \
                            `export_format: hf`"
                    .into(),
            })
        }
    };
    if let Some(window) = cfg.sliding_window {
        if window < cfg.max_position_embeddings {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mistral_is_written_as_llama_and_qwen_unpermuted() {
        let cfg = |family| ModelConfig { family, ..tiny() };
        assert_eq!(
            layout(&cfg(Family::Mistral)).unwrap(),
            GgufLayout {
                arch: "llama",
                permute_qk: true
            }
        );
        assert_eq!(
            layout(&cfg(Family::Qwen2)).unwrap(),
            GgufLayout {
                arch: "qwen2",
                permute_qk: false
            }
        );
        let err = layout(&cfg(Family::Phi3)).unwrap_err().to_string();
        assert!(err.contains("`phi3` family is not built yet"), "{err}");
        let mut biased = cfg(Family::Qwen3);
        biased.switches.qkv_bias = true;
        let err = layout(&biased).unwrap_err().to_string();
        assert!(err.contains("attention_bias"), "{err}");
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
