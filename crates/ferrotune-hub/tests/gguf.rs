//! GGUF reader: the demo model, bit-exact dequantization against gguf-py, typed metadata.

mod common;

use candle_core::Device;
use common::RawTensor;
use ferrotune_hub::gguf::{GgmlType, GgufFile, GgufValue};
use ferrotune_hub::HubError;

fn dequant_values(file: &GgufFile, name: &str) -> (Vec<usize>, Vec<f32>) {
    let t = file
        .dequantize(name, &Device::Cpu)
        .unwrap_or_else(|e| panic!("{e}"));
    let dims = t.dims().to_vec();
    let values = t
        .flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .expect("to_vec1");
    (dims, values)
}

#[test]
fn demo_model_header_metadata_and_tensors() {
    let file = GgufFile::open(&common::demo_gguf()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(file.version(), 3);
    assert_eq!(file.architecture().unwrap(), "llama");
    assert_eq!(file.tensors().len(), 272);
    assert_eq!(file.metadata().len(), 33);
    assert_eq!(file.get_u32("llama.block_count").unwrap(), 30);
    assert_eq!(file.get_u32("llama.embedding_length").unwrap(), 576);
    assert_eq!(file.get_u32("llama.attention.head_count_kv").unwrap(), 3);
    assert_eq!(file.get_f32("llama.rope.freq_base").unwrap(), 100000.0);
    assert_eq!(
        file.get_f32("llama.attention.layer_norm_rms_epsilon")
            .unwrap(),
        1e-5
    );
    assert_eq!(file.get_str("tokenizer.ggml.pre").unwrap(), "smollm");
    assert_eq!(
        file.get_bool_opt("tokenizer.ggml.add_bos_token").unwrap(),
        Some(false)
    );
    assert_eq!(file.get_u32_opt("llama.no_such_key").unwrap(), None);
    assert_eq!(
        file.get_str_array("tokenizer.ggml.tokens").unwrap().len(),
        49152
    );
    assert_eq!(
        file.get_str_array("tokenizer.ggml.merges").unwrap().len(),
        48900
    );
    let types = file.get_i32_array("tokenizer.ggml.token_type").unwrap();
    assert_eq!(types.len(), 49152);
    assert_eq!(file.get_str_array("general.languages").unwrap(), ["en"]);

    let embd = file.tensor_info("token_embd.weight").unwrap();
    assert_eq!(embd.dims, [49152, 576]);
    assert_eq!(embd.dtype, GgmlType::Q8_0);
    assert_eq!(embd.n_bytes, 49152 * 576 / 32 * 34);
    assert_eq!(file.tensor_bytes(embd).len(), embd.n_bytes);
    let down = file.tensor_info("blk.0.ffn_down.weight").unwrap();
    assert_eq!(
        (down.dims.as_slice(), down.dtype),
        ([576, 1536].as_slice(), GgmlType::Q4_1)
    );
    let k = file.tensor_info("blk.29.attn_k.weight").unwrap();
    assert_eq!(
        (k.dims.as_slice(), k.dtype),
        ([192, 576].as_slice(), GgmlType::Q4_1)
    );
    let norm = file.tensor_info("output_norm.weight").unwrap();
    assert_eq!(
        (norm.dims.as_slice(), norm.dtype),
        ([576].as_slice(), GgmlType::F32)
    );
    assert!(
        file.tensor_info("output.weight").is_none(),
        "the demo model ties embeddings"
    );
    // Offsets are absolute; gguf-py reports token_embd.weight's data at byte 1785664.
    assert_eq!(file.tensors()[0].name, "token_embd.weight");
    assert_eq!(embd.offset, 1785664);
    let mut counts = std::collections::BTreeMap::new();
    for t in file.tensors() {
        *counts.entry(t.dtype.name()).or_insert(0) += 1;
    }
    assert_eq!(counts, [("F32", 61), ("Q4_1", 210), ("Q8_0", 1)].into());
}

#[test]
fn dequantization_is_bit_exact_against_gguf_py() {
    let file = GgufFile::open(&common::fixture("gguf/quant_types.gguf")).unwrap();
    let expected = common::fixture("gguf/quant_types.expected.safetensors");
    let cases = [
        ("t.f32", GgmlType::F32),
        ("t.f16", GgmlType::F16),
        ("t.bf16", GgmlType::BF16),
        ("t.q8_0", GgmlType::Q8_0),
        ("t.q4_0", GgmlType::Q4_0),
        ("t.q4_1", GgmlType::Q4_1),
        ("t.q5_0", GgmlType::Q5_0),
        ("t.q5_1", GgmlType::Q5_1),
        ("t.q4_k", GgmlType::Q4_K),
        ("t.q5_k", GgmlType::Q5_K),
        ("t.q6_k", GgmlType::Q6_K),
    ];
    assert_eq!(file.tensors().len(), cases.len());
    for (name, dtype) in cases {
        assert_eq!(file.tensor_info(name).unwrap().dtype, dtype, "{name}");
        let (dims, got) = dequant_values(&file, name);
        let (want_dims, want) = common::read_safetensors_f32(&expected, name);
        assert_eq!(dims, [4, 512], "{name}");
        assert_eq!(want_dims, [4, 512], "{name}");
        let diff = common::max_abs_diff(&got, &want);
        println!("{name}: max abs diff {diff}");
        // Tolerance 0: ggml block decoding is one f16->f32 conversion and one multiply(-add)
        // per value in both implementations.
        assert_eq!(
            diff, 0.0,
            "{name} ({dtype}) differs from gguf-py by up to {diff}"
        );
        assert!(
            got.iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{name} bits"
        );
    }
}

#[test]
fn demo_q4_1_and_q8_0_match_the_f32_conversion() {
    let file = GgufFile::open(&common::demo_gguf()).unwrap();
    // Rows 0, 1 and the last row of each matrix (whole vector for the norm), dequantized by
    // gguf-py in the f32 conversion (tools/make_smollm2_hub_fixtures.py). attn_q/attn_k
    // rows are permuted in the conversion, so only unpermuted tensors are compared.
    let st = common::workspace_root().join("fixtures/smollm2/dequant_slices.safetensors");
    for (gguf_name, hf_name) in [
        (
            "blk.0.ffn_down.weight",
            "model.layers.0.mlp.down_proj.weight",
        ),
        (
            "blk.17.ffn_gate.weight",
            "model.layers.17.mlp.gate_proj.weight",
        ),
        (
            "blk.29.attn_v.weight",
            "model.layers.29.self_attn.v_proj.weight",
        ),
        ("token_embd.weight", "model.embed_tokens.weight"),
        (
            "blk.3.attn_norm.weight",
            "model.layers.3.input_layernorm.weight",
        ),
    ] {
        let (dims, got) = dequant_values(&file, gguf_name);
        let (want_dims, want) = common::read_safetensors_f32(&st, hf_name);
        let got = if dims.len() == 2 {
            let (rows, cols) = (dims[0], dims[1]);
            assert_eq!(want_dims, vec![3, cols], "{gguf_name}");
            [&got[..2 * cols], &got[(rows - 1) * cols..]].concat()
        } else {
            assert_eq!(dims, want_dims, "{gguf_name}");
            got
        };
        let diff = common::max_abs_diff(&got, &want);
        println!("{gguf_name}: {dims:?} max abs diff {diff}");
        assert_eq!(diff, 0.0, "{gguf_name} vs {hf_name}");
    }
}

#[test]
fn tiny_valid_file_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::tiny_valid().write(dir.path(), "tiny.gguf");
    let file = GgufFile::open(&path).unwrap();
    let info = file.tensor_info("w").unwrap();
    assert_eq!(info.dims, [2, 32]);
    let (_, values) = dequant_values(&file, "w");
    assert_eq!(values, (0..64).map(|i| i as f32).collect::<Vec<_>>());
}

#[test]
fn typed_getters_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let w = common::tiny_valid()
        .kv("neg", GgufValue::I32(-1))
        .kv("big", GgufValue::U64(1 << 40))
        .kv("small", GgufValue::U8(7))
        .kv("f64", GgufValue::F64(0.5))
        .kv(
            "mixed",
            GgufValue::Array(vec![GgufValue::String("a".into())]),
        );
    let path = w.write(dir.path(), "typed.gguf");
    let file = GgufFile::open(&path).unwrap();

    let err = file.get_u32("llama.missing_key").unwrap_err();
    assert!(matches!(err, HubError::MissingKey { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("llama.missing_key") && msg.contains("typed.gguf"),
        "{msg}"
    );

    assert_eq!(file.get_u32("small").unwrap(), 7);
    assert_eq!(file.get_f32("f64").unwrap(), 0.5);
    let msg = file.get_u32("neg").unwrap_err().to_string();
    assert!(msg.contains("`neg`") && msg.contains("i32 -1"), "{msg}");
    let msg = file.get_u32("big").unwrap_err().to_string();
    assert!(
        msg.contains("`big`") && msg.contains("u64 1099511627776"),
        "{msg}"
    );
    let msg = file.get_str("llama.block_count").unwrap_err().to_string();
    assert!(
        msg.contains("should be a string") && msg.contains("u32 2"),
        "{msg}"
    );
    let msg = file.get_f32_array("mixed").unwrap_err().to_string();
    assert!(
        msg.contains("`mixed[0]`") && msg.contains("string \"a\""),
        "{msg}"
    );
}

#[test]
fn dequantize_errors_name_file_and_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let w = common::tiny_valid().tensor(RawTensor {
        name: "k2".into(),
        ne: vec![256],
        type_id: 10, // Q2_K
        data: vec![0; 84],
    });
    let path = w.write(dir.path(), "q2k.gguf");
    let file = GgufFile::open(&path).unwrap();
    assert_eq!(file.tensor_info("k2").unwrap().dtype, GgmlType::Q2_K);
    let msg = file.dequantize("k2", &Device::Cpu).unwrap_err().to_string();
    assert!(
        msg.contains("q2k.gguf")
            && msg.contains("`k2`")
            && msg.contains("unsupported tensor type Q2_K"),
        "{msg}"
    );
    let msg = file
        .dequantize("nope", &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("q2k.gguf") && msg.contains("`nope`") && msg.contains("not found"),
        "{msg}"
    );
}
