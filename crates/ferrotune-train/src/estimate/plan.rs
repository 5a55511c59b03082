//! What a run trains ([`TuningPlan`]), its batch shape ([`RunShape`]) and which fused
//! training kernels its layers run ([`FusedKernels`]).

use super::model_dims::{ModelDims, Projection};

/// What trains.
#[derive(Debug, Clone, PartialEq)]
pub enum TuningPlan {
    /// LoRA adapters of rank `rank` on the projections named in `targets` (leaf names, or
    /// `all`), dropout `dropout` on their input.
    Lora {
        /// r.
        rank: usize,
        /// `lora_target`.
        targets: Vec<String>,
        /// `lora_dropout`.
        dropout: f64,
        /// `use_dora`: DoRA's magnitude and norm ops take the generic path.
        dora: bool,
    },
    /// Every weight trains.
    Full,
}

impl TuningPlan {
    /// Whether `p` carries an adapter: `all`, its leaf name, or a dotted module path that
    /// ends with it (`self_attn.q_proj`; the model matches such a path as a suffix of the
    /// module's full path). A path naming one layer (`model.layers.0.self_attn.q_proj`)
    /// is counted in every layer, an overestimate: the estimate is per layer type.
    pub(super) fn adapts(&self, p: &Projection) -> Option<usize> {
        match self {
            TuningPlan::Lora { rank, targets, .. } => targets
                .iter()
                .any(|t| t == "all" || t.rsplit('.').next() == Some(p.name))
                .then_some(*rank),
            TuningPlan::Full => None,
        }
    }
}

/// Batch shape and checkpointing of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunShape {
    /// B.
    pub batch: usize,
    /// T.
    pub seq: usize,
    /// Gradient checkpointing per decoder layer.
    pub checkpointing: bool,
}

impl RunShape {
    /// N = B·T.
    pub fn tokens(&self) -> u64 {
        (self.batch * self.seq) as u64
    }
}

/// Which of `ferrotune-model`'s fused training kernels (`ferrotune_model::kernels`) a layer
/// runs; each one replaces a chain of generic candle ops and what that chain keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FusedKernels {
    /// RMSNorm as one op keeping its output and `1/rms` per row.
    pub rms_norm: bool,
    /// RoPE and tiled causal attention with an online softmax (no `[T, T]` kept; the
    /// log-sum-exp per query row instead); needs separate q/k/v projections.
    pub attention: bool,
    /// `silu(gate) ⊙ up` as one op (SiLU models).
    pub swiglu: bool,
    /// Base product and low-rank path as one op per adapted projection (plain LoRA, no
    /// active dropout, every projection of the group adapted).
    pub lora: bool,
    /// q, k and v projections and RoPE as one op (`kernels::lora_block`) whose output the
    /// attention reads as it lies: fused attention, plain LoRA on all three bias-free
    /// projections, no q/k norms; the un-rotated q and k are not kept.
    pub qkv_rope: bool,
    /// `o_proj` and the attention's residual sum as one op (`kernels::lora_block`): fused
    /// attention and plain LoRA on a bias-free `o_proj`; its output is not kept.
    pub o_residual: bool,
    /// `down_proj` and the MLP's residual sum as one op (`kernels::lora_block`): plain LoRA
    /// on a bias-free `down_proj`; its output is not kept.
    pub down_residual: bool,
    /// Besides `down_residual`, gate and up side by side as one op and the SwiGLU gate inside
    /// the `down_proj` op: the gate's `[N, I]` output is not kept. SiLU, separate gate and
    /// up, plain LoRA on both, no biases.
    pub mlp_block: bool,
}

impl FusedKernels {
    /// What `ferrotune-model` runs for `d` and `plan` when its kernels are on
    /// (`ferrotune_model::kernels::fused()`; `FERROTUNE_FUSED_KERNELS=0` turns them off): the
    /// conditions of `RmsNorm::forward`, `Attention::forward_fused`, `Mlp::forward`,
    /// `Mlp::forward_residual` and `kernels::lora::fused_forward_many` for f32 tensors on the
    /// CPU.
    pub fn for_model(d: &ModelDims, plan: &TuningPlan, on: bool) -> Self {
        let plain_lora =
            matches!(plan, TuningPlan::Lora { dropout, dora, .. } if *dropout <= 0.0 && !*dora);
        let adapted = |names: &[&str]| {
            names.iter().all(|n| {
                d.projections()
                    .iter()
                    .any(|p| p.name == *n && !p.bias && plan.adapts(p).is_some())
            })
        };
        let lora = on && plain_lora;
        let attention = on && !d.fused_qkv;
        FusedKernels {
            rms_norm: on,
            attention,
            swiglu: on && d.silu,
            lora,
            qkv_rope: lora && attention && !d.qk_norm && adapted(&["q_proj", "k_proj", "v_proj"]),
            o_residual: lora && attention && adapted(&["o_proj"]),
            down_residual: lora && adapted(&["down_proj"]),
            mlp_block: lora
                && d.silu
                && !d.fused_gate_up
                && adapted(&["gate_proj", "up_proj", "down_proj"]),
        }
    }

    /// None of the kernels: the generic op-by-op path.
    pub fn none() -> Self {
        FusedKernels {
            rms_norm: false,
            attention: false,
            swiglu: false,
            lora: false,
            qkv_rope: false,
            o_residual: false,
            down_residual: false,
            mlp_block: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lora(targets: &[&str]) -> TuningPlan {
        TuningPlan::Lora {
            rank: 8,
            targets: targets.iter().map(|t| t.to_string()).collect(),
            dropout: 0.0,
            dora: false,
        }
    }

    /// A dotted module path adapts the projection its last component names, as a leaf name
    /// does; a path whose last component is another name (or a prefix of it) does not.
    #[test]
    fn dotted_targets_adapt_their_leaf() {
        let q = Projection {
            name: "q_proj",
            inp: 576,
            out: 576,
            bias: false,
        };
        for t in [
            "q_proj",
            "self_attn.q_proj",
            "model.layers.0.self_attn.q_proj",
            "all",
        ] {
            assert_eq!(lora(&[t]).adapts(&q), Some(8), "{t}");
        }
        for t in ["k_proj", "self_attn.q", "q_proj.lora_A", "self_attn"] {
            assert_eq!(lora(&[t]).adapts(&q), None, "{t}");
        }
        assert_eq!(TuningPlan::Full.adapts(&q), None);
    }
}
