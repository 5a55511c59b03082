//! Loss-curve parity with LLaMA-Factory 0.9.5, CI-sized: `ferrotune train` on
//! `tools/loss_curve_alpaca.yaml` with `max_steps: 3`, its per-step losses and learning
//! rates compared with the ones LLaMA-Factory logged for the same YAML and the same
//! `max_steps` (committed in `fixtures/loss_curve/max_steps_3/llamafactory.jsonl` by
//! `tools/compare_loss_curve.py --steps 3`; the full 50-step comparison is in
//! `fixtures/loss_curve/`).
//!
//! max_steps sets the length of the cosine schedule, so the reference is a 3-step run of its
//! own, not the first 3 steps of the 50-step one.
//!
//! Model: LLaMA-Factory trained the float32 HF conversion `models/smollm2-f32-hf`, which only
//! Python's `gguf_to_hf.py` makes; this test loads the demo GGUF it was converted from
//! (`scripts/fetch_model.sh`), which ferrotune dequantizes to the same float32 weights, so the
//! logits are the same.
//!
//! Batching: ferrotune runs the YAML's batch of 4 as 4 accumulated micro-batches of one
//! example (`per_device_train_batch_size=1 gradient_accumulation_steps=4`), as the script does:
//! the same optimizer batches, and the loss averaged over the scored tokens of all four (as
//! transformers >= 4.46 and ferrotune both do), so the same loss up to summation order, while a
//! single 4 x 512-token batch keeps more than 15 GB of activations (no gradient checkpointing).
//!
//! Tolerances: step 1 trains from LoRA B = 0, so its loss is the base model's and must agree
//! within 1e-4 relative (both logs round to 4 decimals at most); later steps within 2 %,
//! because LoRA A is drawn from each tool's own RNG. Needs the demo model and
//! `<repo>/../shared/data/llamafactory` (or `LF_DATA_DIR`); fails, never skips, without them.
//! About a minute on 2 CPU cores.

mod common;

use common::{data_dir, root};
use std::path::Path;
use std::process::Command;

/// Relative tolerance of step 1 (base model, B = 0).
const STEP1_TOLERANCE: f64 = 1e-4;
/// Relative tolerance of the later steps (different LoRA A draws).
const STEP_TOLERANCE: f64 = 0.02;
/// Relative tolerance of the logged learning rates (same cosine schedule, f64 on both sides).
const LR_TOLERANCE: f64 = 1e-6;

/// One logged optimizer step: `(step, loss, lr)`.
type Step = (u64, f64, f64);

/// The training lines (those with a `loss`) of a `trainer_log.jsonl`-shaped file.
fn read_steps(path: &Path) -> Vec<Step> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("loss").is_some())
        .map(|v| {
            let step = v
                .get("current_steps")
                .or_else(|| v.get("step"))
                .and_then(serde_json::Value::as_u64)
                .unwrap();
            (step, v["loss"].as_f64().unwrap(), v["lr"].as_f64().unwrap())
        })
        .collect()
}

fn rel(got: f64, want: f64) -> f64 {
    (got - want).abs() / want.abs()
}

#[test]
fn three_steps_match_llamafactory() {
    let gguf = root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        gguf.is_file(),
        "{} is missing: run scripts/fetch_model.sh",
        gguf.display()
    );
    let reference = read_steps(&root().join("fixtures/loss_curve/max_steps_3/llamafactory.jsonl"));
    assert_eq!(reference.len(), 3, "{reference:?}");

    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let out = Command::new(env!("CARGO_BIN_EXE_ferrotune"))
        .current_dir(root())
        .arg("train")
        .arg(root().join("tools/loss_curve_alpaca.yaml"))
        .arg(format!("model_name_or_path={}", gguf.display()))
        .arg(format!("dataset_dir={}", data_dir().display()))
        .arg(format!("output_dir={}", out_dir.display()))
        .arg("max_steps=3")
        // The YAML's batch of 4 as 4 accumulated micro-batches of 1: same optimizer batches
        // and loss, a quarter of the activation memory (see the module doc).
        .arg("per_device_train_batch_size=1")
        .arg("gradient_accumulation_steps=4")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "ferrotune train: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );

    let got = read_steps(&out_dir.join("trainer_log.jsonl"));
    let table: Vec<String> = reference
        .iter()
        .zip(&got)
        .map(|(w, g)| {
            format!(
                "step {}: loss llamafactory {:.4} ferrotune {:.4} ({:.3e} rel), lr {:.6e} vs {:.6e}",
                w.0,
                w.1,
                g.1,
                rel(g.1, w.1),
                w.2,
                g.2
            )
        })
        .collect();
    let table = table.join("\n");
    println!("{table}");
    assert_eq!(got.len(), reference.len(), "{table}");
    for (i, (want, got)) in reference.iter().zip(&got).enumerate() {
        assert_eq!(got.0, want.0, "step numbers differ\n{table}");
        let tol = if i == 0 {
            STEP1_TOLERANCE
        } else {
            STEP_TOLERANCE
        };
        assert!(
            rel(got.1, want.1) <= tol,
            "loss of step {} off by more than {tol} relative\n{table}",
            want.0
        );
        assert!(
            rel(got.2, want.2) <= LR_TOLERANCE,
            "lr of step {} off by more than {LR_TOLERANCE} relative (transformers 5, which \
             LLaMA-Factory 0.9.5 runs on, logs the lr the step used, not the next step's)\n{table}",
            want.0
        );
    }
}
