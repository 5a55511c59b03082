//! Fused SwiGLU gate (Shazeer 2020, "GLU Variants Improve Transformer", eq. 6):
//! `h = silu(gate) ⊙ up` with `silu(x) = x · σ(x)` (Elfwing et al. 2018), one pass instead of
//! three tensor ops, and a hand-written backward:
//! `d gate = g ⊙ up ⊙ σ(gate)·(1 + gate·(1 − σ(gate)))`, `d up = g ⊙ silu(gate)`.
//!
//! Shapes: any, `gate` and `up` the same (`[B, T, I]` in the MLP).

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::simd::multiversion;
use super::{cpu_slice, eligible, with_slice};
use crate::error::Result;

/// Elements per rayon task.
const CHUNK: usize = 8192;

/// `silu(gate) ⊙ up` (f32, CPU, same shapes) with its backward; `None` when the fused kernels
/// are off or the inputs do not qualify (use the tensor ops).
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Option<Tensor>> {
    if !eligible(&[gate, up]) || gate.dims() != up.dims() {
        return Ok(None);
    }
    Ok(Some(
        gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu)?,
    ))
}

/// `x · σ(x)` computed as candle's `silu` does: `x / (1 + exp(−x))`.
#[inline(always)]
fn silu(x: f32) -> f32 {
    x / (1.0 + super::exp::exp_f32(-x))
}

multiversion! {
    /// `h = silu(g) · u` elementwise over one chunk (equal lengths).
    pub(crate) fn forward_chunk(h: &mut [f32], g: &[f32], u: &[f32]) {
        for ((h, g), u) in h.iter_mut().zip(g).zip(u) {
            *h = silu(*g) * u;
        }
    }
}

multiversion! {
    /// The gradients of one chunk from the output gradient `d`: `du = d · silu(g)`, `dg = d ·
    /// u · σ(g) · (1 + g · (1 − σ(g)))` (the derivative of `g · σ(g)`).
    pub(crate) fn backward_chunk(dg: &mut [f32], du: &mut [f32], g: &[f32], u: &[f32], d: &[f32]) {
        for ((dg, du), ((x, u), d)) in dg.iter_mut().zip(du.iter_mut()).zip(g.iter().zip(u).zip(d)) {
            let s = 1.0 / (1.0 + super::exp::exp_f32(-x));
            *du = d * silu(*x);
            *dg = d * u * s * (1.0 + x * (1.0 - s));
        }
    }
}

struct SwiGlu;

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "fused-swiglu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = cpu_slice(s1, l1)?;
        let u = cpu_slice(s2, l2)?;
        if g.len() != u.len() {
            candle_core::bail!("fused-swiglu: gate and up differ in size");
        }
        let mut h = vec![0f32; g.len()];
        h.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)))
            .for_each(|(h, (g, u))| forward_chunk(h, g, u));
        Ok((CpuStorage::F32(h), l1.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let n = gate.elem_count();
        let (dg, du) = with_slice(gate, |gs| {
            with_slice(up, |us| {
                with_slice(grad, |ds| {
                    let mut dg = vec![0f32; n];
                    let mut du = vec![0f32; n];
                    dg.par_chunks_mut(CHUNK)
                        .zip(du.par_chunks_mut(CHUNK))
                        .zip(gs.par_chunks(CHUNK))
                        .zip(us.par_chunks(CHUNK).zip(ds.par_chunks(CHUNK)))
                        .for_each(|(((dg, du), gs), (us, ds))| backward_chunk(dg, du, gs, us, ds));
                    (dg, du)
                })
            })
        })???;
        Ok((
            Some(Tensor::from_vec(dg, gate.shape(), gate.device())?),
            Some(Tensor::from_vec(du, up.shape(), up.device())?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{rel_err, test_tensor};
    use candle_core::Var;

    /// Values and both gradients against `gate.silu() * up` through candle's autograd, f32:
    /// within 1e-6 relative (max |Δ| / max |reference|).
    #[test]
    fn matches_the_tensor_ops_values_and_gradients() -> Result<()> {
        let gate = Var::from_tensor(&(test_tensor(&[3, 7, 50], 4) * 6.0)?)?;
        let up = Var::from_tensor(&test_tensor(&[3, 7, 50], 5))?;
        let g = test_tensor(&[3, 7, 50], 6);
        let y_ref = (gate.as_tensor().silu()? * up.as_tensor())?;
        let s_ref = (&y_ref * &g)?.sum_all()?.backward()?;
        let y = crate::kernels::with_fused(true, || swiglu(gate.as_tensor(), up.as_tensor()))?
            .ok_or_else(|| candle_core::Error::Msg("not eligible".into()))?;
        let s = (&y * &g)?.sum_all()?.backward()?;
        assert!(rel_err(&y, &y_ref) < 1e-6);
        for t in [gate.as_tensor(), up.as_tensor()] {
            let (Some(a), Some(b)) = (s.get(t), s_ref.get(t)) else {
                panic!("missing gradient")
            };
            let e = rel_err(a, b);
            assert!(e < 1e-6, "gradient differs by {e}");
        }
        Ok(())
    }

    /// A real kernel gives the same bits on every level this CPU has (simd.rs's claim),
    /// forward and both gradients.
    #[test]
    fn simd_levels_give_the_same_bits() -> Result<()> {
        use crate::kernels::simd::{self, SimdLevel};
        let _guard = simd::LEVEL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let before = simd::level();
        let run = |l| -> Result<Vec<Vec<f32>>> {
            simd::set_level(l);
            let gate = Var::from_tensor(&(test_tensor(&[2, 5, 300], 7) * 12.0)?)?;
            let up = Var::from_tensor(&test_tensor(&[2, 5, 300], 8))?;
            let y = crate::kernels::with_fused(true, || swiglu(gate.as_tensor(), up.as_tensor()))?
                .ok_or_else(|| candle_core::Error::Msg("not eligible".into()))?;
            let g = (&y * &test_tensor(&[2, 5, 300], 9))?
                .sum_all()?
                .backward()?;
            let mut out = vec![y.flatten_all()?.to_vec1::<f32>()?];
            for t in [gate.as_tensor(), up.as_tensor()] {
                let d = g
                    .get(t)
                    .ok_or_else(|| candle_core::Error::Msg("no grad".into()))?;
                out.push(d.flatten_all()?.to_vec1::<f32>()?);
            }
            Ok(out)
        };
        let reference = run(SimdLevel::Portable)?;
        for l in [SimdLevel::Avx2, SimdLevel::Avx512] {
            let got = run(l)?;
            for (a, b) in got.iter().zip(&reference) {
                assert!(
                    a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
                    "{l:?}"
                );
            }
        }
        simd::set_level(before);
        Ok(())
    }
}
