//! The gated MLP of LLaMA-style blocks (Shazeer 2020, "GLU Variants Improve
//! Transformer", eq. 6): `down(act(gate(x)) ⊙ up(x))`.

use candle_core::{Tensor, D};

use crate::config::{Activation, ModelConfig};
use crate::error::Result;
use crate::layers::Linear;
use crate::weights::WeightStore;

/// The gate and up projections, separate or fused as the checkpoint stores them.
#[derive(Debug, Clone)]
pub enum GateUp {
    /// `gate_proj` and `up_proj`, each `[I, C]`.
    Separate {
        /// Gate projection.
        gate_proj: Linear,
        /// Up projection.
        up_proj: Linear,
    },
    /// phi3's `gate_up_proj` `[2·I, C]`, gate rows first.
    Fused {
        /// Fused projection.
        gate_up_proj: Linear,
    },
}

/// Gated MLP.
#[derive(Debug, Clone)]
pub struct Mlp {
    /// Gate and up projections.
    pub gate_up: GateUp,
    /// `down_proj` `[C, I]`.
    pub down_proj: Linear,
    /// The activation applied to the gate.
    pub act: Activation,
}

impl Mlp {
    /// Takes `{prefix}.gate_proj/up_proj/down_proj` (or `gate_up_proj` when fused).
    pub fn load(w: &mut WeightStore, prefix: &str, cfg: &ModelConfig) -> Result<Self> {
        let (c, i, bias) = (
            cfg.hidden_size,
            cfg.intermediate_size,
            cfg.switches.mlp_bias,
        );
        let gate_up = if cfg.switches.fused_gate_up {
            GateUp::Fused {
                gate_up_proj: Linear::load(w, &format!("{prefix}.gate_up_proj"), 2 * i, c, bias)?,
            }
        } else {
            GateUp::Separate {
                gate_proj: Linear::load(w, &format!("{prefix}.gate_proj"), i, c, bias)?,
                up_proj: Linear::load(w, &format!("{prefix}.up_proj"), i, c, bias)?,
            }
        };
        Ok(Self {
            gate_up,
            down_proj: Linear::load(w, &format!("{prefix}.down_proj"), c, i, bias)?,
            act: cfg.hidden_act,
        })
    }

    /// Calls `f` with each projection's tensors under `prefix`.
    pub fn visit_tensors(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        match &self.gate_up {
            GateUp::Separate { gate_proj, up_proj } => {
                gate_proj.visit_tensors(&format!("{prefix}.gate_proj"), f);
                up_proj.visit_tensors(&format!("{prefix}.up_proj"), f);
            }
            GateUp::Fused { gate_up_proj } => {
                gate_up_proj.visit_tensors(&format!("{prefix}.gate_up_proj"), f)
            }
        }
        self.down_proj
            .visit_tensors(&format!("{prefix}.down_proj"), f);
    }

    /// `residual + self.forward(x)`, `x` and `residual` `[B, T, C]` → `[B, T, C]`. With a
    /// plain LoRA adapter on `down_proj`, through the fused blocks of
    /// [`crate::kernels::lora_block`], so that the graph does not keep `down_proj`'s output
    /// `[B, T, C]`: `down_proj` and the residual sum are one op, and with a SiLU gate and
    /// separate gate and up projections that carry plain LoRA too, the whole block is one op
    /// ([`crate::kernels::lora_block::lora_mlp_residual`]): the gate output `[B, T, I]` is
    /// not kept, and `[gate | up]` is not a graph node (no gradient buffer for it).
    pub fn forward_residual(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        if let Some(y) = self.fused_residual(x, residual, true)? {
            return Ok(y);
        }
        Ok((residual + self.forward(x)?)?)
    }

    /// The graph of [`Mlp::forward_residual`] built only to be backpropagated (a layer
    /// recomputed for gradient checkpointing): the same gradients, but when the fused blocks
    /// apply the last op skips its products and its *value* is zeros
    /// ([`crate::kernels::lora_block::lora_residual_backward_only`]).
    pub fn forward_residual_for_backward(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        if let Some(y) = self.fused_residual(x, residual, false)? {
            return Ok(y);
        }
        Ok((residual + self.forward(x)?)?)
    }

    /// [`Mlp::forward_residual`] through the fused blocks (`value` false: backward only), or
    /// `None` when `down_proj` does not qualify.
    fn fused_residual(&self, x: &Tensor, residual: &Tensor, value: bool) -> Result<Option<Tensor>> {
        use crate::kernels::lora_block::{
            lora_mlp_residual, lora_projections, lora_residual, lora_residual_backward_only,
            qualifies, Prologue,
        };
        if !qualifies(&self.down_proj) {
            return Ok(None);
        }
        let swiglu_lora = match &self.gate_up {
            GateUp::Separate { gate_proj, up_proj }
                if self.act == Activation::Silu && qualifies(gate_proj) && qualifies(up_proj) =>
            {
                Some((gate_proj, up_proj))
            }
            _ => None,
        };
        if let Some((gate, up)) = swiglu_lora {
            // The whole block as one op: `[gate | up]` is not a node of the graph.
            let layers = (gate, up, &self.down_proj);
            if let Some(y) = lora_mlp_residual(layers, x, residual, value)? {
                return Ok(Some(y));
            }
        }
        let gu = match swiglu_lora {
            Some((gate, up)) => lora_projections(&[gate, up], x)?,
            None => None,
        };
        let (input, pre) = match gu {
            Some(gu) => (gu, Prologue::SwiGlu),
            None => (self.activated(x)?, Prologue::Identity),
        };
        let y = if value {
            lora_residual(&self.down_proj, &input, residual, pre)?
        } else {
            lora_residual_backward_only(&self.down_proj, &input, residual, pre)?
        };
        if let Some(y) = y {
            return Ok(Some(y));
        }
        // The down projection did not take the fused op: finish with the generic ones.
        let h = match pre {
            Prologue::SwiGlu => {
                let i = input.dim(D::Minus1)? / 2;
                (input.narrow(D::Minus1, 0, i)?.silu()? * input.narrow(D::Minus1, i, i)?)?
            }
            Prologue::Identity => input,
        };
        Ok(Some((residual + self.down_proj.forward(&h)?)?))
    }

    /// `x` `[B, T, C]` → `[B, T, C]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.down_proj.forward(&self.activated(x)?)
    }

    /// The input of `down_proj`, `act(gate(x)) ⊙ up(x)`: `x` `[B, T, C]` → `[B, T, I]`.
    fn activated(&self, x: &Tensor) -> Result<Tensor> {
        let (gate, up) = match &self.gate_up {
            GateUp::Separate { gate_proj, up_proj } => {
                let [gate, up]: [Tensor; 2] = Linear::forward_many(&[gate_proj, up_proj], x)?
                    .try_into()
                    .map_err(|_| candle_core::Error::Msg("gate/up outputs".into()))?;
                (gate, up)
            }
            GateUp::Fused { gate_up_proj } => {
                let gu = gate_up_proj.forward(x)?;
                let i = gu.dim(D::Minus1)? / 2;
                (gu.narrow(D::Minus1, 0, i)?, gu.narrow(D::Minus1, i, i)?)
            }
        };
        if self.act == Activation::Silu && (gate.track_op() || up.track_op()) {
            // Training: silu(gate) ⊙ up in one fused pass with a hand-written backward.
            if let Some(h) = crate::kernels::swiglu::swiglu(&gate, &up)? {
                return Ok(h);
            }
        }
        let gate = match self.act {
            Activation::Silu => gate.silu()?,
            Activation::GeluTanh => gate.gelu()?,
            Activation::GeluErf => gate.gelu_erf()?,
        };
        Ok((gate * up)?)
    }
}
