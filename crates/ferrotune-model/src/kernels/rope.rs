//! Fused rotary position embedding (Su et al. 2021, "RoFormer", eq. 34) in HF's rotate-half
//! layout, on the `[B, T, heads, D]` layout the projections produce (no transpose or copy
//! before or after), with a hand-written backward. The rotation itself (`Rotation`) works
//! in place on rows of any stride, so the fused q/k/v projection op
//! ([`crate::kernels::lora_block::lora_projections_rope`]) applies it to its own output.
//!
//! With `h = D_rot/2`, `c`/`s` the cosine/sine tables at the row's position, for `j < h`:
//! `y_j = x_j·c_j − x_{j+h}·s_j`, `y_{j+h} = x_{j+h}·c_{j+h} + x_j·s_{j+h}`; dimensions past
//! `D_rot` pass through. The backward is the transposed rotation:
//! `dx_j = g_j·c_j + g_{j+h}·s_{j+h}`, `dx_{j+h} = g_{j+h}·c_{j+h} − g_j·s_j`.
//!
//! Shapes: B rows, T positions, `heads` heads, D head width, D_rot rotated width.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::{cpu_slice, eligible, with_slice};
use crate::error::Result;
use crate::rope::RopeTables;

/// Rows `(b, t)` per rayon task.
const ROWS_PER_TASK: usize = 8;

/// Rotates `x` `[B, T, heads, D]` (f32, CPU) by `rope` (tables `[T, D_rot]`, f32) and returns
/// `[B, T, heads, D]`, with its backward; `None` when the fused kernels are off or the inputs
/// do not qualify (per-row tables, odd or too wide `D_rot`): use [`RopeTables::apply`].
///
/// The same products and sums as [`RopeTables::apply`], so the same values.
pub fn rope_bthd(x: &Tensor, rope: &RopeTables) -> Result<Option<Tensor>> {
    if !eligible(&[x]) || x.rank() != 4 {
        return Ok(None);
    }
    let (_, t, _, d) = x.dims4()?;
    let Some(rotation) = Rotation::new(rope, t, d)? else {
        return Ok(None);
    };
    Ok(Some(x.contiguous()?.apply_op1(RopeOp(rotation))?))
}

/// The tables of one sequence length as plain slices: `cos`/`sin` `[T, D_rot]` row-major.
pub(crate) struct Rotation {
    cos: Vec<f32>,
    sin: Vec<f32>,
    d_rot: usize,
    t: usize,
}

impl Rotation {
    /// The tables of `rope` for `t` positions and heads `d` wide; `None` when the fused kernels
    /// are off or the tables do not qualify (not f32 on the CPU, per-row tables, a length
    /// other than `t`, odd or wider than `d`).
    pub(crate) fn new(rope: &RopeTables, t: usize, d: usize) -> Result<Option<Self>> {
        if !eligible(&[&rope.cos, &rope.sin]) {
            return Ok(None);
        }
        let (tt, d_rot) = match rope.cos.dims() {
            [tt, d_rot] => (*tt, *d_rot),
            _ => return Ok(None),
        };
        if tt != t || rope.sin.dims() != rope.cos.dims() || d_rot > d || d_rot % 2 != 0 {
            return Ok(None);
        }
        Ok(Some(Rotation {
            cos: with_slice(&rope.cos, <[f32]>::to_vec)?,
            sin: with_slice(&rope.sin, <[f32]>::to_vec)?,
            d_rot,
            t,
        }))
    }

    /// Rotates, in place, the first `heads` heads (`D` = `d` wide) of every row of `data`,
    /// rows of `stride` values at positions `0..T` repeating (row `i` at position `i mod T`);
    /// `inverse` applies the transposed rotation (the backward).
    pub(crate) fn rotate_rows(
        &self,
        data: &mut [f32],
        stride: usize,
        (heads, d): (usize, usize),
        inverse: bool,
    ) {
        let (d_rot, half, t) = (self.d_rot, self.d_rot / 2, self.t);
        debug_assert!(heads * d <= stride, "rotated heads wider than the row");
        if stride == 0 || t == 0 || heads * d > stride {
            return;
        }
        data.par_chunks_mut(stride * ROWS_PER_TASK)
            .enumerate()
            .for_each(|(task, rows)| {
                for (r, row) in rows.chunks_exact_mut(stride).enumerate() {
                    let pos = (task * ROWS_PER_TASK + r) % t;
                    let c = &self.cos[pos * d_rot..(pos + 1) * d_rot];
                    let s = &self.sin[pos * d_rot..(pos + 1) * d_rot];
                    let (c1, c2) = c.split_at(half);
                    let (s1, s2) = s.split_at(half);
                    for head in row[..heads * d].chunks_exact_mut(d) {
                        let (x1, x2) = head[..d_rot].split_at_mut(half);
                        for j in 0..half {
                            let (a, b) = (x1[j], x2[j]);
                            if inverse {
                                x1[j] = a * c1[j] + b * s2[j];
                                x2[j] = b * c2[j] - a * s1[j];
                            } else {
                                x1[j] = a * c1[j] + (-b) * s1[j];
                                x2[j] = b * c2[j] + a * s2[j];
                            }
                        }
                    }
                }
            });
    }
}

/// The op on `[B, T, heads, D]`.
struct RopeOp(Rotation);

impl CustomOp1 for RopeOp {
    fn name(&self) -> &'static str {
        "fused-rope"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (_, t, heads, d) = layout.shape().dims4()?;
        if t != self.0.t {
            candle_core::bail!("fused-rope: tables do not match {t} positions");
        }
        let mut y = cpu_slice(storage, layout)?.to_vec();
        self.0.rotate_rows(&mut y, heads * d, (heads, d), false);
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let (_, _, heads, d) = x.dims4()?;
        let mut dx = with_slice(grad, <[f32]>::to_vec)?;
        self.0.rotate_rows(&mut dx, heads * d, (heads, d), true);
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::{Activation, ArchSwitches, ModelConfig, RopeScaling};
    use crate::families::Family;
    use crate::kernels::{rel_err, test_tensor};
    use candle_core::{Device, Var};

    pub(crate) fn cfg(rotary_dim: usize) -> ModelConfig {
        ModelConfig {
            family: Family::Llama,
            vocab_size: 8,
            hidden_size: 64,
            intermediate_size: 8,
            num_hidden_layers: 1,
            num_attention_heads: 2,
            num_key_value_heads: 2,
            head_dim: 32,
            rms_norm_eps: 1e-6,
            rope_theta: 10000.0,
            rope_scaling: RopeScaling::None,
            rotary_dim,
            max_position_embeddings: 128,
            tie_word_embeddings: true,
            hidden_act: Activation::Silu,
            sliding_window: None,
            switches: ArchSwitches::default(),
            bos_token_id: None,
            eos_token_ids: vec![],
            pad_token_id: None,
        }
    }

    /// Values (bit-equal) and the gradient (within 1e-6 relative) against
    /// [`RopeTables::apply`] on the transposed `[B, heads, T, D]` layout through autograd.
    #[test]
    fn matches_the_tensor_ops_values_and_gradients() -> Result<()> {
        for rotary_dim in [32, 16] {
            let tables = RopeTables::new(&cfg(rotary_dim), &[0, 1, 2, 3, 4, 9, 30], &Device::Cpu)?;
            let x = Var::from_tensor(&test_tensor(&[2, 7, 3, 32], 7))?;
            let g = test_tensor(&[2, 7, 3, 32], 8);
            let y_ref = tables
                .apply(&x.as_tensor().transpose(1, 2)?.contiguous()?)?
                .transpose(1, 2)?;
            let s_ref = (&y_ref * &g)?.sum_all()?.backward()?;
            let y = crate::kernels::with_fused(true, || rope_bthd(x.as_tensor(), &tables))?
                .ok_or_else(|| candle_core::Error::Msg("not eligible".into()))?;
            let s = (&y * &g)?.sum_all()?.backward()?;
            assert_eq!(
                rel_err(&y, &y_ref.contiguous()?),
                0.0,
                "rotary_dim {rotary_dim}"
            );
            let (Some(a), Some(b)) = (s.get(x.as_tensor()), s_ref.get(x.as_tensor())) else {
                panic!("missing gradient")
            };
            let e = rel_err(a, b);
            assert!(e < 1e-6, "rotary_dim {rotary_dim}: dx differs by {e}");
        }
        Ok(())
    }
}
