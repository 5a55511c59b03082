//! `ferrotune estimate` against the peak resident memory `ferrotune train` measures
//! (`peak_memory_mb` of `train_results.json`, the process's `VmHWM`) for six runs on the demo
//! model: LoRA and full fine-tuning, with and without gradient checkpointing, at 1×128 and
//! 2×256 tokens (stage pt with packing on c4_demo, so every row holds exactly `cutoff_len`
//! tokens). Two optimizer steps each, so that AdamW's states are resident (they are written
//! first by step 1) when step 2 reaches its peak. Fails when an estimate is more than 15%
//! away from the measurement; prints the table either way.
//!
//! Needs the demo model (`scripts/fetch_model.sh`) and `<repo>/../shared/data/llamafactory`
//! (or `LF_DATA_DIR`); fails, never skips, without them. Linux only (`VmHWM`).

mod common;

use std::path::Path;
use std::process::Command;

use common::{data_dir, demo_gguf};

/// Allowed relative distance between the estimate and the measured peak.
const TOLERANCE: f64 = 0.15;

/// One run: finetuning type, checkpointing, batch size, cutoff_len.
struct Case {
    finetuning_type: &'static str,
    checkpointing: bool,
    batch: usize,
    cutoff_len: usize,
}

/// The shared config of every case, written to `dir/<name>.yaml`.
fn write_config(dir: &Path, name: &str, case: &Case) -> std::path::PathBuf {
    let yaml = format!(
        "model_name_or_path: \"{}\"\nstage: pt\ndo_train: true\nfinetuning_type: {}\n\
         dataset: c4_demo\ndataset_dir: \"{}\"\npacking: true\ncutoff_len: {}\n\
         per_device_train_batch_size: {}\nmax_steps: 2\nlogging_steps: 1\nlearning_rate: 1.0e-4\n\
         disable_gradient_checkpointing: {}\noutput_dir: \"{}\"\noverwrite_output_dir: true\n\
         save_strategy: \"no\"\ndisable_tqdm: true\n",
        demo_gguf().display(),
        case.finetuning_type,
        data_dir().display(),
        case.cutoff_len,
        case.batch,
        !case.checkpointing,
        dir.join(name).display(),
    );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Runs `ferrotune <args>`, failing with its output when it fails; returns stdout.
fn ferrotune(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrotune"))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ferrotune {args:?} failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn estimate_is_within_15_percent_of_the_measured_peak_rss() {
    let cases = [
        ("lora", true, 1, 128),
        ("lora", false, 1, 128),
        ("full", true, 1, 128),
        ("full", false, 1, 128),
        ("lora", false, 2, 256),
        ("full", true, 2, 256),
    ]
    .map(|(finetuning_type, checkpointing, batch, cutoff_len)| Case {
        finetuning_type,
        checkpointing,
        batch,
        cutoff_len,
    });
    let dir = tempfile::tempdir().unwrap();
    let mib = |bytes: f64| bytes / (1u64 << 20) as f64;
    let mut rows = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let name = format!("case{i}");
        let cfg = write_config(dir.path(), &name, case);
        let cfg = cfg.to_str().unwrap();
        let estimate: serde_json::Value =
            serde_json::from_str(&ferrotune(&["estimate", "--json", cfg])).unwrap();
        ferrotune(&["train", cfg]);
        let results: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(&name).join("train_results.json")).unwrap(),
        )
        .unwrap();
        let measured = results["peak_memory_mb"].as_f64().unwrap();
        let total = mib(estimate["total_bytes"].as_f64().unwrap());
        assert!(measured > 0.0, "no VmHWM in {results}");
        rows.push((
            format!(
                "{} {} {}×{}",
                case.finetuning_type,
                if case.checkpointing {
                    "ckpt   "
                } else {
                    "no-ckpt"
                },
                case.batch,
                case.cutoff_len
            ),
            total,
            measured,
            estimate["peak_phase"].as_str().unwrap_or("?").to_string(),
        ));
    }
    println!(
        "{:<22} {:>12} {:>12} {:>8}  peak phase",
        "run", "estimate MiB", "measured MiB", "ratio"
    );
    for (name, est, meas, phase) in &rows {
        println!(
            "{name:<22} {est:>12.1} {meas:>12.1} {:>8.3}  {phase}",
            est / meas
        );
    }
    for (name, est, meas, _) in &rows {
        let rel = (est / meas - 1.0).abs();
        assert!(
            rel <= TOLERANCE,
            "{name}: estimate {est:.1} MiB vs measured {meas:.1} MiB ({:.1}% off, limit {:.0}%)",
            100.0 * rel,
            100.0 * TOLERANCE
        );
    }
}
