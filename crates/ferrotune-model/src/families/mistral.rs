//! Mistral 7B: llama's layout with sliding-window attention.
//! Reference: transformers `models/mistral/modeling_mistral.py` (Jiang et al. 2023, §2).

use ferrotune_hub::gguf::GgufFile;

use crate::config::{HfConfig, ModelConfig};
use crate::error::Result;

/// No biases; attention limited to the last `sliding_window` tokens when set.
pub(super) fn adjust_hf(cfg: &mut ModelConfig, raw: &HfConfig) {
    cfg.sliding_window = raw.sliding_window;
}

/// llama.cpp writes `mistral.attention.sliding_window` when the model has one.
pub(super) fn adjust_gguf(cfg: &mut ModelConfig, file: &GgufFile) -> Result<()> {
    cfg.sliding_window = file
        .get_u32_opt("mistral.attention.sliding_window")?
        .map(|w| w as usize);
    Ok(())
}
