//! The bytes a run holds, part by part and phase by phase, and its peak ([`estimate_memory`]).
//!
//! Weights, gradients and optimizer states follow ZeRO's accounting of bytes per parameter
//! (Rajbhandari et al. 2020, "ZeRO: Memory Optimizations Toward Training Trillion Parameter
//! Models", §3.1: parameters, gradients and Adam's two moments), in f32 here, so
//! 4 + 4 + 8 = 16 bytes per trainable parameter:
//!
//! - **frozen weights** `4·P_frozen`: every weight that does not train (LoRA: the whole base
//!   model);
//! - **trainable weights** `4·P_train`: LoRA's A `[r, in]` and B `[out, r]` on every targeted
//!   projection, or every weight for `full` ([`crate::tuning::full_params`] copies them into
//!   [`candle_core::Var`]s and drops the originals);
//! - **gradients** `4·P_train`: the [`crate::recompute::GradAccumulator`] holds one summed
//!   gradient per trainable tensor until the optimizer step;
//! - **AdamW states** `8·P_train`: `exp_avg` and `exp_avg_sq` ([`crate::optim::AdamW`],
//!   allocated zeroed at setup and first written by step 1: resident from step 2 on, which is
//!   what this estimate assumes), updated in place.
//!
//! Activations are one layer's table ([`super::activations`]) times N = B·T tokens, combined
//! by the way backward runs:
//!
//! - without checkpointing ([`crate::recompute::full_graph_backward`]): all L layers' graphs
//!   and the final norm's, the gradients candle makes for constant operands of every layer,
//!   and one layer's gradients in flight ([`layer_backward_in_flight`]);
//! - with checkpointing ([`crate::recompute::checkpointed_backward`]): the L saved layer
//!   inputs `[N, C]`, one layer's recompute graph and its backward in flight.
//!
//! Both take the loss by `ferrotune_model::loss::chunked_causal_lm_loss`, whose workspace is
//! two `[rows, V]` chunks of logits (`ferrotune_model::loss::LOSS_CHUNK_BYTES` each) and the
//! `[N, C]` hidden-state gradients; the full `[N, V]` logits are never held.
//!
//! The peak is the largest of the run's phases ([`Phase`]): loading (f32 weights plus the
//! model file being read), the full-tuning copy (two copies of the weights), the backward
//! through the loss and LM head, through the layers, and (full tuning with checkpointing)
//! through the embedding. **runtime** is the measured resident size of the process after
//! loading the tokenizer and running the matmul kernels (binary, libraries, thread pools,
//! tokenizer), plus the dataset files' size, plus
//! [`ALLOCATOR_SLACK_BYTES`](super::runtime::ALLOCATOR_SLACK_BYTES) (see [`super::runtime`]).

use ferrotune_model::loss::LOSS_CHUNK_BYTES;

use super::activations::{constant_operand_grads, layer_activations, layer_backward_in_flight};
use super::model_dims::ModelDims;
use super::plan::{FusedKernels, RunShape, TuningPlan};

/// Bytes of one f32.
const F32: u64 = 4;

/// Rows of logits per chunk of the chunked loss (`ferrotune_model::loss::loss_chunk_rows`).
fn loss_chunk_rows(v: usize) -> u64 {
    (LOSS_CHUNK_BYTES / (4 * v.max(1))).max(1) as u64
}

/// One moment of a run and what is alive then, in bytes (weights and optimizer states
/// included; the runtime is added to every phase).
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    /// What runs.
    pub name: &'static str,
    /// `(part, bytes)` alive during it.
    pub parts: Vec<(&'static str, u64)>,
}

impl Phase {
    /// Bytes of the phase's parts.
    pub fn bytes(&self) -> u64 {
        self.parts.iter().map(|(_, b)| b).sum()
    }
}

/// The memory estimate of a run, bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryEstimate {
    /// Frozen weights.
    pub frozen_weights: u64,
    /// Trainable weights.
    pub trainable_weights: u64,
    /// Gradients (one per trainable value).
    pub gradients: u64,
    /// AdamW's two moments.
    pub optimizer_states: u64,
    /// Runtime: binary, libraries, tokenizer, dataset, allocator slack.
    pub runtime: u64,
    /// Activations with checkpointing: saved inputs, one layer's graph, its backward in
    /// flight and its constant-operand gradients.
    pub activations_checkpointed: u64,
    /// Activations without checkpointing: all layers' graphs and constant-operand gradients,
    /// one layer's backward in flight.
    pub activations_full_graph: u64,
    /// Loss workspace with checkpointing (chunks of logits, hidden-state gradients, the
    /// head's copy of the last layer output and the final norm's graph).
    pub loss_checkpointed: u64,
    /// Loss workspace without checkpointing (chunks of logits, hidden-state gradients; the
    /// final norm's graph counts with the layers').
    pub loss_full_graph: u64,
    /// Every phase of the run with what it holds besides the runtime.
    pub phases: Vec<Phase>,
    /// Index of the largest phase in `phases`.
    pub peak_phase: usize,
    /// Peak resident bytes: runtime + the largest phase.
    pub total: u64,
}

/// What the estimate needs besides the model and the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EstimateContext {
    /// Bytes of the model file(s) read while loading (GGUF or safetensors).
    pub model_file_bytes: u64,
    /// Runtime bytes: the resident size of a process that holds the tokenizer, plus the
    /// dataset, plus the allocator slack.
    pub runtime_bytes: u64,
}

/// The memory a run of `plan` on `d` at `shape` needs at its peak (see the module docs for
/// every formula): the runtime plus the largest of its phases.
pub fn estimate_memory(
    d: &ModelDims,
    plan: &TuningPlan,
    shape: RunShape,
    kernels: FusedKernels,
    ctx: EstimateContext,
) -> MemoryEstimate {
    let n = shape.tokens();
    let (b, t) = (shape.batch as u64, shape.seq as u64);
    let (c, v, l) = (
        d.hidden_size as u64,
        d.vocab_size as u64,
        d.num_layers as u64,
    );
    let p_all = d.num_params();
    let p_train: u64 = match plan {
        TuningPlan::Full => p_all,
        TuningPlan::Lora { .. } => {
            l * d
                .projections()
                .iter()
                .filter_map(|p| plan.adapts(p).map(|r| (r * (p.inp + p.out)) as u64))
                .sum::<u64>()
        }
    };
    let full = matches!(plan, TuningPlan::Full);
    let weights = F32 * p_all;
    let frozen_weights = if full { 0 } else { weights };
    let trainable_weights = F32 * p_train;
    let gradients = F32 * p_train;
    let optimizer_states = 2 * F32 * p_train;
    let head_grad = if full { F32 * v * c } else { 0 };
    let resident = || {
        vec![
            ("frozen weights", frozen_weights),
            ("trainable weights", trainable_weights),
            ("AdamW states", optimizer_states),
        ]
    };

    let layer = layer_activations(d, plan, kernels);
    let layer_graph = F32 * n * layer.per_token(shape.seq);
    let in_flight = F32 * n * layer_backward_in_flight(d, shape.seq, kernels);
    let layer_junk = F32 * n * constant_operand_grads(d, plan, shape.seq, kernels);
    let hidden = F32 * n * c; // one [N, C] tensor
    let norm_graph = F32 * n * if kernels.rms_norm { c + 1 } else { 3 * c + 5 };
    // The final norm's frozen weight gets a [N, C] gradient too (LoRA, generic norm).
    let norm_junk = if full || kernels.rms_norm { 0 } else { hidden };
    // The attention mask [B, 1, T, T], shared by every layer of a micro-batch.
    let mask = F32 * b * t * t;

    // The loss, with or without checkpointing (`chunked_causal_lm_loss`): two [rows, V]
    // chunks of logits alive (the matmul output and its copy into a Vec), the per-chunk
    // hidden-state gradients (N·C in all) and their index_add into a zeroed [N, C] (two
    // alive); the head's gradient, its chunk product and their sum when the head trains.
    let scored = b * t.saturating_sub(1);
    let rows = loss_chunk_rows(d.vocab_size).min(scored.max(1));
    let loss_workspace = 2 * F32 * rows * v + 3 * hidden;
    // Backward of the final norm and of each recomputed layer is `sum(out ⊙ upstream)`: the
    // upstream [N, C] is held by the caller and gets a gradient of its own (see
    // `constant_operand_grads`).
    let upstream = 2 * hidden;

    // Without checkpointing: every layer's graph and the final norm's, kept until the
    // backward from the normed hidden states returns.
    let all_graphs = l * layer_graph + norm_graph + mask;
    let all_junk = l * layer_junk + norm_junk;
    let activations_full_graph = l * (layer_graph + layer_junk) + norm_graph + in_flight + mask;

    // With checkpointing: L saved inputs plus the last output, the head's leaf copy of it and
    // the final norm's graph; then one layer's recompute graph at a time.
    let saved = (l + 1) * hidden;
    let loss_checkpointed = loss_workspace + hidden + norm_graph;
    let activations_checkpointed = saved + layer_graph + in_flight + layer_junk + upstream + mask;

    let mut phases = vec![Phase {
        name: "loading the model (f32 weights, model file read)",
        parts: vec![
            ("f32 weights", weights),
            ("model file being read", ctx.model_file_bytes),
        ],
    }];
    if full {
        // full_params copies every weight into a Var before the originals are dropped.
        phases.push(Phase {
            name: "making the weights trainable (two copies)",
            parts: vec![("f32 weights", weights), ("trainable copies", weights)],
        });
    }
    let with = |name, extra: Vec<(&'static str, u64)>| {
        let mut parts = resident();
        parts.extend(extra);
        Phase { name, parts }
    };
    if shape.checkpointing {
        phases.push(with(
            "backward through the chunked loss and LM head",
            vec![
                ("saved layer inputs", saved),
                ("logits/loss workspace", loss_checkpointed),
                ("attention mask", mask),
                ("gradients", 3 * head_grad),
            ],
        ));
        phases.push(with(
            "backward through a recomputed layer",
            vec![
                ("saved layer inputs", saved),
                ("one layer's graph", layer_graph),
                ("gradients in flight", in_flight + upstream),
                ("constant-operand gradients", layer_junk),
                ("attention mask", mask),
                ("gradients", gradients),
            ],
        ));
        if full {
            // The embedding's own pass: its GradStore's [V, C] (index_add into zeros) and the
            // accumulator's sum with the head's gradient, beside every other gradient.
            phases.push(with(
                "backward through the embedding",
                vec![
                    ("gradients", gradients + 2 * head_grad),
                    ("gradients in flight", 3 * hidden),
                ],
            ));
        }
    } else {
        phases.push(with(
            "backward through the chunked loss and LM head",
            vec![
                ("all layers' graphs", all_graphs),
                ("logits/loss workspace", loss_workspace),
                ("gradients", 3 * head_grad),
            ],
        ));
        phases.push(with(
            "backward through the layers",
            vec![
                ("all layers' graphs", all_graphs),
                ("gradients in flight", in_flight + upstream),
                ("constant-operand gradients", all_junk),
                // The embedding's index_add makes one more [V, C] at the end.
                ("gradients", gradients + head_grad),
            ],
        ));
    }
    let (peak_phase, peak) = phases
        .iter()
        .enumerate()
        .map(|(i, p)| (i, p.bytes()))
        .max_by_key(|&(_, b)| b)
        .unwrap_or((0, 0));
    MemoryEstimate {
        frozen_weights,
        trainable_weights,
        gradients,
        optimizer_states,
        runtime: ctx.runtime_bytes,
        activations_checkpointed,
        activations_full_graph,
        loss_checkpointed,
        loss_full_graph: loss_workspace,
        phases,
        peak_phase,
        total: ctx.runtime_bytes + peak,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::model_dims::smollm2;

    #[test]
    fn lora_r8_on_all_projections_of_smollm2() {
        // Per layer r·(in + out): q, o 8·1152; k, v 8·768; gate, up, down 8·2112.
        let plan = TuningPlan::Lora {
            rank: 8,
            targets: vec!["all".into()],
            dropout: 0.0,
            dora: false,
        };
        let shape = RunShape {
            batch: 1,
            seq: 128,
            checkpointing: true,
        };
        let ctx = EstimateContext {
            model_file_bytes: 0,
            runtime_bytes: 0,
        };
        let m = estimate_memory(&smollm2(), &plan, shape, FusedKernels::none(), ctx);
        assert_eq!(m.trainable_weights, 4 * 30 * 81_408);
        assert_eq!(m.optimizer_states, 2 * m.trainable_weights);
    }
}
