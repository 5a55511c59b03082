//! Which tensors train (`finetuning_type`): LoRA adapters (LLaMA-Factory `_setup_lora_tuning`),
//! or every weight (`full`), and how they are saved; the adapters of `adapter_name_or_path`
//! for evaluation.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::Var;
use ferrotune_config::args::FinetuningType;
use ferrotune_config::Config;
use ferrotune_hub::resolve::ModelSource;
use ferrotune_model::adapters::{apply_lora, load_peft, set_training, LoraConfig, LoraInit};
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
/// `name` in the config): LoRA adapters per [`lora_config`], or every weight.
///
/// Errors: [`TrainError::Config`] for finetuning types not built, adapter errors
/// ([`TrainError::Model`]), tensor errors.
pub fn setup_trainable(
    cfg: &Config,
    mut model: CausalLM,
    source: &ModelSource,
    name: &str,
) -> Result<Trainable, TrainError> {
    match cfg.finetuning.finetuning_type {
        FinetuningType::Lora => {
            let lora = lora_config(cfg);
            let set = apply_lora(&mut model, &lora, cfg.training.seed)?;
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
            Ok(Trainable {
                model,
                params,
                weights,
            })
        }
        FinetuningType::Full => {
            let (model, params) = full_params(model)?;
            Ok(Trainable {
                model,
                params,
                weights: WeightsFormat::Full {
                    source_config: source_config(source),
                },
            })
        }
        other => Err(TrainError::Config(format!(
            "`finetuning_type: {other}` is not built yet; hint: use lora or full"
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

/// Attaches the adapters of `adapter_name_or_path` to `model` for evaluation.
///
/// Errors: [`TrainError::Config`] for several adapters (stacking is not built yet), adapter
/// load errors.
pub fn load_adapters(cfg: &Config, model: &mut CausalLM) -> Result<(), TrainError> {
    match cfg.model.adapter_name_or_path.as_slice() {
        [] => {}
        [path] => {
            let set = load_peft(Path::new(path), model)?;
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
