//! llama.cpp's layout of the llama-like families: tensor names (`token_embd`, `blk.N.attn_q`,
//! ..., `output_norm`, `output`; qwen3's `attn_q_norm`/`attn_k_norm`; phi3's fused `attn_qkv`
//! and `ffn_up`), the llama Q/K row permutation and the `<arch>.*` metadata, as llama.cpp's
//! `convert_hf_to_gguf.py` (`LlamaModel`, `Qwen2Model`, `Qwen3Model`, `GemmaModel`,
//! `Phi3MiniModel`) and `gguf-py/gguf/constants.py` name them.

use candle_core::Tensor;
use ferrotune_hub::gguf::GgufValue;
use ferrotune_model::families::llama::{reorder_qk, QkOrder};
use ferrotune_model::rope::inv_freq;
use ferrotune_model::{ModelConfig, RopeScaling};

use crate::error::Result;

/// The llama.cpp name of an HF tensor name (weights and biases alike), or `None` for a name
/// outside the layout shared by llama, mistral, qwen2, qwen3, gemma and phi3. Phi-3's fused
/// `qkv_proj` (`[(H + 2K)·D, C]`) becomes `attn_qkv` and its `gate_up_proj` (`[2·I, C]`, gate
/// rows first) becomes `ffn_up`, unchanged (llama.cpp splits them in its graph).
pub fn gguf_name(hf: &str) -> Option<String> {
    match hf {
        "model.embed_tokens.weight" => return Some("token_embd.weight".into()),
        "model.norm.weight" => return Some("output_norm.weight".into()),
        "lm_head.weight" => return Some("output.weight".into()),
        _ => {}
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, kind) = rest.rsplit_once('.')?;
    let part = match module {
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.qkv_proj" => "attn_qkv",
        "self_attn.o_proj" => "attn_output",
        "self_attn.q_norm" => "attn_q_norm",
        "self_attn.k_norm" => "attn_k_norm",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" | "mlp.gate_up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" => "ffn_norm",
        _ => return None,
    };
    Some(format!("blk.{layer}.{part}.{kind}"))
}

/// Permutes the rows of q_proj/k_proj (weight `[heads·D, C]` or bias `[heads·D]`) from HF's
/// rotate-half RoPE layout to llama.cpp's interleaved one: each head's rows
/// `reshape(2, D/2).swapaxes` (`LlamaModel.permute`); the inverse of what ferrotune's GGUF
/// loader undoes. Other tensors pass through.
pub fn permute_qk(hf: &str, t: Tensor, cfg: &ModelConfig) -> Result<Tensor> {
    Ok(reorder_qk(hf, t, cfg, QkOrder::ToGguf)?)
}

/// RoPE frequency divisors for `rope_freqs.weight` `[rotary_dim / 2]` f32 (Llama 3.1 scaling,
/// or factors read from a GGUF), `None` when the scaling needs no tensor. For Llama 3 scaling
/// each divisor is the plain frequency over the scaled one, which equals llama.cpp's
/// `1 / ((1 - smooth) / factor + smooth)`.
pub fn rope_freqs(cfg: &ModelConfig) -> Option<Vec<f32>> {
    match &cfg.rope_scaling {
        RopeScaling::FreqFactors(f) => Some(f.clone()),
        RopeScaling::Llama3 { .. } => {
            let plain = inv_freq(&ModelConfig {
                rope_scaling: RopeScaling::None,
                ..cfg.clone()
            });
            let scaled = inv_freq(cfg);
            Some(
                plain
                    .iter()
                    .zip(&scaled)
                    .map(|(p, s)| (p / s) as f32)
                    .collect(),
            )
        }
        RopeScaling::None | RopeScaling::Linear { .. } => None,
    }
}

/// The `<arch>.*` hyper-parameters shared by every architecture written here (`LLM_KV_*` names
/// of llama.cpp), `arch` being the file's `general.architecture`. `attention.key_length` and
/// `attention.value_length` (the head dimension D) are always written: llama.cpp reads them
/// where present and otherwise assumes `C / H`, and the gemma converter always writes them.
pub fn metadata(arch: &str, cfg: &ModelConfig) -> Vec<(String, GgufValue)> {
    let k = |s: &str| format!("{arch}.{s}");
    let u = |v: usize| GgufValue::U32(v as u32);
    let mut m = vec![
        (k("vocab_size"), u(cfg.vocab_size)),
        (k("context_length"), u(cfg.max_position_embeddings)),
        (k("embedding_length"), u(cfg.hidden_size)),
        (k("block_count"), u(cfg.num_hidden_layers)),
        (k("feed_forward_length"), u(cfg.intermediate_size)),
        (k("rope.dimension_count"), u(cfg.rotary_dim)),
        (k("attention.head_count"), u(cfg.num_attention_heads)),
        (k("attention.head_count_kv"), u(cfg.num_key_value_heads)),
        (
            k("attention.layer_norm_rms_epsilon"),
            GgufValue::F32(cfg.rms_norm_eps as f32),
        ),
        (k("rope.freq_base"), GgufValue::F32(cfg.rope_theta as f32)),
        (k("attention.key_length"), u(cfg.head_dim)),
        (k("attention.value_length"), u(cfg.head_dim)),
    ];
    if let RopeScaling::Linear { factor } = cfg.rope_scaling {
        m.push((k("rope.scaling.type"), GgufValue::String("linear".into())));
        m.push((k("rope.scaling.factor"), GgufValue::F32(factor as f32)));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_llama_cpp() {
        assert_eq!(
            gguf_name("model.layers.12.self_attn.o_proj.weight").as_deref(),
            Some("blk.12.attn_output.weight")
        );
        assert_eq!(
            gguf_name("model.layers.0.post_attention_layernorm.weight").as_deref(),
            Some("blk.0.ffn_norm.weight")
        );
        assert_eq!(
            gguf_name("lm_head.weight").as_deref(),
            Some("output.weight")
        );
        assert_eq!(
            gguf_name("model.layers.3.self_attn.k_norm.weight").as_deref(),
            Some("blk.3.attn_k_norm.weight")
        );
        assert_eq!(
            gguf_name("model.layers.1.self_attn.v_proj.bias").as_deref(),
            Some("blk.1.attn_v.bias")
        );
        assert_eq!(
            gguf_name("model.layers.0.self_attn.qkv_proj.weight").as_deref(),
            Some("blk.0.attn_qkv.weight")
        );
        assert_eq!(
            gguf_name("model.layers.1.mlp.gate_up_proj.weight").as_deref(),
            Some("blk.1.ffn_up.weight")
        );
        assert_eq!(
            gguf_name("model.layers.0.self_attn.rotary_emb.inv_freq"),
            None
        );
    }
}
