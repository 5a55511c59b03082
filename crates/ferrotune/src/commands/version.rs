//! `ferrotune version`.

use std::process::ExitCode;

/// Prints `ferrotune <version>`.
///
/// # Errors
/// None; the signature matches the other commands.
pub fn run() -> anyhow::Result<ExitCode> {
    println!("ferrotune {}", env!("CARGO_PKG_VERSION"));
    Ok(ExitCode::SUCCESS)
}
