//! Walks over a [`CausalLM`]'s linear layers and parameters by their HF module paths
//! (`model.layers.0.self_attn.q_proj`), so the adapter builder can choose targets without
//! the model files knowing about adapters.

use candle_core::Tensor;

use crate::decoder::{CausalLM, DecoderLayer};
use crate::layers::{GateUp, Linear, Qkv};

/// The linear layers of one block with their paths (`{prefix}.self_attn.q_proj`, ...),
/// projections in checkpoint order: attention, then the MLP.
fn layer_linears_mut<'a>(
    prefix: &str,
    layer: &'a mut DecoderLayer,
) -> Vec<(String, &'a mut Linear)> {
    let attn = format!("{prefix}.self_attn");
    let mlp = format!("{prefix}.mlp");
    let mut out: Vec<(String, &'a mut Linear)> = Vec::new();
    match &mut layer.self_attn.qkv {
        Qkv::Separate {
            q_proj,
            k_proj,
            v_proj,
        } => {
            out.push((format!("{attn}.q_proj"), q_proj));
            out.push((format!("{attn}.k_proj"), k_proj));
            out.push((format!("{attn}.v_proj"), v_proj));
        }
        Qkv::Fused { qkv_proj } => out.push((format!("{attn}.qkv_proj"), qkv_proj)),
    }
    out.push((format!("{attn}.o_proj"), &mut layer.self_attn.o_proj));
    match &mut layer.mlp.gate_up {
        GateUp::Separate { gate_proj, up_proj } => {
            out.push((format!("{mlp}.gate_proj"), gate_proj));
            out.push((format!("{mlp}.up_proj"), up_proj));
        }
        GateUp::Fused { gate_up_proj } => out.push((format!("{mlp}.gate_up_proj"), gate_up_proj)),
    }
    out.push((format!("{mlp}.down_proj"), &mut layer.mlp.down_proj));
    out
}

/// Every linear layer of the decoder (never `lm_head`, which is a plain tensor) with its
/// module path, mutably.
pub(crate) fn linears_mut(model: &mut CausalLM) -> Vec<(String, &mut Linear)> {
    model
        .layers
        .iter_mut()
        .enumerate()
        .flat_map(|(i, layer)| layer_linears_mut(&format!("model.layers.{i}"), layer))
        .collect()
}

/// Every parameter tensor with its HF name (`model.layers.0.input_layernorm.weight`),
/// mutably, for swapping in trainable copies. A tied `lm_head` appears as `lm_head.weight`
/// only when `include_tied_head` is set, after being untied (given its own handle on the
/// embedding's values), as PEFT's modules_to_save copy does.
pub(crate) fn visit_params_mut(
    model: &mut CausalLM,
    include_tied_head: bool,
    f: &mut dyn FnMut(&str, &mut Tensor),
) {
    if include_tied_head && model.lm_head.is_none() {
        model.lm_head = Some(model.embed_tokens.clone());
    }
    f("model.embed_tokens.weight", &mut model.embed_tokens);
    for (i, layer) in model.layers.iter_mut().enumerate() {
        let p = format!("model.layers.{i}");
        f(
            &format!("{p}.input_layernorm.weight"),
            &mut layer.input_layernorm.weight,
        );
        f(
            &format!("{p}.post_attention_layernorm.weight"),
            &mut layer.post_attention_layernorm.weight,
        );
        if let Some(n) = &mut layer.self_attn.q_norm {
            f(&format!("{p}.self_attn.q_norm.weight"), &mut n.weight);
        }
        if let Some(n) = &mut layer.self_attn.k_norm {
            f(&format!("{p}.self_attn.k_norm.weight"), &mut n.weight);
        }
        for (path, lin) in layer_linears_mut(&p, layer) {
            f(&format!("{path}.weight"), &mut lin.weight);
            if let Some(b) = &mut lin.bias {
                f(&format!("{path}.bias"), b);
            }
        }
    }
    f("model.norm.weight", &mut model.norm.weight);
    if let Some(head) = &mut model.lm_head {
        f("lm_head.weight", head);
    }
}

/// The HF names of every parameter, the tied head included as `lm_head.weight`
/// (PEFT's `named_modules` lists `lm_head` even when its weight is tied).
pub(crate) fn param_names(model: &CausalLM) -> Vec<String> {
    let mut names = Vec::new();
    model.visit_tensors(&mut |name, _| names.push(name.to_string()));
    if model.lm_head.is_none() {
        names.push("lm_head.weight".into());
    }
    names
}

/// Every module path that holds parameters, containers included (`model`, `model.layers`,
/// `model.layers.0`, ..., `lm_head`): the prefixes of the parameter names.
pub(crate) fn module_paths(param_names: &[String]) -> Vec<String> {
    let mut paths: Vec<String> = Vec::new();
    for name in param_names {
        let segs: Vec<&str> = name.split('.').collect();
        for end in 1..segs.len() {
            paths.push(segs[..end].join("."));
        }
    }
    paths.sort();
    paths.dedup();
    paths
}

/// The last segment of a module path (`model.layers.0.self_attn.q_proj` → `q_proj`).
pub(crate) fn leaf(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}
