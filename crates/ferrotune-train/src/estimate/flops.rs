//! Training FLOPs per token ([`estimate_flops`]) and the matmul rate that turns them into an
//! expected step time ([`measure_matmul_gflops`]).
//!
//! FLOPs per token as Kaplan et al. 2020 ("Scaling Laws for Neural Language Models", §2.1,
//! Table 1) and Hoffmann et al. 2022 ("Training Compute-Optimal Large Language Models",
//! Appendix F): a matmul with a `[out, in]` weight costs `2·in·out` per token forward; the
//! backward computes the input gradient (`2·in·out`) and, when the weight trains, the weight
//! gradient (`2·in·out`), hence `C ≈ 6·P` per token for full fine-tuning. With a frozen base
//! (LoRA), ferrotune's `matmul_wt` and fused LoRA op compute only the input gradient, so the
//! base costs `4·P` and the adapters `6·r·(in + out)` each (the fused op's recomputed `x·Aᵀ`,
//! `2·r·in`, is not counted). Attention adds `4·T·H·D` per token and layer forward (`Q·Kᵀ`
//! and `P·V` over the full `T×T` scores, as the generic path computes them; the fused
//! kernel skips the masked half) and twice that backward. Checkpointing runs every layer's
//! forward once more. The expected step time divides by the machine's f32 matmul rate
//! measured at startup ([`measure_matmul_gflops`]): a lower bound, since not every op runs at
//! matmul speed.

use candle_core::{Device, Tensor};

use super::model_dims::ModelDims;
use super::plan::{RunShape, TuningPlan};
use crate::error::TrainError;

/// Training FLOPs per token (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlopsEstimate {
    /// Forward: `2·(P_matmul)` plus attention `4·L·T·H·D`.
    pub forward: f64,
    /// Backward: input gradients everywhere, weight gradients of trainable weights,
    /// attention twice its forward.
    pub backward: f64,
    /// The extra layer forwards of checkpointing.
    pub recompute: f64,
    /// `6·P` (Kaplan et al. 2020) for comparison.
    pub six_n: f64,
}

impl FlopsEstimate {
    /// Forward + backward + recompute.
    pub fn total(&self) -> f64 {
        self.forward + self.backward + self.recompute
    }
}

/// FLOPs per trained token of `plan` on `d` at `shape`.
pub fn estimate_flops(d: &ModelDims, plan: &TuningPlan, shape: RunShape) -> FlopsEstimate {
    let l = d.num_layers as f64;
    let full = matches!(plan, TuningPlan::Full);
    let mut layer_fwd = 0.0;
    let mut layer_bwd = 0.0;
    for p in d.projections() {
        let w = (p.inp * p.out) as f64;
        layer_fwd += 2.0 * w;
        layer_bwd += if full { 4.0 * w } else { 2.0 * w };
        if let Some(r) = plan.adapts(&p) {
            let a = (r * (p.inp + p.out)) as f64;
            layer_fwd += 2.0 * a;
            layer_bwd += 4.0 * a;
        }
    }
    let attn = 4.0 * (shape.seq * d.num_heads * d.head_dim) as f64;
    layer_fwd += attn;
    layer_bwd += 2.0 * attn;
    let head = 2.0 * (d.vocab_size * d.hidden_size) as f64;
    let head_bwd = if full { 2.0 * head } else { head };
    FlopsEstimate {
        forward: l * layer_fwd + head,
        backward: l * layer_bwd + head_bwd,
        recompute: if shape.checkpointing {
            l * layer_fwd
        } else {
            0.0
        },
        six_n: 6.0 * d.num_params() as f64,
    }
}

/// The f32 matmul rate of this machine in GFLOP/s: the best of `repeats` products of two
/// `[n, n]` matrices (2·n³ FLOPs each), after one warm-up. On the CPU they run where
/// training's large products run ([`ferrotune_model::kernels::matmul_nt`]: oneDNN when it
/// loads, else the gemm crate); on other devices through candle.
///
/// Errors: [`TrainError::Candle`].
pub fn measure_matmul_gflops(device: &Device, n: usize, repeats: usize) -> Result<f64, TrainError> {
    let a = Tensor::randn(0f32, 1.0, (n, n), device)?;
    let b = Tensor::randn(0f32, 1.0, (n, n), device)?;
    let (av, bv) = if device.is_cpu() {
        (
            a.flatten_all()?.to_vec1::<f32>()?,
            b.flatten_all()?.to_vec1::<f32>()?,
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let product = || -> Result<(), TrainError> {
        if device.is_cpu() {
            std::hint::black_box(ferrotune_model::kernels::matmul_nt(&av, &bv, n, n, n)?);
        } else {
            a.matmul(&b)?.device().synchronize()?;
        }
        Ok(())
    };
    product()?;
    let mut best = f64::INFINITY;
    for _ in 0..repeats.max(1) {
        let start = std::time::Instant::now();
        product()?;
        best = best.min(start.elapsed().as_secs_f64());
    }
    Ok(2.0 * (n as f64).powi(3) / best.max(1e-9) / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::model_dims::smollm2;

    #[test]
    fn full_tuning_costs_about_six_n_flops() {
        let shape = RunShape {
            batch: 1,
            seq: 128,
            checkpointing: false,
        };
        let f = estimate_flops(&smollm2(), &TuningPlan::Full, shape);
        // Matmul weights are P less the tied embedding's lookup and the norms, plus the head:
        // within 2% of 6·P, plus attention's 12·L·T·H·D.
        let attn = 12.0 * 30.0 * 128.0 * 576.0;
        let rel = ((f.total() - attn) / f.six_n - 1.0).abs();
        assert!(rel < 0.02, "6N off by {rel}");
    }
}
