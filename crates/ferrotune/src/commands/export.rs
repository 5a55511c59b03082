//! `ferrotune export <config.yaml> [key=value ...]`: merges `adapter_name_or_path` into
//! `model_name_or_path` and writes `export_dir` as LLaMA-Factory's `llamafactory-cli export`
//! does (an HF folder), or as a GGUF file with `export_format: gguf` (see `ferrotune_export`).

use std::process::ExitCode;

use anyhow::bail;
use ferrotune_export::ChatTemplateSource;

use super::ConfigArgs;

/// Runs the export and prints what was written.
///
/// # Errors
/// Config errors and every error of `ferrotune_export::export_model`.
pub fn run(args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    let Some(cfg) = args.load()? else {
        bail!("`ferrotune export` needs a config file or key=value arguments (model_name_or_path, adapter_name_or_path, template, export_dir, ...)");
    };
    let started = std::time::Instant::now();
    let summary = ferrotune_export::export_model(&cfg)?;
    let what = match (summary.dtype, summary.quantization) {
        (Some(dtype), _) => format!("hf folder ({})", dtype.torch_name()),
        (None, Some(q)) => format!("gguf ({q})"),
        (None, None) => "export".to_string(),
    };
    let template = match summary.chat_template {
        ChatTemplateSource::FromTemplate => "the template's Jinja form",
        ChatTemplateSource::Tokenizer => "the tokenizer's own",
        ChatTemplateSource::TokenizerTemplateNotConvertible => {
            "the tokenizer's own (the template names tokens by id and has no Jinja form)"
        }
        ChatTemplateSource::None => "none",
    };
    println!(
        "exported {what} with {} adapter(s) merged to {} in {:.1} s: {}; chat template: {template}",
        summary.adapters_merged,
        summary.export_dir.display(),
        started.elapsed().as_secs_f64(),
        summary.files.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}
