//! Mixed precision on the main job: `examples/smollm2_lora_sft.yaml` (the README's demo
//! fine-tune: LoRA r8 on every linear layer, 20 steps) trained in f32, with `bf16: true` and
//! with `fp16: true`; the final logged loss of each half-precision run is within 2% of the
//! f32 run's, every step is logged (fp16's loss scaler skipped no update), and the runs say
//! which precision they used.
//!
//! Needs the demo model (`scripts/fetch_model.sh`); fails, never skips, without it.

mod common;

use common::{demo_gguf, root};
use std::process::Command;

/// Trains the main job with `extra` overrides into a fresh folder; returns the logged losses
/// and the run's stderr.
fn train(extra: &[&str]) -> (Vec<f64>, String) {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let mut args = vec![
        "train".to_string(),
        root()
            .join("examples/smollm2_lora_sft.yaml")
            .display()
            .to_string(),
        format!("model_name_or_path={}", demo_gguf().display()),
        format!("dataset_dir={}", root().join("data").display()),
        format!("output_dir={}", out_dir.display()),
        "save_strategy=no".to_string(),
        "plot_loss=false".to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = Command::new(env!("CARGO_BIN_EXE_ferrotune"))
        .args(&args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{extra:?}: {stderr}");
    let log = std::fs::read_to_string(out_dir.join("trainer_log.jsonl")).unwrap();
    let losses = log
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["loss"].as_f64().unwrap()
        })
        .collect();
    (losses, stderr)
}

#[test]
fn bf16_and_fp16_end_within_two_percent_of_f32() {
    assert!(
        demo_gguf().is_file(),
        "{} is missing: run scripts/fetch_model.sh",
        demo_gguf().display()
    );
    let (f32_losses, f32_err) = train(&[]);
    assert_eq!(f32_losses.len(), 10, "20 steps logged every 2");
    assert!(!f32_err.contains("mixed precision"), "{f32_err}");
    let first = f32_losses[0];
    let last = *f32_losses.last().unwrap();
    assert!(last < 0.8 * first, "the f32 run learns: {f32_losses:?}");
    for (key, name) in [("bf16=true", "Bf16"), ("fp16=true", "F16")] {
        let (losses, err) = train(&[key]);
        assert!(
            err.contains(&format!("matmul operands in {name}")),
            "{key}: {err}"
        );
        assert!(!err.contains("update skipped"), "{key}: {err}");
        assert_eq!(losses.len(), f32_losses.len(), "{key}");
        let final_loss = *losses.last().unwrap();
        let rel = (final_loss - last).abs() / last;
        println!(
            "{key}: final loss {final_loss} vs f32 {last} ({:.3}%)",
            rel * 100.0
        );
        assert!(rel < 0.02, "{key}: final loss {final_loss} vs f32 {last}");
        // The half-precision run is not the f32 run under another name.
        assert_ne!(losses, f32_losses, "{key}");
    }
}
