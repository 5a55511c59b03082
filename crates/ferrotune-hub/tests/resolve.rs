//! Resolving `model_name_or_path`: local files and folders, the HF cache layout, offline errors.
//! No test touches the network (`offline: true` wherever a repo id is resolved).

mod common;

use ferrotune_hub::resolve::{resolve_model, HubOptions, ModelSource};
use ferrotune_hub::HubError;

fn offline_opts(cache: &std::path::Path) -> HubOptions {
    HubOptions {
        cache_dir: Some(cache.to_path_buf()),
        offline: true,
        ..HubOptions::default()
    }
}

#[test]
fn local_paths() {
    let dir = tempfile::tempdir().unwrap();
    let opts = offline_opts(dir.path());
    let root = dir.path();

    // A .gguf file.
    let gguf = common::tiny_valid().write(root, "m.gguf");
    let s = gguf.to_str().unwrap();
    assert_eq!(
        resolve_model(s, &opts).unwrap(),
        ModelSource::Gguf(gguf.clone())
    );

    // A folder with config.json, even with a .gguf beside it.
    let hf = root.join("hf");
    std::fs::create_dir(&hf).unwrap();
    std::fs::write(hf.join("config.json"), "{}").unwrap();
    common::tiny_valid().write(&hf, "x.gguf");
    assert_eq!(
        resolve_model(hf.to_str().unwrap(), &opts).unwrap(),
        ModelSource::HfDir(hf.clone())
    );

    // A folder with exactly one .gguf and no config.json.
    let one = root.join("one");
    std::fs::create_dir(&one).unwrap();
    let only = common::tiny_valid().write(&one, "only.GGUF");
    assert_eq!(
        resolve_model(one.to_str().unwrap(), &opts).unwrap(),
        ModelSource::Gguf(only)
    );

    // Two .gguf files: ambiguous, and the error lists them.
    common::tiny_valid().write(&one, "second.gguf");
    let msg = resolve_model(one.to_str().unwrap(), &opts)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("only.GGUF") && msg.contains("second.gguf"),
        "{msg}"
    );

    // An empty folder, a non-gguf file, and a missing path.
    let empty = root.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let msg = resolve_model(empty.to_str().unwrap(), &opts)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("no config.json and no .gguf"), "{msg}");
    let msg = resolve_model(hf.join("config.json").to_str().unwrap(), &opts)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("not a .gguf"), "{msg}");
    let missing = root.join("missing/model.gguf");
    let err = resolve_model(missing.to_str().unwrap(), &opts).unwrap_err();
    assert!(matches!(err, HubError::NotFound { .. }), "{err}");
}

#[test]
fn hf_cache_layout_is_found() {
    let cache = tempfile::tempdir().unwrap();
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let repo = cache.path().join("models--org--name");
    let snapshot = repo.join("snapshots").join(commit);
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), format!("{commit}\n")).unwrap();
    std::fs::write(snapshot.join("config.json"), "{}").unwrap();

    let opts = offline_opts(cache.path());
    assert_eq!(
        resolve_model("org/name", &opts).unwrap(),
        ModelSource::HfDir(snapshot.clone())
    );
    // A commit hash as the revision names the snapshot directly.
    let by_commit = HubOptions {
        revision: commit.to_string(),
        ..opts.clone()
    };
    assert_eq!(
        resolve_model("org/name", &by_commit).unwrap(),
        ModelSource::HfDir(snapshot)
    );

    // A revision with no ref is not cached: offline error.
    let other = HubOptions {
        revision: "v2".to_string(),
        ..opts.clone()
    };
    let err = resolve_model("org/name", &other).unwrap_err();
    assert!(matches!(err, HubError::Offline { .. }), "{err}");

    // A corrupt ref file is reported, not followed.
    std::fs::write(repo.join("refs/main"), "../../etc").unwrap();
    let msg = resolve_model("org/name", &opts).unwrap_err().to_string();
    assert!(
        msg.contains("refs/main") && msg.contains("not a 40-hex commit hash"),
        "{msg}"
    );
}

#[test]
fn offline_missing_repo_names_repo_cache_and_hint() {
    let cache = tempfile::tempdir().unwrap();
    let err = resolve_model(
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        &offline_opts(cache.path()),
    )
    .unwrap_err();
    let HubError::Offline {
        repo, cache_dir, ..
    } = &err
    else {
        panic!("expected Offline, got {err}");
    };
    assert_eq!(repo, "HuggingFaceTB/SmolLM2-135M-Instruct");
    assert_eq!(cache_dir, cache.path());
    let msg = err.to_string();
    for part in [
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        cache.path().to_str().unwrap(),
        "download it elsewhere and copy the folder, or set model_name_or_path to a local folder or .gguf file",
        "offline",
    ] {
        assert!(msg.contains(part), "{part:?} missing from: {msg}");
    }
}

#[test]
fn defaults() {
    let d = HubOptions::default();
    assert_eq!(
        (d.revision.as_str(), d.endpoint.as_str(), d.offline),
        ("main", "https://huggingface.co", false)
    );
}
