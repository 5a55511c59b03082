//! `ferrotune api <config.yaml> [key=value ...]`: serves the model (plus merged adapters) over
//! an OpenAI-compatible HTTP API, as LLaMA-Factory's `llamafactory-cli api`. Settings come
//! from the environment: `API_HOST` (default 127.0.0.1), `API_PORT` (8000), `API_KEY`,
//! `API_MODEL_NAME`, `MAX_CONCURRENT`, `MAX_QUEUE`, `API_MAX_BODY_BYTES`. Runs until SIGINT or
//! SIGTERM, then shuts down gracefully and exits 0.

use std::process::ExitCode;

use anyhow::bail;
use ferrotune_serve::ServeSettings;

use super::ConfigArgs;

/// Loads the config's model and serves it until a shutdown signal.
///
/// # Errors
/// Config, environment and loading errors; a port that cannot be bound.
pub fn run(args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    let Some(cfg) = args.load()? else {
        bail!("`ferrotune api` needs a config file or key=value arguments (model_name_or_path, template, adapter_name_or_path, ...)");
    };
    let settings = ServeSettings::from_env()?;
    ferrotune_serve::run(&cfg, settings)?;
    Ok(ExitCode::SUCCESS)
}
