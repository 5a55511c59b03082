//! The shape of a decoder model as far as memory and FLOPs depend on it ([`ModelDims`]), read
//! from a resolved `config.json` ([`ModelDims::from_model_config`]) or from GGUF metadata
//! ([`ModelDims::from_gguf`]) without loading a weight, and what follows from it alone: the
//! projections of a layer ([`Projection`]) and the parameter counts.

use ferrotune_hub::gguf::GgufFile;
use ferrotune_model::ModelConfig;

use crate::error::TrainError;

/// The shape of a decoder model, as far as memory and FLOPs depend on it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelDims {
    /// V.
    pub vocab_size: usize,
    /// C.
    pub hidden_size: usize,
    /// I.
    pub intermediate_size: usize,
    /// L.
    pub num_layers: usize,
    /// H.
    pub num_heads: usize,
    /// K.
    pub num_kv_heads: usize,
    /// D.
    pub head_dim: usize,
    /// Rotated width of each head (≤ D).
    pub rotary_dim: usize,
    /// The LM head is the embedding matrix.
    pub tie_word_embeddings: bool,
    /// One `qkv_proj` (phi3).
    pub fused_qkv: bool,
    /// One `gate_up_proj` (phi3).
    pub fused_gate_up: bool,
    /// Biases on q/k/v.
    pub qkv_bias: bool,
    /// Bias on o_proj.
    pub o_bias: bool,
    /// Biases on the MLP projections.
    pub mlp_bias: bool,
    /// Per-head RMSNorm on queries and keys (qwen3).
    pub qk_norm: bool,
    /// The MLP activation is SiLU (every family but gemma).
    pub silu: bool,
}

/// One linear projection of a decoder layer: `name` as in HF checkpoints (`q_proj`, ...),
/// weight `[out, in]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projection {
    /// Leaf module name (`q_proj`, `gate_up_proj`, ...).
    pub name: &'static str,
    /// Input features.
    pub inp: usize,
    /// Output features.
    pub out: usize,
    /// Has a bias `[out]`.
    pub bias: bool,
}

impl ModelDims {
    /// The dims of a resolved `config.json`.
    pub fn from_model_config(cfg: &ModelConfig) -> Self {
        let s = &cfg.switches;
        ModelDims {
            vocab_size: cfg.vocab_size,
            hidden_size: cfg.hidden_size,
            intermediate_size: cfg.intermediate_size,
            num_layers: cfg.num_hidden_layers,
            num_heads: cfg.num_attention_heads,
            num_kv_heads: cfg.num_key_value_heads,
            head_dim: cfg.head_dim,
            rotary_dim: cfg.rotary_dim,
            tie_word_embeddings: cfg.tie_word_embeddings,
            fused_qkv: s.fused_qkv,
            fused_gate_up: s.fused_gate_up,
            qkv_bias: s.qkv_bias,
            o_bias: s.o_bias,
            mlp_bias: s.mlp_bias,
            qk_norm: s.qk_norm,
            silu: cfg.hidden_act == ferrotune_model::Activation::Silu,
        }
    }

    /// The dims of a GGUF file from its `<arch>.*` metadata and tensor names, as
    /// `ferrotune-model` resolves them ([`ferrotune_model::gguf_model_config`]); no tensor
    /// data is read.
    ///
    /// Errors: [`TrainError::Model`] for an unsupported architecture or a missing key
    /// (`<arch>.embedding_length`, `block_count`, `feed_forward_length`, `attention.head_count`).
    pub fn from_gguf(file: &GgufFile) -> Result<Self, TrainError> {
        Ok(Self::from_model_config(
            &ferrotune_model::gguf_model_config(file)?,
        ))
    }

    /// The projections of one decoder layer, in model order.
    pub fn projections(&self) -> Vec<Projection> {
        let (c, i) = (self.hidden_size, self.intermediate_size);
        let (q, kv) = (
            self.num_heads * self.head_dim,
            self.num_kv_heads * self.head_dim,
        );
        let p = |name, inp, out, bias| Projection {
            name,
            inp,
            out,
            bias,
        };
        let mut out = if self.fused_qkv {
            vec![p("qkv_proj", c, q + 2 * kv, self.qkv_bias)]
        } else {
            vec![
                p("q_proj", c, q, self.qkv_bias),
                p("k_proj", c, kv, self.qkv_bias),
                p("v_proj", c, kv, self.qkv_bias),
            ]
        };
        out.push(p("o_proj", q, c, self.o_bias));
        if self.fused_gate_up {
            out.push(p("gate_up_proj", c, 2 * i, self.mlp_bias));
        } else {
            out.push(p("gate_proj", c, i, self.mlp_bias));
            out.push(p("up_proj", c, i, self.mlp_bias));
        }
        out.push(p("down_proj", i, c, self.mlp_bias));
        out
    }

    /// Parameters of one decoder layer: projections (with biases), the two norms `[C]`, and
    /// the q/k norms `[D]` when present.
    pub fn layer_params(&self) -> u64 {
        let proj: usize = self
            .projections()
            .iter()
            .map(|p| p.inp * p.out + if p.bias { p.out } else { 0 })
            .sum();
        let qk = if self.qk_norm { 2 * self.head_dim } else { 0 };
        (proj + 2 * self.hidden_size + qk) as u64
    }

    /// The embedding (and the untied LM head) `[V, C]` each.
    pub fn embedding_params(&self) -> u64 {
        let heads = if self.tie_word_embeddings { 1 } else { 2 };
        (heads * self.vocab_size * self.hidden_size) as u64
    }

    /// P: every parameter, a tied head once.
    pub fn num_params(&self) -> u64 {
        self.num_layers as u64 * self.layer_params()
            + self.embedding_params()
            + self.hidden_size as u64
    }
}

/// SmolLM2-135M (the demo model): V 49,152, C 576, I 1,536, L 30, H 9, K 3, D 64, tied.
#[cfg(test)]
pub(super) fn smollm2() -> ModelDims {
    ModelDims {
        vocab_size: 49_152,
        hidden_size: 576,
        intermediate_size: 1536,
        num_layers: 30,
        num_heads: 9,
        num_kv_heads: 3,
        head_dim: 64,
        rotary_dim: 64,
        tie_word_embeddings: true,
        fused_qkv: false,
        fused_gate_up: false,
        qkv_bias: false,
        o_bias: false,
        mlp_bias: false,
        qk_norm: false,
        silu: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smollm2_has_134_5_million_parameters() {
        // HF reports 134,515,008 for SmolLM2-135M (tied head).
        assert_eq!(smollm2().num_params(), 134_515_008);
    }
}
