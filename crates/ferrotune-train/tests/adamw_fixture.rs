//! Ten AdamW steps with gradient clipping and a cosine warmup schedule against torch 2.15
//! (`fixtures/optim/adamw.json`, made by `tools/make_optim_fixtures.py`).
//!
//! Tolerances: parameters within 1e-6 absolute and 1e-5 relative, moments within 1e-5
//! relative (plus 1e-12 absolute for near-zero values), grad norms within 1e-5, scheduled lr
//! within 1e-9 relative.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor, Var};
use ferrotune_config::args::SchedulerType;
use ferrotune_config::TrainingArguments;
use ferrotune_train::optim::{applies_weight_decay, AdamW, AdamWConfig, Gradients, TrainableParam};
use ferrotune_train::schedule::Schedule;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Fixture {
    lr: f64,
    betas: [f64; 2],
    eps: f64,
    weight_decay: f64,
    max_grad_norm: f64,
    lr_scheduler_type: String,
    num_warmup_steps: u64,
    num_training_steps: u64,
    params: Vec<Param>,
    steps: Vec<Step>,
}

#[derive(Deserialize)]
struct Param {
    name: String,
    shape: Vec<usize>,
    decay: bool,
    init: Value,
}

#[derive(Deserialize)]
struct Step {
    step: u64,
    lr: f64,
    grad_norm: f64,
    clipped: bool,
    grads: HashMap<String, Value>,
    params: HashMap<String, Value>,
    exp_avg: HashMap<String, Value>,
    exp_avg_sq: HashMap<String, Value>,
}

/// Flattens a nested JSON list of numbers in row-major order.
fn flatten(value: &Value, out: &mut Vec<f32>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| flatten(v, out)),
        Value::Number(n) => out.push(n.as_f64().unwrap() as f32),
        other => panic!("not a number: {other}"),
    }
}

fn tensor(value: &Value, shape: &[usize]) -> Tensor {
    let mut data = Vec::new();
    flatten(value, &mut data);
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
}

/// Largest absolute error, checking `|got - want| <= abs_tol + rel_tol * |want|` elementwise.
fn compare(what: &str, got: &Tensor, want: &Value, abs_tol: f32, rel_tol: f32) -> f32 {
    let got = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let mut expected = Vec::new();
    flatten(want, &mut expected);
    assert_eq!(got.len(), expected.len(), "{what}: element count");
    let mut worst = 0f32;
    for (i, (g, w)) in got.iter().zip(&expected).enumerate() {
        let err = (g - w).abs();
        assert!(
            err <= abs_tol + rel_tol * w.abs(),
            "{what}[{i}]: got {g:e}, want {w:e} (error {err:e})\n got: {got:?}\nwant: {expected:?}"
        );
        worst = worst.max(err);
    }
    worst
}

fn load() -> Fixture {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/optim/adamw.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn ten_steps_match_torch_adamw_with_clipping_and_cosine_warmup() {
    let fx = load();
    let vars: Vec<Var> = fx
        .params
        .iter()
        .map(|p| Var::from_tensor(&tensor(&p.init, &p.shape)).unwrap())
        .collect();
    let params = fx
        .params
        .iter()
        .zip(&vars)
        .map(|(p, v)| {
            let param = TrainableParam::new(&p.name, v.clone());
            assert_eq!(param.weight_decay, p.decay, "decay group of {}", p.name);
            assert_eq!(applies_weight_decay(&p.name), p.decay);
            param
        })
        .collect();
    let config = AdamWConfig {
        beta1: fx.betas[0],
        beta2: fx.betas[1],
        eps: fx.eps,
        weight_decay: fx.weight_decay,
    };
    let mut optimizer = AdamW::new(params, config).unwrap();
    let args = TrainingArguments {
        learning_rate: fx.lr,
        lr_scheduler_type: fx.lr_scheduler_type.parse::<SchedulerType>().unwrap(),
        warmup_steps: fx.num_warmup_steps,
        ..TrainingArguments::default()
    };
    let schedule = Schedule::from_config(&args, fx.num_training_steps).unwrap();

    let (mut worst_param, mut worst_norm) = (0f32, 0f64);
    for step in &fx.steps {
        // Optimizer step k (0-based) runs with lr_at(k).
        let lr = schedule.lr_at(step.step - 1);
        let lr_err = if step.lr == 0.0 {
            lr.abs()
        } else {
            (lr - step.lr).abs() / step.lr
        };
        assert!(
            lr_err <= 1e-9,
            "step {}: lr {lr:e} vs {:e}",
            step.step,
            step.lr
        );

        let named = fx
            .params
            .iter()
            .map(|p| (p.name.clone(), tensor(&step.grads[&p.name], &p.shape)))
            .collect();
        let mut grads = Gradients::from_named(&optimizer, named).unwrap();
        let grad_norm = grads.clip_norm(fx.max_grad_norm).unwrap();
        let norm_err = (grad_norm - step.grad_norm).abs();
        assert!(
            norm_err <= 1e-5,
            "step {}: grad_norm {grad_norm} vs {}",
            step.step,
            step.grad_norm
        );
        assert_eq!(
            grads.scale() < 1.0,
            step.clipped,
            "step {}: clipped",
            step.step
        );
        worst_norm = worst_norm.max(norm_err);

        optimizer.step(&grads, step.lr).unwrap();
        for (p, var) in fx.params.iter().zip(&vars) {
            let what = format!("step {} {}", step.step, p.name);
            let err = compare(&what, var.as_tensor(), &step.params[&p.name], 1e-6, 1e-5);
            worst_param = worst_param.max(err);
            let state = optimizer.state(&p.name).unwrap();
            assert_eq!(state.step, step.step);
            compare(
                &format!("{what} exp_avg"),
                state.exp_avg,
                &step.exp_avg[&p.name],
                1e-12,
                1e-5,
            );
            compare(
                &format!("{what} exp_avg_sq"),
                state.exp_avg_sq,
                &step.exp_avg_sq[&p.name],
                1e-12,
                1e-5,
            );
        }
    }
    assert_eq!(fx.steps.len(), 10);
    println!("max |param - torch| = {worst_param:e}, max |grad_norm - torch| = {worst_norm:e}");
}
