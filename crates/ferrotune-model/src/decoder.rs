//! The generic decoder-only transformer: embeddings, pre-norm blocks of attention
//! and gated MLP with residuals, a final norm and the LM head.
//! Reference: transformers' `LlamaForCausalLM` (`modeling_llama.py`); the families'
//! differences are switches in [`ModelConfig`].
//!
//! Shapes: B batch, T sequence, C hidden, V vocabulary.

use candle_core::{DType, Tensor};

use crate::cache::{KvCache, LayerKvCache, PackedRows};
use crate::config::ModelConfig;
use crate::error::Result;
use crate::layers::{attention_bias, Attention, Mlp, QuantizedWeight, RmsNorm, GEMV_MAX_ROWS};
use crate::rope::{arange_positions, RopeTables};
use crate::weights::WeightStore;

/// One pre-norm transformer block: `h = x + attn(norm(x))`, `y = h + mlp(norm(h))`.
#[derive(Debug, Clone)]
pub struct DecoderLayer {
    /// Norm before attention.
    pub input_layernorm: RmsNorm,
    /// Self-attention.
    pub self_attn: Attention,
    /// Norm before the MLP.
    pub post_attention_layernorm: RmsNorm,
    /// Gated MLP.
    pub mlp: Mlp,
}

impl DecoderLayer {
    /// Takes the weights of `model.layers.{i}`.
    pub fn load(w: &mut WeightStore, i: usize, cfg: &ModelConfig) -> Result<Self> {
        let p = format!("model.layers.{i}");
        let (c, eps, off) = (
            cfg.hidden_size,
            cfg.rms_norm_eps,
            cfg.switches.norm_weight_offset,
        );
        Ok(Self {
            input_layernorm: RmsNorm::load(w, &format!("{p}.input_layernorm"), c, eps, off)?,
            self_attn: Attention::load(w, &format!("{p}.self_attn"), cfg)?,
            post_attention_layernorm: RmsNorm::load(
                w,
                &format!("{p}.post_attention_layernorm"),
                c,
                eps,
                off,
            )?,
            mlp: Mlp::load(w, &format!("{p}.mlp"), cfg)?,
        })
    }

    /// Calls `f` with each weight of the block and its name under `prefix`.
    pub fn visit_tensors(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        self.input_layernorm
            .visit_tensors(&format!("{prefix}.input_layernorm"), f);
        self.self_attn
            .visit_tensors(&format!("{prefix}.self_attn"), f);
        self.post_attention_layernorm
            .visit_tensors(&format!("{prefix}.post_attention_layernorm"), f);
        self.mlp.visit_tensors(&format!("{prefix}.mlp"), f);
    }

    /// `x` `[B, T, C]` → `[B, T, C]`; `mask` from [`attention_bias`].
    pub fn forward(&self, x: &Tensor, rope: &RopeTables, mask: &Tensor) -> Result<Tensor> {
        self.forward_graph(x, rope, mask, true)
    }

    /// The graph of [`DecoderLayer::forward`] built only to be backpropagated (a layer
    /// recomputed for gradient checkpointing, whose output only seeds the backward): the same
    /// gradients, but the *value* is unspecified, since the MLP's last op may skip its products
    /// ([`Mlp::forward_residual_for_backward`]).
    pub fn forward_for_backward(
        &self,
        x: &Tensor,
        rope: &RopeTables,
        mask: &Tensor,
    ) -> Result<Tensor> {
        self.forward_graph(x, rope, mask, false)
    }

    /// [`DecoderLayer::forward`] (`value`) or [`DecoderLayer::forward_for_backward`].
    fn forward_graph(
        &self,
        x: &Tensor,
        rope: &RopeTables,
        mask: &Tensor,
        value: bool,
    ) -> Result<Tensor> {
        let normed = self.input_layernorm.forward(x)?;
        let h = self.self_attn.forward_residual(&normed, x, rope, mask)?;
        let normed = self.post_attention_layernorm.forward(&h)?;
        if value {
            self.mlp.forward_residual(&normed, &h)
        } else {
            self.mlp.forward_residual_for_backward(&normed, &h)
        }
    }

    /// The block over new tokens only, their keys and values appended to `cache`: `x`
    /// `[B, T, C]` → `[B, T, C]`; `rope` at the new tokens' positions, `mask` `[B or 1, 1, T, S]`
    /// or `None` (see [`Attention::forward_with_cache`]).
    pub fn forward_with_cache(
        &self,
        x: &Tensor,
        rope: &RopeTables,
        mask: Option<&Tensor>,
        cache: &mut LayerKvCache,
    ) -> Result<Tensor> {
        let h = (x + self.self_attn.forward_with_cache(
            &self.input_layernorm.forward(x)?,
            rope,
            mask,
            cache,
        )?)?;
        Ok((&h
            + self
                .mlp
                .forward(&self.post_attention_layernorm.forward(&h)?)?)?)
    }
}

/// A decoder-only language model with its LM head.
#[derive(Debug, Clone)]
pub struct CausalLM {
    /// The resolved configuration.
    pub config: ModelConfig,
    /// `model.embed_tokens.weight` `[V, C]` f32.
    pub embed_tokens: Tensor,
    /// The decoder blocks.
    pub layers: Vec<DecoderLayer>,
    /// The final norm.
    pub norm: RmsNorm,
    /// `lm_head.weight` `[V, C]`, or `None` when tied to `embed_tokens`.
    pub lm_head: Option<Tensor>,
    /// The LM head's GGUF blocks (of `lm_head`, or of `embed_tokens` when tied), kept for
    /// inference by [`crate::load_gguf_quantized`]; used like [`crate::layers::Linear::quantized`].
    pub quantized_head: Option<QuantizedWeight>,
}

impl CausalLM {
    /// Builds the model from HF-named weights, reporting every missing or unused tensor.
    ///
    /// Errors: [`crate::ModelError::MissingTensors`], [`crate::ModelError::UnexpectedTensors`],
    /// [`crate::ModelError::Shape`].
    pub fn from_weights(config: ModelConfig, mut w: WeightStore) -> Result<Self> {
        let (v, c) = (config.vocab_size, config.hidden_size);
        let embed_tokens = w.take("model.embed_tokens.weight", &[v, c])?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| DecoderLayer::load(&mut w, i, &config))
            .collect::<Result<Vec<_>>>()?;
        let norm = RmsNorm::load(
            &mut w,
            "model.norm",
            c,
            config.rms_norm_eps,
            config.switches.norm_weight_offset,
        )?;
        let lm_head = if config.tie_word_embeddings {
            // A tied checkpoint may still carry a copy of the head; transformers ignores it.
            if w.contains("lm_head.weight") {
                w.take("lm_head.weight", &[v, c])?;
            }
            None
        } else {
            Some(w.take("lm_head.weight", &[v, c])?)
        };
        w.finish()?;
        Ok(Self {
            config,
            embed_tokens,
            layers,
            norm,
            lm_head,
            quantized_head: None,
        })
    }

    /// Final hidden states after the last norm: `input_ids` `[B, T]` u32 and an optional
    /// `attention_mask` `[B, T]` (1 = token, 0 = padding) → `[B, T, C]` f32.
    /// Positions are `0..T` for every row.
    pub fn forward_hidden(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let t = input_ids.dim(1)?;
        let device = input_ids.device();
        let mut x = self.embed(input_ids)?;
        let rope = RopeTables::new(&self.config, &arange_positions(t), device)?;
        let mask = attention_bias(t, self.config.sliding_window, attention_mask, device)?;
        for layer in &self.layers {
            x = layer.forward(&x, &rope, &mask)?;
        }
        self.norm.forward(&x)
    }

    /// Next-token logits for every position: `[B, T]` u32 → `[B, T, V]` f32.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Result<Tensor> {
        let h = self.forward_hidden(input_ids, attention_mask)?;
        self.logits(&h)
    }

    /// Final hidden states of new tokens, attending to everything in `cache` (prefill: an empty
    /// cache and the whole prompt; decode: one token per row). `input_ids` `[B, T]` u32 and an
    /// optional `attention_mask` `[B, T]` (1 token, 0 padding; prompts are left-padded) →
    /// `[B, T, C]` f32. Each row's positions continue from its count of cached real tokens
    /// (see [`KvCache`]); the new keys and values are appended to `cache`.
    ///
    /// Agrees with [`CausalLM::forward_hidden`] on the concatenated sequence (same positions,
    /// same masking) up to float summation order.
    ///
    /// Errors: [`crate::ModelError::Cache`] when the batch size differs from the cached one or
    /// the mask is not `[B, T]`; after any error, [`KvCache::reset`] the cache.
    pub fn forward_hidden_with_cache(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let (b, t) = input_ids.dims2()?;
        let device = input_ids.device();
        if cache.layers.len() != self.layers.len() {
            return Err(crate::ModelError::Cache {
                msg: format!(
                    "cache has {} layers, the model {}; hint: build it with KvCache::new(&model.config)",
                    cache.layers.len(),
                    self.layers.len()
                ),
            });
        }
        let step = cache.begin_step(b, t, attention_mask, device)?;
        let rope = if step.shared_positions {
            let row = step.positions.first().map_or(&[][..], Vec::as_slice);
            RopeTables::new(&self.config, row, device)?
        } else {
            RopeTables::for_rows(&self.config, &step.positions, device)?
        };
        let mut x = self.embed(input_ids)?;
        for (layer, layer_cache) in self.layers.iter().zip(cache.layers.iter_mut()) {
            x = layer.forward_with_cache(&x, &rope, step.mask.as_ref(), layer_cache)?;
        }
        self.norm.forward(&x)
    }

    /// Logits of new tokens over a cache: `[B, T]` u32 → `[B, T, V]` f32
    /// (see [`CausalLM::forward_hidden_with_cache`] for the cache, mask and errors).
    pub fn forward_with_cache(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let h = self.forward_hidden_with_cache(input_ids, attention_mask, cache)?;
        self.logits(&h)
    }

    /// Token embeddings: `input_ids` `[B, T]` (any integer dtype) → `[B, T, C]` f32, times √C
    /// for gemma.
    pub fn embed(&self, input_ids: &Tensor) -> Result<Tensor> {
        let (b, t) = input_ids.dims2()?;
        let c = self.config.hidden_size;
        let ids = input_ids.to_dtype(DType::U32)?.flatten_all()?;
        let mut x = self
            .embed_tokens
            .index_select(&ids, 0)?
            .reshape((b, t, c))?;
        if self.config.switches.scale_embeddings {
            // Gemma multiplies by √C rounded to the activation dtype.
            x = (x * f64::from((c as f32).sqrt()))?;
        }
        Ok(x)
    }

    /// The LM head: final hidden states `[B, T, C]` f32 → logits `[B, T, V]` f32 (the tied
    /// embedding matrix when there is no `lm_head`), from [`CausalLM::quantized_head`] when
    /// it serves the product.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let head = self.lm_head.as_ref().unwrap_or(&self.embed_tokens);
        let (b, t, c) = hidden.dims3()?;
        let hidden = hidden.reshape((b * t, c))?;
        let quantized = match &self.quantized_head {
            Some(q) => q.try_matmul(&hidden, head)?,
            None => None,
        };
        let logits = match quantized {
            Some(y) => y,
            None => crate::layers::matmul_wt(&hidden, head)?,
        };
        Ok(logits.reshape((b, t, self.config.vocab_size))?)
    }

    /// Calls `f` with every weight and its HF name, tied weights once.
    pub fn visit_tensors(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        f("model.embed_tokens.weight", &self.embed_tokens);
        for (i, layer) in self.layers.iter().enumerate() {
            layer.visit_tensors(&format!("model.layers.{i}"), f);
        }
        self.norm.visit_tensors("model.norm", f);
        if let Some(head) = &self.lm_head {
            f("lm_head.weight", head);
        }
    }

    /// Every weight with its HF name, tied weights once.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        self.visit_tensors(&mut |name, t| out.push((name.to_string(), t.clone())));
        out
    }

    /// Number of parameters, tied weights counted once.
    pub fn num_parameters(&self) -> usize {
        let mut n = 0;
        self.visit_tensors(&mut |_, t| n += t.elem_count());
        n
    }
}

/// Continuous batching: one step for several independent sequences, each with its own batch-1
/// [`KvCache`] and any number of new tokens (a prompt to prefill, or one token to decode).
/// Shapes: N sequences, T_i new tokens of sequence i, R = ΣT_i packed rows.
impl DecoderLayer {
    /// The block over packed rows: `x` `[R, 1, C]` → `[R, 1, C]`; `rows`, `masks[i]` and
    /// `caches[i]` as in [`Attention::forward_multi`]. The norms see each sequence's rows
    /// shaped as alone ([`PackedRows::map_shaped_as_alone`]), the MLP runs chunk by chunk.
    pub fn forward_multi(
        &self,
        x: &Tensor,
        rope: &RopeTables,
        rows: &PackedRows,
        masks: &[Option<Tensor>],
        caches: &mut [&mut LayerKvCache],
    ) -> Result<Tensor> {
        let normed = rows.map_shaped_as_alone(x, |p| self.input_layernorm.forward(p))?;
        let attn = self
            .self_attn
            .forward_multi(&normed, rope, rows, masks, caches)?;
        let h = (x + attn)?;
        let normed = rows.map_shaped_as_alone(&h, |p| self.post_attention_layernorm.forward(p))?;
        let mlp = rows.map(&normed, |part, _| self.mlp.forward(part))?;
        Ok((&h + mlp)?)
    }
}

impl CausalLM {
    /// Next-token logits after the new tokens of N independent sequences, run together:
    /// `new_tokens[i]` (non-empty) are sequence i's new tokens — its whole prompt over an empty
    /// cache (prefill), or its last sampled token (decode) — and `caches[i]` its own cache
    /// (batch size 1; sequences may have any lengths) → `[N, V]` f32, the logits at each
    /// sequence's last new token.
    ///
    /// The tokens are packed as R rows ([`PackedRows`]): embeddings, norms, projections, MLP
    /// and LM head run over the rows chunk by chunk, so a chunk of decode rows reads each
    /// weight once for all of them; attention runs per sequence against its own cache, with its
    /// own positions and mask. Row i equals what [`CausalLM::forward_with_cache`] gives sequence
    /// i alone up to f32 summation order: every chunk is served by the kernels that serve the
    /// sequence alone (few-row kernels for decode rows, one GEMM per prompt longer than
    /// [`GEMV_MAX_ROWS`]). Each cache grows by its T_i positions.
    ///
    /// Errors: [`crate::ModelError::Cache`] when `caches` and `new_tokens` differ in length, a
    /// sequence brings no token, a cache belongs to another model or holds more than one row,
    /// or a token id is outside the vocabulary; after any error, drop or [`KvCache::reset`] the
    /// caches.
    pub fn forward_multi(
        &self,
        new_tokens: &[&[u32]],
        caches: &mut [&mut KvCache],
    ) -> Result<Tensor> {
        let n = new_tokens.len();
        let device = self.embed_tokens.device();
        let v = self.config.vocab_size;
        let cache_err = |msg: String| crate::ModelError::Cache { msg };
        if caches.len() != n {
            return Err(cache_err(format!(
                "{n} sequences but {} caches; hint: pass one cache per sequence",
                caches.len()
            )));
        }
        if n == 0 {
            return Ok(Tensor::zeros((0, v), DType::F32, device)?);
        }
        let lens: Vec<usize> = new_tokens.iter().map(|t| t.len()).collect();
        let rows = PackedRows::new(&lens, GEMV_MAX_ROWS)?;
        let ids: Vec<u32> = new_tokens.concat();
        if let Some(&bad) = ids.iter().find(|&&t| t as usize >= v) {
            return Err(cache_err(format!(
                "token id {bad} is outside the vocabulary of {v} ids"
            )));
        }
        let mut positions = Vec::with_capacity(ids.len());
        let mut masks = Vec::with_capacity(n);
        for (i, (cache, &t)) in caches.iter_mut().zip(&lens).enumerate() {
            if cache.layers.len() != self.layers.len() {
                return Err(cache_err(format!(
                    "cache {i} has {} layers, the model {}; hint: build it with KvCache::new(&model.config)",
                    cache.layers.len(),
                    self.layers.len()
                )));
            }
            let step = cache.begin_step(1, t, None, device)?;
            let row = step.positions.into_iter().next().unwrap_or_default();
            positions.extend(row.into_iter().map(|p| vec![p]));
            masks.push(step.mask);
        }
        // cos/sin [R, 1, 1, D_rot]: each row at its own position.
        let rope = RopeTables::for_rows(&self.config, &positions, device)?;
        let r = ids.len();
        let mut x = self.embed(&Tensor::from_vec(ids, (r, 1), device)?)?; // [R, 1, C]
        for (l, layer) in self.layers.iter().enumerate() {
            let mut layer_caches = caches
                .iter_mut()
                .map(|c| c.layers.get_mut(l))
                .collect::<Option<Vec<&mut LayerKvCache>>>()
                .ok_or_else(|| cache_err(format!("a cache lacks layer {l}")))?;
            x = layer.forward_multi(&x, &rope, &rows, &masks, &mut layer_caches)?;
        }
        let h = rows.map_shaped_as_alone(&x, |p| self.norm.forward(p))?;
        // Each sequence's last row [N, 1, C], then the head on them as on decode rows.
        let last: Vec<u32> = rows.spans().map(|s| (s.end - 1) as u32).collect();
        let h = h.index_select(&Tensor::new(last.as_slice(), device)?, 0)?;
        let heads = PackedRows::new(&vec![1; n], GEMV_MAX_ROWS)?;
        Ok(heads.map(&h, |part, _| self.logits(part))?.squeeze(1)?) // [N, V]
    }

    /// One decode step of N sequences: [`CausalLM::forward_multi`] with one new token each
    /// (`input_ids[i]` for `caches[i]`) → `[N, V]` f32.
    ///
    /// Errors: as [`CausalLM::forward_multi`].
    pub fn forward_step_multi(
        &self,
        input_ids: &[u32],
        caches: &mut [&mut KvCache],
    ) -> Result<Tensor> {
        if caches.len() != input_ids.len() {
            return Err(crate::ModelError::Cache {
                msg: format!(
                    "{} tokens but {} caches; hint: pass one cache per sequence",
                    input_ids.len(),
                    caches.len()
                ),
            });
        }
        let tokens: Vec<&[u32]> = input_ids.iter().map(std::slice::from_ref).collect();
        self.forward_multi(&tokens, caches)
    }
}
