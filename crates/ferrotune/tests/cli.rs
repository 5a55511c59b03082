//! Runs the built `ferrotune` binary: version, env, config errors and unbuilt commands.

use std::path::Path;
use std::process::{Command, Output};

fn ferrotune(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrotune"))
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .expect("the ferrotune binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write_config(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn version_prints_the_crate_version() {
    let out = ferrotune(&["version"]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        format!("ferrotune {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn env_reports_cpu_threads_devices_and_library_versions() {
    let out = ferrotune(&["env"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let line = |prefix: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{stdout}"))
            .to_string()
    };
    assert_eq!(
        line("- ferrotune version: "),
        format!("- ferrotune version: {}", env!("CARGO_PKG_VERSION"))
    );
    let cpu = line("- CPU: ");
    if let Ok(cpuinfo) = std::fs::read_to_string("/proc/cpuinfo") {
        let model = cpuinfo
            .lines()
            .find_map(|l| l.split_once(':').filter(|(k, _)| k.trim() == "model name"))
            .map(|(_, v)| v.trim().to_string());
        if let Some(model) = model {
            assert_eq!(cpu, format!("- CPU: {model}"));
        }
    }
    line("- CPU features: ");
    let threads = std::thread::available_parallelism().unwrap().get();
    assert_eq!(
        line("- Threads available: "),
        format!("- Threads available: {threads}")
    );
    assert!(line("- Devices: ").starts_with("- Devices: cpu"));
    // Versions come from Cargo.lock: compare with the lock file itself.
    let lock =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.lock"))
            .unwrap();
    let candle = line("- candle-core version: ");
    let version = candle.trim_start_matches("- candle-core version: ");
    assert!(
        lock.contains(&format!("name = \"candle-core\"\nversion = \"{version}\"")),
        "{candle} not in Cargo.lock"
    );
    for lib in ["tokenizers", "minijinja", "safetensors"] {
        assert!(
            !line(&format!("- {lib} version: ")).ends_with("not in Cargo.lock"),
            "{lib}"
        );
    }
}

#[test]
fn unknown_key_error_has_suggestion_line_and_exit_code_1() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "train.yaml",
        "model_name_or_path: m\nstage: sft\ndo_train: true\ndataset: a\nlora_rnak: 16\n",
    );
    let out = ferrotune(&["train", &cfg]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim_end(),
        format!("error: unknown key `lora_rnak` in {cfg} line 5: did you mean `lora_rank`?")
    );
}

#[test]
fn override_errors_name_the_override() {
    let out = ferrotune(&["chat", "model_name_or_path=m", "temprature=0.5"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim_end(),
        "error: unknown key `temprature` in command line override `temprature=0.5`: did you mean `temperature`?"
    );
}

#[test]
fn unbuilt_command_validates_config_then_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "train.yaml",
        "model_name_or_path: m\nstage: sft\ndo_train: true\ndataset: a\npreprocessing_num_workers: 16\n",
    );
    let out = ferrotune(&["eval", &cfg, "learning_rate=1e-4"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.ends_with("`ferrotune eval` is not built yet (issue: benchmark evaluation)\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("preprocessing_num_workers"),
        "no-effect key is logged: {stderr}"
    );

    let out = ferrotune(&["webui"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "`ferrotune webui` is not built yet (issue: web UI)\n"
    );

    // A config error wins over the not-built message.
    let out = ferrotune(&["export", &cfg, "fp16=true", "bf16=true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("`fp16` and `bf16` cannot both be true"));
}

#[test]
fn yaml_syntax_error_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "bad.yaml",
        "model_name_or_path: m\nstage: sft\nlora_target: [q_proj, v_proj\nlora_rank: 8\n",
    );
    let out = ferrotune(&["train", &cfg]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!("error: YAML syntax error in {cfg} line 4 column")),
        "{stderr}"
    );
}

#[test]
fn stray_argument_is_rejected() {
    let out = ferrotune(&["train", "notaconfig"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("argument `notaconfig` is neither a config file"));
}
