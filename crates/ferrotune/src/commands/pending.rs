//! Commands whose feature is not built yet: they still load and validate the config, so that
//! config errors show now, then exit with code 2.

use std::process::ExitCode;

use super::ConfigArgs;

/// Exit code of a command that is not built yet.
const NOT_BUILT: u8 = 2;

/// Validates the config given to `ferrotune <command>`, then reports that the command is not
/// built yet and which issue builds it.
///
/// # Errors
/// Any config error.
pub fn not_built(command: &str, issue: &str, args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    if let Some(cfg) = args.load()? {
        tracing::info!(
            source = %cfg.source.as_deref().map_or("(overrides)".into(), |p| p.display().to_string()),
            "config is valid"
        );
    }
    eprintln!("`ferrotune {command}` is not built yet (issue: {issue})");
    Ok(ExitCode::from(NOT_BUILT))
}
