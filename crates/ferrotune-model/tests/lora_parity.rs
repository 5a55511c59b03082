//! LoRA/DoRA/modules_to_save and full fine-tuning against torch + PEFT goldens
//! (fixtures/lora, made by PEFT 0.21.2): the loss within 1e-5 relative and every gradient
//! within 1e-4 relative (f32), tensor by tensor; a PEFT-saved adapter's logits within 1e-4.

mod common;

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor, Var};
use common::{fixture, golden, max_abs_diff};
use ferrotune_model::adapters::{load_peft, load_peft_files};
use ferrotune_model::{causal_lm_loss_mean, CausalLM, WeightStore};

/// Relative tolerance on the loss.
const LOSS_TOL: f64 = 1e-5;
/// Tolerance on gradients: max |Δ| / max |reference| per tensor.
const GRAD_TOL: f32 = 1e-4;

struct Case {
    base: String,
    input_ids: Tensor,
    labels: Tensor,
    loss: f64,
}

fn read_case(name: &str) -> Case {
    let text = std::fs::read_to_string(fixture(&format!("lora/{name}/case.json"))).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let rows = |k: &str| -> Vec<Vec<i64>> { serde_json::from_value(v[k].clone()).unwrap() };
    let ids = rows("input_ids");
    let labels = rows("labels");
    Case {
        base: v["base"].as_str().unwrap().to_string(),
        input_ids: Tensor::new(ids, &Device::Cpu)
            .unwrap()
            .to_dtype(DType::U32)
            .unwrap(),
        labels: Tensor::new(labels, &Device::Cpu).unwrap(),
        loss: v["loss"].as_f64().unwrap(),
    }
}

/// Checks the loss, then every gradient in `vars` against `fixtures/lora/{name}/grads.safetensors`.
fn check_loss_and_grads(name: &str, model: &CausalLM, c: &Case, vars: &BTreeMap<String, Var>) {
    let logits = model.forward(&c.input_ids, None).unwrap();
    let loss = causal_lm_loss_mean(&logits, &c.labels).unwrap();
    let got = f64::from(loss.to_scalar::<f32>().unwrap());
    let rel = (got - c.loss).abs() / c.loss.abs();
    println!("{name}: loss {got} vs {} (rel {rel:.2e})", c.loss);
    assert!(
        rel <= LOSS_TOL,
        "{name}: loss {got} vs {} (rel {rel:e})",
        c.loss
    );

    let grads = loss.backward().unwrap();
    let want = candle_core::safetensors::load(
        fixture(&format!("lora/{name}/grads.safetensors")),
        &Device::Cpu,
    )
    .unwrap();
    let names: Vec<&String> = vars.keys().collect();
    let mut want_names: Vec<&String> = want.keys().collect();
    want_names.sort();
    assert_eq!(
        names, want_names,
        "{name}: trainable tensors differ from the golden's"
    );
    let mut worst = (0f32, String::new());
    for (n, var) in vars {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name}: no gradient for {n}"));
        let w = &want[n];
        let scale = w
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let rel = max_abs_diff(g, w) / scale.max(f32::MIN_POSITIVE);
        assert!(
            rel <= GRAD_TOL,
            "{name}: {n}: max |Δgrad| / max |grad| = {rel:e} > {GRAD_TOL:e}"
        );
        if rel >= worst.0 {
            worst = (rel, n.clone());
        }
    }
    println!(
        "{name}: {} gradients, worst relative diff {:.2e} ({})",
        vars.len(),
        worst.0,
        worst.1
    );
}

fn check_adapter_case(name: &str) {
    let c = read_case(name);
    let mut model = ferrotune_model::load_hf_dir(&fixture(&c.base), &Device::Cpu).unwrap();
    let dir = fixture(&format!("lora/{name}"));
    let set = load_peft_files(
        &dir.join("adapter_config.json"),
        &dir.join("adapter_init.safetensors"),
        &mut model,
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    check_loss_and_grads(name, &model, &c, &set.params);
}

#[test]
fn lora_llama_all_linear() {
    check_adapter_case("lora_llama");
}

#[test]
fn lora_llama_qv_rslora() {
    check_adapter_case("lora_llama_qv_rslora");
}

#[test]
fn lora_llama_modules_to_save_untied() {
    check_adapter_case("lora_llama_modules_to_save");
}

#[test]
fn dora_llama() {
    check_adapter_case("dora_llama");
}

#[test]
fn lora_phi3_fused_projections() {
    check_adapter_case("lora_phi3");
}

#[test]
fn lora_qwen2_biases() {
    check_adapter_case("lora_qwen2");
}

fn check_full(name: &str) {
    let c = read_case(name);
    let dir = fixture(&c.base);
    let base = ferrotune_model::load_hf_dir(&dir, &Device::Cpu).unwrap();
    let mut vars = BTreeMap::new();
    let mut tensors = BTreeMap::new();
    for (n, t) in base.named_tensors() {
        let v = Var::from_tensor(&t).unwrap();
        tensors.insert(n.clone(), v.as_tensor().clone());
        vars.insert(n, v);
    }
    let model =
        CausalLM::from_weights(base.config.clone(), WeightStore::new(&dir, tensors)).unwrap();
    check_loss_and_grads(name, &model, &c, &vars);
}

#[test]
fn full_finetuning_llama() {
    check_full("full_llama");
}

#[test]
fn full_finetuning_qwen3() {
    check_full("full_qwen3");
}

#[test]
fn peft_made_adapter_logits() {
    let base = fixture("tiny/llama");
    let mut model = ferrotune_model::load_hf_dir(&base, &Device::Cpu).unwrap();
    load_peft(&fixture("lora/peft_made_llama"), &mut model).unwrap();
    let (ids, _) = golden(&base.join("golden.safetensors"));
    let want = candle_core::safetensors::load(
        fixture("lora/peft_made_llama/logits.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let got = model.forward(&ids, None).unwrap();
    let diff = max_abs_diff(&got, &want["logits"]);
    println!("peft_made_llama: max |Δlogit| = {diff:.3e}");
    assert!(diff <= 1e-4, "peft_made_llama: max |Δlogit| = {diff:e}");
}
