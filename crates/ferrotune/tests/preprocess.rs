//! Runs `ferrotune preprocess` on the LLaMA-Factory fixture cases (`fixtures/data/<case>.yaml`)
//! and compares `--dump` with LLaMA-Factory 0.9.5's rows (`fixtures/data/<case>.jsonl`) byte
//! for byte; checks `tokenized_path` save-then-load and the errors users meet first.
//!
//! Needs the demo model (`scripts/fetch_model.sh`) and the demo datasets in
//! `<repo>/../shared/data/llamafactory` (or `LF_DATA_DIR`); fails, never skips, without them.

mod common;

use common::{data_dir, root};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
/// The demo datasets folder.
/// The demo model, which must exist.
fn gguf() -> PathBuf {
    let path = root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/fetch_model.sh",
        path.display()
    );
    path
}

/// Writes fixture case `case`'s YAML into `dir` with the model and dataset paths of this
/// checkout, plus `extra` lines; returns the config path.
fn case_config(dir: &Path, case: &str, extra: &str) -> PathBuf {
    let yaml = std::fs::read_to_string(root().join(format!("fixtures/data/{case}.yaml")))
        .unwrap_or_else(|e| panic!("fixture {case}: {e}"));
    let yaml = yaml
        .replace(
            "\"models/smollm2-f32-hf\"",
            &format!("\"{}\"", gguf().display()),
        )
        .replace(
            "dataset_dir: \"llamafactory\"",
            &format!("dataset_dir: \"{}\"", data_dir().display()),
        );
    assert!(yaml.contains(".gguf") && !yaml.contains("\"llamafactory\""));
    let path = dir.join(format!("{case}.yaml"));
    std::fs::write(&path, yaml + extra).unwrap();
    path
}

/// Runs `ferrotune preprocess <args>` in `cwd`.
fn preprocess(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrotune"))
        .arg("preprocess")
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "info")
        .output()
        .expect("the ferrotune binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs case `case` with `--dump` and returns the dump.
fn dump_case(dir: &Path, case: &str, extra: &str) -> (String, Output) {
    let config = case_config(dir, case, extra);
    let dump = dir.join(format!("{case}.dump.jsonl"));
    let out = preprocess(
        dir,
        &[config.to_str().unwrap(), "--dump", dump.to_str().unwrap()],
    );
    assert!(out.status.success(), "{case}: {}", text(&out.stderr));
    (std::fs::read_to_string(&dump).unwrap(), out)
}

/// Asserts `got` equals fixture `case`'s rows line by line, naming the first differing row.
fn assert_matches_fixture(case: &str, got: &str) {
    let want = std::fs::read_to_string(root().join(format!("fixtures/data/{case}.jsonl"))).unwrap();
    let (got_lines, want_lines): (Vec<_>, Vec<_>) = (got.lines().collect(), want.lines().collect());
    for (i, (g, w)) in got_lines.iter().zip(&want_lines).enumerate() {
        assert_eq!(g, w, "{case}: row {i} differs from LLaMA-Factory's");
    }
    assert_eq!(got_lines.len(), want_lines.len(), "{case}: row count");
}

#[test]
fn sft_alpaca_smollm2_dump_matches_llamafactory() {
    let dir = tempfile::tempdir().unwrap();
    let (dump, out) = dump_case(dir.path(), "sft_alpaca_smollm2", "");
    assert_matches_fixture("sft_alpaca_smollm2", &dump);
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("30 train examples (supervised), 0 eval examples\n"),
        "{stdout}"
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("training example:\ninput_ids:\n[1, 9690, 198"),
        "{stderr}"
    );
    assert!(stderr.contains("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face.<|im_end|>"));
}

/// Every fixture case: sft (templates, truncation, tools, train_on_prompt, mask_history,
/// efficient_eos, packing, neat packing), dpo, kto and pt (packed or not).
#[test]
fn every_fixture_case_dump_matches_llamafactory() {
    let dir = tempfile::tempdir().unwrap();
    let mut cases: Vec<String> = std::fs::read_dir(root().join("fixtures/data"))
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".yaml").map(str::to_owned)
        })
        .collect();
    cases.sort();
    assert!(cases.len() >= 21, "{cases:?}");
    for case in &cases {
        let (dump, _) = dump_case(dir.path(), case, "");
        assert_matches_fixture(case, &dump);
    }
}

#[test]
fn tokenized_path_saves_then_loads_the_same_examples() {
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("tokenized");
    let extra = format!("tokenized_path: \"{}\"\n", saved.display());
    let (first, out) = dump_case(dir.path(), "pairwise_dpo_smollm2", &extra);
    assert_matches_fixture("pairwise_dpo_smollm2", &first);
    assert!(saved.join("meta.json").is_file() && saved.join("train.jsonl").is_file());
    assert!(!text(&out.stderr).contains("ignores the other data arguments"));
    let meta = std::fs::read_to_string(saved.join("meta.json")).unwrap();
    assert!(
        meta.contains("\"kind\": \"pairwise\"") && meta.contains("\"train_examples\": 20"),
        "{meta}"
    );

    // Second run: a missing dataset name proves the data keys are not read any more.
    let config = case_config(dir.path(), "pairwise_dpo_smollm2", &extra);
    let dump = dir.path().join("second.jsonl");
    let out = preprocess(
        dir.path(),
        &[
            config.to_str().unwrap(),
            "dataset=no_such_dataset",
            "--dump",
            dump.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("WARN") && stderr.contains("ignores the other data arguments"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&dump).unwrap(), first);
}

#[test]
fn unknown_dataset_name_suggests_the_closest() {
    let dir = tempfile::tempdir().unwrap();
    let config = case_config(dir.path(), "sft_alpaca_smollm2", "");
    let out = preprocess(
        dir.path(),
        &[config.to_str().unwrap(), "dataset=alpaca_en_dem"],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("dataset `alpaca_en_dem` is not defined in"),
        "{stderr}"
    );
    assert!(
        stderr.contains("did you mean `alpaca_en_demo`?"),
        "{stderr}"
    );
}

#[test]
fn unknown_template_lists_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let config = case_config(dir.path(), "sft_alpaca_smollm2", "");
    let out = preprocess(dir.path(), &[config.to_str().unwrap(), "template=smollm9"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("error: unknown template `smollm9`; known templates: "),
        "{stderr}"
    );
    assert!(
        stderr.contains("smollm2")
            && stderr.contains("qwen")
            && stderr.contains("hint: set `template`"),
        "{stderr}"
    );
}

#[test]
fn ranking_data_is_refused_for_sft() {
    let dir = tempfile::tempdir().unwrap();
    let config = case_config(dir.path(), "sft_alpaca_smollm2", "");
    let out = preprocess(
        dir.path(),
        &[config.to_str().unwrap(), "dataset=dpo_en_demo"],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("dataset `dpo_en_demo` is a ranking dataset"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: use `stage: dpo`"), "{stderr}");
}
