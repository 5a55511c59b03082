//! Every weight of every family receives a non-zero gradient through the forward
//! pass. candle-nn's fused softmax / rms_norm / rotary ops record no backward and
//! would silently give zeros; this test keeps them out of the training path.

mod common;

use std::collections::BTreeMap;

use candle_core::{Device, Tensor, Var, D};
use common::{fixture, golden};
use ferrotune_model::{CausalLM, ModelConfig, WeightStore};

fn check(variant: &str) {
    let dir = fixture(&format!("tiny/{variant}"));
    let base = ferrotune_model::load_hf_dir(&dir, &Device::Cpu).unwrap();
    // Rebuild the model with every weight as a Var (a tracked leaf).
    let mut vars = BTreeMap::new();
    let mut tensors = BTreeMap::new();
    for (name, t) in base.named_tensors() {
        let v = Var::from_tensor(&t).unwrap();
        tensors.insert(name.clone(), v.as_tensor().clone());
        vars.insert(name, v);
    }
    let config: ModelConfig = base.config.clone();
    let model = CausalLM::from_weights(config, WeightStore::new(&dir, tensors)).unwrap();
    let (ids, _) = golden(&dir.join("golden.safetensors"));
    let logits = model.forward(&ids, None).unwrap();
    // Next-token cross-entropy over all positions.
    let (b, t, v) = logits.dims3().unwrap();
    let logits = logits
        .narrow(1, 0, t - 1)
        .unwrap()
        .reshape((b * (t - 1), v))
        .unwrap();
    let targets = ids.narrow(1, 1, t - 1).unwrap().flatten_all().unwrap();
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1).unwrap();
    let loss = logp
        .gather(&targets.unsqueeze(1).unwrap(), 1)
        .unwrap()
        .neg()
        .unwrap()
        .mean_all()
        .unwrap();
    let grads = loss.backward().unwrap();
    let mut zero = Vec::new();
    for (name, var) in &vars {
        let g = grads.get(var.as_tensor());
        let norm = g
            .map(|g: &Tensor| {
                g.sqr()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
            })
            .unwrap_or(0.0);
        if !(norm > 0.0 && norm.is_finite()) {
            zero.push(name.clone());
        }
    }
    assert!(
        zero.is_empty(),
        "{variant}: {} of {} tensors got no gradient: {zero:?}",
        zero.len(),
        vars.len()
    );
}

#[test]
fn llama_all_weights_get_gradients() {
    check("llama");
}

#[test]
fn qwen3_all_weights_get_gradients() {
    check("qwen3");
}

#[test]
fn gemma_all_weights_get_gradients() {
    check("gemma");
}

#[test]
fn phi3_all_weights_get_gradients() {
    check("phi3");
}

#[test]
fn qwen2_all_weights_get_gradients() {
    check("qwen2_sharded");
}
