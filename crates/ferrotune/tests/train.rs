//! End to end: `ferrotune train` on the demo GGUF with a LoRA of rank 4 for 3 steps, then
//! the outputs LLaMA-Factory users read (log lines, adapter, metrics, plot).
//!
//! Needs the demo model (`scripts/fetch_model.sh`) and `<repo>/../shared/data/llamafactory`
//! (or `LF_DATA_DIR`); fails, never skips, without them.

mod common;

use common::{data_dir, root};
use std::path::Path;
use std::process::Command;

use candle_core::Device;

#[test]
fn lora_sft_on_the_demo_model() {
    let gguf = root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        gguf.is_file(),
        "{} is missing: run scripts/fetch_model.sh",
        gguf.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let yaml = format!(
        "model_name_or_path: \"{}\"\nstage: sft\ndo_train: true\nfinetuning_type: lora\nlora_rank: 4\n\
         dataset: alpaca_en_demo\ndataset_dir: \"{}\"\ntemplate: chatml\ncutoff_len: 64\nmax_samples: 16\n\
         output_dir: \"{}\"\nper_device_train_batch_size: 2\nmax_steps: 3\nlogging_steps: 1\n\
         learning_rate: 1.0e-4\nplot_loss: true\n",
        gguf.display(),
        data_dir().display(),
        out_dir.display()
    );
    let cfg = dir.path().join("train.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferrotune"))
        .args(["train", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");

    let log = std::fs::read_to_string(out_dir.join("trainer_log.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{log}");
    let keys = [
        "current_steps",
        "total_steps",
        "loss",
        "lr",
        "epoch",
        "percentage",
        "elapsed_time",
        "remaining_time",
        "throughput",
        "total_tokens",
    ];
    for (i, line) in lines.iter().enumerate() {
        let obj = line.as_object().unwrap();
        let got: Vec<&str> = obj.keys().map(String::as_str).collect();
        assert_eq!(got, keys, "line {i}");
        let loss = obj["loss"].as_f64().unwrap();
        assert!(loss.is_finite() && loss > 0.0 && loss < 20.0, "loss {loss}");
        assert_eq!(obj["current_steps"], i as u64 + 1);
        assert_eq!(obj["total_steps"], 3);
    }
    assert_eq!(lines[2]["percentage"], 100.0);

    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("train_results.json")).unwrap())
            .unwrap();
    for key in [
        "epoch",
        "train_loss",
        "train_runtime",
        "train_samples_per_second",
        "train_steps_per_second",
        "train_tokens_per_second",
        "peak_memory_mb",
    ] {
        assert!(
            results[key].as_f64().is_some_and(f64::is_finite),
            "{key} in {results}"
        );
    }
    assert!(out_dir.join("all_results.json").is_file());
    assert!(out_dir.join("tokenizer.json").is_file());
    assert!(out_dir.join("tokenizer_config.json").is_file());
    let png = std::fs::metadata(out_dir.join("training_loss.png")).unwrap();
    assert!(png.len() > 1000, "training_loss.png is {} bytes", png.len());

    // transformers saves a checkpoint at the last step under save_strategy steps.
    let ckpt = out_dir.join("checkpoint-3");
    for f in [
        "adapter_model.safetensors",
        "adapter_config.json",
        "optimizer.safetensors",
        "trainer_state.json",
    ] {
        assert!(ckpt.join(f).is_file(), "{f} missing in checkpoint-3");
    }
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("trainer_state.json")).unwrap())
            .unwrap();
    assert_eq!(state["global_step"], 3);
    assert_eq!(state["log_history"].as_array().map(Vec::len), Some(3));

    // The adapter loads back onto the base model, with B trained away from 0.
    let mut model = ferrotune_model::load_model(
        &ferrotune_hub::resolve::ModelSource::Gguf(gguf),
        &Device::Cpu,
    )
    .unwrap();
    let set = ferrotune_model::adapters::load_peft(&out_dir, &mut model).unwrap();
    assert_eq!(set.config.lora_rank, 4);
    let b = set
        .params
        .iter()
        .find(|(n, _)| n.ends_with("q_proj.lora_B.weight"))
        .unwrap()
        .1
        .as_tensor()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(b > 0.0, "lora_B was not trained");
}

/// Runs `ferrotune train` on `yaml` (written into `dir`), failing with its output.
fn train(dir: &Path, yaml: &str) {
    let cfg = dir.join("run.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferrotune"))
        .args(["train", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `val_size: 4` with evaluations every 2 steps: `eval_loss` lines in the log, eval entries in
/// `log_history`, `eval_results.json` with `eval_perplexity = exp(eval_loss)`; then
/// `do_train: false` on the trained adapter gives the same `eval_loss` as the final
/// evaluation of the run.
#[test]
fn lora_sft_with_evaluation_then_eval_only() {
    let gguf = root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        gguf.is_file(),
        "{} is missing: run scripts/fetch_model.sh",
        gguf.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let common = format!(
        "model_name_or_path: \"{}\"\nstage: sft\nfinetuning_type: lora\nlora_rank: 4\n\
         dataset: alpaca_en_demo\ndataset_dir: \"{}\"\ntemplate: chatml\ncutoff_len: 48\nmax_samples: 12\n\
         val_size: 4\nper_device_eval_batch_size: 2\ndo_eval: true\n",
        gguf.display(),
        data_dir().display(),
    );
    train(
        dir.path(),
        &format!(
            "{common}do_train: true\noutput_dir: \"{}\"\nper_device_train_batch_size: 2\nmax_steps: 2\n\
             logging_steps: 1\neval_strategy: steps\neval_steps: 2\nsave_strategy: \"no\"\n\
             learning_rate: 1.0e-3\nplot_loss: true\n",
            out_dir.display()
        ),
    );
    let log = std::fs::read_to_string(out_dir.join("trainer_log.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let evals: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l.get("eval_loss").is_some())
        .collect();
    assert_eq!(evals.len(), 1, "{log}");
    assert_eq!(evals[0]["current_steps"], 2);
    let state = read_json(&out_dir.join("trainer_state.json"));
    let history = state["log_history"].as_array().unwrap();
    assert_eq!(
        history
            .iter()
            .filter(|h| h.get("eval_loss").is_some())
            .count(),
        1
    );

    let results = read_json(&out_dir.join("eval_results.json"));
    let loss = results["eval_loss"].as_f64().unwrap();
    assert!(loss.is_finite() && loss > 0.0, "{results}");
    // The final evaluation is of the model at step 2, as the logged one.
    assert_eq!(evals[0]["eval_loss"].as_f64(), Some(loss));
    let ppl = results["eval_perplexity"].as_f64().unwrap();
    assert!((ppl - loss.exp()).abs() < 1e-9 * ppl, "{results}");
    let all = read_json(&out_dir.join("all_results.json"));
    assert_eq!(all["eval_loss"], results["eval_loss"]);
    assert!(all["train_loss"].is_f64(), "{all}");
    assert!(out_dir.join("training_eval_loss.png").is_file());

    let eval_dir = dir.path().join("eval");
    train(
        dir.path(),
        &format!(
            "{common}do_train: false\nadapter_name_or_path: \"{}\"\noutput_dir: \"{}\"\n",
            out_dir.display(),
            eval_dir.display()
        ),
    );
    let again = read_json(&eval_dir.join("eval_results.json"));
    let again_loss = again["eval_loss"].as_f64().unwrap();
    assert!((again_loss - loss).abs() < 1e-5, "{again_loss} vs {loss}");
    assert!(!eval_dir.join("adapter_model.safetensors").exists());
}
