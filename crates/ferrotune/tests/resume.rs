//! Kill and resume: `ferrotune train` on the demo GGUF (LoRA rank 2, 6 steps over two epochs
//! of 4 steps, a checkpoint every step, `save_total_limit: 2`) is killed with SIGKILL at a
//! random moment after `checkpoint-2` exists (possibly in the middle of a save), then run
//! again; the resumed run must log exactly the losses, learning rates, epochs and token
//! counts of an uninterrupted run and end with bit-identical adapter tensors.
//!
//! The moment is `U(0, 2)` step durations after `checkpoint-2` appears, drawn from a seed
//! printed by the test; set `FERROTUNE_RESUME_SEED` to replay one.
//!
//! Needs the demo model (`scripts/fetch_model.sh`) and `<repo>/../shared/data/llamafactory`
//! (or `LF_DATA_DIR`); fails, never skips, without them.

mod common;

use common::{data_dir, root};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The training config of every run here, writing into `out`, plus `extra` lines.
fn config(out: &Path, extra: &str) -> String {
    let gguf = root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        gguf.is_file(),
        "{} is missing: run scripts/fetch_model.sh",
        gguf.display()
    );
    format!(
        "model_name_or_path: \"{}\"\nstage: sft\ndo_train: true\nfinetuning_type: lora\nlora_rank: 2\n\
         lora_target: q_proj,v_proj\ndataset: alpaca_en_demo\ndataset_dir: \"{}\"\ntemplate: chatml\n\
         cutoff_len: 32\nmax_samples: 8\nper_device_train_batch_size: 2\nmax_steps: 6\n\
         learning_rate: 1.0e-3\nlogging_steps: 1\nsave_steps: 1\nsave_total_limit: 2\n\
         disable_tqdm: true\noutput_dir: \"{}\"\n{extra}",
        gguf.display(),
        data_dir().display(),
        out.display()
    )
}

/// `ferrotune train <yaml>` as a command with its output captured.
fn train_command(yaml: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrotune"));
    cmd.args(["train", yaml.to_str().expect("utf-8 path")]);
    cmd
}

/// Runs `ferrotune train` on `yaml` to the end, failing the test with its output otherwise.
fn train_to_end(yaml: &Path) {
    let out = train_command(yaml).output().expect("ferrotune runs");
    assert!(
        out.status.success(),
        "ferrotune train {} failed\nstdout:\n{}\nstderr:\n{}",
        yaml.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One `trainer_log.jsonl` line: (current_steps, loss, lr, epoch, total_tokens).
type LogRow = (u64, f64, f64, f64, u64);

fn log_rows(out: &Path) -> Vec<LogRow> {
    let path = out.join("trainer_log.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            (
                v["current_steps"].as_u64().expect("current_steps"),
                v["loss"].as_f64().expect("loss"),
                v["lr"].as_f64().expect("lr"),
                v["epoch"].as_f64().expect("epoch"),
                v["total_tokens"].as_u64().expect("total_tokens"),
            )
        })
        .collect()
}

/// The `loss` of every entry of `log_history` in `trainer_state.json`.
fn history_losses(out: &Path) -> Vec<f64> {
    let path = out.join("trainer_state.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("trainer_state.json"))
            .expect("JSON");
    v["log_history"]
        .as_array()
        .expect("log_history")
        .iter()
        .map(|h| h["loss"].as_f64().expect("loss"))
        .collect()
}

/// Every tensor of `dir/adapter_model.safetensors`, flattened.
fn adapter_tensors(dir: &Path) -> BTreeMap<String, Vec<f32>> {
    let path = dir.join("adapter_model.safetensors");
    candle_core::safetensors::load(&path, &candle_core::Device::Cpu)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .map(|(k, t)| {
            let v = t
                .flatten_all()
                .and_then(|t| t.to_vec1::<f32>())
                .expect("f32");
            (k, v)
        })
        .collect()
}

/// The uninterrupted run, made once per test binary under Cargo's per-target temp folder.
fn reference() -> &'static Path {
    static REF: OnceLock<PathBuf> = OnceLock::new();
    REF.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("resume_reference");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("reference folder");
        let yaml = dir.join("run.yaml");
        std::fs::write(&yaml, config(&dir.join("out"), "")).expect("write yaml");
        let t = Instant::now();
        train_to_end(&yaml);
        println!("uninterrupted run: {:.1} s", t.elapsed().as_secs_f64());
        dir.join("out")
    })
}

/// splitmix64: the seeded draw of the kill moment.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn seed() -> u64 {
    match std::env::var("FERROTUNE_RESUME_SEED") {
        Ok(s) => s.parse().expect("FERROTUNE_RESUME_SEED is an integer"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    }
}

/// Polls until `path` exists, failing after `limit`.
fn wait_for(path: &Path, child: &mut std::process::Child, limit: Duration) -> Instant {
    let start = Instant::now();
    while !path.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "ferrotune exited ({status}) before {} existed",
                path.display()
            );
        }
        assert!(
            start.elapsed() < limit,
            "{} did not appear within {limit:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    Instant::now()
}

/// Starts `ferrotune train yaml` and SIGKILLs it at a random moment after
/// `out/checkpoint-2` is complete; returns a description of the moment.
fn run_and_kill(yaml: &Path, out: &Path, seed: u64) -> String {
    let mut child = train_command(yaml)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ferrotune starts");
    let limit = Duration::from_secs(300);
    let t1 = wait_for(
        &out.join("checkpoint-1/trainer_state.json"),
        &mut child,
        limit,
    );
    let t2 = wait_for(
        &out.join("checkpoint-2/trainer_state.json"),
        &mut child,
        limit,
    );
    let step = t2 - t1;
    let mut state = seed;
    let frac = (splitmix64(&mut state) >> 11) as f64 / (1u64 << 53) as f64;
    let delay = step.mul_f64(2.0 * frac);
    std::thread::sleep(delay);
    if let Ok(Some(status)) = child.try_wait() {
        panic!("ferrotune finished ({status}) before the kill (seed {seed}); the steps are too fast for this test");
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    format!(
        "seed {seed}: killed {:.2} s after checkpoint-2 (a step takes {:.2} s)",
        delay.as_secs_f64(),
        step.as_secs_f64()
    )
}

/// The numbered checkpoint folders of `out` that are complete; panics on one that is not.
fn complete_checkpoints(out: &Path) -> Vec<u64> {
    let mut steps = Vec::new();
    for entry in std::fs::read_dir(out).expect("output_dir") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(n) = name
            .strip_prefix("checkpoint-")
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        let dir = entry.path();
        for f in [
            "adapter_model.safetensors",
            "adapter_config.json",
            "optimizer.safetensors",
            "trainer_state.json",
        ] {
            assert!(
                dir.join(f).is_file(),
                "{} is visible but lacks {f}",
                dir.display()
            );
        }
        assert_eq!(adapter_tensors(&dir).len(), 2 * 2 * 30, "{}", dir.display());
        steps.push(n);
    }
    steps.sort_unstable();
    steps
}

/// The resumed run's outputs equal the uninterrupted run's: log lines (each step once),
/// `log_history` and the final adapter.
fn assert_same_as_reference(out: &Path, what: &str) {
    let reference = reference();
    let (want, got) = (log_rows(reference), log_rows(out));
    assert_eq!(want.len(), 6, "reference log: {want:?}");
    assert_eq!(got, want, "{what}: trainer_log.jsonl differs");
    assert_eq!(
        history_losses(out),
        history_losses(reference),
        "{what}: log_history differs"
    );
    let (a, b) = (adapter_tensors(reference), adapter_tensors(out));
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "{what}"
    );
    for (name, want) in &a {
        let diff = want
            .iter()
            .zip(&b[name])
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert_eq!(diff, 0.0, "{what}: {name} differs by up to {diff}");
    }
}

/// Killed at a random moment, then the same command again: it resumes by itself from the
/// last complete checkpoint of `output_dir`.
#[test]
fn killed_run_resumes_from_the_last_checkpoint() {
    let reference = reference().to_path_buf();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let yaml = dir.path().join("run.yaml");
    std::fs::write(&yaml, config(&out, "")).unwrap();
    let seed = seed();
    let moment = run_and_kill(&yaml, &out, seed);
    let left = complete_checkpoints(&out);
    println!("{moment}; complete checkpoints left: {left:?}");
    assert!(!left.is_empty(), "{moment}: no checkpoint left");

    let t = Instant::now();
    train_to_end(&yaml);
    println!("resumed run: {:.1} s", t.elapsed().as_secs_f64());
    assert_same_as_reference(&out, &moment);
    // The final checkpoint equals the reference's too; no temporary folder is left.
    assert_eq!(complete_checkpoints(&out), vec![5, 6], "{moment}");
    assert_eq!(
        adapter_tensors(&out.join("checkpoint-6")),
        adapter_tensors(&reference.join("checkpoint-6")),
        "{moment}"
    );
    let stray: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".checkpoint-"))
        .collect();
    assert!(stray.is_empty(), "{moment}: left over {stray:?}");
}

/// Killed at a random moment, then resumed with `resume_from_checkpoint` naming the older of
/// the two checkpoints left: the newer one is written again and the log lines the killed
/// run wrote after the named checkpoint are replaced.
#[test]
fn killed_run_resumes_from_a_named_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let yaml = dir.path().join("run.yaml");
    std::fs::write(&yaml, config(&out, "")).unwrap();
    let seed = seed().wrapping_add(1);
    let moment = run_and_kill(&yaml, &out, seed);
    let left = complete_checkpoints(&out);
    println!("{moment}; complete checkpoints left: {left:?}");
    let oldest = *left.first().expect("a checkpoint is left");
    let named = out.join(format!("checkpoint-{oldest}"));
    let resume_yaml = dir.path().join("resume.yaml");
    std::fs::write(
        &resume_yaml,
        config(
            &out,
            &format!("resume_from_checkpoint: \"{}\"\n", named.display()),
        ),
    )
    .unwrap();
    train_to_end(&resume_yaml);
    assert_same_as_reference(&out, &format!("{moment}, resumed from {}", named.display()));
}
