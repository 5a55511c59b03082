//! Broken model folders give errors that name the file and the problem, never a panic.

mod common;

use std::path::Path;

use candle_core::Device;
use common::fixture;

/// A copy of the tiny llama folder that a test can break.
fn tiny_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture("tiny/llama").join(f), dir.path().join(f)).unwrap();
    }
    dir
}

fn load_err(dir: &Path) -> String {
    match ferrotune_model::load_hf_dir(dir, &Device::Cpu) {
        Ok(_) => panic!("loading {} should fail", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) {
    let p = dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(v.as_object_mut().unwrap());
    std::fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
}

#[test]
fn config_missing_field_names_it() {
    let d = tiny_copy();
    edit_config(d.path(), |m| {
        m.remove("hidden_size");
    });
    let e = load_err(d.path());
    assert!(
        e.contains("config.json") && e.contains("missing field `hidden_size`"),
        "{e}"
    );
}

#[test]
fn config_invalid_json_names_file_and_line() {
    let d = tiny_copy();
    std::fs::write(
        d.path().join("config.json"),
        "{\n  \"model_type\": \"llama\",\n  oops\n}",
    )
    .unwrap();
    let e = load_err(d.path());
    assert!(e.contains("config.json") && e.contains("line 3"), "{e}");
}

#[test]
fn config_wrong_type_names_field() {
    let d = tiny_copy();
    edit_config(d.path(), |m| {
        m.insert("num_hidden_layers".into(), "two".into());
    });
    let e = load_err(d.path());
    assert!(
        e.contains("config.json") && e.contains("invalid type"),
        "{e}"
    );
}

#[test]
fn unsupported_architecture_is_named() {
    let d = tiny_copy();
    edit_config(d.path(), |m| {
        m.insert("model_type".into(), "mamba".into());
    });
    let e = load_err(d.path());
    assert!(
        e.contains("unsupported architecture `mamba`") && e.contains("supported: llama"),
        "{e}"
    );
}

#[test]
fn unsupported_rope_scaling_is_named() {
    let d = tiny_copy();
    edit_config(d.path(), |m| {
        m.insert(
            "rope_scaling".into(),
            serde_json::json!({"rope_type": "yarn", "factor": 4.0}),
        );
    });
    let e = load_err(d.path());
    assert!(e.contains("rope_scaling type `yarn`"), "{e}");
}

#[test]
fn heads_not_dividing_is_an_error() {
    let d = tiny_copy();
    edit_config(d.path(), |m| {
        m.insert("num_key_value_heads".into(), 3.into());
    });
    let e = load_err(d.path());
    assert!(e.contains("multiple of `num_key_value_heads`"), "{e}");
}

#[test]
fn safetensors_header_that_lies_is_an_error() {
    let d = tiny_copy();
    let p = d.path().join("model.safetensors");
    let mut bytes = std::fs::read(&p).unwrap();
    // The first 8 bytes give the header length; claim far more than the file holds.
    bytes[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    std::fs::write(&p, &bytes).unwrap();
    let e = load_err(d.path());
    assert!(
        e.contains("model.safetensors") && e.contains("invalid weights in"),
        "{e}"
    );
}

#[test]
fn truncated_safetensors_is_an_error() {
    let d = tiny_copy();
    let p = d.path().join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    for cut in [0, 7, 100, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let e = load_err(d.path());
        assert!(e.contains("model.safetensors"), "cut at {cut}: {e}");
    }
}

#[test]
fn missing_weights_file_is_named() {
    let d = tiny_copy();
    std::fs::remove_file(d.path().join("model.safetensors")).unwrap();
    let e = load_err(d.path());
    assert!(e.contains("no model.safetensors"), "{e}");
}

#[test]
fn wrong_layer_count_lists_missing_tensors() {
    let d = tiny_copy();
    edit_config(d.path(), |m| {
        m.insert("num_hidden_layers".into(), 3.into());
    });
    let e = load_err(d.path());
    assert!(
        e.contains("missing tensors") && e.contains("model.layers.2.self_attn.q_proj.weight"),
        "{e}"
    );
}

#[test]
fn shape_mismatch_names_tensor_and_shapes() {
    let d = tiny_copy();
    edit_config(d.path(), |m| {
        m.insert("intermediate_size".into(), 96.into());
    });
    let e = load_err(d.path());
    assert!(
        e.contains("mlp.gate_proj.weight") && e.contains("[96, 64]") && e.contains("[128, 64]"),
        "{e}"
    );
}

#[test]
fn untied_config_on_tied_weights_names_lm_head() {
    let d = tiny_copy();
    edit_config(d.path(), |m| {
        m.insert("tie_word_embeddings".into(), false.into());
    });
    let e = load_err(d.path());
    assert!(e.contains("missing tensors: lm_head.weight"), "{e}");
}

#[test]
fn index_naming_a_missing_shard_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    let src = fixture("tiny/qwen2_sharded");
    for f in [
        "config.json",
        "model.safetensors.index.json",
        "model-00001-of-00003.safetensors",
    ] {
        std::fs::copy(src.join(f), d.path().join(f)).unwrap();
    }
    let e = load_err(d.path());
    assert!(
        e.contains("model.safetensors.index.json") && e.contains("does not exist"),
        "{e}"
    );
}
