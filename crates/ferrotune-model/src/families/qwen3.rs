//! Qwen3: per-head RMSNorm on queries and keys before RoPE (`q_norm`, `k_norm`),
//! no q/k/v biases by default. Reference: transformers `models/qwen3/modeling_qwen3.py`.

use crate::config::{HfConfig, ModelConfig};

/// q/k norms always; biases only with `attention_bias`.
pub(super) fn adjust_hf(cfg: &mut ModelConfig, raw: &HfConfig) {
    cfg.switches.qk_norm = true;
    let attention_bias = raw.attention_bias.unwrap_or(false);
    cfg.switches.qkv_bias = attention_bias;
    cfg.switches.o_bias = attention_bias;
    if raw.use_sliding_window.unwrap_or(false) {
        cfg.sliding_window = raw.sliding_window;
    }
}

/// Same switches for a GGUF file.
pub(super) fn adjust_gguf(cfg: &mut ModelConfig) {
    cfg.switches.qk_norm = true;
}
