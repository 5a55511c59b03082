//! The builder that decides which projections carry adapters, and the set of trainable
//! tensors it hands to training.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use candle_core::{DType, Tensor, Var};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::config::{inside_saved, matches_target, resolve_lora_target, resolve_saved};
use super::config::{LoraConfig, LoraInit};
use super::lora::{LoraAdapter, LoraVariant};
use super::walk::{linears_mut, module_paths, param_names, visit_params_mut};
use crate::decoder::CausalLM;
use crate::error::{ModelError, Result};

/// PEFT's prefix for every saved tensor of a causal LM (`PeftModelForCausalLM.base_model.model`).
pub const PEFT_PREFIX: &str = "base_model.model.";

/// The trainable tensors made by [`apply_lora`], by their PEFT on-disk names
/// (`base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`, `...lora_B.weight`,
/// `...lora_magnitude_vector`, and `base_model.model.{param}` for modules_to_save).
/// Each [`Var`] shares its storage with the model, so updating it updates the model.
#[derive(Debug, Clone)]
pub struct AdapterSet {
    /// The settings the adapters were built with.
    pub config: LoraConfig,
    /// `target_modules` as PEFT saves it: the resolved `lora_target` names.
    pub target_modules: Vec<String>,
    /// `modules_to_save` as PEFT saves it: the `additional_target` names.
    pub modules_to_save: Vec<String>,
    /// Every trainable tensor by PEFT name, f32.
    pub params: BTreeMap<String, Var>,
}

impl AdapterSet {
    /// The trainable tensors, in name order (for an optimizer).
    pub fn vars(&self) -> Vec<Var> {
        self.params.values().cloned().collect()
    }

    /// Number of trainable scalars.
    pub fn num_trainable(&self) -> usize {
        self.params
            .values()
            .map(|v| v.as_tensor().elem_count())
            .sum()
    }

    /// Overwrites every trainable tensor with the tensor of the same PEFT name from
    /// `tensors` (read from `path`, named in errors); values are converted to f32.
    ///
    /// Errors: [`ModelError::Adapter`] listing every missing and every unexpected name,
    /// [`ModelError::AdapterShape`] naming the tensor and both shapes.
    pub fn set_values(&self, tensors: &BTreeMap<String, Tensor>, path: &Path) -> Result<()> {
        // Shapes first: a mismatch is the clearest sign of an adapter made for another model.
        for (name, var) in &self.params {
            if let Some(t) = tensors
                .get(name)
                .filter(|t| t.dims() != var.as_tensor().dims())
            {
                return Err(ModelError::AdapterShape {
                    path: path.to_path_buf(),
                    name: name.clone(),
                    expected: var.as_tensor().dims().to_vec(),
                    got: t.dims().to_vec(),
                });
            }
        }
        let missing: Vec<&str> = self
            .params
            .keys()
            .filter(|k| !tensors.contains_key(*k))
            .map(String::as_str)
            .collect();
        let unexpected: Vec<&str> = tensors
            .keys()
            .filter(|k| !self.params.contains_key(*k))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() || !unexpected.is_empty() {
            return Err(ModelError::Adapter {
                path: path.to_path_buf(),
                msg: format!(
                    "missing tensors: [{}]; unexpected tensors: [{}]; hint: check target_modules \
                     and modules_to_save in adapter_config.json, and that the adapter was made \
                     for this base model",
                    abbreviate(&missing),
                    abbreviate(&unexpected)
                ),
            });
        }
        for (name, var) in &self.params {
            if let Some(t) = tensors.get(name) {
                var.set(
                    &t.to_dtype(DType::F32)?
                        .to_device(var.as_tensor().device())?,
                )?;
            }
        }
        Ok(())
    }
}

/// Up to 8 names joined by ", ", then "and N more".
fn abbreviate(names: &[&str]) -> String {
    const SHOWN: usize = 8;
    let mut out = names
        .iter()
        .take(SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        out.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    out
}

/// Attaches LoRA (or DoRA) adapters to the linear layers named by `cfg.lora_target` and
/// makes the modules of `cfg.additional_target` trainable copies, as PEFT's
/// `get_peft_model` does. A is drawn from a [`StdRng`] seeded with `seed`, layer by layer
/// in model order. Modules of `additional_target` get no adapter (PEFT excludes them).
///
/// Errors: [`ModelError::AdapterConfig`] (bad values, adapters already attached),
/// [`ModelError::AdapterTarget`] (a name that matches no module, with those that exist).
pub fn apply_lora(model: &mut CausalLM, cfg: &LoraConfig, seed: u64) -> Result<AdapterSet> {
    cfg.validate()?;
    let names = param_names(model);
    let saved_paths = resolve_saved(&cfg.additional_target, &module_paths(&names))?;
    let linear_paths: Vec<String> = linears_mut(model).into_iter().map(|(p, _)| p).collect();
    let target_modules = resolve_lora_target(&cfg.lora_target, &linear_paths)?;

    let mut rng = StdRng::seed_from_u64(seed);
    let mut params = BTreeMap::new();
    let scaling = cfg.scaling();
    for (path, linear) in linears_mut(model) {
        if !target_modules.iter().any(|t| matches_target(&path, t))
            || inside_saved(&path, &cfg.additional_target)
        {
            continue;
        }
        if linear.adapter.is_some() {
            return Err(ModelError::AdapterConfig {
                msg: format!("`{path}` already carries an adapter; apply adapters once"),
            });
        }
        let (out, inp) = linear.weight.dims2()?;
        let dev = linear.weight.device().clone();
        let r = cfg.lora_rank;
        let (a, b) = match cfg.init {
            LoraInit::Default => {
                // torch kaiming_uniform_(a=√5) on [r, in]: bound = √3·√(2/(1+5))/√in = 1/√in.
                let bound = 1.0 / (inp as f64).sqrt();
                let a: Vec<f32> = (0..r * inp)
                    .map(|_| rng.random_range(-bound..bound) as f32)
                    .collect();
                (
                    Tensor::from_vec(a, (r, inp), &dev)?,
                    Tensor::zeros((out, r), DType::F32, &dev)?,
                )
            }
            LoraInit::Pissa { niter } => {
                let (a, b, residual) =
                    super::svd::pissa(&linear.weight, r, scaling, niter, &mut rng)?;
                linear.weight = residual;
                (a, b)
            }
        };
        let mut adapter = LoraAdapter {
            lora_a: Var::from_tensor(&a)?,
            lora_b: Var::from_tensor(&b)?,
            scaling,
            dropout: cfg.lora_dropout as f32,
            training: false,
            dropout_seed: 0,
            variant: LoraVariant::Plain,
        };
        let key = format!("{PEFT_PREFIX}{path}");
        if cfg.use_dora {
            let m = Var::from_tensor(&adapter.weight_norm(&linear.weight)?)?;
            params.insert(format!("{key}.lora_magnitude_vector"), m.clone());
            adapter.variant = LoraVariant::Dora { magnitude: m };
        }
        params.insert(format!("{key}.lora_A.weight"), adapter.lora_a.clone());
        params.insert(format!("{key}.lora_B.weight"), adapter.lora_b.clone());
        linear.adapter = Some(adapter);
    }

    let trained: BTreeSet<&String> = names
        .iter()
        .filter(|n| saved_paths.iter().any(|p| n.starts_with(&format!("{p}."))))
        .collect();
    let untie = trained
        .iter()
        .any(|n| *n == "lm_head.weight" || *n == "model.embed_tokens.weight");
    let mut swap_err = None;
    visit_params_mut(model, untie && model.lm_head.is_none(), &mut |name, t| {
        if !trained.contains(&name.to_string()) || swap_err.is_some() {
            return;
        }
        // A copy: the frozen original stays with whatever else shares it (a tied head).
        match Var::from_tensor(t) {
            Ok(v) => {
                *t = v.as_tensor().clone();
                params.insert(format!("{PEFT_PREFIX}{name}"), v);
            }
            Err(e) => swap_err = Some(e),
        }
    });
    if let Some(e) = swap_err {
        return Err(e.into());
    }
    Ok(AdapterSet {
        config: cfg.clone(),
        target_modules,
        modules_to_save: cfg.additional_target.clone(),
        params,
    })
}

/// Turns adapter dropout on (training) or off (evaluation) in every adapted layer.
pub fn set_training(model: &mut CausalLM, training: bool) {
    for (_, linear) in linears_mut(model) {
        if let Some(a) = &mut linear.adapter {
            a.training = training;
        }
    }
}

/// Seeds the next dropout mask of every adapted layer: layer `i` (in model order) gets
/// `seed` mixed with `i`, so masks differ across layers and repeat exactly for the same
/// `seed` (the trainer passes one per micro-batch, derived from `seed` and the step).
pub fn set_dropout_seed(model: &mut CausalLM, seed: u64) {
    for (i, (_, linear)) in linears_mut(model).into_iter().enumerate() {
        if let Some(a) = &mut linear.adapter {
            a.dropout_seed = mix_seed(seed, i as u64);
        }
    }
}

/// SplitMix64 (Steele, Lea and Flood 2014) of `a` and `b`: distinct well-spread seeds from
/// pairs of counters.
pub fn mix_seed(a: u64, b: u64) -> u64 {
    let mut z = a
        .wrapping_add(b.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
