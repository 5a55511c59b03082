//! PEFT's on-disk adapter format: `adapter_model.safetensors` (f32 tensors named
//! `base_model.model.{module}.lora_A.weight`, `.lora_B.weight`, `.lora_magnitude_vector`,
//! and `base_model.model.{param}` for modules_to_save) and `adapter_config.json` (the
//! `LoraConfig` fields, sorted keys), as `PeftModel.save_pretrained` writes them (v0.21.2).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde_json::{json, Map, Value};

use super::apply::{apply_lora, AdapterSet};
use super::config::{LoraConfig, LoraInit};
use crate::decoder::CausalLM;
use crate::error::{ModelError, Result};

/// PEFT's adapter weights file name.
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
/// PEFT's adapter config file name.
pub const ADAPTER_CONFIG: &str = "adapter_config.json";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` through `{path}.tmp` and a rename, so a crash never leaves a
/// half-written file under the final name.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

impl AdapterSet {
    /// `adapter_config.json` as PEFT writes it for a causal LM LoRA adapter.
    pub fn peft_config_json(&self, base_model_name_or_path: &str) -> Value {
        let c = &self.config;
        let saved = if self.modules_to_save.is_empty() {
            Value::Null
        } else {
            json!(self.modules_to_save)
        };
        // serde_json's Map is a BTreeMap here: keys come out sorted, as PEFT's `sort_keys=True`.
        json!({
            "alpha_pattern": {}, "auto_mapping": null,
            "base_model_name_or_path": base_model_name_or_path, "bias": "none",
            "exclude_modules": null, "fan_in_fan_out": false, "inference_mode": true,
            "init_lora_weights": c.init.to_peft(), "layer_replication": null,
            "layers_pattern": null, "layers_to_transform": null, "loftq_config": {},
            "lora_alpha": c.lora_alpha, "lora_bias": false, "lora_dropout": c.lora_dropout,
            "megatron_config": null, "megatron_core": "megatron.core",
            "modules_to_save": saved, "peft_type": "LORA", "r": c.lora_rank,
            "rank_pattern": {}, "revision": null, "target_modules": self.target_modules,
            "task_type": "CAUSAL_LM", "use_dora": c.use_dora, "use_rslora": c.use_rslora,
        })
    }

    /// Saves `adapter_model.safetensors` and `adapter_config.json` into `dir` (created if
    /// needed), each written to a temporary name and renamed.
    pub fn save_peft(&self, dir: &Path, base_model_name_or_path: &str) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let tensors: Vec<(String, Tensor)> = self
            .params
            .iter()
            .map(|(n, v)| Ok((n.clone(), v.as_tensor().to_dtype(DType::F32)?)))
            .collect::<Result<_>>()?;
        let weights = dir.join(ADAPTER_WEIGHTS);
        let bytes = safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), None)
            .map_err(|e| ModelError::Adapter {
                path: weights.clone(),
                msg: e.to_string(),
            })?;
        write_atomic(&weights, &bytes)?;
        let config = self.peft_config_json(base_model_name_or_path);
        let text = serde_json::to_string_pretty(&config).map_err(|e| ModelError::Adapter {
            path: dir.join(ADAPTER_CONFIG),
            msg: e.to_string(),
        })?;
        write_atomic(&dir.join(ADAPTER_CONFIG), text.as_bytes())
    }
}

/// Reads a PEFT `adapter_config.json` into a [`LoraConfig`].
///
/// Errors: [`ModelError::Io`], [`ModelError::Adapter`] for a non-LoRA adapter or settings
/// we do not implement (bias, fan_in_fan_out, rank/alpha patterns, regex targets, PiSSA
/// adapters that need their residual base).
pub fn read_peft_config(path: &Path) -> Result<LoraConfig> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let bad = |msg: String| ModelError::Adapter {
        path: path.to_path_buf(),
        msg,
    };
    let v: Map<String, Value> = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let get = |k: &str| v.get(k).filter(|x| !x.is_null());
    let num = |k: &str| get(k).and_then(Value::as_f64);
    let flag = |k: &str| get(k).and_then(Value::as_bool).unwrap_or(false);
    let names = |k: &str| -> Result<Vec<String>> {
        match get(k) {
            None => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| x.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad(format!("`{k}` must be a list of module names"))),
            Some(other) => Err(bad(format!(
                "`{k}` = {other} is not supported; expected a list of module names"
            ))),
        }
    };
    let peft_type = get("peft_type").and_then(Value::as_str).unwrap_or("");
    if peft_type != "LORA" {
        return Err(bad(format!(
            "`peft_type` is `{peft_type}`; only LORA is supported"
        )));
    }
    if get("bias")
        .and_then(Value::as_str)
        .is_some_and(|b| b != "none")
        || flag("lora_bias")
    {
        return Err(bad(
            "trained biases (`bias`, `lora_bias`) are not supported".into(),
        ));
    }
    if flag("fan_in_fan_out") {
        return Err(bad("`fan_in_fan_out: true` is not supported".into()));
    }
    for k in ["rank_pattern", "alpha_pattern"] {
        if get(k)
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty())
        {
            return Err(bad(format!("a non-empty `{k}` is not supported")));
        }
    }
    if get("layers_to_transform").is_some() {
        return Err(bad("`layers_to_transform` is not supported".into()));
    }
    let base_changing = ["pissa", "olora", "corda", "loftq"];
    if let Some(init) = get("init_lora_weights")
        .and_then(Value::as_str)
        .filter(|i| base_changing.iter().any(|p| i.starts_with(p)))
    {
        return Err(bad(format!(
            "`init_lora_weights: {init}` adapters need the residual base they were trained on; \
             hint: save them converted (LLaMA-Factory `pissa_convert: true`)"
        )));
    }
    let r = num("r").ok_or_else(|| bad("missing number `r`".into()))?;
    Ok(LoraConfig {
        lora_rank: r as usize,
        lora_alpha: num("lora_alpha").unwrap_or(8.0),
        lora_dropout: num("lora_dropout").unwrap_or(0.0),
        lora_target: names("target_modules")?,
        additional_target: names("modules_to_save")?,
        use_rslora: flag("use_rslora"),
        use_dora: flag("use_dora"),
        init: LoraInit::Default,
    })
}

/// Loads a PEFT adapter from `config` (adapter_config.json) and `weights` (safetensors)
/// onto `model`: builds the adapters as the config says, then sets their values.
///
/// Errors: those of [`read_peft_config`], [`apply_lora`] and [`AdapterSet::set_values`]
/// (every missing/unexpected tensor; a shape mismatch naming the tensor and both shapes).
pub fn load_peft_files(config: &Path, weights: &Path, model: &mut CausalLM) -> Result<AdapterSet> {
    let cfg = read_peft_config(config)?;
    let device = model.embed_tokens.device().clone();
    let tensors: BTreeMap<String, Tensor> = candle_core::safetensors::load(weights, &Device::Cpu)
        .map_err(|e| ModelError::Adapter {
            path: weights.to_path_buf(),
            msg: e.to_string(),
        })?
        .into_iter()
        .map(|(n, t)| Ok((n, t.to_device(&device)?)))
        .collect::<Result<_>>()?;
    // Built on a copy (tensors are shared, not duplicated) so that a failed load leaves
    // `model` untouched.
    let mut adapted = model.clone();
    let set = apply_lora(&mut adapted, &cfg, 0)?;
    set.set_values(&tensors, weights)?;
    *model = adapted;
    Ok(set)
}

/// Loads the PEFT adapter saved in `dir` (`adapter_config.json` + `adapter_model.safetensors`).
///
/// Errors: [`ModelError::Adapter`] when `dir` is not a folder (hub ids are not resolved
/// here), and the errors of [`load_peft_files`].
pub fn load_peft(dir: &Path, model: &mut CausalLM) -> Result<AdapterSet> {
    if !dir.is_dir() {
        return Err(ModelError::Adapter {
            path: dir.to_path_buf(),
            msg: format!(
                "not a folder; hint: `adapter_name_or_path` takes local folders holding {ADAPTER_CONFIG} and {ADAPTER_WEIGHTS}"
            ),
        });
    }
    load_peft_files(&dir.join(ADAPTER_CONFIG), &dir.join(ADAPTER_WEIGHTS), model)
}
