//! Which tensors train (`finetuning_type`), as LLaMA-Factory v0.9.5 `model/adapter.py` sets
//! them up, and how they are saved:
//!
//! - `lora` (`_setup_lora_tuning`): the PEFT adapter folders of `adapter_name_or_path` are
//!   merged into the base weights in order, except the last one, which is resumed as the
//!   trainable adapter with its own `adapter_config.json` (r, alpha, targets; the `lora_*` keys
//!   are not used for it). With `create_new_adapter` every listed adapter is merged and a
//!   fresh adapter is made from the `lora_*` keys. Saved as a PEFT adapter whose
//!   `base_model_name_or_path` is `model_name_or_path`.
//! - `freeze` (`_setup_freeze_tuning`): some decoder layers (`freeze_trainable_layers`), some
//!   modules inside them (`freeze_trainable_modules`) and some modules outside them
//!   (`freeze_extra_modules`) train, everything else stays constant. Saved as an HF model.
//! - `full` (`_setup_full_tuning`): every weight trains. Saved as an HF model.
//!
//! For evaluation ([`load_adapters`]) every listed adapter is merged, as LLaMA-Factory does
//! when the model is not trainable.
//!
//! Trainable tensors are f32 candle [`Var`]s that share storage with the model the trainer
//! runs; frozen tensors are plain tensors, so no gradient reaches them and the optimizer
//! never sees them.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;

use candle_core::Var;
use ferrotune_config::args::FinetuningType;
use ferrotune_config::{Config, FinetuningArguments};
use ferrotune_hub::resolve::ModelSource;
use ferrotune_model::adapters::{
    apply_lora, load_peft, merge_adapter_dirs, set_training, LoraConfig, LoraInit,
};
use ferrotune_model::{CausalLM, WeightStore};
use tracing::info;

use crate::checkpoint::WeightsFormat;
use crate::error::TrainError;
use crate::optim::TrainableParam;

/// The model ready to train: its trainable tensors and how to save them.
#[derive(Debug)]
pub struct Trainable {
    /// The model; `params` share storage with it.
    pub model: CausalLM,
    /// The optimizer's tensors (f32) with their lr scales.
    pub params: Vec<TrainableParam>,
    /// How outputs and checkpoints hold the trained weights.
    pub weights: WeightsFormat,
}

/// Makes the tensors of `finetuning_type` trainable on `model` (loaded from `source`, named
/// `name` in the config, which becomes the adapter's `base_model_name_or_path`): LoRA
/// adapters (see [`setup_lora`]), the layers and modules of freeze tuning (see
/// [`freeze_trainable_names`]), or every weight.
///
/// Errors: [`TrainError::Config`] for finetuning types not built and bad freeze keys, adapter
/// errors ([`TrainError::Model`]), tensor errors.
pub fn setup_trainable(
    cfg: &Config,
    model: CausalLM,
    source: &ModelSource,
    name: &str,
) -> Result<Trainable, TrainError> {
    let full_weights = || WeightsFormat::Full {
        source_config: source_config(source),
    };
    match cfg.finetuning.finetuning_type {
        FinetuningType::Lora => setup_lora(cfg, model, name),
        FinetuningType::Freeze => {
            let names: BTreeSet<String> = freeze_trainable_names(&cfg.finetuning, &model)?
                .into_iter()
                .collect();
            let (model, params) = params_where(model, |n| names.contains(n))?;
            let scalars: usize = params.iter().map(|p| p.var.as_tensor().elem_count()).sum();
            info!(
                tensors = params.len(),
                trainable = scalars,
                "freeze tuning: the other weights stay frozen"
            );
            Ok(Trainable {
                model,
                params,
                weights: full_weights(),
            })
        }
        FinetuningType::Full => {
            let (model, params) = full_params(model)?;
            Ok(Trainable {
                model,
                params,
                weights: full_weights(),
            })
        }
        other => Err(TrainError::Config(format!(
            "`finetuning_type: {other}` is not built yet; hint: use lora, freeze or full"
        ))),
    }
}

/// The `config.json` of an HF folder source (copied into full-model outputs).
fn source_config(source: &ModelSource) -> Option<std::path::PathBuf> {
    match source {
        ModelSource::HfDir(dir) => Some(dir.join("config.json")),
        ModelSource::Gguf(_) => None,
    }
}

/// LoRA training on `model` (LLaMA-Factory `_setup_lora_tuning` with `is_trainable`): merges
/// the adapters of `adapter_name_or_path` but the last into the base, then resumes the last
/// one (its own `adapter_config.json` and values) as the trainable adapter; with
/// `create_new_adapter` (or no adapter listed) merges them all and attaches fresh adapters
/// from the `lora_*` keys ([`lora_config`], A drawn with `seed`). Dropout is switched on.
/// The adapter is saved with `base_model_name_or_path: name`.
///
/// Errors: [`TrainError::Model`] for an adapter path that is not a folder, adapter files that do not load or do not fit the base (a shape
/// mismatch names the tensor and both shapes), and for bad `lora_*` settings.
pub fn setup_lora(cfg: &Config, model: CausalLM, name: &str) -> Result<Trainable, TrainError> {
    let paths = &cfg.model.adapter_name_or_path;
    let (to_merge, to_resume) = match paths.split_last() {
        Some((last, rest)) if !cfg.finetuning.create_new_adapter => (rest, Some(last)),
        _ => (paths.as_slice(), None),
    };
    let mut model = merge_adapter_dirs(model, to_merge)?;
    let set = match to_resume {
        Some(path) => {
            let set = load_peft(Path::new(path), &mut model)?;
            let c = &set.config;
            info!(
                adapter = %path,
                r = c.lora_rank,
                lora_alpha = c.lora_alpha,
                target_modules = %set.target_modules.join(","),
                "resuming the adapter with its own adapter_config.json (the lora_* keys do not apply to it)"
            );
            set
        }
        None => apply_lora(&mut model, &lora_config(cfg), cfg.training.seed)?,
    };
    set_training(&mut model, true);
    info!(trainable = set.num_trainable(), "LoRA adapters attached");
    let params = set
        .params
        .iter()
        .map(|(n, v)| lora_param(cfg, n, v))
        .collect();
    Ok(Trainable {
        model,
        params,
        weights: WeightsFormat::Peft {
            adapters: set,
            base_model: name.to_string(),
        },
    })
}

/// Merges the adapters of `adapter_name_or_path` into `model` for evaluation (LLaMA-Factory
/// `_setup_lora_tuning` without `is_trainable`: every listed adapter is merged, in order).
/// No adapter listed leaves the model as it is.
///
/// Errors: as `ferrotune_model::adapters::merge_adapter_dirs`; on error `model` is unchanged.
pub fn load_adapters(cfg: &Config, model: &mut CausalLM) -> Result<(), TrainError> {
    *model = merge_adapter_dirs(model.clone(), &cfg.model.adapter_name_or_path)?;
    Ok(())
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

/// The HF names of the weights freeze tuning trains on `model`, in model order, as
/// LLaMA-Factory's `_setup_freeze_tuning` picks them from `named_parameters()` (a tied
/// `lm_head` is not among them):
///
/// - layers: `freeze_trainable_layers` n > 0 → the last n decoder layers, n < 0 → the first
///   |n|, 0 → none (clamped to the layer count);
/// - in each such layer i, every weight whose name contains `.{i}.{module}` for each module
///   of `freeze_trainable_modules` (`.{i}.` for `all`); a module must be a child of the
///   layers (`self_attn`, `mlp`, `input_layernorm`, `post_attention_layernorm`, ...);
/// - every weight whose name contains a name of `freeze_extra_modules`; each must be the
///   owner of a weight outside the layers (`embed_tokens`, `norm`, an untied `lm_head`). As
///   in LLaMA-Factory the match is by substring, so `norm` also trains the layer norms.
///
/// Errors: [`TrainError::Config`] naming the module that does not exist with the ones that
/// do, or when nothing would train.
pub fn freeze_trainable_names(
    ft: &FinetuningArguments,
    model: &CausalLM,
) -> Result<Vec<String>, TrainError> {
    let names: Vec<String> = model.named_tensors().into_iter().map(|(n, _)| n).collect();
    let layer_ids = freeze_layer_ids(ft.freeze_trainable_layers, model.layers.len());
    let hidden = hidden_modules(&names);
    let non_hidden = non_hidden_modules(&names);
    let mut patterns = Vec::new();
    for module in &ft.freeze_trainable_modules {
        if module != "all" && !hidden.contains(module.as_str()) {
            return Err(unknown_module(
                "freeze_trainable_modules",
                module,
                &hidden,
                "a module inside the decoder layers, or `all`",
            ));
        }
        for i in layer_ids.clone() {
            patterns.push(if module == "all" {
                format!(".{i}.")
            } else {
                format!(".{i}.{module}")
            });
        }
    }
    for module in &ft.freeze_extra_modules {
        if !non_hidden.contains(module.as_str()) {
            return Err(unknown_module(
                "freeze_extra_modules",
                module,
                &non_hidden,
                "a module outside the decoder layers",
            ));
        }
        patterns.push(module.clone());
    }
    let trainable: Vec<String> = names
        .into_iter()
        .filter(|n| patterns.iter().any(|p| n.contains(p.as_str())))
        .collect();
    if trainable.is_empty() {
        return Err(TrainError::Config(format!(
            "freeze tuning trains no weight (`freeze_trainable_layers: {}`, `freeze_extra_modules: [{}]`); hint: set `freeze_trainable_layers` to a non-zero count or list `freeze_extra_modules`",
            ft.freeze_trainable_layers,
            ft.freeze_extra_modules.join(", ")
        )));
    }
    info!(patterns = %patterns.join(","), "freeze tuning: trainable layers");
    Ok(trainable)
}

/// The decoder layer indices freeze tuning trains out of `num_layers`: the last `n` for
/// `n > 0`, the first `|n|` otherwise.
fn freeze_layer_ids(n: i64, num_layers: usize) -> Range<usize> {
    let count = usize::try_from(n.unsigned_abs()).unwrap_or(usize::MAX);
    if n > 0 {
        num_layers.saturating_sub(count)..num_layers
    } else {
        0..count.min(num_layers)
    }
}

/// The modules directly inside a decoder layer, as LLaMA-Factory finds them: for names
/// holding `.0.` (or `.1.`), the first segment after the last such mark.
fn hidden_modules(names: &[String]) -> BTreeSet<&str> {
    names
        .iter()
        .filter_map(|n| {
            let mark = [".0.", ".1."].into_iter().find(|m| n.contains(m))?;
            n.rsplit(mark).next()?.split('.').next()
        })
        .collect()
}

/// The modules that own weights outside the layers (no numeric segment inside the name):
/// the segment before the last (`model.norm.weight` → `norm`).
fn non_hidden_modules(names: &[String]) -> BTreeSet<&str> {
    names
        .iter()
        .filter_map(|n| {
            let segs: Vec<&str> = n.split('.').collect();
            let inner = segs.get(1..segs.len().saturating_sub(1)).unwrap_or(&[]);
            let numeric = inner
                .iter()
                .any(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
            if numeric {
                None
            } else {
                segs.len().checked_sub(2).and_then(|i| segs.get(i)).copied()
            }
        })
        .collect()
}

/// The error for a freeze module name that `model` does not have.
fn unknown_module(key: &str, module: &str, valid: &BTreeSet<&str>, what: &str) -> TrainError {
    TrainError::Config(format!(
        "`{key}`: module `{module}` is not found; choose from {} ({what})",
        valid.iter().copied().collect::<Vec<_>>().join(", ")
    ))
}

/// Every weight as a [`Var`], the model rebuilt on them (full fine-tuning).
///
/// Errors: [`TrainError::Model`], [`TrainError::Candle`].
pub fn full_params(model: CausalLM) -> Result<(CausalLM, Vec<TrainableParam>), TrainError> {
    params_where(model, |_| true)
}

/// The weights whose HF name satisfies `trainable` as f32 [`Var`]s (copies), the others
/// kept as they are, and the model rebuilt on them; the params in model order.
///
/// Errors: [`TrainError::Model`], [`TrainError::Candle`].
pub fn params_where(
    model: CausalLM,
    trainable: impl Fn(&str) -> bool,
) -> Result<(CausalLM, Vec<TrainableParam>), TrainError> {
    let mut tensors = BTreeMap::new();
    let mut params = Vec::new();
    for (name, t) in model.named_tensors() {
        if trainable(&name) {
            let v = Var::from_tensor(&t.to_dtype(candle_core::DType::F32)?)?;
            tensors.insert(name.clone(), v.as_tensor().clone());
            params.push(TrainableParam::new(name, v));
        } else {
            tensors.insert(name, t);
        }
    }
    let rebuilt = CausalLM::from_weights(
        model.config.clone(),
        WeightStore::new(Path::new("(trainable copy)"), tensors),
    )?;
    Ok((rebuilt, params))
}
