//! Paths shared by the end-to-end tests of the `ferrotune` binary.
// Each test binary uses a different subset.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// LLaMA-Factory's demo datasets: `LF_DATA_DIR`, else `<repo>/../shared/data/llamafactory`.
pub fn data_dir() -> PathBuf {
    std::env::var_os("LF_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/data/llamafactory"))
}

/// The demo model (SmolLM2-135M-Instruct, Q4_1 GGUF); fails, never skips, when it is missing.
pub fn demo_gguf() -> PathBuf {
    let path = root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/fetch_model.sh",
        path.display()
    );
    path
}
