//! One module per command family, plus the `[config.yaml] [key=value ...]` arguments they share.

pub mod api;
pub mod chat;
pub mod cpu;
pub mod env;
pub mod estimate;
pub mod export;
pub mod pending;
pub mod preprocess;
pub mod train;
pub mod version;

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use ferrotune_config::Config;

/// `[config.yaml] [key=value ...]`: an optional config file (`.yaml`, `.yml` or `.json`, as
/// LLaMA-Factory recognizes them) followed by overrides applied on top of it.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// Config file (.yaml, .yml or .json), then key=value overrides, e.g. learning_rate=1e-4.
    #[arg(value_name = "CONFIG | KEY=VALUE")]
    pub args: Vec<String>,
}

impl ConfigArgs {
    /// Splits the arguments into the config file, if the first one names one, and overrides.
    ///
    /// # Errors
    /// When an argument is neither a config file (first position only) nor `key=value`.
    pub fn split(&self) -> anyhow::Result<(Option<PathBuf>, Vec<String>)> {
        let is_config = |arg: &str| {
            [".yaml", ".yml", ".json"]
                .iter()
                .any(|ext| arg.to_ascii_lowercase().ends_with(ext))
        };
        let mut args = self.args.iter();
        let config = match self.args.first() {
            Some(first) if is_config(first) => {
                args.next();
                Some(PathBuf::from(first))
            }
            _ => None,
        };
        let overrides: Vec<String> = args.cloned().collect();
        if let Some(bad) = overrides.iter().find(|a| !a.contains('=')) {
            bail!(
                "argument `{bad}` is neither a config file (.yaml, .yml, .json) in first position nor a key=value override"
            );
        }
        Ok((config, overrides))
    }

    /// Loads and validates the config, or returns `None` when no argument was given.
    ///
    /// # Errors
    /// Bad arguments, or any config error (unknown key, wrong type, unsupported key, ...).
    pub fn load(&self) -> anyhow::Result<Option<Config>> {
        if self.args.is_empty() {
            return Ok(None);
        }
        let (config, overrides) = self.split()?;
        let cfg = match config {
            Some(path) => Config::from_yaml_file(path, &overrides)?,
            None => Config::from_overrides(&overrides)?,
        };
        Ok(Some(cfg))
    }
}
