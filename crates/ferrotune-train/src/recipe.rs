//! `ferrotune train` for `stage: pt | sft` with `finetuning_type: lora | freeze | full`, top
//! to bottom: config → model → tokenizer, template and data → trainable tensors
//! ([`crate::tuning`]) → optimizer →
//! [`Trainer::train_on`] → adapter or model, tokenizer, metrics, state and loss plot in
//! `output_dir`, as LLaMA-Factory's `run_sft`/`run_pt` (v0.9.5 `train/{sft,pt}/workflow.py`).
//!
//! Checkpoints (`save_strategy`, `save_steps`, `save_total_limit`, `save_only_model`) and
//! `resume_from_checkpoint` go through [`crate::checkpoint`]; without it a run continues from
//! the last checkpoint of a non-empty `output_dir` unless `overwrite_output_dir` ([`resume_point`]).

use std::path::{Path, PathBuf};

use candle_core::Device;
use ferrotune_config::args::Stage;
use ferrotune_config::Config;
use ferrotune_data::pipeline::{prepare_dataset, prepare_tokenizer_and_template, PrepareOptions};
use ferrotune_infer::chat::{load_from_config, LoadFor, LoadedModel};
use ferrotune_model::adapters::set_training;
use ferrotune_model::kernels::precision::{set_matmul_precision, MatmulPrecision};
use ferrotune_model::CausalLM;
use tracing::{info, warn};

use crate::collate::examples_of;
use crate::error::TrainError;
use crate::eval::{evaluate, save_eval_metrics, EvalStats};
use crate::logging::HistoryEntry;
use crate::loss_scale::LossScaler;
use crate::outputs::{
    peak_memory_mb, save_metrics, save_tokenizer, save_trainer_state, TrainMetrics,
    TrainerStateSummary,
};
use crate::plot::plot_loss;
use crate::predict::{run_predict, PredictSummary};
use crate::trainer::{LoopOptions, TrainSummary, Trainer};
use crate::tuning::{load_adapters, setup_trainable, Trainable};

/// What `ferrotune train` did.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// The training run (`do_train: true`).
    pub train: Option<TrainSummary>,
    /// The final evaluation (`do_eval: true`).
    pub eval: Option<EvalStats>,
    /// Generation on the evaluation set (`do_predict: true`).
    pub predict: Option<PredictSummary>,
}

/// Trains, evaluates and/or predicts as `cfg` says (`do_train`, `do_eval`, `do_predict`) and
/// writes the outputs into `output_dir`; returns the summary. With `do_train: false` the
/// model (plus the adapters of `adapter_name_or_path`, merged) is evaluated and/or predicts,
/// and only their files are written. `do_predict` (with `predict_with_generate`) runs last,
/// on the evaluation set, as [`crate::predict`] describes.
///
/// Training continues from `resume_from_checkpoint`, or by itself from the last checkpoint
/// of a non-empty `output_dir` unless `overwrite_output_dir` (see [`resume_point`]).
///
/// Errors: [`TrainError::Config`] for stages other than pt/sft, finetuning types not built,
/// an `output_dir` that holds a finished model but no checkpoint, `do_eval` or `do_predict`
/// without an evaluation set, `do_eval` with `predict_with_generate`; every setup, loop,
/// generation and output error.
pub fn run(cfg: &Config, device: &Device) -> Result<RunSummary, TrainError> {
    // 1. What is asked, and what is not built yet.
    let (ft, ta) = (&cfg.finetuning, &cfg.training);
    if !matches!(ft.stage, Stage::Pt | Stage::Sft) {
        return Err(TrainError::Config(format!(
            "`stage: {}` is not built yet; hint: use `stage: sft` or `stage: pt`",
            ft.stage
        )));
    }
    // 1b. Mixed precision: the operands of the large products are rounded to bf16/fp16 and
    // accumulate in f32; trainable weights, gradients, optimizer states and the loss stay
    // f32 (see ferrotune_model::kernels::precision). fp16 adds dynamic loss scaling.
    let precision = mixed_precision(cfg);
    set_matmul_precision(precision);
    if ft.pure_bf16 {
        warn!("`pure_bf16: true`: the products compute in bf16 as with `bf16: true`, but the trainable weights and AdamW states stay in f32 (4 more bytes per trainable parameter than pure bf16)");
    }
    if precision != MatmulPrecision::F32 {
        info!(
            "mixed precision: matmul operands in {precision:?}, f32 accumulation; GEMM: {}",
            ferrotune_model::kernels::blas::describe()
        );
    }
    let output_dir = PathBuf::from(&ta.output_dir);
    let resume_from = if ta.do_train {
        resume_point(ta, &output_dir)?
    } else {
        None
    };
    crate::outputs::prepare_output_dir(&output_dir)?;

    // 2. Model and tokenizer.
    let LoadedModel {
        source,
        tokenizer: tok,
        model,
    } = load_from_config(cfg, device, LoadFor::Training)?;
    let name = cfg.model.model_name_or_path.as_deref().unwrap_or_default();

    // 3. Template and data.
    let (tok, template) = prepare_tokenizer_and_template(cfg, tok)?;
    let splits = prepare_dataset(
        cfg,
        &tok,
        &template,
        Path::new(&cfg.data.dataset_dir),
        &PrepareOptions::default(),
    )?;
    if let Some(example) = splits
        .train
        .describe_first(&tok)
        .map_err(ferrotune_data::pipeline::PipelineError::from)?
    {
        eprintln!("training example:\n{example}");
    }
    let examples = examples_of(&splits.train)?;
    // With `predict_with_generate` the evaluation set holds prompts to answer (`do_predict`).
    let eval_examples = match &splits.eval {
        Some(set) if !ta.predict_with_generate => examples_of(set)?,
        _ => Vec::new(),
    };
    if ta.do_eval && ta.predict_with_generate {
        return Err(TrainError::Config(
            "`do_eval` with `predict_with_generate` (evaluation by generation) is not built yet; hint: use `do_predict: true` for BLEU/ROUGE, or unset `predict_with_generate` for eval_loss".into(),
        ));
    }
    if ta.do_eval && eval_examples.is_empty() {
        return Err(TrainError::Config(
            "`do_eval: true` needs an evaluation set; hint: set `val_size` or `eval_dataset`"
                .into(),
        ));
    }
    let pad_token_id = tok.pad_token_id().or(tok.eos_token_id()).ok_or_else(|| {
        TrainError::Config("the tokenizer has neither a pad nor an eos token; hint: set a template that defines them".into())
    })?;
    if !ta.do_train {
        let mut model = model;
        load_adapters(cfg, &mut model)?;
        set_training(&mut model, false);
        let eval = if ta.do_eval {
            Some(evaluate_only(
                cfg,
                &model,
                &eval_examples,
                pad_token_id,
                device,
            )?)
        } else {
            None
        };
        let predict = predict_if_asked(cfg, &model, &tok, &splits)?;
        return Ok(RunSummary {
            train: None,
            eval,
            predict,
        });
    }

    // 4. Trainable tensors: adapters, some layers, or every weight.
    let Trainable {
        model,
        params,
        weights,
    } = setup_trainable(cfg, model, &source, name)?;

    // 5. The loop.
    let options = LoopOptions {
        pad_token_id,
        shuffle: !cfg.finetuning.disable_shuffling,
        output_dir: Some(output_dir.clone()),
        show_progress: !ta.disable_tqdm.unwrap_or(false),
        weights: weights.clone(),
        resume_from,
    };
    // LLaMA-Factory checkpoints unless `disable_gradient_checkpointing`; transformers'
    // `gradient_checkpointing: true` turns it on as well.
    let checkpointing = !cfg.model.disable_gradient_checkpointing || ta.gradient_checkpointing;
    let mut trainer = Trainer::new(model, params, ta, options, device)?
        .with_eval(eval_examples)
        .with_gradient_checkpointing(checkpointing)
        .with_loss_scaling((precision == MatmulPrecision::F16).then(LossScaler::default));
    let summary = trainer.train_on(&examples)?;

    // 6. Outputs.
    set_training(&mut trainer.model, false);
    weights.save(&output_dir, &trainer.model)?;
    save_tokenizer(&output_dir, &tok, None)?;
    // The config of the run, as LLaMA-Factory's web UI records it.
    crate::outputs::write_atomic(
        &output_dir.join("training_args.yaml"),
        cfg.written_yaml().as_bytes(),
    )?;
    let rt = summary.runtime_s.max(1e-9);
    let metrics = TrainMetrics {
        epoch: summary.epoch,
        train_loss: summary.train_loss(),
        train_runtime: (rt * 1e4).round() / 1e4,
        train_samples_per_second: round3(summary.samples as f64 / rt),
        train_steps_per_second: round3(summary.global_step as f64 / rt),
        train_tokens_per_second: round3(summary.tokens as f64 / rt),
        peak_memory_mb: peak_memory_mb().unwrap_or(0.0),
    };
    save_metrics(&output_dir, &metrics)?;
    // As LLaMA-Factory's workflows: the final evaluation after the state is saved.
    let eval = if ta.do_eval {
        trainer.evaluate()?
    } else {
        None
    };
    if let Some(stats) = &eval {
        save_eval_metrics(&output_dir, &stats.metrics(Some(summary.epoch)))?;
    }
    let state = TrainerStateSummary {
        epoch: summary.epoch,
        global_step: summary.global_step,
        max_steps: summary.max_steps,
        num_train_epochs: summary.num_train_epochs,
        logging_steps: summary.logging_steps,
        train_batch_size: ta.per_device_train_batch_size,
    };
    save_trainer_state(&output_dir, &state, &summary.log_history)?;
    if ft.plot_loss {
        plot_history(&output_dir, &summary.log_history, &ta.output_dir)?;
    }
    // 7. As LLaMA-Factory's `run_sft`: prediction last, with the trained model.
    let predict = predict_if_asked(cfg, &trainer.model, &tok, &splits)?;
    Ok(RunSummary {
        train: Some(summary),
        eval,
        predict,
    })
}

/// Weight files whose presence marks `output_dir` as holding a trained model (LLaMA-Factory's
/// `CHECKPOINT_NAMES`).
const MODEL_FILES: [&str; 6] = [
    "adapter_model.safetensors",
    "adapter_model.bin",
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
];

/// The checkpoint a training run continues from, as LLaMA-Factory's `get_train_args` and
/// transformers' `get_last_checkpoint` decide: `resume_from_checkpoint` when set (`true`
/// meaning the last checkpoint of `output_dir`); otherwise, unless `overwrite_output_dir`,
/// the last complete `checkpoint-N` folder (holding `trainer_state.json`; the highest N) of
/// an existing `output_dir`.
///
/// Errors: [`TrainError::Config`] when `resume_from_checkpoint` names a folder that does not
/// exist or `true` finds none, and when `output_dir` holds a trained model but no checkpoint
/// (set `overwrite_output_dir` or change `output_dir`); [`TrainError::Io`] reading the folder.
pub fn resume_point(
    ta: &ferrotune_config::TrainingArguments,
    output_dir: &Path,
) -> Result<Option<PathBuf>, TrainError> {
    match ta.resume_from_checkpoint.as_deref() {
        Some("true" | "True") => {
            return last_checkpoint(output_dir)?.map(Some).ok_or_else(|| {
                TrainError::Config(format!(
                    "`resume_from_checkpoint: true` but {} holds no checkpoint-N folder; hint: name a checkpoint folder or remove the key",
                    output_dir.display()
                ))
            })
        }
        Some("false" | "False") => return Ok(None),
        Some(path) => {
            let dir = PathBuf::from(path);
            if !dir.is_dir() {
                return Err(TrainError::Config(format!(
                    "`resume_from_checkpoint`: {} is not a folder; hint: name a checkpoint-N folder written by an earlier run",
                    dir.display()
                )));
            }
            return Ok(Some(dir));
        }
        None => {}
    }
    if ta.overwrite_output_dir || !output_dir.is_dir() {
        return Ok(None);
    }
    let last = last_checkpoint(output_dir)?;
    if last.is_none() {
        if let Some(file) = MODEL_FILES.iter().find(|f| output_dir.join(f).is_file()) {
            return Err(TrainError::Config(format!(
                "output_dir {} already holds a trained model ({file}) and no checkpoint to resume; hint: set `overwrite_output_dir: true` or choose another `output_dir`",
                output_dir.display()
            )));
        }
    }
    if let Some(dir) = &last {
        info!(checkpoint = %dir.display(), "resuming training from the last checkpoint; change `output_dir` or set `overwrite_output_dir: true` to start over");
    }
    Ok(last)
}

/// The complete `checkpoint-N` folder of `dir` with the highest N, if any.
fn last_checkpoint(dir: &Path) -> Result<Option<PathBuf>, TrainError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(TrainError::io(dir, e)),
    };
    let mut best: Option<(u64, PathBuf)> = None;
    for entry in entries {
        let entry = entry.map_err(|e| TrainError::io(dir, e))?;
        let name = entry.file_name();
        let Some(n) = name
            .to_str()
            .and_then(|s| s.strip_prefix("checkpoint-"))
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        let path = entry.path();
        if path.join(crate::checkpoint::TRAINER_STATE).is_file()
            && best.as_ref().is_none_or(|(m, _)| n > *m)
        {
            best = Some((n, path));
        }
    }
    Ok(best.map(|(_, p)| p))
}

/// `training_loss.png` from the training logs and, when there are evaluations,
/// `training_eval_loss.png`, as LLaMA-Factory's `plot_loss(keys=["loss", "eval_loss"])`.
fn plot_history(dir: &Path, history: &[HistoryEntry], title: &str) -> Result<(), TrainError> {
    let loss: Vec<(u64, f64)> = history
        .iter()
        .filter_map(|h| match h {
            HistoryEntry::Train(t) => Some((t.step, t.loss)),
            HistoryEntry::Eval(_) => None,
        })
        .collect();
    let eval_loss: Vec<(u64, f64)> = history
        .iter()
        .filter_map(|h| match h {
            HistoryEntry::Eval(e) => Some((e.step, e.eval_loss)),
            HistoryEntry::Train(_) => None,
        })
        .collect();
    if loss.is_empty() {
        warn!("no loss was logged, no training_loss.png; hint: lower `logging_steps`");
    } else {
        plot_loss(&dir.join("training_loss.png"), "loss", title, &loss)?;
    }
    if !eval_loss.is_empty() {
        let path = dir.join("training_eval_loss.png");
        plot_loss(&path, "eval_loss", title, &eval_loss)?;
    }
    Ok(())
}

/// `do_train: false`, `do_eval: true`: evaluates `model` (with the adapters of
/// `adapter_name_or_path` already merged) and writes `eval_results.json` and
/// `all_results.json` into `output_dir`.
///
/// Errors: the errors of [`evaluate`] and of writing the metrics.
fn evaluate_only(
    cfg: &Config,
    model: &CausalLM,
    examples: &[crate::collate::Example],
    pad_token_id: u32,
    device: &Device,
) -> Result<EvalStats, TrainError> {
    let ta = &cfg.training;
    let stats = evaluate(
        model,
        examples,
        ta.per_device_eval_batch_size,
        pad_token_id,
        device,
    )?;
    info!(eval_loss = stats.eval_loss, "evaluated");
    save_eval_metrics(Path::new(&ta.output_dir), &stats.metrics(None))?;
    Ok(stats)
}

/// `do_predict: true`: answers the evaluation set with `model` (in eval mode) and writes the
/// predictions and their scores ([`run_predict`]); `None` otherwise.
///
/// Errors: [`TrainError::Config`] without an evaluation set; the errors of [`run_predict`].
fn predict_if_asked(
    cfg: &Config,
    model: &CausalLM,
    tok: &ferrotune_hub::tokenizer::TokenizerBundle,
    splits: &ferrotune_data::pipeline::TokenizedSplits,
) -> Result<Option<PredictSummary>, TrainError> {
    if !cfg.training.do_predict {
        return Ok(None);
    }
    let dataset = splits.eval.as_ref().ok_or_else(|| {
        TrainError::Config(
            "`do_predict: true` needs an evaluation set; hint: set `eval_dataset` or `val_size`"
                .into(),
        )
    })?;
    run_predict(cfg, model.clone(), tok, dataset).map(Some)
}

fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

/// The precision of the large products for `cfg`, as LLaMA-Factory picks its compute dtype:
/// `bf16` or `pure_bf16` → bf16, `fp16` → fp16, else f32 (LLaMA-Factory's
/// `infer_optim_dtype` falls back to f32 on a CPU when neither is set).
pub fn mixed_precision(cfg: &Config) -> MatmulPrecision {
    if cfg.training.bf16 || cfg.finetuning.pure_bf16 {
        MatmulPrecision::Bf16
    } else if cfg.training.fp16 {
        MatmulPrecision::F16
    } else {
        MatmulPrecision::F32
    }
}
