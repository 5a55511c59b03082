//! fp16 mixed precision with dynamic loss scaling on the tiny llama fixture: a loss scale so
//! large that the fp16-rounded gradients overflow skips the update (weights unchanged) and
//! halves the scale until the step goes through; at the usual scale (2^16) one fp16 step moves
//! the LoRA weights as the f32 step does, but for near-zero gradients.

use candle_core::Device;
use ferrotune_config::TrainingArguments;
use ferrotune_model::kernels::precision::{with_matmul_precision, MatmulPrecision};
use ferrotune_train::collate::{collate, Batch};
use ferrotune_train::loss_scale::LossScaler;
use ferrotune_train::Trainer;

mod common;
use common::{lora_trainer, two_examples};

fn params(t: &Trainer) -> Vec<f32> {
    t.optimizer
        .params()
        .flat_map(|p| {
            p.var
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        })
        .collect()
}

fn batch() -> Vec<Batch> {
    let ex = two_examples(5);
    vec![collate(&[&ex[0], &ex[1]], 0, &Device::Cpu).unwrap()]
}

fn args() -> TrainingArguments {
    TrainingArguments {
        max_grad_norm: 1.0,
        ..Default::default()
    }
}

#[test]
fn overflow_skips_the_update_and_halves_the_scale() {
    with_matmul_precision(MatmulPrecision::F16, || {
        let start = 2f64.powi(60);
        let mut t =
            lora_trainer(&args(), None).with_loss_scaling(Some(LossScaler::new(start, 2000)));
        let before = params(&t);
        let batches = batch();
        let mut skipped = 0;
        for step in 1..=80u64 {
            let stats = t.step(&batches, 1e-3, step).unwrap();
            assert!(
                stats.loss.is_finite(),
                "the loss itself is f32: {}",
                stats.loss
            );
            if params(&t) != before {
                break;
            }
            skipped += 1;
        }
        // 2^60 times gradients of order 1e-2..1 is far beyond fp16's 65,504: the first steps
        // overflow; the scale halves each time until the products fit.
        assert!(skipped >= 30, "only {skipped} steps skipped");
        assert!(skipped < 80, "never recovered");
        assert!(params(&t) != before, "no update was applied");
    });
}

#[test]
fn one_fp16_step_moves_the_weights_as_f32_does() {
    let batches = batch();
    let mut t32 = lora_trainer(&args(), None);
    let before = params(&t32);
    t32.step(&batches, 1e-2, 1).unwrap();
    let after32 = params(&t32);
    let after16 = with_matmul_precision(MatmulPrecision::F16, || {
        let mut t16 = lora_trainer(&args(), None).with_loss_scaling(Some(LossScaler::default()));
        assert_eq!(params(&t16), before);
        t16.step(&batches, 1e-2, 1).unwrap();
        params(&t16)
    });
    // AdamW's first step is about ±lr per element (g / (|g| + eps)), so the updates are
    // compared element by element: they agree (within 1% of lr) except where fp16 rounding
    // moved a near-zero gradient across zero or below eps.
    let lr = 1e-2f64;
    let (mut agree, mut moved, mut differ) = (0usize, 0usize, false);
    for ((b, a32), a16) in before.iter().zip(&after32).zip(&after16) {
        let d32 = f64::from(a32 - b);
        let d16 = f64::from(a16 - b);
        if d32 != 0.0 {
            moved += 1;
            if (d16 - d32).abs() < 0.01 * lr {
                agree += 1;
            }
        }
        differ |= d16 != d32;
    }
    assert!(moved > 100, "the f32 step moved {moved} weights");
    let share = agree as f64 / moved as f64;
    println!("fp16 and f32 updates agree on {agree} of {moved} weights ({share:.4})");
    assert!(
        share > 0.99,
        "fp16 and f32 updates agree on only {share:.4} of the weights"
    );
    assert!(
        differ,
        "fp16 step equals f32's bit for bit: rounding not applied"
    );
}
