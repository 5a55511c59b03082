//! Logits of the tiny random models of every family equal transformers' (f32, ≤ 1e-4),
//! from HF folders (f32, bf16, f16 weights, sharded) and from GGUF files.

mod common;

use candle_core::Device;
use common::{fixture, golden, max_abs_diff};
use ferrotune_hub::gguf::GgufFile;

/// Tolerance on logits, f32 end to end: transformers and we sum in different orders.
const TOL: f32 = 1e-4;

fn check_hf(variant: &str) {
    let dir = fixture(&format!("tiny/{variant}"));
    let model = ferrotune_model::load_hf_dir(&dir, &Device::Cpu)
        .unwrap_or_else(|e| panic!("{variant}: {e}"));
    let (ids, want) = golden(&dir.join("golden.safetensors"));
    let got = model.forward(&ids, None).unwrap();
    let diff = max_abs_diff(&got, &want);
    println!("{variant}: max |Δlogit| = {diff:.3e}");
    assert!(diff <= TOL, "{variant}: max |Δlogit| = {diff:e} > {TOL:e}");
}

#[test]
fn llama_tied() {
    check_hf("llama");
}

#[test]
fn llama_untied_rope_llama3() {
    check_hf("llama_untied_rope_llama3");
}

#[test]
fn llama_rope_linear_transformers5_config() {
    check_hf("llama_rope_linear");
}

#[test]
fn llama_explicit_head_dim() {
    check_hf("llama_head_dim");
}

#[test]
fn llama_bf16_weights() {
    check_hf("llama_bf16");
}

#[test]
fn llama_f16_weights() {
    check_hf("llama_f16");
}

#[test]
fn mistral() {
    check_hf("mistral");
}

#[test]
fn qwen2_biases() {
    check_hf("qwen2");
}

#[test]
fn qwen2_sharded() {
    check_hf("qwen2_sharded");
}

#[test]
fn qwen3_qk_norm() {
    check_hf("qwen3");
}

#[test]
fn gemma() {
    check_hf("gemma");
}

#[test]
fn phi3_fused() {
    check_hf("phi3");
}

fn check_gguf(file: &str, golden_variant: &str) {
    let gguf = GgufFile::open(&fixture(&format!("tiny/gguf/{file}"))).unwrap();
    let model = ferrotune_model::load_gguf(&gguf, &Device::Cpu).unwrap();
    let (ids, want) = golden(&fixture(&format!(
        "tiny/{golden_variant}/golden.safetensors"
    )));
    let got = model.forward(&ids, None).unwrap();
    let diff = max_abs_diff(&got, &want);
    println!("{file}: max |Δlogit| = {diff:.3e}");
    assert!(diff <= TOL, "{file}: max |Δlogit| = {diff:e} > {TOL:e}");
}

#[test]
fn gguf_llama_rows_unpermuted() {
    check_gguf("llama.gguf", "llama");
}

#[test]
fn gguf_qwen2_not_permuted() {
    check_gguf("qwen2.gguf", "qwen2");
}

#[test]
fn padding_mask_leaves_real_tokens_unchanged() {
    // Right padding: logits of the real tokens must not change when pad tokens follow.
    let dir = fixture("tiny/qwen2");
    let model = ferrotune_model::load_hf_dir(&dir, &Device::Cpu).unwrap();
    let (ids, want) = golden(&dir.join("golden.safetensors"));
    let row = ids.narrow(0, 0, 1).unwrap();
    let pad = candle_core::Tensor::zeros((1, 4), candle_core::DType::U32, &Device::Cpu).unwrap();
    let padded = candle_core::Tensor::cat(&[&row, &pad], 1).unwrap();
    let mut mask = vec![1u32; 10];
    mask.extend([0u32; 4]);
    let mask = candle_core::Tensor::from_vec(mask, (1, 14), &Device::Cpu).unwrap();
    let got = model
        .forward(&padded, Some(&mask))
        .unwrap()
        .narrow(1, 0, 10)
        .unwrap();
    let diff = max_abs_diff(&got, &want.narrow(0, 0, 1).unwrap());
    assert!(diff <= TOL, "max |Δlogit| = {diff:e}");
}
