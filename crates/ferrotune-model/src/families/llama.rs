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

/// llama.cpp stores the rows of q_proj and k_proj permuted so that its interleaved
/// RoPE (pairs `(2i, 2i+1)`) equals HF's rotate-half RoPE (pairs `(i, i + D/2)`).
/// The converter maps each head's rows as `reshape(heads, 2, D/2, in).swapaxes(1, 2)`;
/// this is the inverse, `reshape(heads, D/2, 2, in).swapaxes(1, 2)`.
/// Skipping it still runs, but attention is quietly wrong.
pub(super) fn unpermute_qk(hf_name: &str, t: Tensor, cfg: &ModelConfig) -> Result<Tensor> {
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
    let inner: usize = dims[1..].iter().product();
    let half = out / heads / 2;
    let t = t
        .reshape((heads, half, 2, inner))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)?;
    Ok(t)
}
