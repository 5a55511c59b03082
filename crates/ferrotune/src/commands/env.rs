//! `ferrotune env`: what to paste into a bug report (as `llamafactory-cli env`).

use std::process::ExitCode;

use super::cpu;

/// Prints the ferrotune version, OS, CPU model and features, threads, devices and the versions
/// of key libraries (resolved from `Cargo.lock` at build time).
///
/// # Errors
/// None; the signature matches the other commands.
pub fn run() -> anyhow::Result<ExitCode> {
    let cpu = cpu::detect();
    let present: Vec<&str> = cpu
        .features
        .iter()
        .filter(|(_, p)| *p == Some(true))
        .map(|(n, _)| *n)
        .collect();
    let missing: Vec<&str> = cpu
        .features
        .iter()
        .filter(|(_, p)| *p == Some(false))
        .map(|(n, _)| *n)
        .collect();
    let unknown: Vec<&str> = cpu
        .features
        .iter()
        .filter(|(_, p)| p.is_none())
        .map(|(n, _)| *n)
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut devices = vec!["cpu"];
    if candle_core::utils::cuda_is_available() {
        devices.push("cuda");
    }

    println!("- ferrotune version: {}", env!("CARGO_PKG_VERSION"));
    println!(
        "- Platform: {} {} ({})",
        std::env::consts::OS,
        std::env::consts::ARCH,
        os_release().unwrap_or_else(|| "unknown release".into())
    );
    println!(
        "- CPU: {}",
        cpu.model_name.as_deref().unwrap_or("unknown model")
    );
    let mut features = format!("- CPU features: {}", list_or_none(&present));
    if !missing.is_empty() {
        features += &format!(" (missing: {})", missing.join(" "));
    }
    if !unknown.is_empty() {
        features += &format!(" (undetectable: {})", unknown.join(" "));
    }
    println!("{features}");
    println!("- Threads available: {threads}");
    println!("- Devices: {}", devices.join(", "));
    println!(
        "- candle-core version: {}",
        env!("FERROTUNE_VERSION_CANDLE_CORE")
    );
    println!(
        "- tokenizers version: {}",
        env!("FERROTUNE_VERSION_TOKENIZERS")
    );
    println!(
        "- minijinja version: {}",
        env!("FERROTUNE_VERSION_MINIJINJA")
    );
    println!(
        "- safetensors version: {}",
        env!("FERROTUNE_VERSION_SAFETENSORS")
    );
    Ok(ExitCode::SUCCESS)
}

fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(" ")
    }
}

/// `PRETTY_NAME` from `/etc/os-release`, when present.
fn os_release() -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    text.lines().find_map(|line| {
        line.strip_prefix("PRETTY_NAME=")
            .map(|v| v.trim_matches('"').to_string())
    })
}
