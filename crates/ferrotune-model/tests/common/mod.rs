//! Fixture paths and comparison helpers shared by the model tests.
#![allow(dead_code)]

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};

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

/// `input_ids` as u32 and `logits` as f32 from a `golden.safetensors`.
pub fn golden(path: &std::path::Path) -> (Tensor, Tensor) {
    let t = candle_core::safetensors::load(path, &Device::Cpu).expect("golden fixture");
    let ids = t["input_ids"].to_dtype(DType::U32).unwrap();
    (ids, t["logits"].clone())
}

/// Largest absolute elementwise difference.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}
