//! GGUF export round trips through ferrotune's own GGUF reader and loader:
//!
//! - the demo GGUF with `lora_qv` merged, written as f32, reloads to exactly the merged
//!   model's logits (the Q/K permutation and its inverse are exact); as q8_0 within the
//!   quantization error (each weight within half a quantization step; logits within 2.0, mean
//!   within 0.2, the same argmax at every position);
//! - the written tokenizer (copied from the source GGUF, or rebuilt from `tokenizer.json`)
//!   gives the source's ids, and the rebuilt vocabulary equals llama.cpp's converter output
//!   stored in the demo file (tokens, token types, merges);
//! - a tiny HF llama with an untied head and Llama 3 RoPE scaling (written as
//!   `rope_freqs.weight`) reloads to its HF logits;
//! - tiny HF mistral (written as llama.cpp's `llama`, Q/K rows permuted), qwen2 (`qwen2`,
//!   q/k/v biases, rows as in HF) and qwen3 (`qwen3`, `attn_q_norm`/`attn_k_norm`, head_dim
//!   32 ≠ hidden/heads) reload to their HF logits within 1e-5; other families are refused.
//!
//! Shapes: logits `[1, T, V]`. Needs the demo model (`scripts/fetch_model.sh`).

mod common;

use candle_core::Device;
use common::*;
use ferrotune_config::args::ExportQuantization;
use ferrotune_export::gguf::{self, vocab, writer};
use ferrotune_hub::gguf::{GgmlType, GgufFile, GgufValue};
use ferrotune_hub::tokenizer::TokenizerBundle;
use ferrotune_model::{load_gguf, load_hf_dir};

/// Largest accepted logit difference of the q8_0 export (logits span about ±30; measured
/// 1.52, against 0.23 for a bf16 copy: q8_0's step is max|x|/127 per block of 32, several
/// times bf16's relative 2^-8).
const Q8_0_MAX_TOLERANCE: f32 = 2.0;
/// Largest accepted mean |logit difference| of the q8_0 export (measured 0.127).
const Q8_0_MEAN_TOLERANCE: f32 = 0.2;

#[test]
fn demo_model_round_trips_as_f32_and_q8_0() {
    let tmp = tempfile::tempdir().unwrap();
    let source = GgufFile::open(&demo_gguf()).unwrap();
    let tok = TokenizerBundle::from_gguf(&source).unwrap();
    let ids = tok.encode(PROMPT, false).unwrap();
    let merged = merged_demo();
    let expected = logits(&merged, &ids);
    let meta = vocab::tokenizer_metadata(
        &tok,
        Some(&source),
        merged.config.vocab_size,
        tok.chat_template.as_deref(),
    )
    .unwrap();

    let path = tmp.path().join("f32.gguf");
    gguf::write_gguf(&path, &merged, ExportQuantization::F32, "demo", &meta).unwrap();
    let file = GgufFile::open(&path).unwrap();
    assert_eq!(file.version(), 3);
    assert_eq!(file.get_str("general.architecture").unwrap(), "llama");
    assert_eq!(file.get_u32("general.file_type").unwrap(), 0);
    for key in [
        "llama.context_length",
        "llama.embedding_length",
        "llama.block_count",
        "llama.feed_forward_length",
        "llama.attention.head_count",
        "llama.attention.head_count_kv",
        "llama.rope.dimension_count",
        "llama.vocab_size",
    ] {
        assert_eq!(file.get(key), source.get(key), "{key}");
    }
    for key in [
        "llama.rope.freq_base",
        "llama.attention.layer_norm_rms_epsilon",
    ] {
        assert_eq!(file.get(key), source.get(key), "{key}");
    }
    assert_eq!(file.tensors().len(), source.tensors().len());
    let reloaded = load_gguf(&file, &Device::Cpu).unwrap();
    let d = max_diff(&logits(&reloaded, &ids), &expected);
    println!("f32 gguf: max |logit diff| = {d:e}");
    assert_eq!(d, 0.0, "f32 gguf export must reload exactly");
    let tok2 = TokenizerBundle::from_gguf(&file).unwrap();
    assert_eq!(tok2.encode(PROMPT, false).unwrap(), ids);
    assert_eq!(tok2.chat_template, tok.chat_template);
    assert_eq!(tok2.eos_token_id(), tok.eos_token_id());
    for key in [
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.merges",
        "tokenizer.ggml.token_type",
    ] {
        assert!(file.get(key) == source.get(key), "{key} differs");
    }

    let path = tmp.path().join("q8_0.gguf");
    gguf::write_gguf(&path, &merged, ExportQuantization::Q8_0, "demo", &meta).unwrap();
    let file = GgufFile::open(&path).unwrap();
    let info = file.tensor_info("blk.0.attn_q.weight").unwrap();
    assert_eq!(info.dtype, GgmlType::Q8_0);
    assert_eq!(
        file.tensor_info("blk.0.attn_norm.weight").unwrap().dtype,
        GgmlType::F32
    );
    // Each q8_0 weight is within half a step (d/2 = max|x|/254 per block of 32) of the f32
    // value, plus the f16 rounding of d (relative 2^-11, times at most 127 steps).
    let f32_file = GgufFile::open(&tmp.path().join("f32.gguf")).unwrap();
    let exact = f32_file
        .dequantize("blk.0.attn_q.weight", &Device::Cpu)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let quant = file
        .dequantize("blk.0.attn_q.weight", &Device::Cpu)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    for (block, (x, q)) in exact.chunks(32).zip(quant.chunks(32)).enumerate() {
        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let bound = amax / 254.0 + amax / 2048.0 + 1e-12;
        let worst = x
            .iter()
            .zip(q)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst <= bound, "block {block}: error {worst} > {bound}");
    }
    let reloaded = load_gguf(&file, &Device::Cpu).unwrap();
    let got = logits(&reloaded, &ids);
    let d = max_diff(&got, &expected);
    let mean = (&got - &expected)
        .and_then(|x| x.abs())
        .and_then(|x| x.mean_all())
        .and_then(|x| x.to_scalar::<f32>())
        .unwrap();
    let argmax = |t: &candle_core::Tensor| {
        t.argmax(2)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<u32>()
            .unwrap()
    };
    let (a, b) = (argmax(&got), argmax(&expected));
    let agree = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    println!(
        "q8_0 gguf: max |logit diff| = {d:e}, mean {mean:e}, argmax agree {agree}/{}",
        a.len()
    );
    assert!(d <= Q8_0_MAX_TOLERANCE, "q8_0 export differs by {d}");
    assert!(
        mean <= Q8_0_MEAN_TOLERANCE,
        "q8_0 export differs by {mean} on average"
    );
    assert_eq!(a, b, "q8_0 export changes the greedy next tokens");
}

#[test]
fn tokenizer_rebuilt_from_tokenizer_json_matches_llama_cpp_vocab() {
    let tmp = tempfile::tempdir().unwrap();
    let source = GgufFile::open(&demo_gguf()).unwrap();
    let tok = TokenizerBundle::from_gguf(&source).unwrap();
    ferrotune_export::tokenizer_files::write_tokenizer_files(tmp.path(), &tok, None).unwrap();
    let hf_tok = TokenizerBundle::from_hf_dir(tmp.path()).unwrap();
    let vocab_size = source.get_str_array("tokenizer.ggml.tokens").unwrap().len();
    let meta = vocab::tokenizer_metadata(&hf_tok, None, vocab_size, None).unwrap();
    let get = |k: &str| meta.iter().find(|(key, _)| key == k).map(|(_, v)| v);
    for key in [
        "tokenizer.ggml.model",
        "tokenizer.ggml.pre",
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.token_type",
        "tokenizer.ggml.merges",
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.unknown_token_id",
        "tokenizer.ggml.padding_token_id",
    ] {
        assert!(get(key) == source.get(key), "{key} differs");
    }
    // A metadata-only GGUF with that tokenizer rebuilds the same ids.
    let path = tmp.path().join("tok.gguf");
    let mut all = vec![(
        "general.architecture".to_string(),
        GgufValue::String("llama".into()),
    )];
    all.extend(meta);
    writer::write_gguf_file(&path, &all, &[]).unwrap();
    let rebuilt = TokenizerBundle::from_gguf(&GgufFile::open(&path).unwrap()).unwrap();
    assert_eq!(
        rebuilt.encode(PROMPT, false).unwrap(),
        tok.encode(PROMPT, false).unwrap()
    );
}

#[test]
fn tiny_llama3_rope_untied_hf_model_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = root().join("fixtures/tiny/llama_untied_rope_llama3");
    let model = load_hf_dir(&dir, &Device::Cpu).unwrap();
    assert!(model.lm_head.is_some());
    let ids: Vec<u32> = vec![47, 211, 38, 53, 204, 116, 152, 249, 143, 177];
    let expected = logits(&model, &ids);
    let path = tmp.path().join("tiny.gguf");
    gguf::write_gguf(&path, &model, ExportQuantization::F32, "tiny", &[]).unwrap();
    let file = GgufFile::open(&path).unwrap();
    assert!(file.tensor_info("rope_freqs.weight").is_some());
    assert!(file.tensor_info("output.weight").is_some());
    let reloaded = load_gguf(&file, &Device::Cpu).unwrap();
    let d = max_diff(&logits(&reloaded, &ids), &expected);
    println!("tiny llama3-rope gguf: max |logit diff| = {d:e}");
    assert!(d <= 1e-5, "differs by {d}");

    // Families without a GGUF layout yet are refused by name.
    let phi3 = load_hf_dir(&root().join("fixtures/tiny/phi3"), &Device::Cpu).unwrap();
    let err = gguf::write_gguf(
        &tmp.path().join("p.gguf"),
        &phi3,
        ExportQuantization::F16,
        "p",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("`phi3` family is not built yet"), "{err}");
}

/// Largest accepted logit difference of a tiny f32 export reloaded by ferrotune's GGUF loader.
const TINY_F32_TOLERANCE: f32 = 1e-5;

/// Exports `fixtures/tiny/<variant>` as an f32 GGUF (no tokenizer), checks its architecture
/// and that `blk.0.attn_q.weight` holds q_proj's rows permuted (`permuted`) or as they are,
/// and returns the reloaded model's largest logit difference to the HF model, with the file.
fn tiny_round_trip(
    variant: &str,
    arch: &str,
    permuted: bool,
    dir: &std::path::Path,
) -> (f32, GgufFile) {
    let model = load_hf_dir(&root().join("fixtures/tiny").join(variant), &Device::Cpu).unwrap();
    let ids: Vec<u32> = vec![47, 211, 38, 53, 204, 116, 152, 249, 143, 177];
    let expected = logits(&model, &ids);
    let path = dir.join(format!("{variant}.gguf"));
    gguf::write_gguf(&path, &model, ExportQuantization::F32, variant, &[]).unwrap();
    let file = GgufFile::open(&path).unwrap();
    assert_eq!(file.get_str("general.architecture").unwrap(), arch);
    assert_eq!(
        file.get_u32(&format!("{arch}.block_count")).unwrap() as usize,
        model.config.num_hidden_layers
    );
    let hf_q = model
        .named_tensors()
        .into_iter()
        .find(|(name, _)| name == "model.layers.0.self_attn.q_proj.weight")
        .map(|(_, t)| t)
        .unwrap();
    let stored = file
        .dequantize("blk.0.attn_q.weight", &Device::Cpu)
        .unwrap();
    let want = if permuted {
        gguf::permute_qk(
            "model.layers.0.self_attn.q_proj.weight",
            hf_q.clone(),
            &model.config,
        )
        .unwrap()
    } else {
        hf_q.clone()
    };
    assert_eq!(max_diff(&stored, &want), 0.0, "{variant}: attn_q rows");
    assert_eq!(
        max_diff(&stored, &hf_q) != 0.0,
        permuted,
        "{variant}: attn_q permutation"
    );
    let reloaded = load_gguf(&file, &Device::Cpu).unwrap();
    let d = max_diff(&logits(&reloaded, &ids), &expected);
    println!("tiny {variant} gguf ({arch}): max |logit diff| = {d:e}");
    (d, file)
}

#[test]
fn tiny_mistral_round_trips_as_llama() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, file) = tiny_round_trip("mistral", "llama", true, tmp.path());
    assert!(file.tensor_info("output.weight").is_some());
    assert!(d <= TINY_F32_TOLERANCE, "differs by {d}");
}

#[test]
fn tiny_qwen2_round_trips_with_biases() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, file) = tiny_round_trip("qwen2", "qwen2", false, tmp.path());
    for name in [
        "blk.1.attn_q.bias",
        "blk.1.attn_k.bias",
        "blk.1.attn_v.bias",
    ] {
        let info = file.tensor_info(name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(info.dtype, GgmlType::F32, "{name}");
    }
    assert!(file.tensor_info("blk.1.attn_output.bias").is_none());
    assert!(d <= TINY_F32_TOLERANCE, "differs by {d}");
}

#[test]
fn tiny_qwen3_round_trips_with_qk_norms() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, file) = tiny_round_trip("qwen3", "qwen3", false, tmp.path());
    assert!(file.tensor_info("blk.0.attn_q_norm.weight").is_some());
    assert!(file.tensor_info("blk.0.attn_k_norm.weight").is_some());
    assert_eq!(file.get_u32("qwen3.attention.key_length").unwrap(), 32);
    assert!(d <= TINY_F32_TOLERANCE, "differs by {d}");
}
