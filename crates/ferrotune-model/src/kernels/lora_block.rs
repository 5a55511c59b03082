//! Fused LoRA blocks of a decoder layer: projections that share an input as one op (with
//! RoPE, for q/k/v), and an output projection that adds its residual (after the SwiGLU gate,
//! for `down_proj`), so that the autograd graph keeps fewer tensors.
//!
//! [`crate::kernels::lora`] fuses one projection `y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ` (Hu et al. 2021,
//! "LoRA", eq. 3). In a decoder layer built from such ops, candle keeps every op's operands
//! alive until backward: the SwiGLU output `h` `[N, I]` (the input of `down_proj`), the
//! outputs of `o_proj` and `down_proj` `[N, C]` (operands of the residual sums) and q and k
//! before RoPE (operands of the rotation): 2·C + I + (H + K)·D values per token per layer that
//! backward never reads. The ops here keep none of them:
//!
//! * [`lora_projections`]: `x` `[N, in]` → `[N, Σ_j out_j]`, the projections side by side
//!   (gate and up), with one input gradient `dx = Σ_j (g_j·W_j + s_j·(g_j·B_j)·A_j)`;
//!   [`lora_projections_rope`] the same for q, k and v with RoPE applied in place to the q and
//!   k heads, the layout [`crate::kernels::attention::causal_attention_packed`] reads.
//! * [`lora_residual`]: `res + proj(pre(x))`, `pre` the identity (`o_proj`) or the SwiGLU gate
//!   `silu(gate) ⊙ up` (Shazeer 2020, eq. 6) on `x = [gate | up]` `[N, 2·I]` (`down_proj`).
//!   Backward recomputes `pre(x)` (one elementwise pass) instead of keeping it, and passes the
//!   upstream gradient to `res` unchanged.
//! * [`lora_mlp_residual`]: the two ops above for gate/up and `down_proj` as one op. candle's
//!   backward gives every operand of every node a freshly zeroed buffer and adds the op's
//!   gradient into it (`GradStore::or_insert` then `add`), a write, a read and a write of
//!   `[N, 2·I]` floats for `[gate | up]` between the two ops; inside one op that gradient
//!   passes straight from the `down_proj` backward to the gate/up backward.
//!
//! candle's custom ops take at most three operands, so each op's adapter matrices travel as
//! one packed f32 vector `[A_1, B_1, A_2, B_2, …]` (each flattened row-major); candle's `cat`
//! hands each `A` and `B` its part of the pack's gradient.
//!
//! Backward of projection j, upstream `g` `[N, out]`, input `x` `[N, in]`, as in `lora`:
//!
//! ```text
//! gb = g·B;   dx += g·W + s·gb·A;   dA = s·gbᵀ·x;   dB = s·gᵀ·(x·Aᵀ)
//! ```
//!
//! Every block runs its products through [`crate::kernels::lora`]'s projection op, which
//! rounds their operands to the matmul precision
//! ([`super::precision::round_operand`]); the gate and its gradient are computed in f32.

use std::sync::OnceLock;

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::lora::{plain_product, Proj, Projections};
use super::rope::Rotation;
use super::swiglu::{backward_chunk, forward_chunk};
use super::{cpu_slice, eligible, with_slice};
use crate::adapters::LoraAdapter;
use crate::error::Result;
use crate::layers::{Linear, GEMV_MAX_ROWS};
use crate::rope::RopeTables;

/// What [`lora_residual`] applies to its input before the projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prologue {
    /// The input as it is, `[N, in]`.
    Identity,
    /// `silu(gate) ⊙ up` of the input `[gate | up]` `[N, 2·in]`.
    SwiGlu,
}

/// The adapter of `layer` when the fused blocks can take it: plain LoRA, dropout inactive, no
/// bias, a frozen f32 weight on the CPU.
fn plain_adapter(layer: &Linear) -> Option<&LoraAdapter> {
    let a = layer.adapter.as_ref()?;
    (plain_product(a) && layer.bias.is_none() && !layer.weight.track_op()).then_some(a)
}

/// Whether `layer` can be one of the fused blocks' projections: a plain LoRA adapter with
/// its dropout inactive, no bias and a frozen weight (the tensors' dtype and device are
/// checked when the op is built).
pub fn qualifies(layer: &Linear) -> bool {
    plain_adapter(layer).is_some()
}

/// The projections of `layers` for input width `inp` and their adapters packed into one
/// vector (see the module docs); `None` when a layer is not a plain LoRA layer
/// ([`plain_adapter`]), a tensor is not f32 on the CPU or the fused kernels are off.
fn gather(layers: &[&Linear], inp: usize) -> Result<Option<(Vec<Proj>, Tensor)>> {
    let widths: Vec<(&Linear, usize)> = layers.iter().map(|l| (*l, inp)).collect();
    gather_widths(&widths)
}

/// [`gather`] with each layer's own input width.
fn gather_widths(layers: &[(&Linear, usize)]) -> Result<Option<(Vec<Proj>, Tensor)>> {
    let mut projs = Vec::with_capacity(layers.len());
    let mut parts = Vec::with_capacity(2 * layers.len());
    let mut offset = 0;
    for &(layer, inp) in layers {
        let Some(adapter) = plain_adapter(layer) else {
            return Ok(None);
        };
        let (a, b) = (adapter.lora_a.as_tensor(), adapter.lora_b.as_tensor());
        if !eligible(&[&layer.weight, a, b]) {
            return Ok(None);
        }
        let (out, w_in) = layer.weight.dims2()?;
        let (r, a_in) = a.dims2()?;
        if w_in != inp || a_in != inp || b.dims2()? != (out, r) {
            return Ok(None);
        }
        projs.push(Proj {
            weight: layer.weight.contiguous()?,
            out,
            r,
            scaling: adapter.scaling as f32,
            offset,
        });
        offset += r * inp + out * r;
        parts.push(a.flatten_all()?);
        parts.push(b.flatten_all()?);
    }
    if projs.is_empty() {
        return Ok(None);
    }
    Ok(Some((projs, Tensor::cat(&parts, 0)?)))
}

/// `x` `[..., in]` through `layers` (each `[out_j, in]` with a plain LoRA adapter) as one op
/// → `[..., Σ_j out_j]`, the outputs side by side in the order of `layers`; `None` (use the
/// per-layer ops) when a layer does not qualify ([`qualifies`]), a tensor is not f32 on
/// the CPU, the fused kernels are off, or `x` has a decode step's rows or fewer
/// ([`GEMV_MAX_ROWS`]).
pub fn lora_projections(layers: &[&Linear], x: &Tensor) -> Result<Option<Tensor>> {
    projections_op(layers, x, None)
}

/// [`lora_projections`] of q, k and v followed, in the same op, by RoPE (Su et al. 2021,
/// eq. 34, as [`crate::kernels::rope`]) on the first `heads` heads `d` wide of each position
/// (the query and key heads of `[q | k | v]`): `x` `[B, T, in]` → `[B, T, Σ out]`, ready for
/// [`crate::kernels::attention::causal_attention_packed`]. The graph keeps the rotated
/// output only; the backward first rotates the upstream gradient back (the transposed
/// rotation). `None` as for [`lora_projections`], or when the tables do not serve the op
/// (per-row positions, a length other than T) or the heads do not fit the output.
pub fn lora_projections_rope(
    layers: &[&Linear],
    x: &Tensor,
    rope: &RopeTables,
    (heads, d): (usize, usize),
) -> Result<Option<Tensor>> {
    let Ok((_, t, _)) = x.dims3() else {
        return Ok(None);
    };
    let Some(rotation) = Rotation::new(rope, t, d)? else {
        return Ok(None);
    };
    projections_op(layers, x, Some((rotation, heads, d)))
}

/// [`lora_projections`] with an optional rotation of its first heads.
fn projections_op(
    layers: &[&Linear],
    x: &Tensor,
    rope: Option<(Rotation, usize, usize)>,
) -> Result<Option<Tensor>> {
    let dims = x.dims().to_vec();
    let inp = x.dim(candle_core::D::Minus1)?;
    let rows = x.elem_count() / inp.max(1);
    if rows <= GEMV_MAX_ROWS || !eligible(&[x]) {
        return Ok(None);
    }
    let Some((projs, pack)) = gather(layers, inp)? else {
        return Ok(None);
    };
    let total: usize = projs.iter().map(|p| p.out).sum();
    if rope.as_ref().is_some_and(|(_, heads, d)| heads * d > total) {
        return Ok(None);
    }
    let op = Projections { projs, total, rope };
    let y = x.reshape((rows, inp))?.contiguous()?.apply_op2(&pack, op)?;
    let mut out_dims = dims;
    if let Some(last) = out_dims.last_mut() {
        *last = total;
    }
    Ok(Some(y.reshape(out_dims)?))
}

/// `residual + layer(pre(x))` with `x` `[..., in]` (`[..., 2·in]` for [`Prologue::SwiGlu`])
/// and `residual` `[..., out]` → `[..., out]`, one op that keeps neither `pre(x)` nor the
/// projection's output (see the module docs); `None` as for [`lora_projections`], or when the
/// shapes do not chain.
pub fn lora_residual(
    layer: &Linear,
    x: &Tensor,
    residual: &Tensor,
    pre: Prologue,
) -> Result<Option<Tensor>> {
    residual_op(layer, x, residual, pre, true)
}

/// [`lora_residual`] for a graph that is only backpropagated (a layer recomputed for gradient
/// checkpointing, whose output only seeds the backward): the forward skips the gate and all
/// three GEMMs and returns zeros, the backward is [`lora_residual`]'s. `None` as for
/// [`lora_residual`].
pub fn lora_residual_backward_only(
    layer: &Linear,
    x: &Tensor,
    residual: &Tensor,
    pre: Prologue,
) -> Result<Option<Tensor>> {
    residual_op(layer, x, residual, pre, false)
}

/// The shared checks of [`lora_residual`] and [`lora_residual_backward_only`].
fn residual_op(
    layer: &Linear,
    x: &Tensor,
    residual: &Tensor,
    pre: Prologue,
    value: bool,
) -> Result<Option<Tensor>> {
    let x_width = x.dim(candle_core::D::Minus1)?;
    let inp = match pre {
        Prologue::Identity => x_width,
        Prologue::SwiGlu if x_width % 2 == 0 => x_width / 2,
        Prologue::SwiGlu => return Ok(None),
    };
    let rows = x.elem_count() / x_width.max(1);
    let out_dims = residual.dims().to_vec();
    let out = residual.dim(candle_core::D::Minus1)?;
    if rows <= GEMV_MAX_ROWS || !eligible(&[x, residual]) || residual.elem_count() != rows * out {
        return Ok(None);
    }
    let Some((mut projs, pack)) = gather(&[layer], inp)? else {
        return Ok(None);
    };
    let Some(proj) = projs.pop() else {
        return Ok(None);
    };
    if proj.out != out {
        return Ok(None);
    }
    let op = Residual {
        proj: Projections::one(proj),
        pre,
        value,
    };
    let y = x.reshape((rows, x_width))?.contiguous()?.apply_op3(
        &pack,
        &residual.reshape((rows, out))?.contiguous()?,
        op,
    )?;
    Ok(Some(y.reshape(out_dims)?))
}

/// `residual + down(silu(gate(x)) ⊙ up(x))`, `x` and `residual` `[..., C]` → `[..., C]`:
/// [`lora_projections`] of gate and up followed by [`lora_residual`] with
/// [`Prologue::SwiGlu`], as one op that holds `[gate | up]` `[N, 2·I]` for its backward
/// instead of passing it between two graph nodes. candle's backward gives every operand of
/// every node a fresh zeroed buffer and adds the op's gradient into it; here the gradient of
/// `[gate | up]` goes straight from the `down_proj` backward to the gate/up backward. Same
/// values and gradients as the two ops, and the graph keeps the same tensors. `value` false:
/// the backward-only form of [`lora_residual_backward_only`] (gate/up are still computed,
/// the backward reads them). `None` as for the two ops, or when the three layers do not
/// chain (`gate`, `up` `[I, C]`, `down` `[C, I]`).
pub fn lora_mlp_residual(
    (gate, up, down): (&Linear, &Linear, &Linear),
    x: &Tensor,
    residual: &Tensor,
    value: bool,
) -> Result<Option<Tensor>> {
    let c = x.dim(candle_core::D::Minus1)?;
    let rows = x.elem_count() / c.max(1);
    let out_dims = residual.dims().to_vec();
    if rows <= GEMV_MAX_ROWS || !eligible(&[x, residual]) || residual.elem_count() != rows * c {
        return Ok(None);
    }
    let i = gate.weight.dim(0)?;
    let Some((mut projs, pack)) = gather_widths(&[(gate, c), (up, c), (down, i)])? else {
        return Ok(None);
    };
    let (Some(down_proj), true) = (projs.pop(), projs.iter().all(|p| p.out == i)) else {
        return Ok(None);
    };
    if down_proj.out != c {
        return Ok(None);
    }
    let op = MlpResidual {
        gate_up: Projections {
            projs,
            total: 2 * i,
            rope: None,
        },
        down: Residual {
            proj: Projections::one(down_proj),
            pre: Prologue::SwiGlu,
            value,
        },
        gu: OnceLock::new(),
    };
    let y = x.reshape((rows, c))?.contiguous()?.apply_op3(
        &pack,
        &residual.reshape((rows, c))?.contiguous()?,
        op,
    )?;
    Ok(Some(y.reshape(out_dims)?))
}

/// [`lora_mlp_residual`]'s op; operands `(x, pack, residual)`, the pack holding gate's, up's
/// and down's `A` and `B` in that order.
struct MlpResidual {
    gate_up: Projections,
    down: Residual,
    /// `[gate | up]` `[N, 2·I]` of the forward, for the backward.
    gu: OnceLock<Vec<f32>>,
}

impl CustomOp3 for MlpResidual {
    fn name(&self) -> &'static str {
        "fused-lora-mlp-residual"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, c) = l1.shape().dims2()?;
        let (rn, out) = l3.shape().dims2()?;
        if rn != n || out != self.down.proj.total {
            candle_core::bail!("fused-lora-mlp-residual: residual {rn}×{out}, input {n} rows");
        }
        let (x, pack, res) = (cpu_slice(s1, l1)?, cpu_slice(s2, l2)?, cpu_slice(s3, l3)?);
        let gu = self.gate_up.forward(x, pack, (n, c))?;
        let y = self.down.forward(&gu, pack, res, (n, self.gate_up.total))?;
        if self.gu.set(gu).is_err() {
            candle_core::bail!("fused-lora-mlp-residual: the op ran twice");
        }
        Ok((CpuStorage::F32(y), Shape::from((n, out))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        pack: &Tensor,
        residual: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<ResidualGrads> {
        let (n, c) = x.dims2()?;
        let Some(gu) = self.gu.get() else {
            candle_core::bail!("fused-lora-mlp-residual: backward before forward");
        };
        let (want_x, want_pack) = (x.track_op(), pack.track_op());
        let mut dpack = want_pack.then(|| vec![0f32; pack.elem_count()]);
        let width = (n, self.gate_up.total);
        let dx = with_slice(x, |xs| {
            with_slice(pack, |ps| {
                with_slice(grad, |gs| -> candle_core::Result<_> {
                    let dgu = self.down.backward(
                        gu,
                        ps,
                        gs,
                        width,
                        want_x || want_pack,
                        dpack.as_deref_mut(),
                    )?;
                    match dgu {
                        Some(dgu) => self.gate_up.backward(
                            xs,
                            ps,
                            &dgu,
                            (n, c),
                            want_x,
                            dpack.as_deref_mut(),
                        ),
                        None => Ok(None),
                    }
                })
            })
        })????;
        residual_op_grads((x, pack, residual, grad), dx, dpack)
    }
}

/// The gradients a residual op `(x, pack, residual)` hands candle: `dx` in `x`'s shape,
/// `dpack` in the pack's, and the upstream gradient `grad` itself for `residual` (when it
/// tracks one).
type ResidualGrads = (Option<Tensor>, Option<Tensor>, Option<Tensor>);

/// [`ResidualGrads`] from the slices a backward computed.
///
/// Errors: a vector whose length is not its operand's element count.
fn residual_op_grads(
    (x, pack, residual, grad): (&Tensor, &Tensor, &Tensor, &Tensor),
    dx: Option<Vec<f32>>,
    dpack: Option<Vec<f32>>,
) -> candle_core::Result<ResidualGrads> {
    let dev = x.device();
    Ok((
        dx.map(|v| Tensor::from_vec(v, x.shape(), dev))
            .transpose()?,
        dpack
            .map(|v| Tensor::from_vec(v, pack.shape(), dev))
            .transpose()?,
        residual.track_op().then(|| grad.clone()),
    ))
}

/// `h = silu(gate) ⊙ up` `[n, i]` of `gu = [gate | up]` `[n, 2·i]`, rows over the rayon pool.
fn swiglu_rows(gu: &[f32], i: usize) -> Vec<f32> {
    let mut h = vec![0f32; gu.len() / 2];
    h.par_chunks_mut(i)
        .zip(gu.par_chunks(2 * i))
        .for_each(|(h, gu)| {
            let (g, u) = gu.split_at(i);
            forward_chunk(h, g, u);
        });
    h
}

/// The gradient `[n, 2·i]` of `gu = [gate | up]` from `dh` `[n, i]`, the gradient of
/// [`swiglu_rows`]'s output.
fn swiglu_rows_backward(gu: &[f32], dh: &[f32], i: usize) -> Vec<f32> {
    let mut dgu = vec![0f32; gu.len()];
    dgu.par_chunks_mut(2 * i)
        .zip(gu.par_chunks(2 * i).zip(dh.par_chunks(i)))
        .for_each(|(dgu, (gu, d))| {
            let (dg, du) = dgu.split_at_mut(i);
            let (g, u) = gu.split_at(i);
            backward_chunk(dg, du, g, u, d);
        });
    dgu
}

/// [`lora_residual`]'s op; operands `(x, pack, residual)`.
struct Residual {
    /// The projection, as a one-projection op.
    proj: Projections,
    pre: Prologue,
    /// Whether the forward computes the value (else it returns zeros).
    value: bool,
}

impl Residual {
    /// The projection's input width for an operand `x` `width` wide.
    fn inp(&self, width: usize) -> usize {
        match self.pre {
            Prologue::Identity => width,
            Prologue::SwiGlu => width / 2,
        }
    }

    /// `pre(x)` for `x` `[n, width]` (the projection rounds it to the matmul precision).
    fn prologue<'a>(&self, x: &'a [f32], inp: usize) -> std::borrow::Cow<'a, [f32]> {
        match self.pre {
            Prologue::Identity => std::borrow::Cow::Borrowed(x),
            Prologue::SwiGlu => std::borrow::Cow::Owned(swiglu_rows(x, inp)),
        }
    }
}

impl CustomOp3 for Residual {
    fn name(&self) -> &'static str {
        "fused-lora-residual"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, width) = l1.shape().dims2()?;
        let (rn, out) = l3.shape().dims2()?;
        if rn != n || out != self.proj.total {
            candle_core::bail!("fused-lora-residual: residual {rn}×{out}, input {n} rows");
        }
        let (x, pack, res) = (cpu_slice(s1, l1)?, cpu_slice(s2, l2)?, cpu_slice(s3, l3)?);
        let y = self.forward(x, pack, res, (n, width))?;
        Ok((CpuStorage::F32(y), Shape::from((n, out))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        pack: &Tensor,
        residual: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<ResidualGrads> {
        let (n, width) = x.dims2()?;
        let mut dpack = pack.track_op().then(|| vec![0f32; pack.elem_count()]);
        let dx = with_slice(x, |xs| {
            with_slice(pack, |ps| {
                with_slice(grad, |gs| {
                    self.backward(xs, ps, gs, (n, width), x.track_op(), dpack.as_deref_mut())
                })
            })
        })????;
        residual_op_grads((x, pack, residual, grad), dx, dpack)
    }
}

impl Residual {
    /// The forward on slices: `x` `[n, width]`, the pack and `residual` `[n, out]` →
    /// `residual + proj(pre(x))` `[n, out]`, or zeros when the op is backward-only.
    ///
    /// Errors: from [`super::gemm`] (buffers shorter than their shapes).
    fn forward(
        &self,
        x: &[f32],
        pack: &[f32],
        residual: &[f32],
        (n, width): (usize, usize),
    ) -> candle_core::Result<Vec<f32>> {
        if !self.value {
            return Ok(vec![0f32; n * self.proj.total]);
        }
        let inp = self.inp(width);
        let mut y = residual.to_vec();
        let h = self.prologue(x, inp);
        self.proj.forward_into(&h, pack, (n, inp), &mut y, true)?;
        Ok(y)
    }

    /// The backward on slices from the upstream gradient `g` `[n, out]`: returns the
    /// gradient of `x` `[n, width]` when `want_x`, and writes the projection's `dA`, `dB`
    /// into its part of `dpack` (the pack's shape) when given. The residual's gradient is
    /// `g` itself.
    ///
    /// Errors: from [`super::gemm`] (buffers shorter than their shapes).
    fn backward(
        &self,
        xs: &[f32],
        ps: &[f32],
        gs: &[f32],
        (n, width): (usize, usize),
        want_x: bool,
        dpack: Option<&mut [f32]>,
    ) -> candle_core::Result<Option<Vec<f32>>> {
        let inp = self.inp(width);
        // `pre(x)` is read only by dA and dB.
        let h = if dpack.is_some() {
            self.prologue(xs, inp)
        } else {
            std::borrow::Cow::Borrowed(&[][..])
        };
        let dh = self.proj.backward(&h, ps, gs, (n, inp), want_x, dpack)?;
        Ok(match (self.pre, dh) {
            (Prologue::SwiGlu, Some(dh)) => Some(swiglu_rows_backward(xs, &dh, inp)),
            (_, dh) => dh,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::LoraVariant;
    use crate::kernels::precision::{with_matmul_precision, MatmulPrecision};
    use crate::kernels::{rel_err, test_tensor, with_fused};
    use candle_core::Var;

    /// A `[out, inp]` layer with a plain LoRA adapter of rank `r` (both matrices non-zero),
    /// seeded by `seed`.
    fn lora_layer(out: usize, inp: usize, r: usize, scaling: f64, seed: u32) -> Linear {
        let var = |shape: &[usize], s: u32| {
            Var::from_tensor(&test_tensor(shape, s)).unwrap_or_else(|e| panic!("var: {e}"))
        };
        Linear {
            weight: test_tensor(&[out, inp], seed),
            bias: None,
            adapter: Some(LoraAdapter {
                lora_a: var(&[r, inp], seed + 1),
                lora_b: var(&[out, r], seed + 2),
                scaling,
                dropout: 0.0,
                training: true,
                dropout_seed: 0,
                variant: LoraVariant::Plain,
            }),
            quantized: None,
        }
    }

    fn adapter(l: &Linear) -> &LoraAdapter {
        l.adapter
            .as_ref()
            .unwrap_or_else(|| panic!("layer without adapter"))
    }

    /// `x·Wᵀ + s·(x·Aᵀ)·Bᵀ` by candle's tensor ops.
    fn reference(l: &Linear, x: &Tensor) -> Result<Tensor> {
        let a = adapter(l);
        let lr = x
            .matmul(&a.lora_a.as_tensor().t()?)?
            .matmul(&a.lora_b.as_tensor().t()?)?;
        Ok((x.matmul(&l.weight.t()?)? + (lr * a.scaling)?)?)
    }

    /// The gradients of `tensors` after backpropagating `sum(y ⊙ g)`.
    fn grads(y: &Tensor, g: &Tensor, tensors: &[&Tensor]) -> Result<Vec<Tensor>> {
        let store = (y * g)?.sum_all()?.backward()?;
        tensors
            .iter()
            .map(|t| {
                store
                    .get(t)
                    .cloned()
                    .ok_or_else(|| candle_core::Error::Msg("missing gradient".into()).into())
            })
            .collect()
    }

    /// Asserts that `y` is within `tol` of `y_ref` (relative: max |Δ| / max |reference|), and
    /// so is the gradient of every tensor of `wrt` after backpropagating `sum(y ⊙ g)` through
    /// each; returns the gradients through `y`.
    fn assert_agree(
        y: &Tensor,
        y_ref: &Tensor,
        g: &Tensor,
        wrt: &[&Tensor],
        tol: f32,
    ) -> Result<Vec<Tensor>> {
        let e = rel_err(y, y_ref);
        assert!(e < tol, "value differs by {e}");
        let fused = grads(y, g, wrt)?;
        for (i, (p, q)) in fused.iter().zip(&grads(y_ref, g, wrt)?).enumerate() {
            let e = rel_err(p, q);
            assert!(e < tol, "gradient {i} differs by {e}");
        }
        Ok(fused)
    }

    /// Gate and up (ranks 4 and 3, different scalings) as one op against the tensor ops,
    /// f32: the output and the gradients of x and of every A and B within 1e-5 relative
    /// (max |Δ| / max |reference|).
    #[test]
    fn projections_match_the_tensor_ops() -> Result<()> {
        let (n, inp) = (37, 24);
        let gate = lora_layer(40, inp, 4, 2.0, 10);
        let up = lora_layer(40, inp, 3, 0.5, 20);
        let x = Var::from_tensor(&test_tensor(&[n, inp], 1))?;
        let g = test_tensor(&[n, 80], 2);
        let y = with_fused(true, || lora_projections(&[&gate, &up], x.as_tensor()))?
            .ok_or_else(|| candle_core::Error::Msg("not eligible".into()))?;
        let y_ref = Tensor::cat(
            &[
                reference(&gate, x.as_tensor())?,
                reference(&up, x.as_tensor())?,
            ],
            1,
        )?;
        let (ga, ua) = (adapter(&gate), adapter(&up));
        let wrt = [
            x.as_tensor(),
            ga.lora_a.as_tensor(),
            ga.lora_b.as_tensor(),
            ua.lora_a.as_tensor(),
            ua.lora_b.as_tensor(),
        ];
        assert_agree(&y, &y_ref, &g, &wrt, 1e-5)?;
        Ok(())
    }

    /// q, k and v (3, 1 and 1 heads of 32, 16 of them rotary) with RoPE on q and k in the
    /// same op, against the per-layer products with the fused RoPE op ([`crate::kernels::rope::rope_bthd`]) on q
    /// and k, f32: the output and the gradients of x and every A and B within 1e-5 relative.
    #[test]
    fn projections_with_rope_match_the_separate_ops() -> Result<()> {
        use crate::kernels::rope::{rope_bthd, tests::cfg};
        use crate::rope::{arange_positions, RopeTables};
        let (b, t, inp, d) = (2, 20, 24, 32);
        // Partial rotary: 16 of each head's 32 dimensions rotate, the rest pass through.
        let rope = RopeTables::new(&cfg(16), &arange_positions(t), &candle_core::Device::Cpu)?;
        let (q, k, v) = (
            lora_layer(3 * d, inp, 4, 2.0, 80),
            lora_layer(d, inp, 4, 2.0, 90),
            lora_layer(d, inp, 4, 2.0, 100),
        );
        let x = Var::from_tensor(&test_tensor(&[b, t, inp], 12))?;
        let g = test_tensor(&[b, t, 5 * d], 13);
        let xt = x.as_tensor();
        let y = with_fused(true, || {
            lora_projections_rope(&[&q, &k, &v], xt, &rope, (4, d))
        })?
        .ok_or_else(|| candle_core::Error::Msg("not eligible".into()))?;
        let rotated = |l: &Linear, heads: usize| -> Result<Tensor> {
            let p = reference(l, &xt.reshape((b * t, inp))?)?.reshape((b, t, heads, d))?;
            let r = with_fused(true, || rope_bthd(&p, &rope))?
                .ok_or_else(|| candle_core::Error::Msg("rope not eligible".into()))?;
            Ok(r.reshape((b, t, heads * d))?)
        };
        let y_ref = Tensor::cat(
            &[
                rotated(&q, 3)?,
                rotated(&k, 1)?,
                reference(&v, &xt.reshape((b * t, inp))?)?.reshape((b, t, d))?,
            ],
            2,
        )?;
        let mut wrt = vec![xt];
        for l in [&q, &k, &v] {
            let a = adapter(l);
            wrt.extend([a.lora_a.as_tensor(), a.lora_b.as_tensor()]);
        }
        assert_agree(&y, &y_ref, &g, &wrt, 1e-5)?;
        Ok(())
    }

    /// `res + down(silu(gate) ⊙ up)` from `[gate | up]` against the tensor ops, f32: the
    /// value and the gradients of `[gate | up]`, A, B and the residual within 1e-5 relative.
    /// The backward-only variant returns zeros and exactly the same gradients.
    #[test]
    fn swiglu_residual_matches_the_tensor_ops() -> Result<()> {
        let (n, i, c) = (37, 32, 20);
        let down = lora_layer(c, i, 4, 2.0, 30);
        let gu = Var::from_tensor(&(test_tensor(&[n, 2 * i], 3) * 3.0)?)?;
        let res = Var::from_tensor(&test_tensor(&[n, c], 4))?;
        let g = test_tensor(&[n, c], 5);
        let (gut, rt) = (gu.as_tensor(), res.as_tensor());
        let y = with_fused(true, || lora_residual(&down, gut, rt, Prologue::SwiGlu))?
            .ok_or_else(|| candle_core::Error::Msg("not eligible".into()))?;
        let h = (gut.narrow(1, 0, i)?.silu()? * gut.narrow(1, i, i)?)?;
        let y_ref = (rt + reference(&down, &h)?)?;
        let a = adapter(&down);
        let wrt = [gut, a.lora_a.as_tensor(), a.lora_b.as_tensor(), rt];
        let fused = assert_agree(&y, &y_ref, &g, &wrt, 1e-5)?;
        let z = with_fused(true, || {
            lora_residual_backward_only(&down, gut, rt, Prologue::SwiGlu)
        })?
        .ok_or_else(|| candle_core::Error::Msg("not eligible".into()))?;
        assert_eq!(z.abs()?.max_all()?.to_scalar::<f32>()?, 0.0);
        for (p, q) in grads(&z, &g, &wrt)?.iter().zip(&fused) {
            assert_eq!(rel_err(p, q), 0.0);
        }
        Ok(())
    }

    /// The whole MLP block as one op against its two ops (gate/up, then SwiGLU + down +
    /// residual), f32: the same arithmetic in the same order, so the value and the gradients
    /// of x, the residual and every A and B are bit-equal (0 difference, not a tolerance);
    /// the backward-only form returns zeros and the same gradients. Against the tensor ops
    /// within 1e-5 relative. Batch dims `[2, 19, C]` exercise the reshapes.
    #[test]
    fn mlp_block_equals_its_two_ops() -> Result<()> {
        let (b, t, c, i) = (2, 19, 20, 32);
        let gate = lora_layer(i, c, 4, 2.0, 50);
        let up = lora_layer(i, c, 3, 0.5, 60);
        let down = lora_layer(c, i, 2, 1.5, 70);
        let x = Var::from_tensor(&test_tensor(&[b, t, c], 9))?;
        let res = Var::from_tensor(&test_tensor(&[b, t, c], 10))?;
        let g = test_tensor(&[b, t, c], 11);
        let (xt, rt) = (x.as_tensor(), res.as_tensor());
        let not = || candle_core::Error::Msg("not eligible".into());
        let block = |value: bool| -> Result<Tensor> {
            let y = with_fused(true, || {
                lora_mlp_residual((&gate, &up, &down), xt, rt, value)
            })?;
            Ok(y.ok_or_else(not)?)
        };
        let y = block(true)?;
        let gu = with_fused(true, || lora_projections(&[&gate, &up], xt))?.ok_or_else(not)?;
        let y_two = with_fused(true, || lora_residual(&down, &gu, rt, Prologue::SwiGlu))?
            .ok_or_else(not)?;
        let mut wrt = vec![xt, rt];
        for l in [&gate, &up, &down] {
            let a = adapter(l);
            wrt.extend([a.lora_a.as_tensor(), a.lora_b.as_tensor()]);
        }
        assert_eq!(rel_err(&y, &y_two), 0.0);
        let fused = grads(&y, &g, &wrt)?;
        for (k, (p, q)) in fused.iter().zip(&grads(&y_two, &g, &wrt)?).enumerate() {
            assert_eq!(rel_err(p, q), 0.0, "gradient {k} differs from the two ops");
        }
        let z = block(false)?;
        assert_eq!(z.abs()?.max_all()?.to_scalar::<f32>()?, 0.0);
        for (k, (p, q)) in grads(&z, &g, &wrt)?.iter().zip(&fused).enumerate() {
            assert_eq!(rel_err(p, q), 0.0, "backward-only gradient {k} differs");
        }
        // And against candle's tensor ops.
        let flat = xt.reshape((b * t, c))?;
        let h = (reference(&gate, &flat)?.silu()? * reference(&up, &flat)?)?;
        let y_ref = (rt + reference(&down, &h)?.reshape((b, t, c))?)?;
        assert_agree(&y, &y_ref, &g, &wrt, 1e-5)?;
        // A down_proj whose width does not chain declines.
        let odd = lora_layer(c, i + 1, 2, 1.5, 80);
        let declined = with_fused(true, || lora_mlp_residual((&gate, &up, &odd), xt, rt, true))?;
        assert!(declined.is_none());
        Ok(())
    }

    /// `res + o_proj(x)` (no prologue) against the tensor ops, f32, within 1e-5 relative; a
    /// frozen residual and a frozen input get no gradient, the adapter still does.
    #[test]
    fn identity_residual_matches_the_tensor_ops() -> Result<()> {
        let (n, inp, c) = (29, 16, 24);
        let o = lora_layer(c, inp, 2, 1.5, 40);
        let x = Var::from_tensor(&test_tensor(&[n, inp], 6))?;
        let res = Var::from_tensor(&test_tensor(&[n, c], 7))?;
        let g = test_tensor(&[n, c], 8);
        let (xt, rt) = (x.as_tensor(), res.as_tensor());
        let y = with_fused(true, || lora_residual(&o, xt, rt, Prologue::Identity))?
            .ok_or_else(|| candle_core::Error::Msg("not eligible".into()))?;
        let y_ref = (rt + reference(&o, xt)?)?;
        let a = adapter(&o);
        let wrt = [xt, a.lora_a.as_tensor(), a.lora_b.as_tensor(), rt];
        assert_agree(&y, &y_ref, &g, &wrt, 1e-5)?;
        let (xd, rd) = (xt.detach(), rt.detach());
        let y = with_fused(true, || lora_residual(&o, &xd, &rd, Prologue::Identity))?
            .ok_or_else(|| candle_core::Error::Msg("not eligible".into()))?;
        let store = (&y * &g)?.sum_all()?.backward()?;
        assert!(store.get(&xd).is_none() && store.get(&rd).is_none());
        let da = store
            .get(a.lora_a.as_tensor())
            .ok_or_else(|| candle_core::Error::Msg("missing dA".into()))?;
        let da_ref = &grads(&y_ref, &g, &wrt)?[1];
        assert!(rel_err(da, da_ref) < 1e-5);
        Ok(())
    }

    /// bf16 mixed precision: the whole MLP block (gate and up as one op, then the gate,
    /// `down_proj` and the residual) equals the per-projection fused ops
    /// ([`crate::kernels::lora::lora_linear`] and [`crate::kernels::swiglu::swiglu`]), which
    /// round the same operands to bf16, within 1e-5 relative (summation order) for the value
    /// and every gradient; and the rounding is applied (the result differs from f32's).
    #[test]
    fn bf16_block_rounds_as_the_per_projection_ops() -> Result<()> {
        use crate::kernels::{lora::lora_linear, swiglu::swiglu};
        let (n, c, i) = (33, 24, 40);
        let gate = lora_layer(i, c, 4, 2.0, 50);
        let up = lora_layer(i, c, 4, 2.0, 60);
        let down = lora_layer(c, i, 4, 2.0, 70);
        let x = Var::from_tensor(&test_tensor(&[n, c], 9))?;
        let res = Var::from_tensor(&test_tensor(&[n, c], 10))?;
        let g = test_tensor(&[n, c], 11);
        let (xt, rt) = (x.as_tensor(), res.as_tensor());
        let block = || -> Result<Tensor> {
            let gu = lora_projections(&[&gate, &up], xt)?
                .ok_or_else(|| candle_core::Error::Msg("projections not eligible".into()))?;
            lora_residual(&down, &gu, rt, Prologue::SwiGlu)?
                .ok_or_else(|| candle_core::Error::Msg("residual not eligible".into()).into())
        };
        let per_op = || -> Result<Tensor> {
            let proj = |l: &Linear, x: &Tensor| -> Result<Tensor> {
                let a = adapter(l);
                lora_linear(
                    x,
                    &l.weight,
                    a.lora_a.as_tensor(),
                    a.lora_b.as_tensor(),
                    a.scaling,
                )?
                .ok_or_else(|| candle_core::Error::Msg("lora not eligible".into()).into())
            };
            let h = swiglu(&proj(&gate, xt)?, &proj(&up, xt)?)?
                .ok_or_else(|| candle_core::Error::Msg("swiglu not eligible".into()))?;
            Ok((rt + proj(&down, &h)?)?)
        };
        let wrt: Vec<&Tensor> = [&gate, &up, &down]
            .iter()
            .flat_map(|l| {
                let a = adapter(l);
                [a.lora_a.as_tensor(), a.lora_b.as_tensor()]
            })
            .chain([xt, rt])
            .collect();
        let bf16 = |f: &dyn Fn() -> Result<Tensor>| -> Result<(Tensor, Vec<Tensor>)> {
            with_matmul_precision(MatmulPrecision::Bf16, || {
                with_fused(true, || {
                    let y = f()?;
                    let gs = grads(&y, &g, &wrt)?;
                    Ok((y, gs))
                })
            })
        };
        let (y, gs) = bf16(&block)?;
        let (y_ref, gs_ref) = bf16(&per_op)?;
        let e = rel_err(&y, &y_ref);
        assert!(e < 1e-5, "bf16 block value differs by {e}");
        for (k, (p, q)) in gs.iter().zip(&gs_ref).enumerate() {
            let e = rel_err(p, q);
            assert!(e < 1e-5, "bf16 block gradient {k} differs by {e}");
        }
        let y32 = with_fused(true, block)?;
        assert!(rel_err(&y, &y32) > 1e-5, "bf16 value equals f32's");
        Ok(())
    }

    /// The blocks decline (`None`, so the caller takes the per-projection path) what they do
    /// not compute: a biased projection, dropout active in training, DoRA, a decode step's
    /// rows, the fused kernels turned off; and take dropout that is off (not training).
    #[test]
    fn blocks_decline_what_they_do_not_compute() -> Result<()> {
        let (n, c) = (16, 24);
        let x = test_tensor(&[n, c], 14);
        let res = test_tensor(&[n, c], 15);
        let takes = |l: &Linear, x: &Tensor| -> Result<(bool, bool)> {
            with_fused(true, || {
                Ok((
                    lora_projections(&[l], x)?.is_some(),
                    lora_residual(l, x, &res.narrow(0, 0, x.dim(0)?)?, Prologue::Identity)?
                        .is_some(),
                ))
            })
        };
        let plain = lora_layer(c, c, 4, 2.0, 110);
        assert_eq!(takes(&plain, &x)?, (true, true));
        assert_eq!(
            takes(&plain, &x.narrow(0, 0, GEMV_MAX_ROWS)?)?,
            (false, false)
        );
        let off = with_fused(false, || lora_projections(&[&plain], &x))?;
        assert!(off.is_none());
        let mut biased = lora_layer(c, c, 4, 2.0, 120);
        biased.bias = Some(test_tensor(&[c], 16));
        assert_eq!(takes(&biased, &x)?, (false, false));
        let mut dropout = lora_layer(c, c, 4, 2.0, 130);
        if let Some(a) = dropout.adapter.as_mut() {
            a.dropout = 0.1;
        }
        assert_eq!(takes(&dropout, &x)?, (false, false));
        if let Some(a) = dropout.adapter.as_mut() {
            a.training = false;
        }
        assert_eq!(takes(&dropout, &x)?, (true, true));
        let mut dora = lora_layer(c, c, 4, 2.0, 140);
        if let Some(a) = dora.adapter.as_mut() {
            a.variant = LoraVariant::Dora {
                magnitude: Var::from_tensor(&test_tensor(&[c], 17))?,
            };
        }
        assert_eq!(takes(&dora, &x)?, (false, false));
        Ok(())
    }
}
