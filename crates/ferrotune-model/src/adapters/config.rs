//! The adapter settings (LLaMA-Factory's LoRA keys) and how target names resolve to
//! module paths, following PEFT's matching rules (`peft/tuners/tuners_utils.py`
//! `check_target_module_exists`, `peft/utils/other.py` `_set_trainable`, v0.21.2).

use crate::error::{ModelError, Result};

/// How A and B start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoraInit {
    /// PEFT's `init_lora_weights: true`: A ~ U(−1/√in, 1/√in) (Kaiming-uniform with
    /// a = √5, as `torch.nn.Linear`), B = 0, so the adapted model starts equal to the base.
    Default,
    /// PiSSA (Meng et al. 2024): A, B from the top-r singular triplets of W, the base
    /// replaced by the residual `W − s·B·A` (PEFT `LoraLayer.pissa_init`). `niter: None` is
    /// an exact SVD (`init_lora_weights: "pissa"`, LLaMA-Factory `pissa_iter: -1`), else a
    /// randomized SVD with that many power iterations (`"pissa_niter_{n}"`).
    Pissa {
        /// Power iterations of the randomized SVD, or `None` for the exact one.
        niter: Option<usize>,
    },
}

impl LoraInit {
    /// PEFT's `init_lora_weights` value: `true`, `"pissa"` or `"pissa_niter_{n}"`.
    pub fn to_peft(self) -> serde_json::Value {
        match self {
            Self::Default => serde_json::Value::Bool(true),
            Self::Pissa { niter: None } => "pissa".into(),
            Self::Pissa { niter: Some(n) } => format!("pissa_niter_{n}").into(),
        }
    }
}

/// LoRA settings, named as LLaMA-Factory's finetuning arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    /// `lora_rank`: r, the inner dimension of B·A (≥ 1).
    pub lora_rank: usize,
    /// `lora_alpha`: numerator of the scaling.
    pub lora_alpha: f64,
    /// `lora_dropout`: dropout probability on the adapter input, in `[0, 1)`.
    pub lora_dropout: f64,
    /// `lora_target`: `["all"]` for every linear layer of the decoder except `lm_head`, or
    /// module names (`q_proj`, `v_proj`, phi3's fused `qkv_proj`, `gate_up_proj`).
    pub lora_target: Vec<String>,
    /// `additional_target`: modules trained whole and saved as PEFT's `modules_to_save`
    /// (`embed_tokens`, `lm_head`, `norm`, ...). Matched as PEFT does: a module whose path
    /// ends with the name.
    pub additional_target: Vec<String>,
    /// `use_rslora`: scaling `lora_alpha / √r` instead of `lora_alpha / r`.
    pub use_rslora: bool,
    /// `use_dora`: weight-decomposed LoRA with a trainable magnitude per output row.
    pub use_dora: bool,
    /// How A and B are initialized (`pissa_init`, `pissa_iter`).
    pub init: LoraInit,
}

impl LoraConfig {
    /// The LoRA scaling s: `lora_alpha / r`, or `lora_alpha / √r` with rsLoRA
    /// (Kalajdzievski 2023, eq. 2; PEFT `LoraLayer.update_layer`).
    pub fn scaling(&self) -> f64 {
        let r = self.lora_rank as f64;
        if self.use_rslora {
            self.lora_alpha / r.sqrt()
        } else {
            self.lora_alpha / r
        }
    }

    /// Checks the values on their own. Errors: [`ModelError::AdapterConfig`].
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(ModelError::AdapterConfig { msg });
        if self.lora_rank == 0 {
            return bad("`lora_rank` must be >= 1, got 0".into());
        }
        if !(0.0..1.0).contains(&self.lora_dropout) {
            return bad(format!(
                "`lora_dropout` must be in [0, 1), got {}",
                self.lora_dropout
            ));
        }
        if self.lora_target.is_empty() {
            return bad("`lora_target` is empty; hint: set `lora_target: all`".into());
        }
        Ok(())
    }
}

/// PEFT's LoRA-target rule: the module path equals the name or ends with `.{name}`.
pub(crate) fn matches_target(path: &str, name: &str) -> bool {
    path == name || path.ends_with(&format!(".{name}"))
}

/// PEFT's modules_to_save rule (`_set_trainable`): the module path ends with the name.
pub(crate) fn matches_saved(path: &str, name: &str) -> bool {
    path.ends_with(name)
}

/// Whether a module lies in (or is) a module of modules_to_save, which PEFT then excludes
/// from LoRA (`check_target_module_exists`: `(^|.*\.){m}($|\..*)`).
pub(crate) fn inside_saved(path: &str, saved: &[String]) -> bool {
    saved.iter().any(|m| {
        path == m
            || path.starts_with(&format!("{m}."))
            || path.ends_with(&format!(".{m}"))
            || path.contains(&format!(".{m}."))
    })
}

/// Resolves `lora_target` against the decoder's linear layer paths: `all` → every distinct
/// leaf name, in model order; otherwise each name must match at least one path.
///
/// Errors: [`ModelError::AdapterTarget`] naming the first unmatched name and the linear
/// module names that exist.
pub(crate) fn resolve_lora_target(
    targets: &[String],
    linear_paths: &[String],
) -> Result<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    for p in linear_paths {
        let leaf = super::walk::leaf(p).to_string();
        if !names.contains(&leaf) {
            names.push(leaf);
        }
    }
    if targets.len() == 1 && targets[0] == "all" {
        return Ok(names);
    }
    for t in targets {
        if !linear_paths.iter().any(|p| matches_target(p, t)) {
            return Err(ModelError::AdapterTarget {
                key: "lora_target".into(),
                name: t.clone(),
                available: names,
            });
        }
    }
    Ok(targets.to_vec())
}

/// Resolves `additional_target` against every module path; each name must match one.
///
/// Errors: [`ModelError::AdapterTarget`] with the module names that exist.
pub(crate) fn resolve_saved(targets: &[String], module_paths: &[String]) -> Result<Vec<String>> {
    let mut matched = Vec::new();
    for t in targets {
        let hits: Vec<&String> = module_paths
            .iter()
            .filter(|p| matches_saved(p, t))
            .collect();
        if hits.is_empty() {
            let mut available: Vec<String> = module_paths
                .iter()
                .map(|p| super::walk::leaf(p).to_string())
                .filter(|l| l.parse::<usize>().is_err())
                .collect();
            available.sort();
            available.dedup();
            return Err(ModelError::AdapterTarget {
                key: "additional_target".into(),
                name: t.clone(),
                available,
            });
        }
        matched.extend(hits.into_iter().cloned());
    }
    matched.sort();
    matched.dedup();
    Ok(matched)
}
