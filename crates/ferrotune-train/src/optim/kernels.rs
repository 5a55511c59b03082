//! In-place CPU kernels of one AdamW step on contiguous f32 storage, as candle in-place ops.
//!
//! Each kernel performs torch's `_single_tensor_adam` operations (torch 2.x,
//! `torch/optim/adam.py`) elementwise in f32 with the same operation order; scalars arrive
//! already rounded to f32 as torch rounds Python floats for f32 tensors. torch's vectorized
//! `lerp_` fuses its multiply-add, which can differ from [`FirstMoment`] in the last bit.

use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout};

/// `exp_avg.lerp_(grad * grad_scale, 1 - beta1)`: `m += w * (g - m)` for `w < 0.5`, else
/// `m = g - (g - m) * (1 - w)` (torch's two lerp forms).
pub(super) struct FirstMoment {
    /// `1 - beta1`.
    pub weight: f32,
    /// Clipping coefficient multiplied into the gradient (1 when not clipping).
    pub grad_scale: f32,
}

/// `exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)` with `g = grad * grad_scale`.
pub(super) struct SecondMoment {
    /// `beta2`.
    pub beta2: f32,
    /// `1 - beta2`.
    pub weight: f32,
    /// Clipping coefficient multiplied into the gradient.
    pub grad_scale: f32,
}

/// `param.mul_(1 - lr * wd)` (when decaying), then
/// `param.addcdiv_(exp_avg, exp_avg_sq.sqrt() / bc2_sqrt + eps, value=-lr / bc1)`.
pub(super) struct ParamUpdate {
    /// `1 - lr * weight_decay`, or `None` when this parameter has no decay.
    pub decay: Option<f32>,
    /// `-lr / (1 - beta1^step)`.
    pub neg_step_size: f32,
    /// `sqrt(1 - beta2^step)`.
    pub bc2_sqrt: f32,
    /// `eps`, added after the square root and the bias correction.
    pub eps: f32,
}

fn contiguous_range(l: &Layout, what: &str) -> candle_core::Result<(usize, usize)> {
    l.contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("adamw kernel: {what} is not contiguous")))
}

fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> candle_core::Result<&'a [f32]> {
    let (start, end) = contiguous_range(l, what)?;
    match s {
        CpuStorage::F32(data) => data.get(start..end),
        _ => None,
    }
    .ok_or_else(|| candle_core::Error::Msg(format!("adamw kernel: {what} is not f32 storage")))
}

fn f32_slice_mut<'a>(
    s: &'a mut CpuStorage,
    l: &Layout,
    what: &str,
) -> candle_core::Result<&'a mut [f32]> {
    let (start, end) = contiguous_range(l, what)?;
    match s {
        CpuStorage::F32(data) => data.get_mut(start..end),
        _ => None,
    }
    .ok_or_else(|| candle_core::Error::Msg(format!("adamw kernel: {what} is not f32 storage")))
}

fn same_len(a: usize, b: usize, what: &str) -> candle_core::Result<()> {
    if a == b {
        Ok(())
    } else {
        Err(candle_core::Error::Msg(format!(
            "adamw kernel: {what} has {b} elements, expected {a}"
        )))
    }
}

impl InplaceOp2 for FirstMoment {
    fn name(&self) -> &'static str {
        "adamw-first-moment"
    }

    fn cpu_fwd(
        &self,
        m: &mut CpuStorage,
        ml: &Layout,
        g: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<()> {
        let m = f32_slice_mut(m, ml, "exp_avg")?;
        let g = f32_slice(g, gl, "grad")?;
        same_len(m.len(), g.len(), "grad")?;
        let (w, scale) = (self.weight, self.grad_scale);
        if w.abs() < 0.5 {
            for (m, &g) in m.iter_mut().zip(g) {
                let g = g * scale;
                *m += w * (g - *m);
            }
        } else {
            let keep = 1.0 - w;
            for (m, &g) in m.iter_mut().zip(g) {
                let g = g * scale;
                *m = g - (g - *m) * keep;
            }
        }
        Ok(())
    }
}

impl InplaceOp2 for SecondMoment {
    fn name(&self) -> &'static str {
        "adamw-second-moment"
    }

    fn cpu_fwd(
        &self,
        v: &mut CpuStorage,
        vl: &Layout,
        g: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<()> {
        let v = f32_slice_mut(v, vl, "exp_avg_sq")?;
        let g = f32_slice(g, gl, "grad")?;
        same_len(v.len(), g.len(), "grad")?;
        let (beta2, w, scale) = (self.beta2, self.weight, self.grad_scale);
        for (v, &g) in v.iter_mut().zip(g) {
            let g = g * scale;
            *v = *v * beta2 + w * g * g;
        }
        Ok(())
    }
}

impl InplaceOp3 for ParamUpdate {
    fn name(&self) -> &'static str {
        "adamw-param-update"
    }

    fn cpu_fwd(
        &self,
        p: &mut CpuStorage,
        pl: &Layout,
        m: &CpuStorage,
        ml: &Layout,
        v: &CpuStorage,
        vl: &Layout,
    ) -> candle_core::Result<()> {
        let p = f32_slice_mut(p, pl, "param")?;
        let m = f32_slice(m, ml, "exp_avg")?;
        let v = f32_slice(v, vl, "exp_avg_sq")?;
        same_len(p.len(), m.len(), "exp_avg")?;
        same_len(p.len(), v.len(), "exp_avg_sq")?;
        let (ss, bc2, eps) = (self.neg_step_size, self.bc2_sqrt, self.eps);
        if let Some(decay) = self.decay {
            p.iter_mut().for_each(|p| *p *= decay);
        }
        for ((p, &m), &v) in p.iter_mut().zip(m).zip(v) {
            let denom = v.sqrt() / bc2 + eps;
            *p += ss * m / denom;
        }
        Ok(())
    }
}
