//! Rotary position embeddings (Su et al. 2021, "RoFormer", eq. 34) in HF's
//! rotate-half layout: dimension `i` pairs with `i + D_rot/2`.
//!
//! Built from differentiable tensor ops (narrow, neg, cat, mul) so gradients flow
//! through it; candle-nn's fused rotary op records no backward.

use candle_core::{DType, Device, Tensor, D};

use crate::config::{ModelConfig, RopeScaling};
use crate::error::Result;

/// Inverse frequencies `θ^(-2i/D_rot)` for `i in 0..D_rot/2`, after scaling.
///
/// Llama 3 scaling follows transformers' `_compute_llama3_parameters`
/// (`modeling_rope_utils.py`): wavelengths longer than `L_orig / low_freq_factor` are
/// divided by `factor`, shorter than `L_orig / high_freq_factor` kept, and the band
/// between interpolated smoothly.
pub fn inv_freq(cfg: &ModelConfig) -> Vec<f64> {
    let d = cfg.rotary_dim;
    let base: Vec<f64> = (0..d / 2)
        .map(|i| 1.0 / cfg.rope_theta.powf((2 * i) as f64 / d as f64))
        .collect();
    match &cfg.rope_scaling {
        RopeScaling::None => base,
        RopeScaling::Linear { factor } => base.iter().map(|f| f / factor).collect(),
        RopeScaling::FreqFactors(factors) => base
            .iter()
            .zip(factors)
            .map(|(f, s)| f / f64::from(*s))
            .collect(),
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings: orig,
        } => {
            let low_wavelen = orig / low_freq_factor;
            let high_wavelen = orig / high_freq_factor;
            base.iter()
                .map(|&f| {
                    let wavelen = 2.0 * std::f64::consts::PI / f;
                    if wavelen < high_wavelen {
                        f
                    } else if wavelen > low_wavelen {
                        f / factor
                    } else {
                        let smooth = (orig / wavelen - low_freq_factor)
                            / (high_freq_factor - low_freq_factor);
                        (1.0 - smooth) * f / factor + smooth * f
                    }
                })
                .collect()
        }
    }
}

/// Cosine and sine tables for positions `0..seq_len`, or per-row positions (left-padded batches
/// in generation, see [`RopeTables::for_rows`]).
#[derive(Debug, Clone)]
pub struct RopeTables {
    /// `[T, D_rot]` f32, each frequency repeated for both halves; `[B, 1, T, D_rot]` when built
    /// per row.
    pub cos: Tensor,
    /// `[T, D_rot]` f32, or `[B, 1, T, D_rot]` per row.
    pub sin: Tensor,
}

impl RopeTables {
    /// Tables for the given positions `[T]` (usually `0..T`).
    ///
    /// Angles are computed in f64 and rounded once to f32.
    pub fn new(cfg: &ModelConfig, positions: &[u32], device: &Device) -> Result<Self> {
        let freqs = inv_freq(cfg);
        let half = freqs.len();
        let t = positions.len();
        let (cos, sin) = angle_tables(&freqs, positions);
        Ok(Self {
            cos: Tensor::from_vec(cos, (t, 2 * half), device)?,
            sin: Tensor::from_vec(sin, (t, 2 * half), device)?,
        })
    }

    /// Tables with one row of positions per batch row, `positions` `[B][T]` (every row of the
    /// same length T): `cos`/`sin` `[B, 1, T, D_rot]`, broadcast over the heads by
    /// [`RopeTables::apply`]. Used for left-padded batches, whose rows start counting at their
    /// first real token.
    ///
    /// Errors: rows of different lengths.
    pub fn for_rows(cfg: &ModelConfig, positions: &[Vec<u32>], device: &Device) -> Result<Self> {
        let freqs = inv_freq(cfg);
        let half = freqs.len();
        let b = positions.len();
        let t = positions.first().map_or(0, Vec::len);
        let mut cos = Vec::with_capacity(b * t * 2 * half);
        let mut sin = Vec::with_capacity(b * t * 2 * half);
        for (r, row) in positions.iter().enumerate() {
            if row.len() != t {
                return Err(candle_core::Error::Msg(format!(
                    "rope positions: row {r} has {} positions, row 0 has {t}",
                    row.len()
                ))
                .into());
            }
            let (c, s) = angle_tables(&freqs, row);
            cos.extend(c);
            sin.extend(s);
        }
        Ok(Self {
            cos: Tensor::from_vec(cos, (b, 1, t, 2 * half), device)?,
            sin: Tensor::from_vec(sin, (b, 1, t, 2 * half), device)?,
        })
    }

    /// Rotates `x` `[B, heads, T, D]`: `x·cos + rotate_half(x)·sin` on the first `D_rot`
    /// dimensions, where `rotate_half([x1, x2]) = [-x2, x1]`; the rest passes through.
    ///
    /// Without gradients (inference), f32 on the CPU, it runs as one pass over slices
    /// (`RopeTables::apply_rows`) with the same products and sums, so the same values.
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        if let Some(y) = self.apply_rows(x)? {
            return Ok(y);
        }
        let d = x.dim(D::Minus1)?;
        let d_rot = self.cos.dim(D::Minus1)?;
        let (x_rot, x_pass) = if d_rot == d {
            (x.clone(), None)
        } else {
            (
                x.narrow(D::Minus1, 0, d_rot)?,
                Some(x.narrow(D::Minus1, d_rot, d - d_rot)?),
            )
        };
        let half = d_rot / 2;
        let x1 = x_rot.narrow(D::Minus1, 0, half)?;
        let x2 = x_rot.narrow(D::Minus1, half, half)?;
        let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
        let cos = self.cos.to_dtype(x.dtype())?;
        let sin = self.sin.to_dtype(x.dtype())?;
        let out = (x_rot.broadcast_mul(&cos)? + rotated.broadcast_mul(&sin)?)?;
        Ok(match x_pass {
            None => out,
            Some(p) => Tensor::cat(&[&out, &p], D::Minus1)?,
        })
    }
}

impl RopeTables {
    /// [`RopeTables::apply`] on slices: `Some` when `x` `[B, heads, T, D]` and the tables are
    /// f32 on the CPU, nothing tracks a gradient and the tables are `[T, D_rot]` or
    /// `[B, 1, T, D_rot]` with `D_rot ≤ D` even; else `None` (use the tensor ops). Each output
    /// is `x_i·cos_i + r_i·sin_i` with `r = [−x2, x1]`, as in the tensor path.
    fn apply_rows(&self, x: &Tensor) -> Result<Option<Tensor>> {
        let eligible = !x.track_op()
            && !self.cos.track_op()
            && !self.sin.track_op()
            && x.device().is_cpu()
            && x.dtype() == DType::F32
            && self.cos.dtype() == DType::F32
            && self.sin.dtype() == DType::F32
            && x.rank() == 4;
        if !eligible {
            return Ok(None);
        }
        let (b, heads, t, d) = x.dims4()?;
        let d_rot = self.cos.dim(D::Minus1)?;
        let per_row = match self.cos.dims() {
            [tt, _] if *tt == t => false,
            [bb, 1, tt, _] if *bb == b && *tt == t => true,
            _ => return Ok(None),
        };
        if self.sin.dims() != self.cos.dims() || d_rot > d || d_rot % 2 != 0 {
            return Ok(None);
        }
        let cos = self.cos.flatten_all()?.to_vec1::<f32>()?;
        let sin = self.sin.flatten_all()?.to_vec1::<f32>()?;
        let xs = x.flatten_all()?.to_vec1::<f32>()?;
        let half = d_rot / 2;
        let mut out = vec![0f32; xs.len()];
        for (i, (xr, yr)) in xs.chunks_exact(d).zip(out.chunks_exact_mut(d)).enumerate() {
            // Row i is (batch i / (heads·T), position i mod T).
            let pos = i % t.max(1);
            let table_row = if per_row {
                (i / (heads * t).max(1)) * t + pos
            } else {
                pos
            };
            let at = table_row * d_rot;
            let (c, s) = (&cos[at..at + d_rot], &sin[at..at + d_rot]);
            let (x1, x2) = xr[..d_rot].split_at(half);
            for j in 0..half {
                yr[j] = x1[j] * c[j] + (-x2[j]) * s[j];
                yr[half + j] = x2[j] * c[half + j] + x1[j] * s[half + j];
            }
            yr[d_rot..].copy_from_slice(&xr[d_rot..]);
        }
        Ok(Some(Tensor::from_vec(out, (b, heads, t, d), x.device())?))
    }
}

/// Row-major `[T, D_rot]` cosines and sines of `position · freq`, each frequency repeated for
/// both halves; angles in f64, rounded once to f32.
fn angle_tables(freqs: &[f64], positions: &[u32]) -> (Vec<f32>, Vec<f32>) {
    let n = positions.len() * 2 * freqs.len();
    let mut cos = Vec::with_capacity(n);
    let mut sin = Vec::with_capacity(n);
    for &p in positions {
        for _ in 0..2 {
            for f in freqs {
                let a = f64::from(p) * f;
                cos.push(a.cos() as f32);
                sin.push(a.sin() as f32);
            }
        }
    }
    (cos, sin)
}

/// Positions `0..t` as u32.
pub fn arange_positions(t: usize) -> Vec<u32> {
    (0..t as u32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Activation, ArchSwitches};
    use crate::families::Family;

    fn cfg(scaling: RopeScaling) -> ModelConfig {
        ModelConfig {
            family: Family::Llama,
            vocab_size: 8,
            hidden_size: 64,
            intermediate_size: 8,
            num_hidden_layers: 1,
            num_attention_heads: 1,
            num_key_value_heads: 1,
            head_dim: 64,
            rms_norm_eps: 1e-6,
            rope_theta: 500000.0,
            rope_scaling: scaling,
            rotary_dim: 64,
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

    #[test]
    fn llama3_scaling_keeps_high_and_divides_low_frequencies() {
        let plain = inv_freq(&cfg(RopeScaling::None));
        let scaled = inv_freq(&cfg(RopeScaling::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192.0,
        }));
        // Highest frequency: wavelength 2π < 8192/4, unchanged.
        assert_eq!(plain[0], scaled[0]);
        // Lowest frequency: wavelength ≈ 2π·500000^(62/64) > 8192, divided by 8.
        let last = plain.len() - 1;
        assert!((scaled[last] - plain[last] / 8.0).abs() < 1e-18);
        // Every scaled frequency lies between f/8 and f.
        for (p, s) in plain.iter().zip(&scaled) {
            assert!(*s <= *p && *s >= p / 8.0 - 1e-18);
        }
    }

    #[test]
    fn row_path_equals_the_tensor_ops() -> Result<()> {
        let dev = Device::Cpu;
        let mut c = cfg(RopeScaling::None);
        for rotary_dim in [64, 32] {
            c.rotary_dim = rotary_dim;
            let shared = RopeTables::new(&c, &[3, 4, 9], &dev)?;
            let per_row = RopeTables::for_rows(&c, &[vec![0, 1, 2], vec![5, 7, 11]], &dev)?;
            let x = Tensor::randn(0f32, 1.0, (2, 3, 3, 64), &dev)?;
            for tables in [&shared, &per_row] {
                let fast = tables.apply(&x)?;
                // A tracked input takes the tensor ops.
                let slow = tables.apply(candle_core::Var::from_tensor(&x)?.as_tensor())?;
                let diff = (fast - slow.detach())?
                    .abs()?
                    .max_all()?
                    .to_scalar::<f32>()?;
                assert_eq!(diff, 0.0, "rotary_dim {rotary_dim}");
            }
        }
        Ok(())
    }

    #[test]
    fn rotation_preserves_pair_norms() -> Result<()> {
        let c = cfg(RopeScaling::None);
        let tables = RopeTables::new(&c, &[0, 5, 17], &Device::Cpu)?;
        let x = Tensor::randn(0f32, 1.0, (1, 1, 3, 64), &Device::Cpu)?;
        let y = tables.apply(&x)?;
        // Position 0 is the identity.
        let d0 = (x.narrow(2, 0, 1)? - y.narrow(2, 0, 1)?)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert!(d0 < 1e-6, "{d0}");
        // Norm of each (i, i+32) pair is kept.
        let pair_norm = |t: &Tensor| -> Result<Tensor> {
            let a = t.narrow(3, 0, 32)?.sqr()?;
            let b = t.narrow(3, 32, 32)?.sqr()?;
            Ok((a + b)?)
        };
        let diff = (pair_norm(&x)? - pair_norm(&y)?)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert!(diff < 1e-4, "{diff}");
        Ok(())
    }
}
