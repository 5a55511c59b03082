//! The backward pass of one micro-batch, with or without gradient checkpointing.
//!
//! [`full_graph_backward`] is the plain path (`disable_gradient_checkpointing: true`): the
//! whole forward graph of the decoder is kept and one `backward()` walks it; the loss and its
//! gradient with respect to the final hidden states come from [`chunked_causal_lm_loss`], so
//! the `[B, T, V]` logits are never held whole on either path (the unchunked
//! [`causal_lm_loss`] over full logits is [`full_logits_backward`], the reference).
//!
//! [`checkpointed_backward`] is gradient checkpointing per decoder layer (Chen et al. 2016,
//! "Training Deep Nets with Sublinear Memory Cost"; transformers' `gradient_checkpointing_enable`,
//! which LLaMA-Factory turns on unless `disable_gradient_checkpointing`):
//!
//! 1. forward: the embedding, then every decoder layer run on a detached input, its output
//!    detached at once, so no layer's graph outlives it; only each layer's input `[B, T, C]`
//!    is kept (`L·B·T·C` f32: 141 MB for the 30 layers of SmolLM2-135M at 4×512);
//! 2. head: the final norm, then the LM head and the loss by
//!    [`chunked_causal_lm_loss`], which gives the loss and its gradient with respect to the
//!    normed hidden states (and the head, when it trains) without holding the `[B, T, V]`
//!    logits; the norm's graph turns that into the gradient of the last layer's output;
//! 3. backward, top layer first: the layer is run again on its saved input (a fresh leaf
//!    [`Var`] when something below needs a gradient), with its graph, and
//!    `sum(output ⊙ upstream)` is backpropagated: its gradients are exactly the parameter
//!    gradients of the layer and the gradient of its input, the upstream of the layer below
//!    (the graph comes from `DecoderLayer::forward_for_backward`, whose MLP skips the products
//!    of its last op, since only its gradients are read);
//! 4. the embedding the same way, only when it trains.
//!
//! Layers that train nothing are run again only while a layer or the embedding below them
//! needs their input gradient (freeze tuning of the last layers stops early). LoRA dropout
//! masks are a pure function of each adapter's `dropout_seed` (set per micro-batch by the
//! trainer) and of the input shape, so the recomputed layer drops the same units as the
//! forward did. The result equals [`full_graph_backward`] up to f32 summation order.
//!
//! Shapes: B rows, T positions, C hidden, V vocabulary, L decoder layers.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor, Var};
use ferrotune_model::layers::attention_bias;
use ferrotune_model::loss::{chunked_causal_lm_loss, loss_chunk_rows, LossGradRequest};
use ferrotune_model::rope::{arange_positions, RopeTables};
use ferrotune_model::{causal_lm_loss, CausalLM};

use crate::collate::Batch;
use crate::error::TrainError;

/// Gradients summed by parameter name across micro-batches.
#[derive(Debug)]
pub struct GradAccumulator {
    /// `(name, tensor)` of every trainable parameter; gradients are looked up by tensor id.
    params: Vec<(String, Tensor)>,
    /// Summed gradient per name, same shape as the parameter, f32.
    grads: HashMap<String, Tensor>,
}

impl GradAccumulator {
    /// An empty accumulator over `params` (`(name, tensor)`; each tensor the one a
    /// [`Var`] holds, so that a [`GradStore`] finds it).
    pub fn new(params: Vec<(String, Tensor)>) -> Self {
        GradAccumulator {
            params,
            grads: HashMap::new(),
        }
    }

    /// Adds the gradient of every parameter found in `store`.
    ///
    /// Errors: [`TrainError::Candle`] when a gradient's shape differs from the sum so far.
    pub fn add_store(&mut self, store: &GradStore) -> Result<(), TrainError> {
        for (name, t) in &self.params {
            if let Some(g) = store.get(t) {
                add_named(&mut self.grads, name, g)?;
            }
        }
        Ok(())
    }

    /// Adds `grad` to the parameter whose tensor is `param` (nothing when `param` is not one
    /// of the parameters).
    ///
    /// Errors: [`TrainError::Candle`] for a shape that differs from the sum so far.
    pub fn add_for(&mut self, param: &Tensor, grad: &Tensor) -> Result<(), TrainError> {
        if let Some((name, _)) = self.params.iter().find(|(_, t)| t.id() == param.id()) {
            add_named(&mut self.grads, name, grad)?;
        }
        Ok(())
    }

    /// The summed gradients by parameter name (parameters that got none are absent).
    pub fn into_grads(self) -> HashMap<String, Tensor> {
        self.grads
    }
}

/// `grads[name] += g`.
fn add_named(
    grads: &mut HashMap<String, Tensor>,
    name: &str,
    g: &Tensor,
) -> Result<(), TrainError> {
    let summed = match grads.remove(name) {
        Some(prev) => (prev + g)?,
        None => g.clone(),
    };
    grads.insert(name.to_string(), summed);
    Ok(())
}

/// `scale · sum` of the causal-LM loss of the final hidden states `normed` `[B, T, C]`
/// through the model's head by [`chunked_causal_lm_loss`] (on `normed` detached, `rows`
/// scored positions per chunk); the head's gradient is added to `acc` when it trains.
/// Returns the loss and its gradient with respect to `normed`.
///
/// Errors: loss and tensor errors.
fn head_loss(
    model: &CausalLM,
    normed: &Tensor,
    labels: &Tensor,
    scale: f64,
    rows: usize,
    acc: &mut GradAccumulator,
) -> Result<(f64, Option<Tensor>), TrainError> {
    let head = model.lm_head.as_ref().unwrap_or(&model.embed_tokens);
    let request = LossGradRequest {
        scale,
        head: head.track_op(),
    };
    let out = chunked_causal_lm_loss(&normed.detach(), head, labels, Some(request), rows)?;
    if let Some(g) = &out.grad_head {
        acc.add_for(head, g)?;
    }
    Ok((out.sum * scale, out.grad_hidden))
}

/// One micro-batch without checkpointing: forward with the whole graph, `scale · sum` of the
/// causal-LM loss by [`chunked_causal_lm_loss`] (its gradient with respect to the final
/// hidden states, and to the head when it trains, in closed form), then one backward through
/// the kept graph; the parameter gradients are added to `acc`. Returns `scale · sum` (the
/// micro-batch's share of the window's mean loss). Equal to [`full_logits_backward`] up to f32
/// summation order.
///
/// Errors: model, loss and tensor errors ([`TrainError::Model`], [`TrainError::Candle`]).
pub fn full_graph_backward(
    model: &CausalLM,
    batch: &Batch,
    scale: f64,
    acc: &mut GradAccumulator,
) -> Result<f64, TrainError> {
    let normed = model.forward_hidden(&batch.input_ids, Some(&batch.attention_mask))?;
    let rows = loss_chunk_rows(model.config.vocab_size);
    let (loss, grad_normed) = head_loss(model, &normed, &batch.labels, scale, rows, acc)?;
    if let (Some(grad_normed), true) = (grad_normed, normed.track_op()) {
        let store = upstream_backward(&normed, &grad_normed)?;
        acc.add_store(&store)?;
    }
    Ok(loss)
}

/// [`full_graph_backward`] with the loss [`causal_lm_loss`] over the full `[B, T, V]` logits
/// and autograd through it: the reference the chunked paths are tested against.
///
/// Errors: model, loss and tensor errors ([`TrainError::Model`], [`TrainError::Candle`]).
pub fn full_logits_backward(
    model: &CausalLM,
    batch: &Batch,
    scale: f64,
    acc: &mut GradAccumulator,
) -> Result<f64, TrainError> {
    // [B, T] → [B, T, V] logits; loss summed over the batch's scored tokens.
    let logits = model.forward(&batch.input_ids, Some(&batch.attention_mask))?;
    let (sum, _) = causal_lm_loss(&logits, &batch.labels)?;
    let scaled = (sum * scale)?;
    let loss = f64::from(scaled.to_scalar::<f32>()?);
    let store = scaled.backward()?;
    acc.add_store(&store)?;
    Ok(loss)
}

/// One micro-batch with gradient checkpointing per decoder layer and the chunked loss (see
/// the module docs): the gradients of `scale · sum` of the causal-LM loss are added to `acc`;
/// returns `scale · sum`. Same values as [`full_graph_backward`] up to f32 rounding;
/// `chunk_rows` scored positions per loss chunk (`None`:
/// [`ferrotune_model::loss::loss_chunk_rows`] of the vocabulary).
///
/// Errors: model, loss and tensor errors ([`TrainError::Model`], [`TrainError::Candle`]).
pub fn checkpointed_backward(
    model: &CausalLM,
    batch: &Batch,
    scale: f64,
    chunk_rows: Option<usize>,
    acc: &mut GradAccumulator,
) -> Result<f64, TrainError> {
    let ids = &batch.input_ids;
    let (_, t) = ids.dims2()?;
    let dev = ids.device();
    // As `CausalLM::forward_hidden`: positions 0..T on every row, the padding/packing mask.
    let rope = RopeTables::new(&model.config, &arange_positions(t), dev)?;
    let mask = attention_bias(
        t,
        model.config.sliding_window,
        Some(&batch.attention_mask),
        dev,
    )?;

    // 1. Forward, keeping only each layer's input.
    let x0 = model.embed(ids)?;
    let embed_trains = x0.track_op();
    let mut x = x0.detach();
    drop(x0);
    let n_layers = model.layers.len();
    let mut inputs = Vec::with_capacity(n_layers);
    // needs_input_grad[i]: the embedding or a layer below i trains.
    let mut needs_input_grad = Vec::with_capacity(n_layers);
    let mut trains = Vec::with_capacity(n_layers);
    let mut below = embed_trains;
    for layer in &model.layers {
        let y = layer.forward(&x, &rope, &mask)?;
        // The input is detached, so the output tracks only through this layer's own Vars.
        let layer_trains = y.track_op();
        needs_input_grad.push(below);
        trains.push(layer_trains);
        below |= layer_trains;
        inputs.push(x);
        x = y.detach();
    }

    // 2. Final norm, LM head and loss.
    let h = leaf(&x, below)?;
    drop(x);
    let normed = model.norm.forward(&h)?;
    let rows = chunk_rows.unwrap_or_else(|| loss_chunk_rows(model.config.vocab_size));
    let (loss, grad_normed) = head_loss(model, &normed, &batch.labels, scale, rows, acc)?;
    let Some(grad_normed) = grad_normed else {
        return Ok(loss);
    };
    if !normed.track_op() {
        return Ok(loss);
    }
    let store = upstream_backward(&normed, &grad_normed)?;
    drop(normed);
    acc.add_store(&store)?;
    if !below {
        return Ok(loss);
    }
    let mut grad = input_grad(&store, &h)?;
    drop((store, h));

    // 3. Layers, top first.
    for (i, layer) in model.layers.iter().enumerate().rev() {
        let (Some(saved), Some(&needs), Some(&layer_trains)) =
            (inputs.pop(), needs_input_grad.get(i), trains.get(i))
        else {
            break;
        };
        if !layer_trains && !needs {
            // Nothing at or below this layer trains.
            return Ok(loss);
        }
        let xin = leaf(&saved, needs)?;
        drop(saved);
        let y = layer.forward_for_backward(&xin, &rope, &mask)?;
        let store = upstream_backward(&y, &grad)?;
        drop(y);
        acc.add_store(&store)?;
        if !needs {
            return Ok(loss);
        }
        grad = input_grad(&store, &xin)?;
    }

    // 4. The embedding, when it trains.
    if embed_trains {
        let x0 = model.embed(ids)?;
        let store = upstream_backward(&x0, &grad)?;
        acc.add_store(&store)?;
    }
    Ok(loss)
}

/// `t` as a fresh leaf [`Var`] (a copy that gradients reach) when `needs_grad`, else `t`.
fn leaf(t: &Tensor, needs_grad: bool) -> Result<Tensor, TrainError> {
    Ok(if needs_grad {
        Var::from_tensor(t)?.as_tensor().clone()
    } else {
        t.clone()
    })
}

/// Backpropagates `upstream` (`d loss / d out`, detached, shaped as `out`) through the graph
/// of `out`: the gradients of `sum(out ⊙ upstream)` are `upstream` pushed through `out`'s
/// graph to every [`Var`] it reaches.
///
/// On the CPU the seed is a custom op whose backward hands `upstream` over as it is (no
/// product, sum or broadcast of ones is formed); elsewhere `sum(out ⊙ upstream)` by tensor ops.
fn upstream_backward(out: &Tensor, upstream: &Tensor) -> Result<GradStore, TrainError> {
    if out.device().is_cpu() && out.dims() == upstream.dims() && out.dtype() == upstream.dtype() {
        let seed = GradientSeed {
            upstream: upstream.clone(),
        };
        return Ok(out
            .apply_op1_arc(std::sync::Arc::new(Box::new(seed)))?
            .backward()?);
    }
    Ok((out * upstream)?.sum_all()?.backward()?)
}

/// A scalar node whose gradient with respect to its input is `upstream` (times the incoming
/// scalar gradient, 1 for the root): backpropagating it pushes `upstream` through the input's
/// graph. Its forward value (0) is never read.
struct GradientSeed {
    /// `d loss / d input`, the input's shape and dtype.
    upstream: Tensor,
}

impl CustomOp1 for GradientSeed {
    fn name(&self) -> &'static str {
        "gradient-seed"
    }

    fn cpu_fwd(
        &self,
        _storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        if layout.shape() != self.upstream.shape() {
            candle_core::bail!(
                "gradient-seed: input {:?}, upstream {:?}",
                layout.shape(),
                self.upstream.shape()
            );
        }
        Ok((CpuStorage::F32(vec![0.0]), Shape::from(())))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let k = grad.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
        Ok(Some(if k == 1.0 {
            self.upstream.clone()
        } else {
            (&self.upstream * k)?
        }))
    }
}

/// The gradient `store` holds for the leaf `x`, zeros when none reached it.
fn input_grad(store: &GradStore, x: &Tensor) -> Result<Tensor, TrainError> {
    Ok(match store.get(x) {
        Some(g) => g.clone(),
        None => x.zeros_like()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use ferrotune_model::adapters::{apply_lora, set_training, LoraConfig, LoraInit};
    use ferrotune_model::kernels::with_fused;

    /// Loss and gradients of the paths must agree within this (f32): relative for the loss,
    /// max |Δ| / max |reference| per gradient.
    const TOL: f64 = 1e-5;

    /// `fixtures/tiny/{family}` with LoRA r = 4 on `targets` and non-zero B (so that A gets
    /// gradients).
    fn tiny_lora(family: &str, targets: &[&str]) -> (CausalLM, Vec<(String, Tensor)>) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/tiny")
            .join(family);
        let mut model = ferrotune_model::load_hf_dir(&dir, &Device::Cpu).expect("tiny llama");
        let cfg = LoraConfig {
            lora_rank: 4,
            lora_alpha: 8.0,
            lora_dropout: 0.0,
            lora_target: targets.iter().map(|t| t.to_string()).collect(),
            additional_target: vec![],
            use_rslora: false,
            use_dora: false,
            init: LoraInit::Default,
        };
        let set = apply_lora(&mut model, &cfg, 3).expect("lora");
        set_training(&mut model, true);
        for (i, (name, v)) in set.params.iter().enumerate() {
            if name.contains("lora_B") {
                let n = v.as_tensor().elem_count();
                let vals: Vec<f32> = (0..n)
                    .map(|j| (((i * 7919 + j * 104729) % 1000) as f32 / 1000.0 - 0.5) * 0.2)
                    .collect();
                let t = Tensor::from_vec(vals, v.as_tensor().shape(), &Device::Cpu).expect("B");
                v.set(&t).expect("set B");
            }
        }
        let params = set
            .params
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
            .collect();
        (model, params)
    }

    /// Two rows of 24 tokens: row 0 one sequence; row 1 two packed sequences (mask 1, 2) and
    /// 4 padding positions (mask 0, labels -100); the first label of every sequence -100.
    fn batch() -> Batch {
        let (b, t) = (2, 24);
        let dev = Device::Cpu;
        let ids: Vec<u32> = (0..b * t).map(|i| ((i * 37 + 11) % 256) as u32).collect();
        let mut mask = vec![1u32; b * t];
        for (j, m) in mask[t..].iter_mut().enumerate() {
            *m = if j < 10 {
                1
            } else if j < 20 {
                2
            } else {
                0
            };
        }
        let labels: Vec<i64> = ids
            .iter()
            .zip(&mask)
            .enumerate()
            .map(|(i, (&id, &m))| {
                let first = i % t == 0 || (i >= t && i % t == 10);
                if m == 0 || first {
                    -100
                } else {
                    i64::from(id)
                }
            })
            .collect();
        let n_target_tokens = (0..b)
            .map(|r| {
                labels[r * t + 1..(r + 1) * t]
                    .iter()
                    .filter(|&&l| l != -100)
                    .count()
            })
            .sum();
        Batch {
            input_ids: Tensor::from_vec(ids, (b, t), &dev).expect("ids"),
            labels: Tensor::from_vec(labels, (b, t), &dev).expect("labels"),
            attention_mask: Tensor::from_vec(mask, (b, t), &dev).expect("mask"),
            n_target_tokens,
            n_tokens: b * t - 4,
            n_rows: b,
        }
    }

    fn rel(a: &Tensor, r: &Tensor) -> f64 {
        let d = (a - r).and_then(|d| d.abs()?.max_all()?.to_scalar::<f32>());
        let s = r.abs().and_then(|s| s.max_all()?.to_scalar::<f32>());
        f64::from(d.expect("diff")) / f64::from(s.expect("scale")).max(f64::MIN_POSITIVE)
    }

    /// The fused kernels (RMSNorm, RoPE, attention, SwiGLU, LoRA linear and the LoRA blocks)
    /// with the chunked loss, with and without checkpointing, against the unfused tensor ops
    /// with the full `[B, T, V]` logits: same loss and same LoRA gradients within 1e-5. On
    /// tiny llama (GQA: 4 query heads, 2 key/value heads; every block), qwen3 (q/k norms: no
    /// q/k/v+RoPE op), gemma (GELU: `down_proj` and the sum as one op, no gate in it), phi3
    /// (fused q/k/v and gate/up) and llama with LoRA on q, k and `down_proj` only.
    #[test]
    fn fused_and_chunked_paths_match_the_unfused_full_logits_path() {
        for (family, targets) in [
            ("llama", &["all"][..]),
            ("qwen3", &["all"]),
            ("gemma", &["all"]),
            ("phi3", &["all"]),
            ("llama", &["q_proj", "k_proj", "down_proj"]),
        ] {
            paths_agree(family, targets);
        }
    }

    /// See [`fused_and_chunked_paths_match_the_unfused_full_logits_path`].
    fn paths_agree(family: &str, targets: &[&str]) {
        let (model, params) = tiny_lora(family, targets);
        let batch = batch();
        let scale = 1.0 / batch.n_target_tokens as f64;
        let run = |fused: bool, which: u8| -> (f64, HashMap<String, Tensor>) {
            with_fused(fused, || {
                let mut acc = GradAccumulator::new(params.clone());
                let loss = match which {
                    0 => full_logits_backward(&model, &batch, scale, &mut acc),
                    1 => full_graph_backward(&model, &batch, scale, &mut acc),
                    _ => checkpointed_backward(&model, &batch, scale, Some(7), &mut acc),
                }
                .expect("backward");
                (loss, acc.into_grads())
            })
        };
        let (loss_ref, grads_ref) = run(false, 0);
        assert_eq!(grads_ref.len(), params.len());
        for (fused, which) in [(true, 0), (true, 1), (true, 2), (false, 1), (false, 2)] {
            let (loss, grads) = run(fused, which);
            let e = (loss - loss_ref).abs() / loss_ref.abs();
            assert!(
                e < TOL,
                "{family} {targets:?}: fused {fused} path {which}: loss {loss} vs {loss_ref}"
            );
            for (name, g_ref) in &grads_ref {
                let g = grads
                    .get(name)
                    .unwrap_or_else(|| panic!("{name}: no gradient"));
                let e = rel(g, g_ref);
                assert!(
                    e < TOL,
                    "{family} {targets:?}: fused {fused} path {which}: {name} differs by {e}"
                );
            }
        }
    }
}
