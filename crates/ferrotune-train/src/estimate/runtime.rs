//! The runtime part of a run's memory: what the process holds besides the model's tensors.
//! `ferrotune estimate` measures its own resident size ([`current_rss_bytes`]) after loading
//! the tokenizer and running the matmul benchmark, then adds the dataset files
//! ([`dataset_bytes`]) and the allocator's slack ([`ALLOCATOR_SLACK_BYTES`]).

use std::path::Path;

use ferrotune_config::Config;

/// Freed heap the allocator keeps resident beyond the live tensors, which the code cannot
/// tell. glibc malloc (mallopt(3), `M_MMAP_THRESHOLD` and `M_TRIM_THRESHOLD`): once a block
/// served by mmap is freed, the mmap threshold rises to its size, at most
/// `DEFAULT_MMAP_THRESHOLD_MAX` (32 MiB on 64-bit), and the trim threshold to twice that; from
/// then on tensors below it come from the heap, and up to 64 MiB of freed memory at the top
/// of the heap is kept instead of returned. This bound, 64 MiB, is the constant; it is not
/// fitted to measurements, and fragmentation inside the heap is not modeled (the test
/// `crates/ferrotune/tests/estimate.rs` prints the residuals).
pub const ALLOCATOR_SLACK_BYTES: u64 = 64 << 20;

/// Bytes of the files of `cfg.data.dataset` as `dataset_info.json` in `dataset_dir` names
/// them (0 for datasets not found there, e.g. hub datasets).
pub fn dataset_bytes(cfg: &Config) -> u64 {
    let dir = Path::new(&cfg.data.dataset_dir);
    let Ok(text) = std::fs::read_to_string(dir.join("dataset_info.json")) else {
        return 0;
    };
    let Ok(info) = serde_json::from_str::<serde_json::Value>(&text) else {
        return 0;
    };
    cfg.data
        .dataset
        .iter()
        .filter_map(|name| info.get(name)?.get("file_name")?.as_str())
        .map(|f| file_size(&dir.join(f)))
        .sum()
}

/// Size of a file, or of every file in a folder; 0 when unreadable.
pub(super) fn file_size(path: &Path) -> u64 {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => m.len(),
        Ok(m) if m.is_dir() => std::fs::read_dir(path)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| file_size(&e.path()))
                    .sum()
            })
            .unwrap_or(0),
        _ => 0,
    }
}

/// Resident bytes of this process now (`VmRSS` of `/proc/self/status`, Linux); `None`
/// elsewhere.
pub fn current_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
