//! What one decoder layer keeps alive for backward, and the gradients its backward holds.
//!
//! Activations follow the per-layer accounting of Korthikanti et al. 2022 ("Reducing
//! Activation Recomputation in Large Transformer Models", §4.1: each tensor a block keeps
//! for backward, summed per layer; `sbh(34 + 5as/h)` bytes for a GPT block in 16-bit), adapted
//! to f32 and to what candle keeps: candle's autograd holds **every op output** of the graph
//! until the output tensor is dropped (each op keeps its inputs alive), including tensors
//! PyTorch would free or never save. The per-layer table is [`LayerActivations`], built by
//! [`layer_activations`] from the ops of `ferrotune-model`'s `DecoderLayer::forward`, for the
//! generic op-by-op path and for the fused kernels of `ferrotune_model::kernels`
//! ([`FusedKernels`]; on unless `FERROTUNE_FUSED_KERNELS=0`) — the one place to update when a
//! kernel changes what a layer keeps. With generic attention the `[B, H, T, T]` scores
//! dominate (6 kept per layer, plus the mask's and the softmax max's gradients, see
//! [`constant_operand_grads`]); the fused tiled attention keeps none.
//!
//! Backward adds one layer's gradients in flight ([`layer_backward_in_flight`]) and the
//! gradients candle makes for constant operands ([`constant_operand_grads`]); how these
//! combine into a run's phases is [`super::memory`]'s business.
//!
//! Every count here is in f32 values **per token** (multiply by N = B·T and 4 bytes).

use super::model_dims::ModelDims;
use super::plan::{FusedKernels, TuningPlan};

/// What one decoder layer keeps alive for backward, in f32 values **per token** (multiply by
/// N and 4 bytes), op by op as `DecoderLayer::forward` runs them through candle's autograd
/// (every op output referenced by a later op stays alive; reshapes of contiguous tensors,
/// transposes, narrows and same-dtype casts are views and cost nothing).
///
/// This is the single place that describes the layer's activations (built by
/// [`layer_activations`]): when a kernel changes what a group of ops keeps, change the field
/// that counts them there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LayerActivations {
    /// Two RMSNorms. Generic: `x²`, `x·inv_rms` and `·w` `[N, C]` (3C) plus five `[N, 1]`
    /// row statistics (sum, mean, +ε, sqrt, recip); fused: the output and `1/rms` (C + 1).
    /// qwen3's q/k norms the same on `[N, H·D]` and `[N, K·D]`.
    pub norms: u64,
    /// Every projection's output `x·Wᵀ` (plus `+ b` when biased): Σ out (also the output of
    /// a fused LoRA projection), less `o_proj`'s and `down_proj`'s C each when their fused
    /// residual ops apply (the op's output is the residual sum, counted in `residuals`).
    pub projections: u64,
    /// Generic LoRA on a projection: `x·Aᵀ` `[N, r]`, `·Bᵀ`, `·s` and `base + lora`
    /// `[N, out]` (r + 3·out); with dropout also the mask and `x·mask` `[N, in]`. Fused: 0.
    pub adapters: u64,
    /// Generic attention: `[B, T, heads, D]` → `[B, heads, T, D]` contiguous copies of q, k, v
    /// (H·D + 2·K·D), with a fused qkv also the reshapes of its narrowed outputs (again
    /// H·D + 2·K·D). Fused: 0 (the kernels read the projections' layout).
    pub head_layout: u64,
    /// RoPE on q and k per head. Generic: `−x₂` (D_rot/2), `cat` (D_rot), `·cos`, `·sin`, `+`
    /// (3·D_rot), plus a `cat` with the unrotated part (D) when D_rot < D. Fused: the output
    /// (D); in the q/k/v op none (its output, counted in `projections`, is rotated).
    pub rope: u64,
    /// Generic attention scores per key position (multiply by T): `Q·Kᵀ`, `·1/√D`, `+ mask`,
    /// `− max`, `exp`, `/ Σ` — six `[B, H, T, T]` tensors — i.e. 6·H per token per key.
    /// Fused: 0.
    pub scores_per_key: u64,
    /// Softmax row statistics: generic max and sum `[B, H, T, 1]` (2·H); fused the
    /// log-sum-exp (H).
    pub score_stats: u64,
    /// `P·V`, plus (generic) its `[B, T, H·D]` reshape copy: 2·H·D generic, H·D fused.
    pub attention_out: u64,
    /// The two residual sums `[N, C]` (2C).
    pub residuals: u64,
    /// Generic `act(gate)` and `act(gate) · up` `[N, I]` (2I); fused SwiGLU one `[N, I]`;
    /// the fused MLP block none (its last op recomputes the gate in backward).
    pub mlp: u64,
}

impl LayerActivations {
    /// Values kept per token at sequence length `t`.
    pub fn per_token(&self, t: usize) -> u64 {
        self.norms
            + self.projections
            + self.adapters
            + self.head_layout
            + self.rope
            + self.scores_per_key * t as u64
            + self.score_stats
            + self.attention_out
            + self.residuals
            + self.mlp
    }
}

/// The activation table of one layer of `d` tuned as `plan` with `kernels` (see
/// [`LayerActivations`]).
pub fn layer_activations(
    d: &ModelDims,
    plan: &TuningPlan,
    kernels: FusedKernels,
) -> LayerActivations {
    let (c, i) = (d.hidden_size as u64, d.intermediate_size as u64);
    let (h, k, hd) = (d.num_heads as u64, d.num_kv_heads as u64, d.head_dim as u64);
    let (qw, kvw) = (h * hd, k * hd);
    let norm = |width: u64, rows: u64| {
        if kernels.rms_norm {
            width + rows
        } else {
            3 * width + 5 * rows
        }
    };
    let mut a = LayerActivations {
        norms: 2 * norm(c, 1),
        ..Default::default()
    };
    if d.qk_norm {
        a.norms += norm(qw, h) + norm(kvw, k);
    }
    let dropout = matches!(plan, TuningPlan::Lora { dropout, .. } if *dropout > 0.0);
    for p in d.projections() {
        let out = p.out as u64;
        a.projections += if p.bias { 2 * out } else { out };
        if let Some(r) = plan.adapts(&p) {
            if !kernels.lora {
                a.adapters += r as u64 + 3 * out;
                if dropout {
                    a.adapters += 2 * p.inp as u64;
                }
            }
        }
    }
    let rot = d.rotary_dim as u64;
    if kernels.attention {
        a.rope = if kernels.qkv_rope { 0 } else { qw + kvw };
        a.score_stats = h;
        a.attention_out = qw;
    } else {
        a.head_layout = qw + 2 * kvw;
        if d.fused_qkv {
            a.head_layout += qw + 2 * kvw;
        }
        let per_head = rot / 2 + rot + 3 * rot + if rot < hd { hd } else { 0 };
        a.rope = (h + k) * per_head;
        a.scores_per_key = 6 * h;
        a.score_stats = 2 * h;
        a.attention_out = 2 * qw;
    }
    a.residuals = 2 * c;
    if kernels.o_residual {
        a.projections -= c;
    }
    if kernels.down_residual {
        a.projections -= c;
    }
    a.mlp = if kernels.mlp_block {
        0
    } else if kernels.swiglu {
        i
    } else {
        2 * i
    };
    a
}

/// Gradients in flight while candle backpropagates through one layer, in f32 values per
/// token at sequence length `t`: at the softmax's `/ Σ` (generic attention) and at the MLP's
/// `act(gate) · up` (generic or fused) candle's `Div`/`Mul`/custom-op backward holds the
/// upstream gradient, both operand gradients and their running sums (`zeros + grad`) plus
/// temporaries (`grad·lhs`, `rhs²`): six buffers of the larger of the `[B, H, T, T]` scores
/// (generic attention only) and the `[N, I]` MLP activations; plus the `[N, C]` upstream
/// gradient of the layer output and the one it passes down (2C).
pub fn layer_backward_in_flight(d: &ModelDims, t: usize, kernels: FusedKernels) -> u64 {
    let scores = if kernels.attention {
        0
    } else {
        (d.num_heads * t) as u64
    };
    6 * scores.max(d.intermediate_size as u64) + 2 * d.hidden_size as u64
}

/// Gradients candle computes for operands that track nothing, per layer, in f32 values per
/// token at sequence length `t`. candle's `Add`/`Sub`/`Mul` backward makes a gradient for
/// both operands whether or not they need one, and a gradient of a tensor outside the graph
/// is never consumed, so it stays in the `GradStore` until `backward()` returns. Generic
/// attention: the mask and the detached softmax max (`[B, H, T, T]` each, 2·H·T), RoPE's
/// `cos` and `sin` for q and k (2·(H + K)·D_rot); generic RMSNorm with a frozen weight: 2C
/// (plus the q/k norms); frozen projection biases: out each. The fused kernels are custom ops
/// that capture their constants and make none.
pub fn constant_operand_grads(
    d: &ModelDims,
    plan: &TuningPlan,
    t: usize,
    kernels: FusedKernels,
) -> u64 {
    let (h, k) = (d.num_heads as u64, d.num_kv_heads as u64);
    let mut g = 0;
    if !kernels.attention {
        g += 2 * h * t as u64 + 2 * (h + k) * d.rotary_dim as u64;
    }
    if matches!(plan, TuningPlan::Lora { .. }) {
        if !kernels.rms_norm {
            g += 2 * d.hidden_size as u64;
            if d.qk_norm {
                g += (h + k) * d.head_dim as u64;
            }
        }
        g += d
            .projections()
            .iter()
            .filter(|p| p.bias)
            .map(|p| p.out as u64)
            .sum::<u64>();
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::model_dims::smollm2;

    #[test]
    fn smollm2_layer_table_generic_and_fused() {
        let plan = TuningPlan::Lora {
            rank: 8,
            targets: vec!["all".into()],
            dropout: 0.0,
            dora: false,
        };
        // The generic layer table: 34,040 values per token besides the 54·T of the scores.
        let a = layer_activations(&smollm2(), &plan, FusedKernels::none());
        assert_eq!(a.per_token(0) - a.score_stats - 10, 34_040);
        assert_eq!(a.scores_per_key, 54);
        // Fused: norms 2·(576 + 1), projections 5,184 less o_proj's and down_proj's 576
        // (their residual ops), no separate RoPE output, attention 576 + 9, residuals 1,152,
        // no gate output; nothing grows with T.
        let fused = FusedKernels::for_model(&smollm2(), &plan, true);
        assert!(fused.qkv_rope && fused.o_residual && fused.down_residual && fused.mlp_block);
        let a = layer_activations(&smollm2(), &plan, fused);
        assert_eq!(a.per_token(128), a.per_token(4096));
        assert_eq!(a.per_token(0), 1154 + 5184 - 2 * 576 + 585 + 1152);
        // LoRA on q and v only (LLaMA-Factory's old default): no block applies; the RoPE
        // outputs (768), the SwiGLU output (1,536) and both projection outputs stay.
        let qv = TuningPlan::Lora {
            rank: 8,
            targets: vec!["q_proj".into(), "v_proj".into()],
            dropout: 0.0,
            dora: false,
        };
        let fused = FusedKernels::for_model(&smollm2(), &qv, true);
        assert!(!fused.qkv_rope && !fused.o_residual && !fused.down_residual);
        let a = layer_activations(&smollm2(), &qv, fused);
        assert_eq!(a.per_token(0), 1154 + 5184 + 768 + 585 + 1152 + 1536);
        // qwen2-shaped (biased q/k/v): only the q/k/v op is off, its RoPE outputs stay.
        let mut biased = smollm2();
        biased.qkv_bias = true;
        let fused = FusedKernels::for_model(&biased, &plan, true);
        assert!(!fused.qkv_rope && fused.o_residual && fused.mlp_block);
        let a = layer_activations(&biased, &plan, fused);
        let biases = 576 + 2 * 192;
        assert_eq!(
            a.per_token(0),
            1154 + 5184 + biases - 2 * 576 + 768 + 585 + 1152
        );
        // LoRA on down_proj only: its op with the residual sum, but the gate output stays.
        let down = TuningPlan::Lora {
            rank: 8,
            targets: vec!["down_proj".into()],
            dropout: 0.0,
            dora: false,
        };
        let fused = FusedKernels::for_model(&smollm2(), &down, true);
        assert!(fused.down_residual && !fused.mlp_block && !fused.o_residual);
        // DoRA takes none of the fused LoRA paths.
        let dora = TuningPlan::Lora {
            rank: 8,
            targets: vec!["all".into()],
            dropout: 0.0,
            dora: true,
        };
        let fused = FusedKernels::for_model(&smollm2(), &dora, true);
        assert!(!fused.lora && !fused.qkv_rope && !fused.down_residual && !fused.mlp_block);
    }
}
