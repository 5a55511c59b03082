//! The backward pass of one micro-batch, with or without gradient checkpointing.
//!
//! [`full_graph_backward`] is the plain path (`disable_gradient_checkpointing: true`): the
//! whole forward graph is kept, the loss is [`causal_lm_loss`] on the full `[B, T, V]` logits
//! and one `backward()` walks it.
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
//!    gradients of the layer and the gradient of its input, the upstream of the layer below;
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
use candle_core::{Tensor, Var};
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

/// One micro-batch without checkpointing: forward with the whole graph, `scale · sum` of
/// [`causal_lm_loss`] over the full logits, one backward; the parameter gradients are added
/// to `acc`. Returns `scale · sum` (the micro-batch's share of the window's mean loss).
///
/// Errors: model, loss and tensor errors ([`TrainError::Model`], [`TrainError::Candle`]).
pub fn full_graph_backward(
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
    let head = model.lm_head.as_ref().unwrap_or(&model.embed_tokens);
    let rows = chunk_rows.unwrap_or_else(|| loss_chunk_rows(model.config.vocab_size));
    let request = LossGradRequest {
        scale,
        head: head.track_op(),
    };
    let out = chunked_causal_lm_loss(&normed.detach(), head, &batch.labels, Some(request), rows)?;
    let loss = out.sum * scale;
    if let Some(g) = &out.grad_head {
        acc.add_for(head, g)?;
    }
    let Some(grad_normed) = out.grad_hidden else {
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
        let y = layer.forward(&xin, &rope, &mask)?;
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
fn upstream_backward(out: &Tensor, upstream: &Tensor) -> Result<GradStore, TrainError> {
    Ok((out * upstream)?.sum_all()?.backward()?)
}

/// The gradient `store` holds for the leaf `x`, zeros when none reached it.
fn input_grad(store: &GradStore, x: &Tensor) -> Result<Tensor, TrainError> {
    Ok(match store.get(x) {
        Some(g) => g.clone(),
        None => x.zeros_like()?,
    })
}
