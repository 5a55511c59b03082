//! `ferrotune train <config.yaml> [key=value ...]`: fine-tunes a model as LLaMA-Factory's
//! `llamafactory-cli train` does, for `stage: pt | sft` with `finetuning_type: lora | full`
//! (see `ferrotune_train::recipe`).

use std::process::ExitCode;

use anyhow::bail;
use candle_core::Device;

use super::ConfigArgs;

/// Runs the training recipe of the config on the CPU and reports the final loss and speed.
///
/// # Errors
/// Config errors and every error of `ferrotune_train::recipe::run`.
pub fn run(args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    let Some(cfg) = args.load()? else {
        bail!("`ferrotune train` needs a config file or key=value arguments (model_name_or_path, stage, dataset, template, output_dir, ...)");
    };
    let run = ferrotune_train::recipe::run(&cfg, &Device::Cpu)?;
    if let Some(eval) = &run.eval {
        println!(
            "eval_loss {:.4} (perplexity {:.3}) over {} examples in {:.1} s",
            eval.eval_loss,
            ferrotune_train::eval::perplexity(eval.eval_loss),
            eval.n_samples,
            eval.runtime_s
        );
    }
    let Some(summary) = run.train else {
        return Ok(ExitCode::SUCCESS);
    };
    let rt = summary.runtime_s.max(1e-9);
    println!(
        "trained {} steps ({:.2} epochs) in {:.1} s ({:.3} s/step, {:.0} tokens/s); train_loss {:.4}; outputs in {}",
        summary.global_step,
        summary.epoch,
        summary.runtime_s,
        rt / summary.global_step.max(1) as f64,
        summary.tokens as f64 / rt,
        summary.train_loss(),
        cfg.training.output_dir
    );
    Ok(ExitCode::SUCCESS)
}
