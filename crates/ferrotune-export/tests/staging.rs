//! Crash safety of exports: `export_dir` is only ever absent or complete. An occupied
//! `export_dir` is refused and left untouched; an export that fails after it started (an
//! adapter made for another base) leaves neither `export_dir` nor its temporary sibling;
//! a replaced folder holds only the new files.
//!
//! Needs the demo model (`scripts/fetch_model.sh`).

mod common;

use std::path::Path;

use common::*;
use ferrotune_export::{export_model, Staging};

/// Names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn demo_overrides(export_dir: &Path, adapter: &Path) -> Vec<String> {
    vec![
        format!("model_name_or_path={}", demo_gguf().display()),
        format!("adapter_name_or_path={}", adapter.display()),
        "template=smollm2".into(),
        format!("export_dir={}", export_dir.display()),
    ]
}

#[test]
fn occupied_export_dir_is_refused_and_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "mine").unwrap();
    let err = export_model(&config(&demo_overrides(&out, &lora_qv())))
        .unwrap_err()
        .to_string();
    assert!(err.contains("already exists and is not empty"), "{err}");
    assert!(err.contains("overwrite_output_dir"), "{err}");
    assert_eq!(listing(&out), ["keep.txt"]);
    assert_eq!(listing(tmp.path()), ["out"]);
}

#[test]
fn failed_export_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    // An adapter trained on the tiny llama (hidden 64) does not fit the demo model (576).
    let adapter = root().join("fixtures/lora/peft_made_llama");
    let err = export_model(&config(&demo_overrides(&out, &adapter)))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("lora_A.weight") && err.contains("another base model"),
        "the error names the tensor and the cause: {err}"
    );
    assert!(
        listing(tmp.path()).is_empty(),
        "left: {:?}",
        listing(tmp.path())
    );
}

#[test]
fn staging_commits_whole_or_not_at_all() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");

    // Dropped before commit: nothing remains.
    let staging = Staging::begin(&out, false).unwrap();
    std::fs::write(staging.dir().join("model.safetensors"), "partial").unwrap();
    drop(staging);
    assert!(listing(tmp.path()).is_empty());

    // Committed: the folder appears with its files.
    let staging = Staging::begin(&out, false).unwrap();
    std::fs::write(staging.dir().join("a.txt"), "one").unwrap();
    assert!(!out.exists(), "the target appears only on commit");
    staging.commit().unwrap();
    assert_eq!(listing(&out), ["a.txt"]);

    // Replacing needs overwrite; the replaced folder holds only the new files.
    assert!(Staging::begin(&out, false).is_err());
    let staging = Staging::begin(&out, true).unwrap();
    std::fs::write(staging.dir().join("b.txt"), "two").unwrap();
    assert_eq!(
        listing(&out),
        ["a.txt"],
        "the old export stays until commit"
    );
    staging.commit().unwrap();
    assert_eq!(listing(&out), ["b.txt"]);
    assert_eq!(listing(tmp.path()), ["out"]);
}
