//! Hand-derived optimizer checks (the torch comparison is in `tests/adamw_fixture.rs`).

use std::collections::HashMap;

use candle_core::{Device, Tensor, Var};

use super::{applies_weight_decay, AdamW, AdamWConfig, Gradients, OptimError, TrainableParam};

fn var(values: &[f32]) -> Var {
    Var::new(values, &Device::Cpu).unwrap()
}

fn values(v: &Var) -> Vec<f32> {
    v.as_tensor().to_vec1::<f32>().unwrap()
}

fn named(pairs: &[(&str, &[f32])]) -> HashMap<String, Tensor> {
    pairs
        .iter()
        .map(|(n, g)| (n.to_string(), Tensor::new(*g, &Device::Cpu).unwrap()))
        .collect()
}

fn optimizer(params: Vec<TrainableParam>, weight_decay: f64) -> AdamW {
    AdamW::new(
        params,
        AdamWConfig {
            weight_decay,
            ..AdamWConfig::default()
        },
    )
    .unwrap()
}

#[test]
fn first_two_adam_steps_on_a_scalar() {
    let p = var(&[1.0]);
    let mut opt = optimizer(vec![TrainableParam::new("w", p.clone())], 0.0);
    let lr = 0.1;
    // Step 1, g = 0.5: m = 0.05, v = 2.5e-4; bias-corrected m = 0.5, v = 0.25, so the update is
    // lr * 0.5 / (0.5 + 1e-8).
    opt.step(
        &Gradients::from_named(&opt, named(&[("w", &[0.5])])).unwrap(),
        lr,
    )
    .unwrap();
    let p1 = 1.0 - lr * 0.5 / (0.5 + 1e-8);
    assert!((values(&p)[0] as f64 - p1).abs() < 1e-7, "{:?}", values(&p));
    let state = opt.state("w").unwrap();
    assert_eq!(state.step, 1);
    assert!((state.exp_avg.to_vec1::<f32>().unwrap()[0] - 0.05).abs() < 1e-9);
    assert!((state.exp_avg_sq.to_vec1::<f32>().unwrap()[0] - 2.5e-4).abs() < 1e-10);
    // Step 2, g = -0.5: m = -0.005, v = 0.999 * 2.5e-4 + 1e-3 * 0.25 = 4.9975e-4;
    // corrections 1 - 0.9^2 = 0.19 and 1 - 0.999^2 = 0.001999, so v_hat = 0.25 exactly.
    opt.step(
        &Gradients::from_named(&opt, named(&[("w", &[-0.5])])).unwrap(),
        lr,
    )
    .unwrap();
    let m_hat = -0.005 / 0.19;
    let p2 = p1 - lr * m_hat / (0.5 + 1e-8);
    assert!(
        (values(&p)[0] as f64 - p2).abs() < 1e-6,
        "{:?} vs {p2}",
        values(&p)
    );
}

#[test]
fn decay_is_decoupled_and_follows_the_flag() {
    let weight = var(&[2.0]);
    let bias = var(&[2.0]);
    let params = vec![
        TrainableParam::new("model.layers.0.mlp.up_proj.weight", weight.clone()),
        TrainableParam::new("model.layers.0.mlp.up_proj.bias", bias.clone()),
    ];
    let mut opt = optimizer(params, 0.5);
    // A zero gradient leaves only the decay: p * (1 - lr * wd) = 2 * (1 - 0.1 * 0.5).
    let grads = named(&[
        ("model.layers.0.mlp.up_proj.weight", &[0.0]),
        ("model.layers.0.mlp.up_proj.bias", &[0.0]),
    ]);
    opt.step(&Gradients::from_named(&opt, grads).unwrap(), 0.1)
        .unwrap();
    assert_eq!(values(&weight), [1.9]);
    assert_eq!(values(&bias), [2.0]);
}

#[test]
fn lr_scale_multiplies_the_step_and_missing_grads_skip() {
    let a = var(&[0.0]);
    let b = var(&[0.0]);
    let frozen = var(&[3.0]);
    let params = vec![
        TrainableParam::new("lora_A", a.clone()),
        TrainableParam::new("lora_B", b.clone()).with_lr_scale(16.0),
        TrainableParam::new("unused", frozen.clone()),
    ];
    let mut opt = optimizer(params, 0.0);
    let grads = named(&[("lora_A", &[1.0]), ("lora_B", &[1.0])]);
    opt.step(&Gradients::from_named(&opt, grads).unwrap(), 1e-3)
        .unwrap();
    // First step: lr * g / (|g| + eps).
    let step = 1e-3 / (1.0 + 1e-8);
    assert!((values(&a)[0] as f64 + step).abs() < 1e-9);
    assert!((values(&b)[0] as f64 + 16.0 * step).abs() < 1e-8);
    assert_eq!(values(&frozen), [3.0]);
    assert_eq!(opt.state("unused").unwrap().step, 0);
}

#[test]
fn weight_decay_grouping_by_hf_name() {
    let decayed = [
        "model.embed_tokens.weight",
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.3.mlp.down_proj.weight",
        "base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight",
        "model.layers.0.self_attn.q_proj.lora_B.default.weight",
        "model.layers.0.self_attn.q_proj.lora_magnitude_vector.default.weight",
        "lm_head.weight",
        "model.normalizer.weight", // "norm" only as a whole segment or a `_norm` suffix
    ];
    let not_decayed = [
        "model.layers.0.self_attn.q_proj.bias",
        "model.layers.0.input_layernorm.weight",
        "model.layers.0.post_attention_layernorm.weight",
        "model.layers.0.pre_feedforward_layernorm.weight",
        "model.norm.weight",
        "model.layers.0.self_attn.q_norm.weight",
        "model.layers.0.self_attn.k_norm.weight",
        "model.layers.0.block.RMSNorm.weight",
    ];
    for name in decayed {
        assert!(applies_weight_decay(name), "{name} should decay");
    }
    for name in not_decayed {
        assert!(!applies_weight_decay(name), "{name} should not decay");
    }
    assert!(!TrainableParam::new("model.norm.weight", var(&[1.0])).weight_decay);
}

#[test]
fn clipping_scales_only_above_max_norm_and_returns_the_pre_clip_norm() {
    let p = var(&[0.0, 0.0]);
    let mut opt = optimizer(vec![TrainableParam::new("w", p.clone())], 0.0);
    let mut grads = Gradients::from_named(&opt, named(&[("w", &[3.0, 4.0])])).unwrap();
    assert_eq!(grads.clip_norm(10.0).unwrap(), 5.0);
    assert_eq!(grads.scale(), 1.0);
    assert_eq!(grads.clip_norm(1.0).unwrap(), 5.0);
    assert_eq!(grads.scale(), 1.0 / (5.0 + 1e-6));
    assert!((grads.total_norm().unwrap() - 1.0).abs() < 1e-6);
    opt.step(&grads, 0.1).unwrap();
    // exp_avg = (1 - beta1) * clipped grad = 0.1 * (0.6, 0.8).
    let m = opt.state("w").unwrap().exp_avg.to_vec1::<f32>().unwrap();
    assert!(
        (m[0] - 0.06).abs() < 1e-7 && (m[1] - 0.08).abs() < 1e-7,
        "{m:?}"
    );
}

#[test]
fn tensor_op_path_matches_in_place_kernels() {
    let init = [0.3f32, -1.2, 2.5, 0.0, -0.7, 1.1];
    let (fast, slow) = (var(&init), var(&init));
    let mut fast_opt = optimizer(vec![TrainableParam::new("w", fast.clone())], 0.01);
    let mut slow_opt = optimizer(vec![TrainableParam::new("w", slow.clone())], 0.01);
    for k in 0..4 {
        let g: Vec<f32> = init.iter().map(|x| (x + k as f32) * 0.7 - 0.4).collect();
        let mut a = Gradients::from_named(&fast_opt, named(&[("w", &g)])).unwrap();
        let mut b = Gradients::from_named(&slow_opt, named(&[("w", &g)])).unwrap();
        assert_eq!(a.clip_norm(1.0).unwrap(), b.clip_norm(1.0).unwrap());
        fast_opt.step(&a, 1e-2).unwrap();
        slow_opt.step_with_tensor_ops(&b, 1e-2).unwrap();
    }
    for (x, y) in values(&fast).iter().zip(values(&slow)) {
        assert!(
            (x - y).abs() < 1e-6,
            "{:?} vs {:?}",
            values(&fast),
            values(&slow)
        );
    }
}

#[test]
fn state_round_trips_and_resumes_identically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("optimizer.safetensors");
    let (p, q) = (var(&[1.0, 2.0]), var(&[1.0, 2.0]));
    let mut first = optimizer(vec![TrainableParam::new("w", p.clone())], 0.1);
    for g in [[0.5f32, -1.0], [0.25, 0.75]] {
        first
            .step(
                &Gradients::from_named(&first, named(&[("w", &g)])).unwrap(),
                0.01,
            )
            .unwrap();
    }
    first.save_state(&path).unwrap();
    assert!(!dir.path().join("optimizer.safetensors.tmp").exists());
    q.set(p.as_tensor()).unwrap();
    let mut resumed = optimizer(vec![TrainableParam::new("w", q.clone())], 0.1);
    resumed.load_state(&path).unwrap();
    assert_eq!(resumed.state("w").unwrap().step, 2);
    for opt in [&mut first, &mut resumed] {
        let grads = Gradients::from_named(opt, named(&[("w", &[-0.5, 0.1])])).unwrap();
        opt.step(&grads, 0.01).unwrap();
    }
    assert_eq!(values(&p), values(&q));

    let mut other = optimizer(vec![TrainableParam::new("v", var(&[0.0, 0.0]))], 0.1);
    let err = other.load_state(&path).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("lacks `v.exp_avg`, `v.exp_avg_sq`, `v.step`"),
        "{text}"
    );
    let mut wrong_shape = optimizer(vec![TrainableParam::new("w", var(&[0.0]))], 0.1);
    let err = wrong_shape.load_state(&path).unwrap_err();
    assert!(
        matches!(err, OptimError::StateShape { ref expected, .. } if expected == &[1]),
        "{err}"
    );
}

#[test]
fn bad_settings_and_mismatched_grads_are_errors() {
    let config = AdamWConfig {
        beta1: 1.0,
        ..AdamWConfig::default()
    };
    let err = AdamW::new(vec![], config).unwrap_err();
    assert_eq!(
        err.to_string(),
        "optimizer setting `adam_beta1` = 1 is out of range: it must be in [0, 1)"
    );
    let twice = vec![
        TrainableParam::new("w", var(&[0.0])),
        TrainableParam::new("w", var(&[0.0])),
    ];
    assert!(matches!(
        AdamW::new(twice, AdamWConfig::default()),
        Err(OptimError::DuplicateParam { .. })
    ));
    let mut opt = optimizer(vec![TrainableParam::new("w", var(&[0.0, 0.0]))], 0.0);
    let err = Gradients::from_named(&opt, named(&[("x", &[1.0])])).unwrap_err();
    assert!(err
        .to_string()
        .starts_with("gradients for parameters the optimizer does not train: `x`"));
    let grads = Gradients::from_named(&opt, named(&[("w", &[1.0])])).unwrap();
    let err = opt.step(&grads, 0.1).unwrap_err();
    assert_eq!(
        err.to_string(),
        "gradient of `w` has shape [1] but the parameter has shape [2]"
    );
    let grads = Gradients::from_named(&opt, named(&[("w", &[1.0, 1.0])])).unwrap();
    assert!(opt.step(&grads, -1.0).is_err());
}
