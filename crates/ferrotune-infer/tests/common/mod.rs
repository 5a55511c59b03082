//! The demo model and fixture paths shared by the generation tests.
#![allow(dead_code)]

use std::path::PathBuf;

use candle_core::Device;
use ferrotune_hub::gguf::GgufFile;
use ferrotune_hub::tokenizer::TokenizerBundle;
use ferrotune_infer::Generator;

/// The workspace root (two levels above this crate).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `fixtures/<rel>`.
pub fn fixture(rel: &str) -> PathBuf {
    root().join("fixtures").join(rel)
}

/// The demo GGUF; fails (never skips) when it has not been fetched.
pub fn demo_gguf() -> PathBuf {
    let p = std::env::var_os("FERROTUNE_DEMO_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    assert!(
        p.is_file(),
        "demo model {} not found: run scripts/fetch_model.sh",
        p.display()
    );
    p
}

/// The demo model's tokenizer, from the GGUF metadata.
pub fn demo_tokenizer() -> TokenizerBundle {
    let gguf = GgufFile::open(&demo_gguf()).unwrap();
    TokenizerBundle::from_gguf(&gguf).unwrap()
}

/// A generator over the demo model and its GGUF tokenizer.
pub fn demo_generator() -> Generator {
    let gguf = GgufFile::open(&demo_gguf()).unwrap();
    let model = ferrotune_model::load_gguf(&gguf, &Device::Cpu).unwrap();
    Generator::new(model, TokenizerBundle::from_gguf(&gguf).unwrap())
}
