//! Bad input to `ferrotune train`: each case must exit non-zero (no panic) with a message
//! that names the thing at fault, and a failed save must leave the last checkpoint intact.
//!
//! Runs the demo GGUF with a LoRA of rank 2 on a few short examples. Needs the demo model
//! (`scripts/fetch_model.sh`) and `<repo>/../shared/data/llamafactory` (or `LF_DATA_DIR`);
//! fails, never skips, without them.

mod common;

use common::{data_dir, root};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A small LoRA training config writing into `out`, plus `extra` lines.
fn config(out: &Path, extra: &str) -> String {
    let gguf = root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        gguf.is_file(),
        "{} is missing: run scripts/fetch_model.sh",
        gguf.display()
    );
    format!(
        "model_name_or_path: \"{}\"\nstage: sft\nfinetuning_type: lora\nlora_rank: 2\n\
         dataset: alpaca_en_demo\ndataset_dir: \"{}\"\ntemplate: chatml\ncutoff_len: 32\n\
         max_samples: 8\nper_device_train_batch_size: 2\nlearning_rate: 1.0e-3\n\
         logging_steps: 1\ndisable_tqdm: true\noutput_dir: \"{}\"\n{extra}",
        gguf.display(),
        data_dir().display(),
        out.display()
    )
}

/// Writes `yaml` into `dir/name` and returns its path.
fn write_yaml(dir: &Path, name: &str, yaml: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Runs `ferrotune train <yaml>` and returns its output.
fn train(yaml: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrotune"))
        .args(["train", yaml.to_str().unwrap()])
        .output()
        .unwrap()
}

/// Runs `ferrotune train <yaml>` under `bash`, with files limited to `kib` KiB
/// (`ulimit -f`) and `SIGXFSZ` ignored, so that a write past the limit fails with `EFBIG`
/// as on a full disk instead of killing the process.
fn train_with_file_limit(yaml: &Path, kib: u64) -> Output {
    Command::new("bash")
        .args([
            "-c",
            &format!("trap '' XFSZ; ulimit -f {kib}; exec \"$0\" train \"$1\""),
            env!("CARGO_BIN_EXE_ferrotune"),
            yaml.to_str().unwrap(),
        ])
        .output()
        .unwrap()
}

/// Asserts that the run succeeded.
fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Asserts a non-zero exit without a panic and returns the `error:` line of stderr.
fn error_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected a failure; stderr:\n{stderr}"
    );
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "panic:\n{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no `error:` line in stderr:\n{stderr}"))
        .to_string();
    println!("{line}");
    line
}

/// Asserts that `line` contains every one of `parts`.
fn assert_names(line: &str, parts: &[&str]) {
    for part in parts {
        assert!(line.contains(part), "`{part}` is not in: {line}");
    }
}

/// A PEFT adapter made by Python for `fixtures/tiny/llama` (2 layers, hidden 64, every
/// linear layer, rank 4) evaluated on SmolLM2 (30 layers, hidden 576): the error names the
/// first tensor whose shape differs and both shapes.
#[test]
fn adapter_for_another_base_model() {
    let dir = tempfile::tempdir().unwrap();
    let adapter = root().join("fixtures/lora/peft_made_llama");
    let yaml = write_yaml(
        dir.path(),
        "eval.yaml",
        &config(
            &dir.path().join("out"),
            &format!(
                "do_train: false\ndo_eval: true\nval_size: 2\nper_device_eval_batch_size: 2\n\
                 adapter_name_or_path: \"{}\"\n",
                adapter.display()
            ),
        ),
    );
    let line = error_line(&train(&yaml));
    assert_names(
        &line,
        &[
            "adapter_model.safetensors",
            "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight",
            "[4, 128]",
            "[4, 1536]",
        ],
    );
}

/// `lora_target` naming a module the model does not have: the error names it and lists the
/// linear modules that exist.
#[test]
fn lora_target_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = write_yaml(
        dir.path(),
        "train.yaml",
        &config(
            &dir.path().join("out"),
            "do_train: true\nmax_steps: 1\nlora_target: q_proj,qkv_proj\n",
        ),
    );
    let line = error_line(&train(&yaml));
    assert_names(
        &line,
        &[
            "lora_target",
            "`qkv_proj`",
            "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj",
        ],
    );
}

/// An `output_dir` that cannot be created (below a regular file; inside `/proc`) fails at
/// once, naming the key and the folder.
#[test]
fn output_dir_not_writable() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file.txt");
    std::fs::write(&file, "a file, not a folder").unwrap();
    for (out, cause) in [
        (file.join("out"), "Not a directory"),
        (PathBuf::from("/proc/ferrotune-test-out"), "os error"),
    ] {
        let yaml = write_yaml(
            dir.path(),
            "train.yaml",
            &config(&out, "do_train: true\nmax_steps: 1\n"),
        );
        let line = error_line(&train(&yaml));
        assert_names(
            &line,
            &["`output_dir`", &out.display().to_string(), cause, "hint"],
        );
    }
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "a file, not a folder"
    );
}

/// The disk fills while `checkpoint-4` is written (files limited to 700 KiB: the adapter,
/// 465 KiB, fits; the optimizer state, 948 KiB, does not): the run stops with an error naming
/// the checkpoint and the file, no `checkpoint-4` (nor its temporary folder) is left,
/// `checkpoint-2` is intact, and the same command without the limit resumes from it.
#[test]
fn disk_full_while_saving_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // Two steps, saved as checkpoint-2, without a limit.
    let first = write_yaml(
        dir.path(),
        "first.yaml",
        &config(
            &out,
            "do_train: true\nlora_target: q_proj,v_proj\nmax_steps: 2\nsave_steps: 2\n",
        ),
    );
    assert_ok(&train(&first));
    let ckpt2 = out.join("checkpoint-2");
    let files = [
        "adapter_model.safetensors",
        "adapter_config.json",
        "optimizer.safetensors",
        "trainer_state.json",
    ];
    let before: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(ckpt2.join(f)).unwrap())
        .collect();

    // Four steps: resumes from checkpoint-2 and fails saving checkpoint-4.
    let second = write_yaml(
        dir.path(),
        "second.yaml",
        &config(
            &out,
            "do_train: true\nlora_target: q_proj,v_proj\nmax_steps: 4\nsave_steps: 2\n",
        ),
    );
    let line = error_line(&train_with_file_limit(&second, 700));
    assert_names(
        &line,
        &[
            &out.join("checkpoint-4").display().to_string(),
            "optimizer.safetensors",
            "File too large",
            "earlier checkpoints are untouched",
            "hint",
        ],
    );
    assert!(
        !out.join("checkpoint-4").exists(),
        "checkpoint-4 is visible"
    );
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.contains("checkpoint-4")),
        "left over: {names:?}"
    );
    for (f, bytes) in files.iter().zip(&before) {
        assert_eq!(
            &std::fs::read(ckpt2.join(f)).unwrap(),
            bytes,
            "checkpoint-2/{f} changed"
        );
    }

    // Without the limit the same command resumes from checkpoint-2 and finishes.
    assert_ok(&train(&second));
    let log = std::fs::read_to_string(out.join("trainer_log.jsonl")).unwrap();
    let steps: Vec<u64> = log
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["current_steps"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(steps, [1, 2, 3, 4], "{log}");
    for f in files {
        assert!(out.join("checkpoint-4").join(f).is_file(), "{f}");
    }
}

/// An `output_dir` holding a trained model and no checkpoint, without
/// `overwrite_output_dir`: the error asks for `overwrite_output_dir`.
#[test]
fn finished_output_dir_without_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let adapter = root().join("fixtures/lora/peft_made_llama");
    for f in ["adapter_model.safetensors", "adapter_config.json"] {
        std::fs::copy(adapter.join(f), out.join(f)).unwrap();
    }
    let yaml = write_yaml(
        dir.path(),
        "train.yaml",
        &config(&out, "do_train: true\nmax_steps: 1\n"),
    );
    let line = error_line(&train(&yaml));
    assert_names(
        &line,
        &[
            &out.display().to_string(),
            "adapter_model.safetensors",
            "overwrite_output_dir",
        ],
    );
}

/// `resume_from_checkpoint` naming a folder that does not exist.
#[test]
fn resume_from_a_missing_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("out/checkpoint-7");
    let yaml = write_yaml(
        dir.path(),
        "train.yaml",
        &config(
            &dir.path().join("out"),
            &format!(
                "do_train: true\nmax_steps: 1\nresume_from_checkpoint: \"{}\"\n",
                missing.display()
            ),
        ),
    );
    let line = error_line(&train(&yaml));
    assert_names(
        &line,
        &["resume_from_checkpoint", &missing.display().to_string()],
    );
}
