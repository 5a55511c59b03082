//! Gradient checkpointing and the chunked loss against the full-graph path:
//!
//! - on the PEFT fixtures (fixtures/lora: LoRA, rsLoRA, DoRA, fused phi3, qwen2 biases,
//!   modules_to_save with a trainable embedding and untied head, full fine-tuning of a tied and
//!   an untied model), the checkpointed loss and every gradient agree with the full-graph
//!   path within 1e-5 (max |Δ| / max |reference| per tensor, f32) and with PEFT's goldens
//!   within 1e-4, as the model crate's parity tests require of the full-graph path;
//! - freeze tuning (last layer and final norm) and LoRA with `lora_dropout` 0.1 (the
//!   recomputed layers must draw the same masks) agree within 1e-5;
//! - [`chunked_causal_lm_loss`] equals [`causal_lm_loss`] and its autograd gradients within
//!   1e-6 relative, for several chunk sizes;
//! - a short LoRA training run (dropout on, accumulation of two micro-batches) logs the same
//!   losses with checkpointing on and off.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use ferrotune_config::TrainingArguments;
use ferrotune_model::adapters::{
    apply_lora, load_peft_files, set_dropout_seed, set_training, LoraConfig, LoraInit,
};
use ferrotune_model::loss::{chunked_causal_lm_loss, LossGradRequest};
use ferrotune_model::{causal_lm_loss, CausalLM};
use ferrotune_train::collate::{Batch, Example};
use ferrotune_train::optim::TrainableParam;
use ferrotune_train::recompute::{checkpointed_backward, full_graph_backward, GradAccumulator};
use ferrotune_train::tuning::{full_params, params_where};
use ferrotune_train::{LoopOptions, Trainer};

/// Checkpointed vs full graph: loss (relative) and gradients (max |Δ| / max |ref|).
const PATH_TOL: f64 = 1e-5;
/// Checkpointed vs PEFT's goldens, as `ferrotune-model/tests/lora_parity.rs`.
const GOLDEN_TOL: f64 = 1e-4;
/// Chunked loss vs `causal_lm_loss`, relative.
const CHUNK_TOL: f64 = 1e-6;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(rel)
}

/// A fixture case: the base folder, its batch (attention on every token) and PEFT's loss.
struct Case {
    base: PathBuf,
    batch: Batch,
    loss: f64,
}

fn read_case(name: &str) -> Case {
    let text = std::fs::read_to_string(fixture(&format!("lora/{name}/case.json"))).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let rows = |k: &str| -> Vec<Vec<i64>> { serde_json::from_value(v[k].clone()).unwrap() };
    let (ids, labels) = (rows("input_ids"), rows("labels"));
    let n_target_tokens = labels
        .iter()
        .map(|r| r.iter().skip(1).filter(|&&l| l != -100).count())
        .sum();
    let (b, t) = (ids.len(), ids[0].len());
    let batch = Batch {
        input_ids: Tensor::new(ids, &Device::Cpu)
            .unwrap()
            .to_dtype(DType::U32)
            .unwrap(),
        labels: Tensor::new(labels, &Device::Cpu).unwrap(),
        attention_mask: Tensor::ones((b, t), DType::U32, &Device::Cpu).unwrap(),
        n_target_tokens,
        n_tokens: b * t,
        n_rows: b,
    };
    Case {
        base: fixture(v["base"].as_str().unwrap()),
        batch,
        loss: v["loss"].as_f64().unwrap(),
    }
}

/// max |a − b| / max |b| (b the reference).
fn rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    let d = (a - b).unwrap().abs().unwrap().max_all().unwrap();
    let s = b.abs().unwrap().max_all().unwrap();
    let (d, s) = (
        f64::from(d.to_scalar::<f32>().unwrap()),
        f64::from(s.to_scalar::<f32>().unwrap()),
    );
    d / s.max(f64::MIN_POSITIVE)
}

/// A micro-batch's loss and its gradients by parameter name.
type LossAndGrads = (f64, HashMap<String, Tensor>);

/// Loss and gradients of `batch` (mean over its scored tokens) by both paths; the
/// checkpointed one with `chunk_rows` rows per loss chunk.
fn both_paths(
    model: &CausalLM,
    params: &[(String, Tensor)],
    batch: &Batch,
    chunk_rows: usize,
) -> (LossAndGrads, LossAndGrads) {
    let scale = 1.0 / batch.n_target_tokens as f64;
    let mut full = GradAccumulator::new(params.to_vec());
    let loss_full = full_graph_backward(model, batch, scale, &mut full).unwrap();
    let mut ckpt = GradAccumulator::new(params.to_vec());
    let loss_ckpt =
        checkpointed_backward(model, batch, scale, Some(chunk_rows), &mut ckpt).unwrap();
    (
        (loss_full, full.into_grads()),
        (loss_ckpt, ckpt.into_grads()),
    )
}

/// Asserts that both paths give the same loss and the same gradient for every parameter;
/// returns the checkpointed gradients.
fn assert_paths_agree(
    label: &str,
    model: &CausalLM,
    params: &[(String, Tensor)],
    batch: &Batch,
) -> (f64, HashMap<String, Tensor>) {
    let ((loss_full, g_full), (loss_ckpt, g_ckpt)) = both_paths(model, params, batch, 5);
    let rel = (loss_ckpt - loss_full).abs() / loss_full.abs();
    println!(
        "{label}: loss full graph {loss_full:.7}, checkpointed {loss_ckpt:.7} (rel {rel:.1e})"
    );
    assert!(rel <= PATH_TOL, "{label}: loss rel diff {rel:e}");
    assert_eq!(
        g_full.len(),
        params.len(),
        "{label}: the full graph missed a gradient"
    );
    assert_eq!(
        g_ckpt.len(),
        params.len(),
        "{label}: checkpointing missed a gradient"
    );
    let mut worst = (0f64, String::new());
    for (name, _) in params {
        let r = rel_diff(&g_ckpt[name], &g_full[name]);
        assert!(
            r <= PATH_TOL,
            "{label}: {name}: max |Δgrad| / max |grad| = {r:e}"
        );
        if r >= worst.0 {
            worst = (r, name.clone());
        }
    }
    println!(
        "{label}: {} gradients, worst relative diff {:.1e} ({})",
        params.len(),
        worst.0,
        worst.1
    );
    (loss_ckpt, g_ckpt)
}

/// Checkpointed gradients against `fixtures/lora/{name}/grads.safetensors`.
fn assert_matches_golden(name: &str, c: &Case, loss: f64, grads: &HashMap<String, Tensor>) {
    let rel = (loss - c.loss).abs() / c.loss.abs();
    assert!(rel <= GOLDEN_TOL, "{name}: loss {loss} vs PEFT {}", c.loss);
    let want = candle_core::safetensors::load(
        fixture(&format!("lora/{name}/grads.safetensors")),
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(want.len(), grads.len(), "{name}: tensor count");
    let mut worst = 0f64;
    for (n, w) in &want {
        let g = grads
            .get(n)
            .unwrap_or_else(|| panic!("{name}: no gradient for {n}"));
        let r = rel_diff(g, w);
        assert!(r <= GOLDEN_TOL, "{name}: {n}: {r:e} from PEFT's gradient");
        worst = worst.max(r);
    }
    println!("{name}: checkpointed vs PEFT: loss rel {rel:.1e}, worst gradient {worst:.1e}");
}

fn named(vars: &BTreeMap<String, Var>) -> Vec<(String, Tensor)> {
    vars.iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect()
}

fn adapter_case(name: &str) {
    let c = read_case(name);
    let mut model = ferrotune_model::load_hf_dir(&c.base, &Device::Cpu).unwrap();
    let dir = fixture(&format!("lora/{name}"));
    let set = load_peft_files(
        &dir.join("adapter_config.json"),
        &dir.join("adapter_init.safetensors"),
        &mut model,
    )
    .unwrap();
    let params = named(&set.params);
    let (loss, grads) = assert_paths_agree(name, &model, &params, &c.batch);
    assert_matches_golden(name, &c, loss, &grads);
}

#[test]
fn lora_llama_all_linear() {
    adapter_case("lora_llama");
}

#[test]
fn lora_llama_qv_rslora() {
    adapter_case("lora_llama_qv_rslora");
}

#[test]
fn dora_llama() {
    adapter_case("dora_llama");
}

#[test]
fn lora_qwen2_biases() {
    adapter_case("lora_qwen2");
}

#[test]
fn lora_phi3_fused_projections() {
    adapter_case("lora_phi3");
}

#[test]
fn lora_modules_to_save_trains_the_embedding_and_the_untied_head() {
    adapter_case("lora_llama_modules_to_save");
}

fn params_of(params: &[TrainableParam]) -> Vec<(String, Tensor)> {
    params
        .iter()
        .map(|p| (p.name.clone(), p.var.as_tensor().clone()))
        .collect()
}

fn full_case(name: &str) {
    let c = read_case(name);
    let model = ferrotune_model::load_hf_dir(&c.base, &Device::Cpu).unwrap();
    let (model, params) = full_params(model).unwrap();
    let params = params_of(&params);
    let (loss, grads) = assert_paths_agree(name, &model, &params, &c.batch);
    assert_matches_golden(name, &c, loss, &grads);
}

#[test]
fn full_llama_tied_embedding_gets_head_and_input_gradients() {
    full_case("full_llama");
}

#[test]
fn full_qwen3() {
    full_case("full_qwen3");
}

#[test]
fn freeze_last_layer_and_norm() {
    let c = read_case("lora_llama");
    let model = ferrotune_model::load_hf_dir(&c.base, &Device::Cpu).unwrap();
    let (model, params) = params_where(model, |n| {
        n.starts_with("model.layers.1.") || n == "model.norm.weight"
    })
    .unwrap();
    let params = params_of(&params);
    assert_paths_agree("freeze", &model, &params, &c.batch);
    // Only the norm trains: the layers are not recomputed at all, same gradient.
    let model = ferrotune_model::load_hf_dir(&c.base, &Device::Cpu).unwrap();
    let (model, params) = params_where(model, |n| n == "model.norm.weight").unwrap();
    assert_paths_agree("freeze norm only", &model, &params_of(&params), &c.batch);
}

/// The tiny llama with LoRA r4 on every projection, dropout `p`, B set to small non-zero
/// values (so that A gets gradients and the dropout masks matter).
fn lora_with_dropout(p: f64) -> (CausalLM, BTreeMap<String, Var>) {
    let mut model = ferrotune_model::load_hf_dir(&fixture("tiny/llama"), &Device::Cpu).unwrap();
    let cfg = LoraConfig {
        lora_rank: 4,
        lora_alpha: 8.0,
        lora_dropout: p,
        lora_target: vec!["all".into()],
        additional_target: vec![],
        use_rslora: false,
        use_dora: false,
        init: LoraInit::Default,
    };
    let set = apply_lora(&mut model, &cfg, 11).unwrap();
    for (i, (name, var)) in set.params.iter().enumerate() {
        if name.contains("lora_B") {
            let n = var.as_tensor().elem_count();
            let vals: Vec<f32> = (0..n)
                .map(|j| (((i * 31 + j * 17) % 23) as f32 - 11.0) * 0.01)
                .collect();
            var.set(&Tensor::from_vec(vals, var.as_tensor().shape(), &Device::Cpu).unwrap())
                .unwrap();
        }
    }
    set_training(&mut model, true);
    set_dropout_seed(&mut model, 1234);
    (model, set.params)
}

#[test]
fn lora_dropout_masks_repeat_in_the_recomputed_layers() {
    let c = read_case("lora_llama");
    let (model, vars) = lora_with_dropout(0.1);
    let params = named(&vars);
    let (_, with_dropout) = assert_paths_agree("lora dropout 0.1", &model, &params, &c.batch);
    // The masks are really on: without dropout the gradients differ.
    let (model, vars) = lora_with_dropout(0.0);
    let params = named(&vars);
    let ((_, no_dropout), _) = both_paths(&model, &params, &c.batch, 5);
    let moved = params
        .iter()
        .map(|(n, _)| rel_diff(&with_dropout[n], &no_dropout[n]))
        .fold(0f64, f64::max);
    println!("dropout 0.1 vs 0: gradients differ by up to {moved:.2e} (relative)");
    assert!(moved > 1e-2, "dropout changed no gradient ({moved:e})");
}

/// Deterministic values in [-1, 1) (xorshift32).
fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32) * 2.0 - 1.0
        })
        .collect()
}

#[test]
fn chunked_loss_equals_causal_lm_loss_and_its_gradients() {
    let dev = Device::Cpu;
    let (b, t, c, v) = (3usize, 9usize, 16usize, 40usize);
    let hidden = Tensor::from_vec(values(b * t * c, 1), (b, t, c), &dev)
        .unwrap()
        .affine(3.0, 0.0)
        .unwrap();
    let head = Tensor::from_vec(values(v * c, 2), (v, c), &dev).unwrap();
    // Scattered -100s: the first position, a prompt on row 0, the tail of row 2.
    let mut labels: Vec<i64> = (0..b * t).map(|k| ((k * 7 + 3) % v) as i64).collect();
    for k in [0, 1, 2, 9, 18, 25, 26] {
        labels[k] = -100;
    }
    let labels = Tensor::from_vec(labels, (b, t), &dev).unwrap();
    // Reference: autograd through the full logits.
    let hv = Var::from_tensor(&hidden).unwrap();
    let wv = Var::from_tensor(&head).unwrap();
    let logits = hv
        .as_tensor()
        .broadcast_matmul(&wv.as_tensor().t().unwrap())
        .unwrap();
    let (sum, n) = causal_lm_loss(&logits, &labels).unwrap();
    let scale = 0.25;
    let store = (&sum * scale).unwrap().backward().unwrap();
    let want_sum = f64::from(sum.to_scalar::<f32>().unwrap());
    let want_dh = store.get(hv.as_tensor()).unwrap();
    let want_dw = store.get(wv.as_tensor()).unwrap();
    assert_eq!(n, 6 + 8 + 6);
    for rows in [1, 4, 100] {
        let request = LossGradRequest { scale, head: true };
        let got = chunked_causal_lm_loss(&hidden, &head, &labels, Some(request), rows).unwrap();
        assert_eq!(got.n_tokens, n);
        let rel = (got.sum - want_sum).abs() / want_sum;
        let rel_h = rel_diff(got.grad_hidden.as_ref().unwrap(), want_dh);
        let rel_w = rel_diff(got.grad_head.as_ref().unwrap(), want_dw);
        println!(
            "{rows} rows per chunk: loss {} vs {want_sum} (rel {rel:.1e}), d hidden {rel_h:.1e}, d head {rel_w:.1e}",
            got.sum
        );
        assert!(rel <= CHUNK_TOL, "loss rel {rel:e}");
        assert!(rel_h <= CHUNK_TOL, "d hidden rel {rel_h:e}");
        assert!(rel_w <= CHUNK_TOL, "d head rel {rel_w:e}");
        // Without gradients: the same sum and nothing else.
        let plain = chunked_causal_lm_loss(&hidden, &head, &labels, None, rows).unwrap();
        assert_eq!(plain.sum, got.sum);
        assert!(plain.grad_hidden.is_none() && plain.grad_head.is_none());
    }
    // Bad labels are refused as causal_lm_loss refuses them.
    let bad = Tensor::from_vec(vec![0i64, 5, v as i64], (1, 3), &dev).unwrap();
    let h1 = hidden.narrow(0, 0, 1).unwrap().narrow(1, 0, 3).unwrap();
    let err = chunked_causal_lm_loss(&h1, &head, &bad, None, 4).unwrap_err();
    assert!(err.to_string().contains("outside the vocabulary"), "{err}");
}

/// A LoRA trainer on the tiny llama with dropout 0.1; checkpointing as `checkpointing` says,
/// the default when `None`.
fn dropout_trainer(args: &TrainingArguments, checkpointing: Option<bool>) -> Trainer {
    let (model, vars) = lora_with_dropout(0.1);
    let params = vars
        .iter()
        .map(|(n, v)| TrainableParam::new(n, v.clone()))
        .collect();
    let options = LoopOptions {
        pad_token_id: 0,
        shuffle: true,
        output_dir: None,
        show_progress: false,
        weights: ferrotune_train::checkpoint::WeightsFormat::None,
        resume_from: None,
    };
    let t = Trainer::new(model, params, args, options, &Device::Cpu).unwrap();
    match checkpointing {
        Some(on) => t.with_gradient_checkpointing(on),
        None => t,
    }
}

#[test]
fn short_training_run_has_the_same_losses_with_and_without_checkpointing() {
    let args = TrainingArguments {
        learning_rate: 5e-3,
        max_steps: 6,
        per_device_train_batch_size: 2,
        gradient_accumulation_steps: 2,
        logging_steps: 1.0,
        ..Default::default()
    };
    let examples: Vec<Example> = (0..8u32)
        .map(|i| {
            let ids: Vec<u32> = (0..6 + i).map(|j| (13 * i + 5 * j + 1) % 256).collect();
            let labels = ids
                .iter()
                .enumerate()
                .map(|(j, &t)| if j < 2 { -100 } else { i64::from(t) })
                .collect();
            Example::new(ids, labels)
        })
        .collect();
    // A trainer checkpoints unless told otherwise, as LLaMA-Factory does.
    let mut on = dropout_trainer(&args, None);
    assert!(on.gradient_checkpointing());
    let on = on.train_on(&examples).unwrap().step_losses;
    let off = dropout_trainer(&args, Some(false))
        .train_on(&examples)
        .unwrap()
        .step_losses;
    println!("checkpointing on:  {on:?}\ncheckpointing off: {off:?}");
    assert_eq!(on.len(), 6);
    for (a, b) in on.iter().zip(&off) {
        assert!((a - b).abs() <= 1e-5 * b.abs(), "{a} vs {b}");
    }
    assert!(on[5] < on[0], "loss did not fall: {on:?}");
}
