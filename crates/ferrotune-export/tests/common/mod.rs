//! Shared helpers of the export tests: paths, the demo model with a LoRA adapter merged, logits
//! and their largest difference.
//!
//! Shapes: logits `[1, T, V]` f32 for one row of `T` token ids.

#![allow(dead_code)] // each test file uses a subset

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use ferrotune_config::Config;
use ferrotune_hub::resolve::ModelSource;
use ferrotune_model::CausalLM;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The demo GGUF; fails (never skips) when `scripts/fetch_model.sh` has not fetched it.
pub fn demo_gguf() -> PathBuf {
    let p = root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.is_file(),
        "{} is missing; run scripts/fetch_model.sh",
        p.display()
    );
    p
}

/// The LoRA adapter (r 4, q_proj/v_proj) trained by ferrotune on the demo GGUF.
pub fn lora_qv() -> PathBuf {
    root().join("fixtures/peft_interop/lora_qv")
}

/// A prompt in the demo model's chat format, as text.
pub const PROMPT: &str =
    "<|im_start|>user\nWhat is the capital of France? Réponds en français 🙂<|im_end|>\n<|im_start|>assistant\n";

/// The demo GGUF with `lora_qv` merged, as the export loads it.
pub fn merged_demo() -> CausalLM {
    ferrotune_export::load_merged(&ModelSource::Gguf(demo_gguf()), &[lora_qv()], &Device::Cpu)
        .expect("load and merge the demo model")
}

/// Logits `[1, T, V]` of one row of ids.
pub fn logits(model: &CausalLM, ids: &[u32]) -> Tensor {
    let input = Tensor::new(ids, &Device::Cpu)
        .and_then(|t| t.unsqueeze(0))
        .expect("input ids");
    model.forward(&input, None).expect("forward")
}

/// max |a - b| over all elements.
pub fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.max_all())
        .and_then(|d| d.to_scalar::<f32>())
        .expect("difference")
}

/// A config from `key=value` overrides.
pub fn config(overrides: &[String]) -> Config {
    Config::from_overrides(overrides).expect("valid config")
}
