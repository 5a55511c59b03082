//! The loop on the tiny llama fixture (vocab 256) driven from pre-tokenized examples:
//! token-weighted gradient accumulation equals the large batch, losses are finite and fall.

use std::path::{Path, PathBuf};

use candle_core::Device;
use ferrotune_config::TrainingArguments;
use ferrotune_train::collate::{collate, Example};
use ferrotune_train::{LoopOptions, Trainer};

mod common;
use common::{lora_trainer, tiny};

fn examples() -> Vec<Example> {
    common::two_examples(5)
}

fn params_after_one_step(t: &mut Trainer, windows: Vec<Vec<&Example>>) -> (f64, Vec<Vec<f32>>) {
    let batches: Vec<_> = windows
        .iter()
        .map(|w| collate(w, 0, &Device::Cpu).unwrap())
        .collect();
    let stats = t.step(&batches, 1e3, 1).unwrap();
    let values = t
        .optimizer
        .params()
        .map(|p| {
            p.var
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        })
        .collect();
    (stats.loss, values)
}

#[test]
fn accumulation_equals_the_large_batch() {
    // eps ≫ |g| makes AdamW's first update ≈ lr·g/eps = g, so the parameters compare the
    // gradients themselves (with a small eps the first step would be ≈ lr·sign(g)).
    let args = TrainingArguments {
        learning_rate: 1e3,
        adam_epsilon: 1e3,
        max_grad_norm: 0.0,
        ..Default::default()
    };
    let ex = examples();
    let mut big = lora_trainer(&args, None);
    let (loss_big, p_big) = params_after_one_step(&mut big, vec![vec![&ex[0], &ex[1]]]);
    let mut acc = lora_trainer(&args, None);
    let (loss_acc, p_acc) = params_after_one_step(&mut acc, vec![vec![&ex[0]], vec![&ex[1]]]);
    println!("loss 1×bs2 {loss_big:.6}, 2×bs1 {loss_acc:.6}");
    assert!(
        (loss_big - loss_acc).abs() < 1e-5,
        "{loss_big} vs {loss_acc}"
    );
    let mut max = 0f32;
    for (a, b) in p_big.iter().zip(&p_acc) {
        for (x, y) in a.iter().zip(b) {
            max = max.max((x - y).abs());
        }
    }
    println!("max |Δparam| after one step: {max:e}");
    assert!(max < 1e-5, "max |Δparam| = {max}");
    // The loss is the token mean: (9 + 4) scored tokens, not the mean of two row means.
    assert!(loss_big.is_finite() && loss_big > 0.0);
}

#[test]
fn loss_falls_on_a_repeated_batch() {
    let args = TrainingArguments {
        learning_rate: 1e-2,
        max_steps: 8,
        per_device_train_batch_size: 2,
        logging_steps: 1.0,
        lr_scheduler_type: ferrotune_config::args::SchedulerType::Constant,
        ..Default::default()
    };
    let mut t = lora_trainer(&args, None);
    let s = t.train_on(&examples()).unwrap();
    println!("step losses: {:?}", s.step_losses);
    assert_eq!(s.global_step, 8);
    assert_eq!(s.log_history.len(), 8);
    assert!(s.step_losses.iter().all(|l| l.is_finite()));
    let (first, last) = (s.step_losses[0], s.step_losses[7]);
    assert!(last < first * 0.9, "loss did not fall: {first} → {last}");
    assert!((s.epoch - 8.0).abs() < 1e-9, "epoch {}", s.epoch);
}

/// A full fine-tuning trainer on the tiny llama writing checkpoints into `out`.
fn full_trainer(args: &TrainingArguments, out: &Path, resume_from: Option<PathBuf>) -> Trainer {
    let model = ferrotune_model::load_hf_dir(&tiny(), &Device::Cpu).unwrap();
    let (model, params) = ferrotune_train::tuning::full_params(model).unwrap();
    let options = LoopOptions {
        pad_token_id: 0,
        shuffle: true,
        output_dir: Some(out.to_path_buf()),
        show_progress: false,
        weights: ferrotune_train::checkpoint::WeightsFormat::Full {
            source_config: Some(tiny().join("config.json")),
        },
        resume_from,
    };
    Trainer::new(model, params, args, options, &Device::Cpu).unwrap()
}

fn six_examples() -> Vec<Example> {
    (0..6u32)
        .map(|i| {
            let ids: Vec<u32> = (0..4 + i).map(|j| (7 * i + 3 * j) % 256).collect();
            Example {
                labels: ids.iter().map(|&t| i64::from(t)).collect(),
                input_ids: ids,
                attention_mask: None,
            }
        })
        .collect()
}

#[test]
fn resuming_from_a_checkpoint_continues_the_same_run() {
    let args = TrainingArguments {
        learning_rate: 1e-3,
        max_steps: 5,
        per_device_train_batch_size: 2,
        logging_steps: 1.0,
        save_steps: 2.0,
        save_total_limit: Some(2),
        ..Default::default()
    };
    let ex = six_examples();
    let dir = tempfile::tempdir().unwrap();
    let mut straight = full_trainer(&args, dir.path(), None);
    let a = straight.train_on(&ex).unwrap();
    // save_steps 2 and the last step: 2, 4, 5; the limit of 2 keeps 4 and 5.
    let mut kept: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("checkpoint-"))
        .collect();
    kept.sort();
    assert_eq!(kept, ["checkpoint-4", "checkpoint-5"]);
    let ckpt = dir.path().join("checkpoint-4");
    for f in [
        "model.safetensors",
        "config.json",
        "optimizer.safetensors",
        "trainer_state.json",
    ] {
        assert!(ckpt.join(f).is_file(), "{f} missing in checkpoint-4");
    }

    let dir2 = tempfile::tempdir().unwrap();
    let mut resumed = full_trainer(&args, dir2.path(), Some(ckpt));
    let b = resumed.train_on(&ex).unwrap();
    println!("straight {:?}\nresumed  {:?}", a.step_losses, b.step_losses);
    assert_eq!(b.global_step, 5);
    assert_eq!(a.step_losses.len(), b.step_losses.len());
    for (x, y) in a.step_losses.iter().zip(&b.step_losses) {
        assert!((x - y).abs() < 1e-6, "{x} vs {y}");
    }
    assert_eq!(a.log_history.len(), b.log_history.len());
    let mut max = 0f32;
    for (p, q) in straight.optimizer.params().zip(resumed.optimizer.params()) {
        let d = (p.var.as_tensor() - q.var.as_tensor())
            .unwrap()
            .abs()
            .unwrap();
        max = max.max(d.max_all().unwrap().to_scalar::<f32>().unwrap());
    }
    println!("max |Δparam| straight vs resumed: {max:e}");
    assert!(max < 1e-6, "{max}");
}
