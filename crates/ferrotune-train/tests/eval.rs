//! Evaluation on the tiny llama fixture (vocab 256) from pre-tokenized examples: `eval_loss`
//! is HF's per-row mean of batch means, `token_loss` the token-weighted mean, both equal to
//! sums taken one unpadded example at a time; evaluating leaves the weights as they were; the
//! loop logs evaluations as LLaMA-Factory does.

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use ferrotune_config::args::IntervalStrategy;
use ferrotune_config::TrainingArguments;
use ferrotune_model::causal_lm_loss;
use ferrotune_train::collate::{collate, Example};
use ferrotune_train::eval::evaluate;
use ferrotune_train::logging::HistoryEntry;
use ferrotune_train::Trainer;

mod common;
use common::tiny;

/// Three examples of different lengths and label counts (the first with a masked prompt).
fn examples() -> Vec<Example> {
    let make = |ids: Vec<u32>, masked: usize| Example {
        labels: ids
            .iter()
            .enumerate()
            .map(|(i, &t)| if i < masked { -100 } else { i64::from(t) })
            .collect(),
        input_ids: ids,
        attention_mask: None,
    };
    vec![
        make((10..22).collect(), 3),
        make((100..105).collect(), 0),
        make((40..49).collect(), 2),
    ]
}

/// (summed loss, scored tokens) of one example run alone, without padding.
fn alone(model: &ferrotune_model::CausalLM, e: &Example) -> (f64, usize) {
    let batch = collate(&[e], 0, &Device::Cpu).unwrap();
    let logits = model.forward(&batch.input_ids, None).unwrap();
    let (sum, n) = causal_lm_loss(&logits, &batch.labels).unwrap();
    (f64::from(sum.to_scalar::<f32>().unwrap()), n)
}

#[test]
fn eval_loss_is_hf_mean_of_batch_means() {
    let model = ferrotune_model::load_hf_dir(&tiny(), &Device::Cpu).unwrap();
    let ex = examples();
    let parts: Vec<(f64, usize)> = ex.iter().map(|e| alone(&model, e)).collect();
    let (s, n): (Vec<f64>, Vec<usize>) = parts.iter().copied().unzip();
    // Batches of 2: {0, 1} and {2}; each row carries its batch's token mean.
    let batch0 = (s[0] + s[1]) / (n[0] + n[1]) as f64;
    let batch1 = s[2] / n[2] as f64;
    let want_eval = (2.0 * batch0 + batch1) / 3.0;
    let want_token = s.iter().sum::<f64>() / n.iter().sum::<usize>() as f64;

    let stats = evaluate(&model, &ex, 2, 0, &Device::Cpu).unwrap();
    println!(
        "eval_loss {} vs {want_eval}, token_loss {} vs {want_token}",
        stats.eval_loss, stats.token_loss
    );
    assert!((stats.eval_loss - want_eval).abs() < 1e-6);
    assert!((stats.token_loss - want_token).abs() < 1e-6);
    assert!(
        (stats.eval_loss - stats.token_loss).abs() > 1e-4,
        "the two means must differ here"
    );
    assert_eq!(stats.n_tokens, n.iter().sum::<usize>());
    assert_eq!((stats.n_samples, stats.n_batches), (3, 2));
    // Batch size 1: the mean of per-example means.
    let one = evaluate(&model, &ex, 1, 0, &Device::Cpu).unwrap();
    let want_one = (0..3).map(|i| s[i] / n[i] as f64).sum::<f64>() / 3.0;
    assert!((one.eval_loss - want_one).abs() < 1e-6);
    let metrics = stats.metrics(None);
    let ppl = metrics["eval_perplexity"].as_f64().unwrap();
    assert!((ppl - stats.eval_loss.exp()).abs() < 1e-9);
}

/// The shared LoRA trainer with this file's examples as its eval set.
fn lora_trainer(args: &TrainingArguments, output_dir: Option<PathBuf>) -> Trainer {
    common::lora_trainer(args, output_dir).with_eval(examples())
}

fn snapshot(t: &Trainer) -> Vec<Vec<f32>> {
    t.optimizer
        .params()
        .map(|p| {
            let v: &Tensor = p.var.as_tensor();
            v.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        })
        .collect()
}

#[test]
fn evaluation_leaves_weights_unchanged() {
    let args = TrainingArguments {
        per_device_eval_batch_size: 2,
        ..Default::default()
    };
    let mut t = lora_trainer(&args, None);
    let before = snapshot(&t);
    let a = t.evaluate().unwrap().unwrap();
    let b = t.evaluate().unwrap().unwrap();
    assert_eq!(before, snapshot(&t));
    assert_eq!(a.eval_loss, b.eval_loss);
}

#[test]
fn loop_logs_evaluations_every_eval_steps() {
    let dir = tempfile::tempdir().unwrap();
    let args = TrainingArguments {
        per_device_train_batch_size: 1,
        per_device_eval_batch_size: 2,
        learning_rate: 1e-2,
        max_steps: 4,
        logging_steps: 1.0,
        eval_strategy: IntervalStrategy::Steps,
        eval_steps: Some(2.0),
        ..Default::default()
    };
    let mut t = lora_trainer(&args, Some(dir.path().to_path_buf()));
    let s = t.train_on(&examples()).unwrap();
    let evals: Vec<(u64, f64)> = s
        .log_history
        .iter()
        .filter_map(|h| match h {
            HistoryEntry::Eval(e) => Some((e.step, e.eval_loss)),
            HistoryEntry::Train(_) => None,
        })
        .collect();
    assert_eq!(evals.iter().map(|e| e.0).collect::<Vec<_>>(), vec![2, 4]);
    // Training on the same examples lowers their loss.
    assert!(evals[1].1 < evals[0].1, "{evals:?}");
    // The eval at step 4 is the model as it ended.
    let last = t.evaluate().unwrap().unwrap();
    assert!((last.eval_loss - evals[1].1).abs() < 1e-12);

    let log = std::fs::read_to_string(dir.path().join("trainer_log.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6, "{log}");
    let eval_line = &lines[2];
    assert_eq!(eval_line["current_steps"], 2);
    assert_eq!(eval_line["eval_loss"].as_f64(), Some(evals[0].1));
    assert!(eval_line.get("loss").is_none() && eval_line.get("lr").is_none());
    assert!(lines[1].get("eval_loss").is_none() && lines[1]["loss"].is_f64());
    // log_history round-trips through JSON (checkpoints read it back).
    let text = serde_json::to_string(&s.log_history).unwrap();
    let back: Vec<HistoryEntry> = serde_json::from_str(&text).unwrap();
    assert_eq!(back, s.log_history);
}

#[test]
fn eval_strategy_without_eval_set_is_refused() {
    let args = TrainingArguments {
        max_steps: 1,
        eval_strategy: IntervalStrategy::Epoch,
        ..Default::default()
    };
    let mut t = lora_trainer(&args, None).with_eval(Vec::new());
    let err = t.train_on(&examples()).unwrap_err().to_string();
    assert!(err.contains("val_size"), "{err}");
}
