//! CPU model and SIMD features detected at runtime, for `ferrotune env`.

/// SIMD features ferrotune's kernels care about, spelled as in `/proc/cpuinfo` flags.
pub const FEATURES: [&str; 7] = [
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_bf16",
    "amx_tile",
    "amx_bf16",
];

/// What was detected about the CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuInfo {
    /// `model name` from `/proc/cpuinfo`, when readable.
    pub model_name: Option<String>,
    /// Each of [`FEATURES`] with whether it is present; `None` when it cannot be detected here
    /// (not x86_64, or a feature std cannot detect and `/proc/cpuinfo` is absent).
    pub features: Vec<(&'static str, Option<bool>)>,
}

/// Detects the CPU: `std::is_x86_feature_detected!` for the features std names on our minimum
/// Rust version (avx2, fma, avx512f, avx512bw), `/proc/cpuinfo` flags for the others.
pub fn detect() -> CpuInfo {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok();
    let field = |name: &str| {
        cpuinfo.as_deref()?.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == name).then(|| value.trim().to_string())
        })
    };
    let model_name = field("model name");
    let flags: Option<Vec<String>> =
        field("flags").map(|f| f.split_whitespace().map(str::to_string).collect());
    let features = FEATURES
        .iter()
        .map(|&name| {
            let present = std_detect(name)
                .or_else(|| flags.as_ref().map(|flags| flags.iter().any(|f| f == name)));
            (name, present)
        })
        .collect();
    CpuInfo {
        model_name,
        features,
    }
}

#[cfg(target_arch = "x86_64")]
fn std_detect(name: &str) -> Option<bool> {
    match name {
        "avx2" => Some(std::is_x86_feature_detected!("avx2")),
        "fma" => Some(std::is_x86_feature_detected!("fma")),
        "avx512f" => Some(std::is_x86_feature_detected!("avx512f")),
        "avx512bw" => Some(std::is_x86_feature_detected!("avx512bw")),
        _ => None,
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn std_detect(_name: &str) -> Option<bool> {
    None
}
