//! Phi-3: fused `qkv_proj` (`[(H + 2K)·D, C]`) and `gate_up_proj` (`[2·I, C]`, gate rows first).
//! Reference: transformers `models/phi3/modeling_phi3.py`. llama.cpp keeps both fused
//! (`attn_qkv`, `ffn_up`) and does not permute rows.

use std::path::Path;

use ferrotune_hub::gguf::GgufFile;

use crate::config::{HfConfig, ModelConfig};
use crate::error::{ModelError, Result};

/// Fused projections, optional sliding window; partial rotary and long-rope are refused.
pub(super) fn adjust_hf(cfg: &mut ModelConfig, raw: &HfConfig, path: &Path) -> Result<()> {
    cfg.switches.fused_qkv = true;
    cfg.switches.fused_gate_up = true;
    cfg.switches.qkv_bias = raw.attention_bias.unwrap_or(false);
    cfg.switches.o_bias = cfg.switches.qkv_bias;
    cfg.sliding_window = raw.sliding_window;
    if cfg.rotary_dim != cfg.head_dim {
        return Err(ModelError::Unsupported {
            path: path.to_path_buf(),
            what: format!(
                "partial_rotary_factor {:?} for phi3",
                raw.partial_rotary_factor
            ),
        });
    }
    Ok(())
}

/// Same switches for a GGUF file. `phi3.attention.sliding_window` 0 means no window (llama.cpp's
/// converter writes 0 when `sliding_window` is null).
pub(super) fn adjust_gguf(cfg: &mut ModelConfig, file: &GgufFile) -> Result<()> {
    cfg.switches.fused_qkv = true;
    cfg.switches.fused_gate_up = true;
    cfg.sliding_window = file
        .get_u32_opt("phi3.attention.sliding_window")?
        .filter(|&w| w > 0)
        .map(|w| w as usize);
    Ok(())
}
