//! Llama 1/2/3 and the models that share its layout (SmolLM, TinyLlama).
//! Reference: transformers `models/llama/modeling_llama.py`; GGUF layout: llama.cpp's
//! `convert_hf_to_gguf.py` (`LlamaModel.permute`).

use candle_core::Tensor;

use crate::config::{HfConfig, ModelConfig};
use crate::error::Result;

/// `attention_bias` puts a bias on q/k/v/o, `mlp_bias` on the MLP (both default false).
pub(super) fn adjust_hf(cfg: &mut ModelConfig, raw: &HfConfig) {
    let attention_bias = raw.attention_bias.unwrap_or(false);
    cfg.switches.qkv_bias = attention_bias;
    cfg.switches.o_bias = attention_bias;
    cfg.switches.mlp_bias = raw.mlp_bias.unwrap_or(false);
}

/// Which way [`reorder_qk`] moves the rows of q_proj and k_proj.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QkOrder {
    /// llama.cpp's interleaved order → HF's (loading a GGUF).
    FromGguf,
    /// HF's order → llama.cpp's interleaved one (writing a GGUF).
    ToGguf,
}

/// llama.cpp stores the rows of q_proj and k_proj permuted so that its interleaved
/// RoPE (pairs `(2i, 2i+1)`) equals HF's rotate-half RoPE (pairs `(i, i + D/2)`).
/// Its converter (`LlamaModel.permute`) maps each head's rows as
/// `reshape(heads, 2, D/2, in).swapaxes(1, 2)` ([`QkOrder::ToGguf`]); the inverse is
/// `reshape(heads, D/2, 2, in).swapaxes(1, 2)` ([`QkOrder::FromGguf`]). Other tensors (named
/// by their HF name `hf_name`) pass through. Skipping it still runs, but attention is quietly
/// wrong.
///
/// Errors: a q/k tensor whose row count is not a multiple of 2 × its heads.
pub fn reorder_qk(hf_name: &str, t: Tensor, cfg: &ModelConfig, order: QkOrder) -> Result<Tensor> {
    let is = |proj: &str| {
        hf_name.ends_with(&format!("self_attn.{proj}.weight"))
            || hf_name.ends_with(&format!("self_attn.{proj}.bias"))
    };
    let heads = if is("q_proj") {
        cfg.num_attention_heads
    } else if is("k_proj") {
        cfg.num_key_value_heads
    } else {
        return Ok(t);
    };
    let dims = t.dims().to_vec();
    let Some(&out) = dims.first() else {
        return Ok(t);
    };
    if heads == 0 || out % (2 * heads) != 0 {
        return Err(candle_core::Error::Msg(format!(
            "tensor `{hf_name}` has {out} rows, not a multiple of 2 x {heads} heads"
        ))
        .into());
    }
    let inner: usize = dims[1..].iter().product();
    let half = out / heads / 2;
    let split = match order {
        QkOrder::FromGguf => (heads, half, 2, inner),
        QkOrder::ToGguf => (heads, 2, half, inner),
    };
    Ok(t.reshape(split)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)?)
}
