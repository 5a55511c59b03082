//! Merging adapters into the base weights for export: pure functions over weights; the
//! model they read is left as it was.

use std::path::Path;

use candle_core::Tensor;

use super::lora::{LoraAdapter, LoraVariant};
use super::walk::linears_mut;
use crate::decoder::CausalLM;
use crate::error::Result;

/// The merged weight `[out, in]` of a frozen `weight` `[out, in]` and its adapter, detached:
/// LoRA `W + s·B·A` (Hu et al. 2021, §4.1); DoRA `m ⊙ (W + s·B·A) / ‖W + s·B·A‖_c`, the
/// magnitude and norm per output row (Liu et al. 2024, eq. 5; PEFT `dora.py` merge).
pub fn merge_weight(weight: &Tensor, adapter: &LoraAdapter) -> Result<Tensor> {
    let adapted = (weight + adapter.delta_weight()?.detach())?;
    match &adapter.variant {
        LoraVariant::Plain => Ok(adapted),
        LoraVariant::Dora { magnitude } => {
            let k = magnitude
                .as_tensor()
                .detach()
                .div(&adapter.weight_norm(weight)?)?
                .unsqueeze(1)?; // [out, 1]
            Ok(adapted.broadcast_mul(&k)?)
        }
    }
}

/// A copy of `model` with every adapter merged into its layer's weight and removed; the
/// trained modules_to_save tensors are kept (detached). The copy's forward equals the
/// adapted model's forward with dropout off. An `lm_head` untied by training `lm_head` or
/// `embed_tokens` stays untied: export it with `tie_word_embeddings: false`.
pub fn merge_adapters(model: &CausalLM) -> Result<CausalLM> {
    let mut merged = model.clone();
    for (_, linear) in linears_mut(&mut merged) {
        if let Some(adapter) = linear.adapter.take() {
            linear.weight = merge_weight(&linear.weight, &adapter)?;
        }
    }
    merged.embed_tokens = merged.embed_tokens.detach();
    merged.lm_head = merged.lm_head.map(|t| t.detach());
    Ok(merged)
}

/// `model` with the PEFT adapters of `dirs` merged into it one after the other, as
/// LLaMA-Factory merges `adapter_name_or_path` entries (`model/adapter.py`,
/// `_setup_lora_tuning`); each is loaded onto the model merged so far.
///
/// Errors: those of [`super::load_peft`] (not a folder, missing files, a shape the base does not
/// fit, naming the tensor) and of [`merge_adapters`].
pub fn merge_adapter_dirs<P: AsRef<Path>>(mut model: CausalLM, dirs: &[P]) -> Result<CausalLM> {
    for dir in dirs {
        super::load_peft(dir.as_ref(), &mut model)?;
        model = merge_adapters(&model)?;
    }
    Ok(model)
}

/// The HF-named weights of the merged model (see [`merge_adapters`]), ready to save;
/// copies, so later optimizer steps do not change them.
pub fn merged_tensors(model: &CausalLM) -> Result<Vec<(String, Tensor)>> {
    merge_adapters(model)?
        .named_tensors()
        .into_iter()
        .map(|(n, t)| Ok((n, t.detach().copy()?)))
        .collect()
}
