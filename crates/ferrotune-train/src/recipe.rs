//! `ferrotune train` for `stage: pt | sft` with `finetuning_type: lora | full`, top to bottom:
//! config → model → tokenizer, template and data → adapters (or every weight) → optimizer →
//! [`Trainer::train_on`] → adapter or model, tokenizer, metrics, state and loss plot in
//! `output_dir`, as LLaMA-Factory's `run_sft`/`run_pt` (v0.9.5 `train/{sft,pt}/workflow.py`).
//!
//! Checkpoints (`save_strategy`, `save_steps`, `save_total_limit`, `save_only_model`) and
//! `resume_from_checkpoint` go through [`crate::checkpoint`]. Not built: finding the last
//! checkpoint of `output_dir` by itself (HF's `get_last_checkpoint`): name it explicitly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Var};
use ferrotune_config::args::{FinetuningType, Stage};
use ferrotune_config::Config;
use ferrotune_data::pipeline::{prepare_dataset, prepare_tokenizer_and_template, PrepareOptions};
use ferrotune_hub::gguf::GgufFile;
use ferrotune_hub::resolve::{resolve_model, HubOptions, ModelSource};
use ferrotune_hub::tokenizer::TokenizerBundle;
use ferrotune_model::adapters::{apply_lora, load_peft, set_training, LoraConfig, LoraInit};
use ferrotune_model::{load_model, CausalLM, WeightStore};
use tracing::{info, warn};

use crate::checkpoint::WeightsFormat;
use crate::collate::examples_of;
use crate::error::TrainError;
use crate::eval::{evaluate, save_eval_metrics, EvalStats};
use crate::logging::HistoryEntry;
use crate::optim::TrainableParam;
use crate::outputs::{
    peak_memory_mb, save_metrics, save_tokenizer, save_trainer_state, TrainMetrics,
    TrainerStateSummary,
};
use crate::plot::plot_loss;
use crate::trainer::{LoopOptions, TrainSummary, Trainer};

/// What `ferrotune train` did.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// The training run (`do_train: true`).
    pub train: Option<TrainSummary>,
    /// The final evaluation (`do_eval: true`).
    pub eval: Option<EvalStats>,
}

/// Trains and/or evaluates as `cfg` says (`do_train`, `do_eval`) and writes the outputs into
/// `output_dir`; returns the summary. With `do_train: false` and `do_eval: true` the model
/// (plus the adapter of `adapter_name_or_path`, if one) is evaluated and only the metrics are
/// written.
///
/// Errors: [`TrainError::Config`] for stages other than pt/sft, finetuning types other than
/// lora/full, `resume_from_checkpoint`, `do_eval` without an evaluation set, several
/// adapters to evaluate; every setup, loop and output error.
pub fn run(cfg: &Config, device: &Device) -> Result<RunSummary, TrainError> {
    // 1. What is asked, and what is not built yet.
    let (ft, ta) = (&cfg.finetuning, &cfg.training);
    if !matches!(ft.stage, Stage::Pt | Stage::Sft) {
        return Err(TrainError::Config(format!(
            "`stage: {}` is not built yet; hint: use `stage: sft` or `stage: pt`",
            ft.stage
        )));
    }
    if !matches!(
        ft.finetuning_type,
        FinetuningType::Lora | FinetuningType::Full
    ) {
        return Err(TrainError::Config(format!(
            "`finetuning_type: {}` is not built yet; hint: use lora or full",
            ft.finetuning_type
        )));
    }
    if ta.resume_from_checkpoint.is_some() {
        return Err(TrainError::Config(
            "`resume_from_checkpoint` is not built yet; hint: remove it".into(),
        ));
    }
    let output_dir = PathBuf::from(&ta.output_dir);
    std::fs::create_dir_all(&output_dir).map_err(|e| TrainError::io(&output_dir, e))?;

    // 2. Model and tokenizer.
    let name = cfg.model.model_name_or_path.as_deref().ok_or_else(|| {
        TrainError::Config(
            "`model_name_or_path` is not set; hint: set it to a folder, a .gguf file or a hub id"
                .into(),
        )
    })?;
    let mut hub = HubOptions::from_env();
    if let Some(dir) = &cfg.model.cache_dir {
        hub.cache_dir = Some(PathBuf::from(dir));
    }
    if let Some(token) = &cfg.model.hf_hub_token {
        hub.token = Some(token.clone());
    }
    let source = resolve_model(name, &hub)?;
    let tok = match &source {
        ModelSource::Gguf(path) => TokenizerBundle::from_gguf(&GgufFile::open(path)?)?,
        ModelSource::HfDir(dir) => TokenizerBundle::from_hf_dir(dir)?,
    };
    let mut model = load_model(&source, device)?;
    info!(parameters = model.num_parameters(), "model loaded");

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
    if cfg.data.neat_packing {
        warn!("`neat_packing`: packed rows are trained as single sequences (no per-example positions or attention blocks yet)");
    }
    let examples = examples_of(&splits.train)?;
    let eval_examples = match &splits.eval {
        Some(set) => examples_of(set)?,
        None => Vec::new(),
    };
    if ta.do_eval && eval_examples.is_empty() {
        return Err(TrainError::Config(
            "`do_eval: true` needs an evaluation set; hint: set `val_size` or `eval_dataset`"
                .into(),
        ));
    }
    let pad_token_id = tok.pad_token_id().or(tok.eos_token_id()).ok_or_else(|| {
        TrainError::Config("the tokenizer has neither a pad nor an eos token; hint: set a template that defines them".into())
    })?;
    if !ta.do_train && ta.do_eval {
        let stats = evaluate_only(cfg, model, &eval_examples, pad_token_id, device)?;
        return Ok(RunSummary {
            train: None,
            eval: Some(stats),
        });
    }

    // 4. Trainable tensors: adapters, or every weight.
    let (params, weights) = match ft.finetuning_type {
        FinetuningType::Lora => {
            let lora = lora_config(cfg);
            let set = apply_lora(&mut model, &lora, ta.seed)?;
            set_training(&mut model, true);
            info!(trainable = set.num_trainable(), "LoRA adapters attached");
            let params = set
                .params
                .iter()
                .map(|(n, v)| lora_param(cfg, n, v))
                .collect();
            let weights = WeightsFormat::Peft {
                adapters: set,
                base_model: name.to_string(),
            };
            (params, weights)
        }
        _ => {
            let (m, params) = full_params(model)?;
            model = m;
            let source_config = match &source {
                ModelSource::HfDir(dir) => Some(dir.join("config.json")),
                ModelSource::Gguf(_) => None,
            };
            (params, WeightsFormat::Full { source_config })
        }
    };

    // 5. The loop.
    let options = LoopOptions {
        pad_token_id,
        shuffle: !cfg.finetuning.disable_shuffling,
        output_dir: Some(output_dir.clone()),
        show_progress: !ta.disable_tqdm.unwrap_or(false),
        weights: weights.clone(),
        resume_from: ta.resume_from_checkpoint.as_ref().map(PathBuf::from),
    };
    let mut trainer = Trainer::new(model, params, ta, options, device)?.with_eval(eval_examples);
    let summary = trainer.train_on(&examples)?;

    // 6. Outputs.
    set_training(&mut trainer.model, false);
    weights.save(&output_dir, &trainer.model)?;
    save_tokenizer(&output_dir, &tok, None)?;
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
    Ok(RunSummary {
        train: Some(summary),
        eval,
    })
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

/// `do_train: false`, `do_eval: true`: evaluates `model` with the adapter of
/// `adapter_name_or_path` (one folder, PEFT layout) if given and writes `eval_results.json`
/// and `all_results.json` into `output_dir`.
///
/// Errors: [`TrainError::Config`] for several adapters (stacking is not built yet), adapter
/// load errors, the errors of [`evaluate`] and of writing the metrics.
fn evaluate_only(
    cfg: &Config,
    mut model: CausalLM,
    examples: &[crate::collate::Example],
    pad_token_id: u32,
    device: &Device,
) -> Result<EvalStats, TrainError> {
    match cfg.model.adapter_name_or_path.as_slice() {
        [] => {}
        [path] => {
            let set = load_peft(Path::new(path), &mut model)?;
            info!(adapter = %path, tensors = set.params.len(), "adapter loaded");
        }
        more => {
            return Err(TrainError::Config(format!(
                "`adapter_name_or_path` lists {} adapters ({}); evaluating stacked adapters is not built yet; hint: give one adapter folder",
                more.len(),
                more.join(", ")
            )))
        }
    }
    set_training(&mut model, false);
    let ta = &cfg.training;
    let stats = evaluate(
        &model,
        examples,
        ta.per_device_eval_batch_size,
        pad_token_id,
        device,
    )?;
    info!(eval_loss = stats.eval_loss, "evaluated");
    save_eval_metrics(Path::new(&ta.output_dir), &stats.metrics(None))?;
    Ok(stats)
}

fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

/// The adapter settings of LLaMA-Factory's finetuning arguments.
pub fn lora_config(cfg: &Config) -> LoraConfig {
    let ft = &cfg.finetuning;
    LoraConfig {
        lora_rank: ft.lora_rank as usize,
        lora_alpha: f64::from(ft.lora_alpha),
        lora_dropout: ft.lora_dropout,
        lora_target: ft.lora_target.clone(),
        additional_target: ft.additional_target.clone(),
        use_rslora: ft.use_rslora,
        use_dora: ft.use_dora,
        init: if ft.pissa_init {
            LoraInit::Pissa {
                niter: usize::try_from(ft.pissa_iter).ok(),
            }
        } else {
            LoraInit::Default
        },
    }
}

/// A trainable adapter tensor with LoRA+ learning-rate scales (LLaMA-Factory
/// `_create_loraplus_optimizer`): `lora_B` and 1-D tensors × `loraplus_lr_ratio`, embedding
/// copies at `loraplus_lr_embedding`.
fn lora_param(cfg: &Config, name: &str, var: &Var) -> TrainableParam {
    let p = TrainableParam::new(name, var.clone());
    let Some(ratio) = cfg.finetuning.loraplus_lr_ratio else {
        return p;
    };
    if name.contains("embed_tokens") {
        let lr = cfg.training.learning_rate;
        p.with_lr_scale(if lr > 0.0 {
            cfg.finetuning.loraplus_lr_embedding / lr
        } else {
            1.0
        })
    } else if name.contains("lora_B") || var.as_tensor().rank() == 1 {
        p.with_lr_scale(ratio)
    } else {
        p
    }
}

/// Every weight as a [`Var`], the model rebuilt on them (full fine-tuning).
///
/// Errors: [`TrainError::Model`], [`TrainError::Candle`].
pub fn full_params(model: CausalLM) -> Result<(CausalLM, Vec<TrainableParam>), TrainError> {
    let mut tensors = BTreeMap::new();
    let mut params = Vec::new();
    for (name, t) in model.named_tensors() {
        let v = Var::from_tensor(&t)?;
        tensors.insert(name.clone(), v.as_tensor().clone());
        params.push(TrainableParam::new(name, v));
    }
    let rebuilt = CausalLM::from_weights(
        model.config.clone(),
        WeightStore::new(Path::new("(trainable copy)"), tensors),
    )?;
    Ok((rebuilt, params))
}
