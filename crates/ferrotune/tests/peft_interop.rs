//! PEFT interop: adapters trained by `ferrotune train` on the demo GGUF give, in ferrotune,
//! the eval loss that Python's PEFT computes with the same adapter files on the float32
//! conversion of that model (`fixtures/peft_interop/<case>/expected.json`, written by
//! `tools/make_peft_interop_fixtures.py`, which also asserts that PEFT loads the files with no
//! missing or unexpected key). No Python runs here.
//!
//! Per case: the GGUF is loaded with `ferrotune_model::load_model` (weights dequantized to
//! f32, the same numbers as `models/smollm2-f32-hf`), the fixed batch is collated by
//! `ferrotune_train::collate` (checked equal to the padded batch PEFT was given), and the loss
//! is `ferrotune_train::eval::evaluate` over that one batch: HF's causal-LM loss, mean over
//! the scored tokens. Tolerance: 1e-4 absolute on a loss near 2.2 (f32 forward of 30 layers
//! against transformers' f32 forward with a float64 log-softmax).
//!
//! Shapes: B = 4 rows, T = the longest row (132 tokens).
//!
//! Needs the demo model (`scripts/fetch_model.sh`); fails, never skips, without it.

mod common;

use common::root;

use candle_core::Device;
use ferrotune_hub::resolve::ModelSource;
use ferrotune_model::adapters::{load_peft, set_training};
use ferrotune_model::CausalLM;
use ferrotune_train::collate::{collate, Example};
use ferrotune_train::eval::evaluate;
use serde::Deserialize;

/// Largest accepted |ferrotune loss − PEFT loss|.
const TOLERANCE: f64 = 1e-4;
/// Smallest accepted |loss_peft − loss_base|: the adapter must change the model.
const MIN_ADAPTER_EFFECT: f64 = 0.05;

/// `expected.json` as the fixture script writes it.
#[derive(Debug, Deserialize)]
struct Expected {
    /// `[B, T]` right-padded with `pad_token_id`.
    input_ids: Vec<Vec<u32>>,
    /// `[B, T]`, -100 on prompt tokens and padding.
    labels: Vec<Vec<i64>>,
    /// `[B, T]`, 1 on tokens, 0 on padding.
    attention_mask: Vec<Vec<u32>>,
    pad_token_id: u32,
    /// Scored targets of the batch (labels after position 0 that are not -100).
    n_scored_tokens: usize,
    /// Tensors in `adapter_model.safetensors`.
    n_adapter_tensors: usize,
    /// PEFT model with the adapter disabled (the plain f32 base).
    loss_base: f64,
    /// PEFT model with the adapter.
    loss_peft: f64,
}

fn demo_model() -> CausalLM {
    let gguf = root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        gguf.is_file(),
        "{} is missing: run scripts/fetch_model.sh",
        gguf.display()
    );
    ferrotune_model::load_model(&ModelSource::Gguf(gguf), &Device::Cpu).unwrap()
}

/// The unpadded examples of the fixed batch, checked to collate back to the stored padding.
fn examples(exp: &Expected) -> Vec<Example> {
    let examples: Vec<Example> = exp
        .input_ids
        .iter()
        .zip(&exp.labels)
        .zip(&exp.attention_mask)
        .map(|((ids, labels), mask)| {
            let n = mask.iter().filter(|&&m| m == 1).count();
            assert!(
                mask[..n].iter().all(|&m| m == 1),
                "mask is not right-padded"
            );
            Example::new(ids[..n].to_vec(), labels[..n].to_vec())
        })
        .collect();
    let rows: Vec<&Example> = examples.iter().collect();
    let batch = collate(&rows, exp.pad_token_id, &Device::Cpu).unwrap();
    assert_eq!(batch.input_ids.to_vec2::<u32>().unwrap(), exp.input_ids);
    assert_eq!(batch.labels.to_vec2::<i64>().unwrap(), exp.labels);
    assert_eq!(
        batch.attention_mask.to_vec2::<u32>().unwrap(),
        exp.attention_mask
    );
    assert_eq!(batch.n_target_tokens, exp.n_scored_tokens);
    examples
}

/// Loads `fixtures/peft_interop/<case>`, computes the base and adapted losses with ferrotune
/// and compares them with PEFT's.
fn check_case(case: &str) {
    let dir = root().join("fixtures/peft_interop").join(case);
    let text = std::fs::read_to_string(dir.join("expected.json")).unwrap();
    let exp: Expected = serde_json::from_str(&text).unwrap();
    assert!(
        (exp.loss_peft - exp.loss_base).abs() > MIN_ADAPTER_EFFECT,
        "{case}: the fixture's adapter barely changes the loss ({} vs {})",
        exp.loss_base,
        exp.loss_peft
    );
    let examples = examples(&exp);
    let b = examples.len();

    let mut model = demo_model();
    let base = evaluate(&model, &examples, b, exp.pad_token_id, &Device::Cpu).unwrap();
    assert_eq!(base.n_tokens, exp.n_scored_tokens);
    assert_eq!(base.n_batches, 1);

    let set = load_peft(&dir, &mut model).unwrap();
    assert_eq!(
        set.params.len(),
        exp.n_adapter_tensors,
        "{case}: adapter tensors"
    );
    set_training(&mut model, false);
    let adapted = evaluate(&model, &examples, b, exp.pad_token_id, &Device::Cpu).unwrap();

    let d_base = (base.eval_loss - exp.loss_base).abs();
    let d_peft = (adapted.eval_loss - exp.loss_peft).abs();
    println!(
        "{case}: base ferrotune {:.7} PEFT {:.7} |Δ| {d_base:.2e}; adapted ferrotune {:.7} PEFT {:.7} |Δ| {d_peft:.2e}",
        base.eval_loss, exp.loss_base, adapted.eval_loss, exp.loss_peft
    );
    assert!(
        d_base <= TOLERANCE,
        "{case}: base loss {} vs transformers {} (|Δ| {d_base:.3e} > {TOLERANCE:e})",
        base.eval_loss,
        exp.loss_base
    );
    assert!(
        d_peft <= TOLERANCE,
        "{case}: adapted loss {} vs PEFT {} (|Δ| {d_peft:.3e} > {TOLERANCE:e})",
        adapted.eval_loss,
        exp.loss_peft
    );
    assert!(
        (adapted.eval_loss - base.eval_loss).abs() > MIN_ADAPTER_EFFECT,
        "{case}: loading the adapter barely changes ferrotune's loss ({} vs {})",
        base.eval_loss,
        adapted.eval_loss
    );
}

/// LoRA rank 4 on q_proj and v_proj (scaling 16 / 4).
#[test]
fn peft_loss_of_ferrotune_lora_adapter() {
    check_case("lora_qv");
}

/// DoRA rank 2 with rsLoRA scaling on q_proj and v_proj, every RMSNorm weight trained as
/// modules_to_save (`additional_target: norm`).
#[test]
fn peft_loss_of_ferrotune_dora_rslora_norm_adapter() {
    check_case("dora_rslora_norm");
}
