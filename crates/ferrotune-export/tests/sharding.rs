//! Sharded HF weights: the tiny llama (`fixtures/tiny/llama`, 2 layers, ~90 k parameters)
//! written with a 40 kB shard limit gives several `model-0000k-of-0000n.safetensors` files
//! and an index whose `weight_map` names every tensor once and whose `total_size` is the sum
//! of the tensor sizes; no shard holding more than one tensor exceeds the limit; ferrotune
//! reloads the folder to exactly the original logits. `infer_dtype: auto` keeps f16/bf16
//! sources and turns f32 into bf16.

mod common;

use candle_core::Device;
use common::*;
use ferrotune_config::args::InferDtype;
use ferrotune_export::hf::{self, WeightDtype};
use ferrotune_export::resolve_dtype;
use ferrotune_hub::resolve::ModelSource;
use ferrotune_model::load_hf_dir;

const LIMIT: u64 = 40_000;

#[test]
fn tiny_model_in_shards_reloads_exactly() {
    let src = root().join("fixtures/tiny/llama");
    let model = load_hf_dir(&src, &Device::Cpu).unwrap();
    let tensors = model.named_tensors();
    let tmp = tempfile::tempdir().unwrap();
    let written = hf::write_weights(tmp.path(), &tensors, WeightDtype::F32, LIMIT).unwrap();
    let n = written.files.len();
    assert!(n >= 3, "expected several shards, got {:?}", written.files);
    for (k, f) in written.files.iter().enumerate() {
        assert_eq!(f, &format!("model-{:05}-of-{n:05}.safetensors", k + 1));
    }
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join(hf::INDEX_FILE)).unwrap())
            .unwrap();
    let map = index["weight_map"].as_object().unwrap();
    let mut names: Vec<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
    names.sort();
    assert_eq!(map.keys().map(String::as_str).collect::<Vec<_>>(), names);
    let total: u64 = tensors.iter().map(|(_, t)| t.elem_count() as u64 * 4).sum();
    assert_eq!(index["metadata"]["total_size"], total);
    assert_eq!(
        index["metadata"]["total_parameters"],
        model.num_parameters() as u64
    );
    for f in &written.files {
        let bytes = std::fs::read(tmp.path().join(f)).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let data: usize = st.tensors().iter().map(|(_, v)| v.data().len()).sum();
        assert!(
            data as u64 <= LIMIT || st.len() == 1,
            "{f}: {data} bytes in {} tensors",
            st.len()
        );
        for (name, _) in st.tensors() {
            assert_eq!(map[&name], f.as_str(), "{name}");
        }
    }
    std::fs::copy(src.join("config.json"), tmp.path().join("config.json")).unwrap();
    let reloaded = load_hf_dir(tmp.path(), &Device::Cpu).unwrap();
    let ids = [47u32, 211, 38, 53, 204, 116, 152, 249, 143, 177];
    assert_eq!(
        max_diff(&logits(&reloaded, &ids), &logits(&model, &ids)),
        0.0
    );
}

#[test]
fn auto_dtype_follows_the_source() {
    let tiny = |v: &str| ModelSource::HfDir(root().join("fixtures/tiny").join(v));
    assert_eq!(
        resolve_dtype(InferDtype::Auto, &tiny("llama")).unwrap(),
        WeightDtype::BF16
    );
    assert_eq!(
        resolve_dtype(InferDtype::Auto, &tiny("llama_f16")).unwrap(),
        WeightDtype::F16
    );
    assert_eq!(
        resolve_dtype(InferDtype::Auto, &tiny("llama_bf16")).unwrap(),
        WeightDtype::BF16
    );
    assert_eq!(
        resolve_dtype(InferDtype::Float32, &tiny("llama_bf16")).unwrap(),
        WeightDtype::F32
    );
    let gguf = ModelSource::Gguf(demo_gguf());
    assert_eq!(
        resolve_dtype(InferDtype::Auto, &gguf).unwrap(),
        WeightDtype::BF16
    );
}
