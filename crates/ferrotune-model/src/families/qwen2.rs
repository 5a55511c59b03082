//! Qwen2 / Qwen2.5: llama's layout with biases on q, k and v (not o).
//! Reference: transformers `models/qwen2/modeling_qwen2.py`. GGUF rows are not permuted.

use crate::config::{HfConfig, ModelConfig};

/// q/k/v carry biases; the sliding window applies only when `use_sliding_window`.
pub(super) fn adjust_hf(cfg: &mut ModelConfig, raw: &HfConfig) {
    cfg.switches.qkv_bias = true;
    if raw.use_sliding_window.unwrap_or(false) {
        cfg.sliding_window = raw.sliding_window;
    }
}

/// Same switches for a GGUF file.
pub(super) fn adjust_gguf(cfg: &mut ModelConfig) {
    cfg.switches.qkv_bias = true;
}
