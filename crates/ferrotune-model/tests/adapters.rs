//! Adapter behaviour that needs no Python golden: scaling, PEFT's init bounds, zero-B
//! identity, merge equals the unmerged forward, PEFT save → load round trip, PiSSA's
//! residual, target-name and shape errors, and the loss against a hand computation.

mod common;

use candle_core::{Device, Tensor};
use common::{fixture, golden, max_abs_diff};
use ferrotune_model::adapters::{
    apply_lora, load_peft, merge_adapters, set_training, AdapterSet, LoraConfig, LoraInit,
};
use ferrotune_model::{causal_lm_loss, causal_lm_loss_mean, CausalLM, ModelError};

fn cfg(target: &[&str]) -> LoraConfig {
    LoraConfig {
        lora_rank: 4,
        lora_alpha: 8.0,
        lora_dropout: 0.0,
        lora_target: target.iter().map(|s| s.to_string()).collect(),
        additional_target: vec![],
        use_rslora: false,
        use_dora: false,
        init: LoraInit::Default,
    }
}

fn tiny(variant: &str) -> (CausalLM, Tensor) {
    let dir = fixture(&format!("tiny/{variant}"));
    let model = ferrotune_model::load_hf_dir(&dir, &Device::Cpu).unwrap();
    let (ids, _) = golden(&dir.join("golden.safetensors"));
    (model, ids)
}

/// Gives every A and B deterministic non-zero values (`0.1·sin(0.7·i + k)`, k the tensor's
/// index) so the adapters change the output.
fn randomize(set: &AdapterSet) {
    for (k, (name, var)) in set.params.iter().enumerate() {
        if name.ends_with("lora_A.weight") || name.ends_with("lora_B.weight") {
            let shape = var.as_tensor().shape().clone();
            let v: Vec<f32> = (0..shape.elem_count())
                .map(|i| 0.1 * (0.7 * i as f32 + k as f32).sin())
                .collect();
            var.set(&Tensor::from_vec(v, shape, &Device::Cpu).unwrap())
                .unwrap();
        }
    }
}

#[test]
fn scaling_plain_and_rslora() {
    let mut c = cfg(&["all"]);
    c.lora_rank = 16;
    c.lora_alpha = 32.0;
    assert_eq!(c.scaling(), 2.0);
    c.use_rslora = true;
    assert_eq!(c.scaling(), 8.0);
}

#[test]
fn init_a_within_kaiming_bound_and_b_zero_leaves_logits_unchanged() {
    let (mut model, ids) = tiny("llama");
    let before = model.forward(&ids, None).unwrap();
    let set = apply_lora(&mut model, &cfg(&["all"]), 7).unwrap();
    assert_eq!(
        set.target_modules,
        [
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj"
        ]
    );
    assert_eq!(set.params.len(), 2 * 7 * 2);
    for (name, var) in &set.params {
        let t = var.as_tensor();
        let max = t
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        if name.ends_with("lora_A.weight") {
            let bound = 1.0 / (t.dim(1).unwrap() as f32).sqrt();
            assert!(
                max <= bound && max > 0.8 * bound,
                "{name}: max |A| {max} vs bound {bound}"
            );
        } else {
            assert_eq!(max, 0.0, "{name}: B must start at zero");
        }
    }
    // B = 0 adds an exact zero; the base product itself may run on another GEMM library in
    // the fused LoRA op (oneDNN, when installed) than in the plain forward (the gemm crate),
    // so equal up to f32 summation order.
    let after = model.forward(&ids, None).unwrap();
    let diff = max_abs_diff(&before, &after);
    assert!(diff < 1e-5, "B = 0 changed the logits by {diff}");
}

#[test]
fn same_seed_same_init() {
    let (mut m1, _) = tiny("llama");
    let (mut m2, _) = tiny("llama");
    let a = apply_lora(&mut m1, &cfg(&["q_proj"]), 3).unwrap();
    let b = apply_lora(&mut m2, &cfg(&["q_proj"]), 3).unwrap();
    for (n, v) in &a.params {
        assert_eq!(
            max_abs_diff(v.as_tensor(), b.params[n].as_tensor()),
            0.0,
            "{n}"
        );
    }
}

fn check_merge(variant: &str, dora: bool) {
    let (mut model, ids) = tiny(variant);
    let mut c = cfg(&["all"]);
    c.use_dora = dora;
    let set = apply_lora(&mut model, &c, 1).unwrap();
    randomize(&set);
    if let Some((_, m)) = set
        .params
        .iter()
        .find(|(n, _)| n.ends_with("lora_magnitude_vector"))
    {
        m.set(&(m.as_tensor() * 1.5).unwrap()).unwrap();
    }
    let adapted = model.forward(&ids, None).unwrap();
    let merged = merge_adapters(&model).unwrap();
    let diff = max_abs_diff(&adapted, &merged.forward(&ids, None).unwrap());
    let base =
        ferrotune_model::load_hf_dir(&fixture(&format!("tiny/{variant}")), &Device::Cpu).unwrap();
    let moved = max_abs_diff(&adapted, &base.forward(&ids, None).unwrap());
    let scale = adapted
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    println!("{variant} dora={dora}: merged vs adapted {diff:.2e} (max |logit| {scale:.1}), adapted vs base {moved:.2e}");
    // f32 summed in another order: 1e-5 relative to the logits' scale.
    assert!(
        diff <= 1e-5 * scale.max(1.0),
        "{variant}: merged vs adapted logits differ by {diff:e}"
    );
    assert!(moved > 1e-3, "adapters should change the logits");
    // Merging is pure: the adapted model still carries its adapters and gives the same output.
    assert_eq!(
        max_abs_diff(&adapted, &model.forward(&ids, None).unwrap()),
        0.0
    );
}

#[test]
fn merge_equals_unmerged_lora() {
    check_merge("llama", false);
    check_merge("phi3", false);
}

#[test]
fn merge_equals_unmerged_dora() {
    check_merge("qwen2", true);
}

#[test]
fn peft_save_load_round_trip() {
    let (mut model, ids) = tiny("llama_untied_rope_llama3");
    let mut c = cfg(&["q_proj", "v_proj"]);
    c.use_dora = true;
    c.additional_target = vec!["lm_head".into()];
    let set = apply_lora(&mut model, &c, 5).unwrap();
    randomize(&set);
    let want = model.forward(&ids, None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    set.save_peft(dir.path(), "fixtures/tiny/llama_untied_rope_llama3")
        .unwrap();
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(config["peft_type"], "LORA");
    assert_eq!(config["r"], 4);
    assert_eq!(config["use_dora"], true);
    assert_eq!(config["modules_to_save"], serde_json::json!(["lm_head"]));
    assert_eq!(
        config["target_modules"],
        serde_json::json!(["q_proj", "v_proj"])
    );

    let (mut fresh, _) = tiny("llama_untied_rope_llama3");
    let loaded = load_peft(dir.path(), &mut fresh).unwrap();
    assert_eq!(
        loaded.params.keys().collect::<Vec<_>>(),
        set.params.keys().collect::<Vec<_>>()
    );
    assert!(loaded
        .params
        .contains_key("base_model.model.lm_head.weight"));
    assert!(loaded
        .params
        .contains_key("base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector"));
    assert_eq!(
        max_abs_diff(&want, &fresh.forward(&ids, None).unwrap()),
        0.0
    );
}

#[test]
fn unknown_lora_target_lists_modules() {
    let (mut model, _) = tiny("phi3");
    let err = apply_lora(&mut model, &cfg(&["q_proj"]), 0).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ModelError::AdapterTarget { .. }), "{msg}");
    assert!(msg.contains("lora_target `q_proj`"), "{msg}");
    assert!(
        msg.contains("qkv_proj, o_proj, gate_up_proj, down_proj"),
        "{msg}"
    );
    let mut c = cfg(&["all"]);
    c.additional_target = vec!["lm_haed".into()];
    let msg = apply_lora(&mut model, &c, 0).unwrap_err().to_string();
    assert!(
        msg.contains("additional_target `lm_haed`") && msg.contains("lm_head"),
        "{msg}"
    );
}

#[test]
fn adapter_for_another_base_is_a_shape_error() {
    let (mut small, _) = tiny("llama");
    let set = apply_lora(&mut small, &cfg(&["q_proj"]), 0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    set.save_peft(dir.path(), "fixtures/tiny/llama").unwrap();
    let (mut other, _) = tiny("llama_head_dim");
    let err = load_peft(dir.path(), &mut other).unwrap_err();
    let msg = err.to_string();
    println!("{msg}");
    let ModelError::AdapterShape {
        name,
        expected,
        got,
        ..
    } = err
    else {
        panic!("{msg}")
    };
    assert!(name.ends_with("self_attn.q_proj.lora_B.weight"), "{name}");
    assert_eq!(got, [64, 4]);
    assert_ne!(expected, got);
}

#[test]
fn pissa_residual_plus_update_is_the_base_weight() {
    for niter in [None, Some(8)] {
        let (mut model, ids) = tiny("llama");
        let before = model.forward(&ids, None).unwrap();
        let w = model.layers[0].mlp.down_proj.weight.clone(); // [64, 128]
        let mut c = cfg(&["down_proj", "q_proj"]);
        c.init = LoraInit::Pissa { niter };
        apply_lora(&mut model, &c, 0).unwrap();
        let lin = &model.layers[0].mlp.down_proj;
        let a = lin.adapter.as_ref().unwrap();
        let rebuilt = (&lin.weight + a.delta_weight().unwrap()).unwrap();
        assert!(max_abs_diff(&rebuilt, &w) < 1e-5);
        // B·A is W's best rank-4 approximation: for the exact SVD, residual's norm² equals
        // the sum of the other singular values², smaller than any other rank-4 residual.
        let res = lin
            .weight
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let total = w
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(res < total * 0.97, "residual {res} vs total {total}");
        let after = model.forward(&ids, None).unwrap();
        assert!(max_abs_diff(&before, &after) < 1e-4);
    }
}

#[test]
fn dropout_only_while_training() {
    let (mut model, ids) = tiny("llama");
    let mut c = cfg(&["all"]);
    c.lora_dropout = 0.5;
    let set = apply_lora(&mut model, &c, 0).unwrap();
    randomize(&set);
    let eval1 = model.forward(&ids, None).unwrap();
    set_training(&mut model, true);
    let train = model.forward(&ids, None).unwrap();
    set_training(&mut model, false);
    assert_eq!(
        max_abs_diff(&eval1, &model.forward(&ids, None).unwrap()),
        0.0
    );
    assert!(max_abs_diff(&eval1, &train) > 1e-4);
}

#[test]
fn dropout_masks_follow_the_seed() {
    let (mut model, ids) = tiny("llama");
    let mut c = cfg(&["all"]);
    c.lora_dropout = 0.3;
    let set = apply_lora(&mut model, &c, 0).unwrap();
    randomize(&set);
    set_training(&mut model, true);
    let mut run = |seed: u64| {
        ferrotune_model::adapters::set_dropout_seed(&mut model, seed);
        model.forward(&ids, None).unwrap()
    };
    let (a, b, c2) = (run(7), run(7), run(8));
    assert_eq!(max_abs_diff(&a, &b), 0.0, "same seed, same masks");
    assert!(max_abs_diff(&a, &c2) > 1e-4, "another seed, other masks");
}

#[test]
fn loss_matches_hand_computation() {
    // B = 1, T = 3, V = 3; position 0 predicts labels[1] = 2, position 1 predicts labels[2] = 0.
    let logits = Tensor::new(
        &[[[1f32, 2., 3.], [0.5, -1., 0.], [9., 9., 9.]]],
        &Device::Cpu,
    )
    .unwrap();
    let labels = Tensor::new(&[[-100i64, 2, 0]], &Device::Cpu).unwrap();
    let lse = |v: [f64; 3]| v.iter().map(|x| x.exp()).sum::<f64>().ln();
    let want = (lse([1., 2., 3.]) - 3.0) + (lse([0.5, -1., 0.]) - 0.5);
    let (sum, n) = causal_lm_loss(&logits, &labels).unwrap();
    assert_eq!(n, 2);
    let got = f64::from(sum.to_scalar::<f32>().unwrap());
    assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    let mean = causal_lm_loss_mean(&logits, &labels)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!((f64::from(mean) - want / 2.0).abs() < 1e-6);
    // -100 at the target position removes it.
    let labels = Tensor::new(&[[-100i64, 2, -100]], &Device::Cpu).unwrap();
    let (sum, n) = causal_lm_loss(&logits, &labels).unwrap();
    assert_eq!(n, 1);
    assert!((f64::from(sum.to_scalar::<f32>().unwrap()) - (lse([1., 2., 3.]) - 3.0)).abs() < 1e-6);
    // Every label ignored: the mean is an error, not NaN; a label outside V is an error.
    let none = Tensor::new(&[[-100i64, -100, -100]], &Device::Cpu).unwrap();
    assert!(causal_lm_loss_mean(&logits, &none).is_err());
    let bad = Tensor::new(&[[0i64, 3, 0]], &Device::Cpu).unwrap();
    let msg = causal_lm_loss(&logits, &bad).unwrap_err().to_string();
    assert!(msg.contains("label 3 at [0, 1]"), "{msg}");
}
