//! Key/value cache for incremental decoding: a prompt is run once (prefill), then one token per
//! step attends to every cached key instead of recomputing the whole sequence.
//!
//! Shapes: B batch, K key/value heads, D head_dim, S cached positions (`T_total`), T new tokens.
//!
//! Layout. Each layer keeps K and V as `[B, K, capacity, D]` f32 buffers, stored per key/value
//! head (GQA groups are never repeated), written in place and grown by doubling; attention reads
//! the view `[B, K, S, D]` of the filled part. Keys are cached after RoPE, so a cached key never
//! needs its rotation again.
//!
//! Padding and positions follow transformers' batched `generate` for decoder-only models
//! (`generation/utils.py`, `_update_model_kwargs_for_generation` and the models'
//! `prepare_inputs_for_generation`, v5.24): prompts are LEFT-padded, a row's positions count its
//! real tokens only (`position_ids = cumsum(attention_mask) - 1`, padding set to 1), and padded
//! keys are masked for every query. The cache remembers which cached keys are padding and how
//! many real tokens each row has seen, so later steps need only the new tokens' mask.
//!
//! Masks are built only where needed: with several new tokens (the causal triangle), when some
//! cached key is padding, or when the sliding window (mistral, qwen2, phi3) hides old keys. A
//! single decode step without padding inside the window attends to everything, unmasked.

use candle_core::{DType, Device, Tensor};

use crate::config::ModelConfig;
use crate::error::{ModelError, Result};

/// Additive value for a blocked key, as in the training mask (`layers::attention`).
const MASKED: f32 = -1e30;

/// Position given to padding tokens, as transformers' `masked_fill_(attention_mask == 0, 1)`;
/// padding is masked as a key, so its position never reaches a real token.
const PAD_POSITION: u32 = 1;

/// Initial room, in positions, of a layer's buffers; they double when full.
const MIN_CAPACITY: usize = 64;

/// The cached keys and values of one attention layer.
#[derive(Debug, Clone, Default)]
pub struct LayerKvCache {
    /// `[B, K, capacity, D]` f32 keys after RoPE; `None` before the first step.
    k: Option<Tensor>,
    /// `[B, K, capacity, D]` f32 values.
    v: Option<Tensor>,
    /// Filled positions S.
    len: usize,
}

impl LayerKvCache {
    /// Number of cached positions S.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends this step's `k`, `v` `[B, K, T, D]` and returns every cached key and value,
    /// `[B, K, S + T, D]` each (views of the buffers, valid until the next append).
    ///
    /// Errors: [`ModelError::Cache`] when the batch size, head count or head width differ from
    /// the cached ones, or `k` and `v` differ in shape.
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let (b, kv, t, d) = k.dims4()?;
        if v.dims() != k.dims() {
            return Err(cache_err(format!(
                "new keys {:?} and values {:?} differ in shape",
                k.dims(),
                v.dims()
            )));
        }
        let needed = self.len + t;
        let capacity = self.k.as_ref().map_or(Ok(0), |buf| buf.dim(2))?;
        if let Some(buf) = &self.k {
            let (cb, ckv, _, cd) = buf.dims4()?;
            if (cb, ckv, cd) != (b, kv, d) {
                return Err(cache_err(format!(
                    "new keys are [{b}, {kv}, {t}, {d}] but the cache holds [{cb}, {ckv}, _, {cd}]; \
                     hint: reset the cache before a new batch"
                )));
            }
        }
        if needed > capacity {
            let new_cap = needed.max(2 * capacity).max(MIN_CAPACITY);
            self.k = Some(grow(self.k.as_ref(), self.len, (b, kv, new_cap, d), k)?);
            self.v = Some(grow(self.v.as_ref(), self.len, (b, kv, new_cap, d), v)?);
        }
        let (Some(kbuf), Some(vbuf)) = (&self.k, &self.v) else {
            return Err(cache_err("buffers missing after allocation".into()));
        };
        // In-place writes into the contiguous buffers at position S.
        kbuf.slice_set(&k.contiguous()?, 2, self.len)?;
        vbuf.slice_set(&v.contiguous()?, 2, self.len)?;
        self.len = needed;
        Ok((kbuf.narrow(2, 0, needed)?, vbuf.narrow(2, 0, needed)?))
    }
}

impl LayerKvCache {
    /// A copy of the first `len` cached positions in buffers of its own (later appends to
    /// either cache never show in the other). `len` is at most [`LayerKvCache::len`].
    fn fork(&self, len: usize) -> Result<Self> {
        let (Some(k), Some(v), true) = (&self.k, &self.v, len > 0) else {
            return Ok(Self::default());
        };
        let (b, kv, _, d) = k.dims4()?;
        let shape = (b, kv, len.max(MIN_CAPACITY), d);
        Ok(Self {
            k: Some(grow(Some(k), len, shape, k)?),
            v: Some(grow(Some(v), len, shape, v)?),
            len,
        })
    }
}

/// A new zeroed buffer of `shape` holding the first `len` positions of `old`.
fn grow(
    old: Option<&Tensor>,
    len: usize,
    shape: (usize, usize, usize, usize),
    like: &Tensor,
) -> Result<Tensor> {
    let buf = Tensor::zeros(shape, like.dtype(), like.device())?;
    if let (Some(old), true) = (old, len > 0) {
        buf.slice_set(&old.narrow(2, 0, len)?.contiguous()?, 2, 0)?;
    }
    Ok(buf)
}

fn cache_err(msg: String) -> ModelError {
    ModelError::Cache { msg }
}

/// The cache of a whole model: one [`LayerKvCache`] per decoder layer plus, per batch row,
/// which cached positions are padding and the position of its next real token.
///
/// Use one cache per batch of sequences: prefill with the (left-padded) prompts, then decode.
/// After an error in a forward pass the cache may hold a partial step: [`KvCache::reset`] it.
#[derive(Debug, Clone)]
pub struct KvCache {
    /// One entry per decoder layer.
    pub layers: Vec<LayerKvCache>,
    /// `[B][S]`: whether each cached position is a real token (not padding).
    key_mask: Vec<Vec<bool>>,
    /// `[B]`: real tokens seen per row, i.e. the RoPE position of the row's next real token.
    next_position: Vec<u32>,
    /// Cached positions S (equal for every row and layer).
    len: usize,
    /// `sliding_window` of the model, copied at creation.
    sliding_window: Option<usize>,
}

/// What one forward step over the cache needs besides the tokens: RoPE positions of the new
/// tokens and the additive attention mask over every cached key.
#[derive(Debug, Clone)]
pub struct CacheStep {
    /// `[B][T]` RoPE positions of the new tokens; all rows equal when `shared_positions`.
    pub positions: Vec<Vec<u32>>,
    /// Whether every row has the same positions (no padding in play), so one `[T, D_rot]`
    /// RoPE table serves all rows.
    pub shared_positions: bool,
    /// `[B or 1, 1, T, S + T]` f32 additive mask (0 visible, -1e30 blocked), or `None` when
    /// every new token may see every key.
    pub mask: Option<Tensor>,
}

impl KvCache {
    /// An empty cache for `cfg`'s layers; the batch size is fixed by the first step.
    pub fn new(cfg: &ModelConfig) -> Self {
        Self {
            layers: vec![LayerKvCache::default(); cfg.num_hidden_layers],
            key_mask: Vec::new(),
            next_position: Vec::new(),
            len: 0,
            sliding_window: cfg.sliding_window,
        }
    }

    /// Cached positions S, padding included.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The batch size B fixed by the first step, `None` while empty.
    pub fn batch_size(&self) -> Option<usize> {
        (!self.next_position.is_empty()).then_some(self.next_position.len())
    }

    /// `[B]`: the RoPE position of each row's next real token (its count of real tokens so far).
    pub fn next_positions(&self) -> &[u32] {
        &self.next_position
    }

    /// A copy of the first `len` cached positions (every row), in buffers of its own: a cache
    /// for continuing from a shared prefix (prefix caching), which later appends to either
    /// cache never reach the other. Positions and padding marks of the copy are those of the
    /// first `len` positions, so a step over it gives what the same step gives after prefilling
    /// those `len` positions alone.
    ///
    /// Errors: [`ModelError::Cache`] when `len` exceeds the cached positions.
    pub fn fork(&self, len: usize) -> Result<Self> {
        if len > self.len {
            return Err(cache_err(format!(
                "cannot fork {len} positions from a cache of {}",
                self.len
            )));
        }
        let key_mask: Vec<Vec<bool>> = self
            .key_mask
            .iter()
            .map(|row| row.get(..len).unwrap_or(row).to_vec())
            .collect();
        let next_position = key_mask
            .iter()
            .map(|row| row.iter().filter(|&&real| real).count() as u32)
            .collect();
        Ok(Self {
            layers: self
                .layers
                .iter()
                .map(|l| l.fork(len))
                .collect::<Result<Vec<_>>>()?,
            key_mask,
            next_position,
            len,
            sliding_window: self.sliding_window,
        })
    }

    /// Empties the cache (the buffers are dropped), ready for a new batch.
    pub fn reset(&mut self) {
        for layer in &mut self.layers {
            *layer = LayerKvCache::default();
        }
        self.key_mask.clear();
        self.next_position.clear();
        self.len = 0;
    }

    /// Registers `t` new tokens for each of `b` rows and returns their positions and mask.
    /// `attention_mask` `[B, T]` (any integer dtype; 1 token, 0 padding) marks padding among the
    /// new tokens; `None` means all are real. The layers then append their keys with
    /// [`LayerKvCache::append`].
    ///
    /// Errors: [`ModelError::Cache`] when `b` differs from the cached batch size or the mask is
    /// not `[b, t]`.
    pub fn begin_step(
        &mut self,
        b: usize,
        t: usize,
        attention_mask: Option<&Tensor>,
        device: &Device,
    ) -> Result<CacheStep> {
        if let Some(cached) = self.batch_size() {
            if cached != b {
                return Err(cache_err(format!(
                    "batch of {b} rows but the cache holds {cached}; hint: reset the cache before a new batch"
                )));
            }
        } else {
            self.key_mask = vec![Vec::new(); b];
            self.next_position = vec![0; b];
        }
        let new_mask: Vec<Vec<bool>> = match attention_mask {
            None => vec![vec![true; t]; b],
            Some(am) => {
                if am.dims() != [b, t] {
                    return Err(cache_err(format!(
                        "attention_mask has shape {:?}, expected [{b}, {t}] like input_ids",
                        am.dims()
                    )));
                }
                am.to_dtype(DType::U32)?
                    .to_vec2::<u32>()?
                    .into_iter()
                    .map(|row| row.into_iter().map(|m| m != 0).collect())
                    .collect()
            }
        };
        let mut positions = Vec::with_capacity(b);
        for (row, real) in new_mask.iter().enumerate() {
            let mut p = Vec::with_capacity(t);
            for &is_real in real {
                if is_real {
                    p.push(self.next_position[row]);
                    self.next_position[row] += 1;
                } else {
                    p.push(PAD_POSITION);
                }
            }
            positions.push(p);
            self.key_mask[row].extend_from_slice(real);
        }
        let past = self.len;
        self.len += t;
        let shared_positions = positions.windows(2).all(|w| w[0] == w[1]);
        let any_padding = self.key_mask.iter().any(|row| row.iter().any(|&m| !m));
        let window_hides = self.sliding_window.is_some_and(|w| self.len > w);
        let mask = if t > 1 || any_padding || window_hides {
            Some(self.step_mask(past, t, any_padding, device)?)
        } else {
            None
        };
        Ok(CacheStep {
            positions,
            shared_positions,
            mask,
        })
    }

    /// The additive mask `[B or 1, 1, T, S]` for queries at cache indices `past..past + T` over
    /// keys `0..S`: key `j` is visible to query `i` when `j ≤ i`, `i - j < sliding_window`, and
    /// `j` is not padding. A query row with no visible key (a padding query before the row's
    /// first real token) is fully blocked, which gives a finite uniform softmax; its output is
    /// never seen by a real token.
    fn step_mask(&self, past: usize, t: usize, per_row: bool, device: &Device) -> Result<Tensor> {
        let s = self.len;
        let window = self.sliding_window;
        let visible = |i: usize, j: usize| j <= i && window.is_none_or(|w| i - j < w);
        let rows: Vec<&[bool]> = if per_row {
            self.key_mask.iter().map(Vec::as_slice).collect()
        } else {
            Vec::new()
        };
        let n = rows.len().max(1);
        let mut bias = vec![MASKED; n * t * s];
        for r in 0..n {
            for qi in 0..t {
                let i = past + qi;
                let out = &mut bias[(r * t + qi) * s..(r * t + qi + 1) * s];
                for (j, slot) in out.iter_mut().enumerate() {
                    let real = rows
                        .get(r)
                        .is_none_or(|keys| keys.get(j).copied() == Some(true));
                    if visible(i, j) && real {
                        *slot = 0.0;
                    }
                }
            }
        }
        Ok(Tensor::from_vec(bias, (n, 1, t, s), device)?)
    }
}

/// The rows of a packed multi-sequence step (continuous batching, see
/// [`crate::CausalLM::forward_multi`]): sequence i brings `T_i ≥ 1` new tokens (a whole prompt
/// to prefill, or one token to decode), laid out one after the other as R = ΣT_i rows, and the
/// row-wise layers (projections, MLP, LM head) run on chunks of these rows.
///
/// The chunks are chosen so that every row gets the numbers it gets when its sequence runs
/// alone through [`crate::CausalLM::forward_with_cache`]: rows of a sequence with at most
/// `small_rows` new tokens (decode steps, short prompts) go in chunks of at most `small_rows`
/// rows, which the few-row kernels serve row by row ([`crate::layers::GEMV_MAX_ROWS`], the
/// quantized blocks); consecutive longer sequences (prompts) share one chunk, a GEMM as when
/// each is prefilled alone (a GEMM's rows are computed independently of each other). A chunk of decode rows reads each weight once for all of its rows, and the
/// chunks of one layer follow each other, so that layer's weights are still in cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedRows {
    /// `[N]` new tokens per sequence.
    lens: Vec<usize>,
    /// Row ranges, in order and covering `0..R`, on which a row-wise layer runs in one call.
    chunks: Vec<std::ops::Range<usize>>,
}

impl PackedRows {
    /// The layout of sequences with `lens[i]` new tokens each, chunked as the type doc says.
    ///
    /// Errors: [`ModelError::Cache`] when a sequence brings no token or `small_rows` is 0.
    pub fn new(lens: &[usize], small_rows: usize) -> Result<Self> {
        if let Some(i) = lens.iter().position(|&t| t == 0) {
            return Err(cache_err(format!(
                "sequence {i} brings no new token; hint: give each sequence at least one"
            )));
        }
        if small_rows == 0 {
            return Err(cache_err("chunks of 0 rows".into()));
        }
        let mut chunks: Vec<std::ops::Range<usize>> = Vec::new();
        let mut start = 0;
        // The open chunk of short sequences' rows, when one is being filled.
        let mut open: Option<std::ops::Range<usize>> = None;
        // Whether the last chunk pushed holds long sequences (and may take the next one).
        let mut last_long = false;
        for &t in lens {
            if t > small_rows {
                if let Some(c) = open.take() {
                    chunks.push(c);
                    last_long = false;
                }
                match chunks.last_mut() {
                    Some(c) if last_long && c.end == start => c.end += t,
                    _ => chunks.push(start..start + t),
                }
                last_long = true;
            } else {
                let mut rest = start..start + t;
                while !rest.is_empty() {
                    let chunk = open.get_or_insert(rest.start..rest.start);
                    let take = (small_rows - chunk.len()).min(rest.len());
                    chunk.end += take;
                    rest.start += take;
                    if chunk.len() == small_rows {
                        chunks.extend(open.take());
                        last_long = false;
                    }
                }
            }
            start += t;
        }
        chunks.extend(open);
        Ok(Self {
            lens: lens.to_vec(),
            chunks,
        })
    }

    /// Sequences N.
    pub fn len(&self) -> usize {
        self.lens.len()
    }

    /// Whether there is no sequence.
    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// Rows R = ΣT_i.
    pub fn rows(&self) -> usize {
        self.lens.iter().sum()
    }

    /// `[N]` new tokens per sequence.
    pub fn lens(&self) -> &[usize] {
        &self.lens
    }

    /// The chunks: row ranges in order, covering `0..R`.
    pub fn chunks(&self) -> &[std::ops::Range<usize>] {
        &self.chunks
    }

    /// The rows of each sequence, in order.
    pub fn spans(&self) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        self.lens.iter().scan(0, |start, &t| {
            let span = *start..*start + t;
            *start += t;
            Some(span)
        })
    }

    /// Runs a row-wise layer on `x` `[R, ...]` chunk by chunk: `f(rows of the chunk, range)` →
    /// `[chunk rows, ...]`, concatenated back to `[R, ...]`.
    ///
    /// Errors: what `f` returns; a shape error when `x` does not have R rows.
    pub fn map(
        &self,
        x: &Tensor,
        mut f: impl FnMut(&Tensor, std::ops::Range<usize>) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let r = x.dim(0)?;
        if r != self.rows() {
            return Err(cache_err(format!(
                "{r} rows but the packed step has {}",
                self.rows()
            )));
        }
        if let [only] = self.chunks.as_slice() {
            return f(x, only.clone());
        }
        let parts = self
            .chunks
            .iter()
            .map(|c| f(&x.narrow(0, c.start, c.len())?, c.clone()))
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::cat(&parts, 0)?)
    }
    /// Runs a row-wise layer whose code path depends on the shape (the norms take a row-by-row
    /// path for one position per sequence) on `x` `[R, 1, ...]`, shaped as each sequence is
    /// alone: consecutive one-token sequences together as `[n, 1, ...]`, consecutive longer
    /// ones as `[1, n, ...]`; results concatenated back to `[R, 1, ...]`.
    ///
    /// Errors: what `f` returns; a shape error when `x` is not `[R, 1, ...]`.
    pub fn map_shaped_as_alone(
        &self,
        x: &Tensor,
        mut f: impl FnMut(&Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        if x.dim(0)? != self.rows() || x.dim(1)? != 1 {
            return Err(cache_err(format!(
                "expected [{}, 1, ...] packed rows, got {:?}",
                self.rows(),
                x.dims()
            )));
        }
        // Runs of sequences of the same kind: (first row, rows, one token each).
        let mut runs: Vec<(usize, usize, bool)> = Vec::new();
        for span in self.spans() {
            let single = span.len() == 1;
            match runs.last_mut() {
                Some((_, n, kind)) if *kind == single => *n += span.len(),
                _ => runs.push((span.start, span.len(), single)),
            }
        }
        let mut parts = Vec::with_capacity(runs.len());
        for (at, n, single) in runs {
            let part = x.narrow(0, at, n)?;
            parts.push(if single {
                f(&part)?
            } else {
                // [n, 1, ...] -> [1, n, ...] and back.
                f(&part.transpose(0, 1)?.contiguous()?)?
                    .transpose(0, 1)?
                    .contiguous()?
            });
        }
        match parts.as_slice() {
            [only] => Ok(only.clone()),
            _ => Ok(Tensor::cat(&parts, 0)?),
        }
    }
}

#[cfg(test)]
mod packed_rows_tests {
    use super::PackedRows;

    #[test]
    fn short_rows_fill_chunks_and_long_sequences_share_one() {
        let p = PackedRows::new(&[1, 1, 12, 3, 5, 1], 4).unwrap();
        assert_eq!(p.rows(), 23);
        assert_eq!(p.chunks(), &[0..2, 2..14, 14..17, 17..22, 22..23]);
        assert_eq!(
            p.spans().collect::<Vec<_>>(),
            vec![0..1, 1..2, 2..14, 14..17, 17..22, 22..23]
        );
        // Consecutive long sequences share a chunk.
        let p = PackedRows::new(&[1, 9, 12, 2], 8).unwrap();
        assert_eq!(p.chunks(), &[0..1, 1..22, 22..24]);
        // A short sequence may straddle two chunks: its rows are independent there.
        let p = PackedRows::new(&[3, 3], 4).unwrap();
        assert_eq!(p.chunks(), &[0..4, 4..6]);
        let decode = PackedRows::new(&[1; 10], 8).unwrap();
        assert_eq!(decode.chunks(), &[0..8, 8..10]);
        assert!(PackedRows::new(&[2, 0], 8).is_err());
    }
}
