//! Causal multi-head self-attention with grouped-query heads (Ainslie et al. 2023,
//! "GQA") and rotary positions: `softmax(Q·Kᵀ/√D + mask)·V` (Vaswani et al. 2017, eq. 1).
//!
//! GQA without copying K/V: query head `h` uses key/value head `h / (H/K)`, so the
//! queries are viewed as `[B, K, (H/K)·T, D]` and multiplied against `[B, K, T, D]`.

use candle_core::{DType, Device, Tensor, D};

use crate::cache::{LayerKvCache, PackedRows};
use crate::config::ModelConfig;
use crate::error::Result;
use crate::layers::{Linear, RmsNorm};
use crate::rope::RopeTables;
use crate::weights::WeightStore;

/// Additive mask value for blocked positions: exp(-1e30 - m) is exactly 0 in f32,
/// and unlike -inf a fully blocked row gives a uniform softmax instead of NaN.
const MASKED: f32 = -1e30;

/// The q/k/v projections, separate or fused as the checkpoint stores them.
#[derive(Debug, Clone)]
pub enum Qkv {
    /// `q_proj` `[H·D, C]`, `k_proj` and `v_proj` `[K·D, C]`.
    Separate {
        /// Query projection.
        q_proj: Linear,
        /// Key projection.
        k_proj: Linear,
        /// Value projection.
        v_proj: Linear,
    },
    /// phi3's `qkv_proj` `[(H + 2K)·D, C]`: q rows, then k, then v.
    Fused {
        /// Fused projection.
        qkv_proj: Linear,
    },
}

/// Self-attention of one decoder layer.
#[derive(Debug, Clone)]
pub struct Attention {
    /// Query/key/value projections.
    pub qkv: Qkv,
    /// `o_proj` `[C, H·D]`.
    pub o_proj: Linear,
    /// qwen3's per-head RMSNorm on queries, `[D]`.
    pub q_norm: Option<RmsNorm>,
    /// qwen3's per-head RMSNorm on keys, `[D]`.
    pub k_norm: Option<RmsNorm>,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    /// Takes `{prefix}.q_proj/k_proj/v_proj/o_proj` (or `qkv_proj`), and `q_norm`/`k_norm` for qwen3.
    pub fn load(w: &mut WeightStore, prefix: &str, cfg: &ModelConfig) -> Result<Self> {
        let (c, h, k, d) = (
            cfg.hidden_size,
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            cfg.head_dim,
        );
        let sw = &cfg.switches;
        let qkv = if sw.fused_qkv {
            Qkv::Fused {
                qkv_proj: Linear::load(
                    w,
                    &format!("{prefix}.qkv_proj"),
                    (h + 2 * k) * d,
                    c,
                    sw.qkv_bias,
                )?,
            }
        } else {
            Qkv::Separate {
                q_proj: Linear::load(w, &format!("{prefix}.q_proj"), h * d, c, sw.qkv_bias)?,
                k_proj: Linear::load(w, &format!("{prefix}.k_proj"), k * d, c, sw.qkv_bias)?,
                v_proj: Linear::load(w, &format!("{prefix}.v_proj"), k * d, c, sw.qkv_bias)?,
            }
        };
        let (q_norm, k_norm) = if sw.qk_norm {
            let eps = cfg.rms_norm_eps;
            let off = sw.norm_weight_offset;
            (
                Some(RmsNorm::load(w, &format!("{prefix}.q_norm"), d, eps, off)?),
                Some(RmsNorm::load(w, &format!("{prefix}.k_norm"), d, eps, off)?),
            )
        } else {
            (None, None)
        };
        Ok(Self {
            qkv,
            o_proj: Linear::load(w, &format!("{prefix}.o_proj"), c, h * d, sw.o_bias)?,
            q_norm,
            k_norm,
            num_heads: h,
            num_kv_heads: k,
            head_dim: d,
        })
    }

    /// Calls `f` with each projection's and norm's tensors under `prefix`.
    pub fn visit_tensors(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        match &self.qkv {
            Qkv::Separate {
                q_proj,
                k_proj,
                v_proj,
            } => {
                q_proj.visit_tensors(&format!("{prefix}.q_proj"), f);
                k_proj.visit_tensors(&format!("{prefix}.k_proj"), f);
                v_proj.visit_tensors(&format!("{prefix}.v_proj"), f);
            }
            Qkv::Fused { qkv_proj } => qkv_proj.visit_tensors(&format!("{prefix}.qkv_proj"), f),
        }
        self.o_proj.visit_tensors(&format!("{prefix}.o_proj"), f);
        if let Some(n) = &self.q_norm {
            n.visit_tensors(&format!("{prefix}.q_norm"), f);
        }
        if let Some(n) = &self.k_norm {
            n.visit_tensors(&format!("{prefix}.k_norm"), f);
        }
    }

    /// `x` `[B, T, C]`, `mask` additive `[B or 1, 1, T, T]` f32 → `[B, T, C]`.
    pub fn forward(&self, x: &Tensor, rope: &RopeTables, mask: &Tensor) -> Result<Tensor> {
        if let Some(y) = self.forward_fused(x, rope, mask, None)? {
            return Ok(y);
        }
        let (q, key, v) = self.project(x, rope)?;
        self.attend(&q, &key, &v, Some(mask))
    }

    /// `residual + self.forward(x, rope, mask)`, `x` and `residual` `[B, T, C]` → `[B, T, C]`.
    /// On the fused path with a plain LoRA adapter on `o_proj` (more than a decode step's
    /// rows), the projection and the sum are one op
    /// ([`crate::kernels::lora_block::lora_residual`]), so the graph does not keep `o_proj`'s
    /// output.
    pub fn forward_residual(
        &self,
        x: &Tensor,
        residual: &Tensor,
        rope: &RopeTables,
        mask: &Tensor,
    ) -> Result<Tensor> {
        if let Some(y) = self.forward_fused(x, rope, mask, Some(residual))? {
            return Ok(y);
        }
        let (q, key, v) = self.project(x, rope)?;
        Ok((residual + self.attend(&q, &key, &v, Some(mask))?)?)
    }

    /// [`Attention::forward`] through the fused kernels (`crate::kernels`): RoPE and tiled
    /// causal attention on the layout of the projections, with no transpose. When q, k and v
    /// all carry plain LoRA and there are no q/k norms, the three projections and RoPE are one
    /// op whose `[B, T, (H + 2·K)·D]` output the packed attention reads as it lies
    /// ([`crate::kernels::lora_block::lora_projections_rope`]); otherwise each projection is
    /// `[B, T, heads, D]`. `None` (use the tensor ops) when the kernels are off, the inputs
    /// are not f32 on the CPU, the projections are fused (phi3), or the tables are per row.
    /// The kernel skips keys after each query: `mask` must be causal, as [`attention_bias`]
    /// makes it. With `residual`, the output is `residual + o_proj(…)`.
    fn forward_fused(
        &self,
        x: &Tensor,
        rope: &RopeTables,
        mask: &Tensor,
        residual: Option<&Tensor>,
    ) -> Result<Option<Tensor>> {
        use crate::kernels::attention::{causal_attention, causal_attention_packed};
        use crate::kernels::lora_block::{lora_projections_rope, lora_residual, Prologue};
        use crate::kernels::rope::rope_bthd;
        let Qkv::Separate {
            q_proj,
            k_proj,
            v_proj,
        } = &self.qkv
        else {
            return Ok(None);
        };
        if !crate::kernels::fused() || rope.cos.rank() != 2 {
            return Ok(None);
        }
        let (b, t, _c) = x.dims3()?;
        let (h, k, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let scale = 1.0 / (d as f64).sqrt();
        let projections = [q_proj, k_proj, v_proj];
        let packed = match (&self.q_norm, &self.k_norm) {
            // LoRA on q, k and v: projections and RoPE as one op whose output the
            // attention reads as it lies (no un-rotated q and k kept for backward).
            (None, None) => lora_projections_rope(&projections, x, rope, (h + k, d))?,
            _ => None,
        };
        let out = match packed {
            Some(qkv) => causal_attention_packed(&qkv, (h, k), mask, scale)?,
            None => {
                let [q, key, v]: [Tensor; 3] = Linear::forward_many(&projections, x)?
                    .try_into()
                    .map_err(|_| candle_core::Error::Msg("q/k/v outputs".into()))?;
                let mut q = q.reshape((b, t, h, d))?;
                let mut key = key.reshape((b, t, k, d))?;
                if let (Some(qn), Some(kn)) = (&self.q_norm, &self.k_norm) {
                    q = qn.forward(&q)?;
                    key = kn.forward(&key)?;
                }
                let (Some(q), Some(key)) = (rope_bthd(&q, rope)?, rope_bthd(&key, rope)?) else {
                    return Ok(None);
                };
                let v = v.reshape((b, t, k, d))?;
                causal_attention(&q, &key, &v, mask, scale)?
            }
        };
        let Some(out) = out else {
            return Ok(None);
        };
        let out = out.reshape((b, t, h * d))?;
        let Some(residual) = residual else {
            return Ok(Some(self.o_proj.forward(&out)?));
        };
        if let Some(y) = lora_residual(&self.o_proj, &out, residual, Prologue::Identity)? {
            return Ok(Some(y));
        }
        Ok(Some((residual + self.o_proj.forward(&out)?)?))
    }

    /// Incremental attention over cached keys: `x` `[B, T, C]` holds only the new tokens, whose
    /// keys and values (after RoPE at `rope`'s positions) are appended to `cache`; the queries
    /// then attend to all `S` cached positions. `mask` is additive `[B or 1, 1, T, S]` f32, or
    /// `None` when every query may see every key (one decode step without padding). → `[B, T, C]`.
    ///
    /// Errors: [`crate::ModelError::Cache`] when `cache` holds another batch or head layout.
    pub fn forward_with_cache(
        &self,
        x: &Tensor,
        rope: &RopeTables,
        mask: Option<&Tensor>,
        cache: &mut LayerKvCache,
    ) -> Result<Tensor> {
        let (q, key, v) = self.project(x, rope)?;
        let (key, v) = cache.append(&key, &v)?;
        self.attend(&q, &key, &v, mask)
    }

    /// Projections, per-head norms and RoPE: `x` `[B, T, C]` → queries `[B, H, T, D]`, keys and
    /// values `[B, K, T, D]`, all contiguous.
    fn project(&self, x: &Tensor, rope: &RopeTables) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, t, _c) = x.dims3()?;
        let (h, k, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let (q, key, v) = match &self.qkv {
            Qkv::Separate {
                q_proj,
                k_proj,
                v_proj,
            } => {
                // One call, so that quantized blocks run the three products together.
                let [q, key, v]: [Tensor; 3] = Linear::forward_many(&[q_proj, k_proj, v_proj], x)?
                    .try_into()
                    .map_err(|_| candle_core::Error::Msg("q/k/v outputs".into()))?;
                (q, key, v)
            }
            Qkv::Fused { qkv_proj } => {
                let qkv = qkv_proj.forward(x)?;
                (
                    qkv.narrow(D::Minus1, 0, h * d)?,
                    qkv.narrow(D::Minus1, h * d, k * d)?,
                    qkv.narrow(D::Minus1, (h + k) * d, k * d)?,
                )
            }
        };
        // [B, T, heads·D] -> [B, T, heads, D]; the q/k norms act per head.
        let mut q = q.reshape((b, t, h, d))?;
        let mut key = key.reshape((b, t, k, d))?;
        if let (Some(qn), Some(kn)) = (&self.q_norm, &self.k_norm) {
            q = qn.forward(&q)?;
            key = kn.forward(&key)?;
        }
        // -> [B, heads, T, D]
        let q = rope.apply(&q.transpose(1, 2)?.contiguous()?)?;
        let key = rope.apply(&key.transpose(1, 2)?.contiguous()?)?;
        let v = v.reshape((b, t, k, d))?.transpose(1, 2)?.contiguous()?;
        Ok((q, key, v))
    }

    /// `softmax(Q·Kᵀ/√D + mask)·V` then `o_proj`: `q` `[B, H, T, D]`, `key` and `v`
    /// `[B, K, S, D]` (S = T without a cache), `mask` additive `[B or 1, 1, T, S]` → `[B, T, C]`.
    fn attend(
        &self,
        q: &Tensor,
        key: &Tensor,
        v: &Tensor,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let out = self.attention_heads(q, key, v, mask)?; // [B, T, H·D]
        self.o_proj.forward(&out)
    }

    /// `softmax(Q·Kᵀ/√D + mask)·V`, the heads side by side (before `o_proj`): `q`
    /// `[B, H, T, D]`, `key` and `v` `[B, K, S, D]`, `mask` additive `[B or 1, 1, T, S]`
    /// → `[B, T, H·D]`.
    fn attention_heads(
        &self,
        q: &Tensor,
        key: &Tensor,
        v: &Tensor,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (b, h, t, d) = q.dims4()?;
        let (k, s) = (self.num_kv_heads, key.dim(2)?);
        let n_rep = h / k;
        let scale = 1.0 / (d as f64).sqrt();
        if mask.is_none() {
            // A decode step without gradients: slice code instead of ~15 tensor ops.
            if let Some(out) = crate::layers::gemv::attend_one_query(q, key, v, scale as f32)? {
                return Ok(out);
            }
        }
        // Queries grouped by their key/value head: [B, K, (H/K)·T, D].
        let q = q.reshape((b, k, n_rep * t, d))?;
        let scores = (q.matmul(&key.t()?)? * scale)?; // [B, K, (H/K)·T, S]
        let scores = scores.reshape((b, h, t, s))?;
        let scores = match mask {
            Some(mask) => scores.broadcast_add(mask)?,
            None => scores,
        };
        let probs = softmax_last_dim(&scores)?.reshape((b, k, n_rep * t, s))?;
        let out = probs.matmul(v)?; // [B, K, (H/K)·T, D]

        // [B, H, T, D] -> [B, T, H, D] -> [B, T, H·D]
        Ok(out
            .reshape((b, h, t, d))?
            .transpose(1, 2)?
            .reshape((b, t, h * d))?)
    }
}

/// Softmax over the last dimension from differentiable ops (candle-nn's fused
/// softmax records no backward). The max is detached: it cancels out of the result.
pub(crate) fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    Ok(e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?)
}

/// The additive attention mask `[B or 1, 1, T, T]` f32: 0 where query `i` may see key `j`,
/// `MASKED` elsewhere. Key `j` is visible when `j ≤ i`, `i - j < window` when a sliding
/// window is set, and, with an `attention_mask` `[B, T]` (u32 or any integer dtype):
/// `attention_mask[j] != 0` (not padding) and `attention_mask[i] == attention_mask[j]`.
///
/// A mask of 1/0 is the usual padding mask. A mask numbering packed sequences 1, 2, … (0 on
/// padding; LLaMA-Factory's `neat_packing`) gives a block-diagonal causal mask, as
/// LLaMA-Factory's `prepare_4d_attention_mask` (`data/collator.py`, v0.9.5): a token sees only
/// the earlier tokens of its own sequence. Padding queries (`attention_mask[i] == 0`) see every
/// earlier non-padding key, so that their rows stay finite; their outputs are never scored.
///
/// Errors: a mask whose shape is not `[B, T]`.
pub fn attention_bias(
    t: usize,
    sliding_window: Option<usize>,
    attention_mask: Option<&Tensor>,
    device: &Device,
) -> Result<Tensor> {
    let causal = |i: usize, j: usize| j <= i && sliding_window.is_none_or(|w| i - j < w);
    let Some(am) = attention_mask else {
        let mut bias = vec![0f32; t * t];
        for i in 0..t {
            for j in 0..t {
                if !causal(i, j) {
                    bias[i * t + j] = MASKED;
                }
            }
        }
        return Ok(Tensor::from_vec(bias, (1, 1, t, t), device)?);
    };
    let rows = am.to_dtype(DType::U32)?.to_vec2::<u32>()?;
    let b = rows.len();
    let mut bias = vec![MASKED; b * t * t];
    for (r, seg) in rows.iter().enumerate() {
        if seg.len() != t {
            return Err(candle_core::Error::Msg(format!(
                "attention_mask row {r} has {} positions, expected {t}",
                seg.len()
            ))
            .into());
        }
        for i in 0..t {
            let row = &mut bias[(r * t + i) * t..(r * t + i + 1) * t];
            for j in 0..=i {
                if causal(i, j) && seg[j] != 0 && (seg[i] == seg[j] || seg[i] == 0) {
                    row[j] = 0.0;
                }
            }
        }
    }
    Ok(Tensor::from_vec(bias, (b, 1, t, t), device)?)
}

/// Steps over several independent sequences, each with its own cache (continuous batching):
/// the row-wise projections run on the packed rows of all sequences in chunks
/// ([`PackedRows`]), attention runs per sequence against its own keys. Shapes: N sequences,
/// T_i new tokens of sequence i (a prompt, or one token), R = ΣT_i rows, S_i cached positions.
impl Attention {
    /// New tokens of N sequences packed as rows: `x` `[R, 1, C]` (sequence i's tokens are the
    /// rows of `rows.spans()`), `rope` at each row's position (`cos`/`sin` `[R, 1, 1, D_rot]`,
    /// see [`RopeTables::for_rows`]), `masks[i]` the additive mask `[1, 1, T_i, S_i]` of
    /// sequence i or `None`, `caches[i]` its layer cache (batch 1), to which its keys and values
    /// are appended → `[R, 1, C]`.
    ///
    /// Sequence i gets what [`Attention::forward_with_cache`] gives it alone: the same
    /// attention code on the same shapes, and projections whose chunks are served by the same
    /// kernels as alone (see [`PackedRows`]).
    ///
    /// Errors: [`crate::ModelError::Cache`] when `x`, `rope`, `masks` or `caches` do not match
    /// `rows`, or a cache holds another batch size or head layout.
    pub fn forward_multi(
        &self,
        x: &Tensor,
        rope: &RopeTables,
        rows: &PackedRows,
        masks: &[Option<Tensor>],
        caches: &mut [&mut LayerKvCache],
    ) -> Result<Tensor> {
        let (r, t, _c) = x.dims3()?;
        let n = rows.len();
        if t != 1 || r != rows.rows() || masks.len() != n || caches.len() != n {
            return Err(crate::ModelError::Cache {
                msg: format!(
                    "a packed step takes x [R, 1, C] with R = {} rows for {n} sequences: got \
                     {:?}, {} masks and {} caches",
                    rows.rows(),
                    x.dims(),
                    masks.len(),
                    caches.len()
                ),
            });
        }
        // q [R, H, 1, D]; key, v [R, K, 1, D]: chunk by chunk, RoPE rows narrowed alike.
        let mut parts = (Vec::new(), Vec::new(), Vec::new());
        for chunk in rows.chunks() {
            let (at, len) = (chunk.start, chunk.len());
            let rope = RopeTables {
                cos: rope.cos.narrow(0, at, len)?,
                sin: rope.sin.narrow(0, at, len)?,
            };
            let (q, key, v) = self.project(&x.narrow(0, at, len)?, &rope)?;
            parts.0.push(q);
            parts.1.push(key);
            parts.2.push(v);
        }
        let (q, key, v) = (
            Tensor::cat(&parts.0, 0)?,
            Tensor::cat(&parts.1, 0)?,
            Tensor::cat(&parts.2, 0)?,
        );
        let mut outs = Vec::with_capacity(n);
        for ((span, cache), mask) in rows.spans().zip(caches.iter_mut()).zip(masks) {
            // Sequence i's rows [T_i, heads, 1, D] -> [1, heads, T_i, D], as alone.
            let seq = |x: &Tensor| -> Result<Tensor> {
                Ok(x.narrow(0, span.start, span.len())?
                    .transpose(0, 2)?
                    .contiguous()?)
            };
            let (key_i, v_i) = cache.append(&seq(&key)?, &seq(&v)?)?;
            let out = self.attention_heads(&seq(&q)?, &key_i, &v_i, mask.as_ref())?;
            outs.push(out.transpose(0, 1)?); // [1, T_i, H·D] -> [T_i, 1, H·D]
        }
        let out = Tensor::cat(&outs, 0)?.contiguous()?; // [R, 1, H·D]
        rows.map(&out, |part, _| self.o_proj.forward(part))
    }
}
