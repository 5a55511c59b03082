//! Gemma 1: embeddings scaled by √C, GELU-tanh MLP, RMSNorm as `x̂ · (1 + w)`,
//! tied lm_head. Reference: transformers `models/gemma/modeling_gemma.py`
//! (Gemma Team 2024, "Gemma: Open Models Based on Gemini Research and Technology").

use candle_core::Tensor;

use crate::config::{Activation, HfConfig, ModelConfig};
use crate::error::Result;

/// Gemma switches; the activation comes from `hidden_activation` (else `hidden_act`), GELU-tanh by default.
pub(super) fn adjust_hf(cfg: &mut ModelConfig, raw: &HfConfig) {
    cfg.switches.scale_embeddings = true;
    cfg.switches.norm_weight_offset = 1.0;
    cfg.tie_word_embeddings = raw.tie_word_embeddings.unwrap_or(true);
    if raw.hidden_activation.is_none() && raw.hidden_act.is_none() {
        cfg.hidden_act = Activation::GeluTanh;
    }
    let attention_bias = raw.attention_bias.unwrap_or(false);
    cfg.switches.qkv_bias = attention_bias;
    cfg.switches.o_bias = attention_bias;
}

/// Same switches for a GGUF file (llama.cpp's gemma graph uses GELU).
pub(super) fn adjust_gguf(cfg: &mut ModelConfig) {
    cfg.switches.scale_embeddings = true;
    cfg.switches.norm_weight_offset = 1.0;
    cfg.hidden_act = Activation::GeluTanh;
}

/// llama.cpp's converter stores Gemma's norm weights as `1 + w`; take the 1 back off
/// so the weights are HF's and the decoder's `(1 + w)` applies once.
pub(super) fn fix_gguf_norm(hf_name: &str, t: Tensor) -> Result<Tensor> {
    if hf_name.ends_with("norm.weight") {
        Ok((t - 1.0)?)
    } else {
        Ok(t)
    }
}
