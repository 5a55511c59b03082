//! The training loop for causal-LM stages (`pt`, `sft`), as the Hugging Face Trainer runs it
//! for LLaMA-Factory (transformers ≥ 4.46 `Trainer._inner_training_loop`): per epoch a
//! shuffled order of examples, micro-batches of `per_device_train_batch_size`, windows of
//! `gradient_accumulation_steps` micro-batches per optimizer step, the loss averaged over the
//! scored tokens of the whole window, clipping, AdamW with the scheduled learning rate, logs.
//!
//! Setup from a config (model, tokenizer, data, adapters) is in [`crate::recipe`]; this
//! file is the loop, drivable from pre-tokenized examples.
//!
//! Shapes: B micro-batch rows, T longest row, V vocabulary.

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use ferrotune_config::args::{IntervalStrategy, SaveStrategy};
use ferrotune_config::TrainingArguments;
use ferrotune_model::adapters::{mix_seed, set_dropout_seed};
use ferrotune_model::CausalLM;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::checkpoint::{
    load_checkpoint, save_checkpoint, CheckpointData, LoopPosition, WeightsFormat,
};
use crate::collate::{collate, Batch, Example};
use crate::error::TrainError;
use crate::logging::{HistoryEntry, TrainLogger};
use crate::loss_scale::LossScaler;
use crate::optim::{AdamW, Gradients, TrainableParam};
use crate::recompute::{checkpointed_backward, full_graph_backward, GradAccumulator};
use crate::schedule::Schedule;

/// Loop settings that are not in [`TrainingArguments`].
#[derive(Debug, Clone)]
pub struct LoopOptions {
    /// Pad id of the collator.
    pub pad_token_id: u32,
    /// Shuffle the examples every epoch (`!disable_shuffling`).
    pub shuffle: bool,
    /// Where `trainer_log.jsonl` goes; `None` writes nothing.
    pub output_dir: Option<PathBuf>,
    /// Draw the progress bar (on a terminal only).
    pub show_progress: bool,
    /// How checkpoints hold the trainable weights.
    pub weights: WeightsFormat,
    /// Checkpoint folder to continue from (`resume_from_checkpoint`).
    pub resume_from: Option<PathBuf>,
}

/// What one optimizer step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// Loss of the window: summed cross-entropy over its scored tokens / their count.
    pub loss: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Scored target tokens of the window.
    pub n_target_tokens: usize,
    /// Non-padding input tokens of the window.
    pub n_tokens: usize,
    /// Examples of the window.
    pub n_rows: usize,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSummary {
    /// Optimizer steps done.
    pub global_step: u64,
    /// Optimizer steps planned.
    pub max_steps: u64,
    /// Whole epochs planned.
    pub num_train_epochs: u64,
    /// Fractional epochs done.
    pub epoch: f64,
    /// Steps between logs.
    pub logging_steps: u64,
    /// Loss of every step, in order.
    pub step_losses: Vec<f64>,
    /// The logged entries (`trainer_state.json` `log_history`).
    pub log_history: Vec<HistoryEntry>,
    /// Seconds of the loop.
    pub runtime_s: f64,
    /// Examples seen.
    pub samples: u64,
    /// Non-padding input tokens seen.
    pub tokens: u64,
}

impl TrainSummary {
    /// HF's `train_loss`: the mean of the step losses.
    pub fn train_loss(&self) -> f64 {
        self.step_losses.iter().sum::<f64>() / (self.step_losses.len().max(1)) as f64
    }
}

/// The model, its optimizer and the loop settings.
#[derive(Debug)]
pub struct Trainer {
    /// The model; its trainable tensors are the optimizer's [`candle_core::Var`]s.
    pub model: CausalLM,
    /// AdamW over the trainable tensors.
    pub optimizer: AdamW,
    pub(crate) args: TrainingArguments,
    pub(crate) options: LoopOptions,
    pub(crate) device: Device,
    pub(crate) eval_examples: Vec<Example>,
    /// Gradient checkpointing per decoder layer (see [`crate::recompute`]).
    pub(crate) gradient_checkpointing: bool,
    /// Dynamic loss scaling (`fp16: true`), see [`crate::loss_scale`].
    pub(crate) loss_scaler: Option<LossScaler>,
}

/// `value` of a `*_steps` key: below 1 a fraction of `total` (rounded up), else the count.
fn resolve_steps(value: f64, total: u64) -> u64 {
    if value < 1.0 {
        ((value * total as f64).ceil() as u64).max(1)
    } else {
        value as u64
    }
}

impl Trainer {
    /// A trainer over `params` (which must share storage with `model`), AdamW and its
    /// hyperparameters from `args`.
    ///
    /// Errors: [`TrainError::Config`] for a zero batch size or accumulation,
    /// [`TrainError::Optim`] for bad optimizer settings.
    pub fn new(
        model: CausalLM,
        params: Vec<TrainableParam>,
        args: &TrainingArguments,
        options: LoopOptions,
        device: &Device,
    ) -> Result<Self, TrainError> {
        if args.per_device_train_batch_size == 0 || args.gradient_accumulation_steps == 0 {
            return Err(TrainError::Config(format!(
                "`per_device_train_batch_size` ({}) and `gradient_accumulation_steps` ({}) must be >= 1",
                args.per_device_train_batch_size, args.gradient_accumulation_steps
            )));
        }
        Ok(Trainer {
            model,
            optimizer: AdamW::from_training_args(params, args)?,
            args: args.clone(),
            options,
            device: device.clone(),
            eval_examples: Vec::new(),
            gradient_checkpointing: true,
            loss_scaler: None,
        })
    }

    /// Gradient checkpointing on or off; on by default, as LLaMA-Factory turns it on unless
    /// `disable_gradient_checkpointing` (or transformers' `gradient_checkpointing`) says
    /// otherwise. On: per micro-batch only each decoder layer's input is kept and the layer
    /// is recomputed in backward, the loss taken in chunks
    /// ([`crate::recompute::checkpointed_backward`]); off: the whole graph and the full logits
    /// are kept ([`crate::recompute::full_graph_backward`]). Both give the same loss and
    /// gradients up to f32 rounding.
    pub fn with_gradient_checkpointing(mut self, on: bool) -> Self {
        self.gradient_checkpointing = on;
        self
    }

    /// Dynamic loss scaling for fp16 mixed precision (`Some`), or none (`None`, the default).
    pub fn with_loss_scaling(mut self, scaler: Option<LossScaler>) -> Self {
        self.loss_scaler = scaler;
        self
    }

    /// Whether gradient checkpointing is on (see [`Trainer::with_gradient_checkpointing`]).
    pub fn gradient_checkpointing(&self) -> bool {
        self.gradient_checkpointing
    }

    /// The evaluation set, evaluated per `eval_strategy` (every `eval_steps`, or at each
    /// epoch's end) during [`Trainer::train_on`].
    pub fn with_eval(mut self, examples: Vec<Example>) -> Self {
        self.eval_examples = examples;
        self
    }

    /// One optimizer step over a window of micro-batches: the token count of the window
    /// first, then per micro-batch forward, summed loss scaled by `1 / count`, backward
    /// (checkpointed or not, see [`Trainer::with_gradient_checkpointing`]), and the gradients
    /// added up; then clipping (`max_grad_norm`) and AdamW at `lr`.
    /// `step` (1-based) names the step in errors.
    ///
    /// Errors: [`TrainError::Data`] when the window has no scored token,
    /// [`TrainError::NonFinite`] for a NaN/inf loss or gradient norm (no update is made),
    /// model and optimizer errors.
    pub fn step(&mut self, window: &[Batch], lr: f64, step: u64) -> Result<StepStats, TrainError> {
        let total: usize = window.iter().map(|b| b.n_target_tokens).sum();
        if total == 0 {
            return Err(TrainError::Data(format!(
                "step {step} has no scored label (every label is -100); hint: check cutoff_len and train_on_prompt"
            )));
        }
        let names: Vec<(String, Tensor)> = self
            .optimizer
            .params()
            .map(|p| (p.name.clone(), p.var.as_tensor().clone()))
            .collect();
        let mut acc = GradAccumulator::new(names);
        let mut loss = 0.0;
        let loss_scale = self.loss_scaler.as_ref().map_or(1.0, LossScaler::scale);
        let scale = loss_scale / total as f64;
        for (micro, batch) in window.iter().enumerate() {
            // LoRA dropout masks: a pure function of (seed, step, micro-batch); checkpointing
            // recomputes each layer with the same masks.
            let key = mix_seed(mix_seed(self.args.seed, step), micro as u64);
            set_dropout_seed(&mut self.model, key);
            loss += if self.gradient_checkpointing {
                checkpointed_backward(&self.model, batch, scale, None, &mut acc)?
            } else {
                full_graph_backward(&self.model, batch, scale, &mut acc)?
            };
        }
        let loss = loss / loss_scale;
        let grads = acc.into_grads();
        let mut grads = Gradients::from_named(&self.optimizer, grads)?;
        grads.unscale(loss_scale as f32);
        let grad_norm = grads.total_norm()?;
        if let Some(scaler) = &mut self.loss_scaler {
            // fp16: an overflow skips the update and halves the scale (torch's GradScaler).
            if !scaler.update(loss.is_finite() && grad_norm.is_finite()) {
                tracing::warn!(
                    "step {step}: fp16 loss or gradients overflowed, update skipped; loss scale now {}",
                    scaler.scale()
                );
                return Ok(StepStats {
                    loss,
                    grad_norm,
                    n_target_tokens: total,
                    n_tokens: window.iter().map(|b| b.n_tokens).sum(),
                    n_rows: window.iter().map(|b| b.n_rows).sum(),
                });
            }
        }
        if !loss.is_finite() {
            return Err(TrainError::NonFinite {
                what: "loss",
                value: loss,
                step,
            });
        }
        if self.args.max_grad_norm > 0.0 {
            grads.clip_to(grad_norm, self.args.max_grad_norm);
        }
        if !grad_norm.is_finite() {
            return Err(TrainError::NonFinite {
                what: "grad norm",
                value: grad_norm,
                step,
            });
        }
        self.optimizer.step(&grads, lr)?;
        Ok(StepStats {
            loss,
            grad_norm,
            n_target_tokens: total,
            n_tokens: window.iter().map(|b| b.n_tokens).sum(),
            n_rows: window.iter().map(|b| b.n_rows).sum(),
        })
    }

    /// Trains on `examples` for `num_train_epochs` (or `max_steps` when > 0) epochs of
    /// shuffled micro-batches, logging every `logging_steps` steps and saving checkpoints
    /// per `save_strategy`; continues from [`LoopOptions::resume_from`] when set.
    ///
    /// Errors: [`TrainError::Data`] for an empty dataset, [`TrainError::Config`] for
    /// `save_strategy: best`, [`TrainError::Schedule`], checkpoint errors, and the errors of
    /// [`Trainer::step`] and of writing the log.
    pub fn train_on(&mut self, examples: &[Example]) -> Result<TrainSummary, TrainError> {
        let args = self.args.clone();
        let (bs, ga) = (
            args.per_device_train_batch_size,
            args.gradient_accumulation_steps,
        );
        let n = examples.len();
        let batches_per_epoch = if args.dataloader_drop_last {
            n / bs
        } else {
            n.div_ceil(bs)
        };
        if batches_per_epoch == 0 {
            return Err(TrainError::Data(format!(
                "{n} examples make no batch of {bs}; hint: lower `per_device_train_batch_size` or turn off `dataloader_drop_last`"
            )));
        }
        // transformers: update steps per epoch = ⌈batches / accumulation⌉.
        let steps_per_epoch = batches_per_epoch.div_ceil(ga) as u64;
        let (max_steps, num_epochs) = if args.max_steps > 0 {
            let m = args.max_steps as u64;
            (m, m.div_ceil(steps_per_epoch))
        } else {
            let m = (args.num_train_epochs * steps_per_epoch as f64).ceil() as u64;
            (m, args.num_train_epochs.ceil() as u64)
        };
        let schedule = Schedule::from_config(&args, max_steps)?;
        let logging_steps = resolve_steps(args.logging_steps, max_steps);
        let save_steps = resolve_steps(args.save_steps, max_steps);
        let log_every = args.logging_strategy == IntervalStrategy::Steps;
        if args.eval_strategy != IntervalStrategy::No && self.eval_examples.is_empty() {
            return Err(TrainError::Config(format!(
                "`eval_strategy: {}` needs an evaluation set; hint: set `val_size` or `eval_dataset`, or `eval_strategy: no`",
                args.eval_strategy
            )));
        }
        // The config resolves an unset `eval_steps` to `logging_steps`.
        let eval_steps = resolve_steps(args.eval_steps.unwrap_or(args.logging_steps), max_steps);
        let save_every = match args.save_strategy {
            SaveStrategy::Best => {
                return Err(TrainError::Config(
                    "`save_strategy: best` needs evaluation, which is not built yet; hint: use steps or epoch".into(),
                ))
            }
            s => s,
        };
        let mut pos = match self.options.resume_from.clone() {
            Some(dir) => {
                let p = load_checkpoint(&dir, &self.options.weights, &mut self.optimizer)?;
                tracing::info!(step = p.global_step, dir = %dir.display(), "resuming from checkpoint");
                p
            }
            None => LoopPosition::default(),
        };
        if args.ignore_data_skip {
            pos.batches_done = 0;
        }
        let mut logger = TrainLogger::new(
            self.options.output_dir.as_deref(),
            max_steps,
            self.options.show_progress,
        );
        logger.continue_from(&pos)?;
        let mut epoch_f = 0.0;
        'epochs: for epoch in pos.epoch_index..num_epochs {
            if pos.global_step >= max_steps {
                break;
            }
            let mut order: Vec<usize> = (0..n).collect();
            if self.options.shuffle {
                // One generator per epoch, seeded by (seed, epoch): the order is reproducible
                // on resume. (Not torch's RandomSampler stream: orders differ from HF's.)
                let seed = args.data_seed.unwrap_or(args.seed).wrapping_add(epoch);
                order.shuffle(&mut StdRng::seed_from_u64(seed));
            }
            let chunks: Vec<&[usize]> = order
                .chunks(bs)
                .filter(|c| c.len() == bs || !args.dataloader_drop_last)
                .collect();
            let skip = if epoch == pos.epoch_index {
                pos.batches_done
            } else {
                0
            };
            pos.epoch_index = epoch;
            let mut done = skip;
            for window in chunks.get(skip..).unwrap_or(&[]).chunks(ga) {
                let batches = window
                    .iter()
                    .map(|idx| {
                        let rows: Vec<&Example> =
                            idx.iter().filter_map(|&i| examples.get(i)).collect();
                        collate(&rows, self.options.pad_token_id, &self.device)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let step = pos.global_step + 1;
                let stats = self.step(&batches, schedule.lr_at(pos.global_step), step)?;
                done += window.len();
                pos.global_step = step;
                pos.batches_done = done;
                pos.step_losses.push(stats.loss);
                pos.samples += stats.n_rows as u64;
                pos.tokens += stats.n_tokens as u64;
                pos.window_loss += stats.loss;
                epoch_f = epoch as f64 + done as f64 / chunks.len() as f64;
                logger.step();
                if (log_every && step % logging_steps == 0)
                    || (args.logging_first_step && step == 1)
                {
                    // The lr this step trained with, as transformers 5 logs it (4.x logged
                    // the next step's, read after stepping the scheduler).
                    let lr = schedule.lr_at(step - 1);
                    logger.log_step(&mut pos, lr, stats.grad_norm, epoch_f, max_steps)?;
                }
                // HF's `_maybe_log_save_evaluate`: log, then evaluate, then save.
                if args.eval_strategy == IntervalStrategy::Steps && step % eval_steps == 0 {
                    self.evaluate_and_log(&mut logger, &mut pos, epoch_f, max_steps)?;
                }
                // As transformers' DefaultFlowCallback: every save_steps, and at the last step.
                let last = step >= max_steps;
                if save_every == SaveStrategy::Steps && (step % save_steps == 0 || last) {
                    self.checkpoint(&pos, epoch_f, max_steps)?;
                }
                if last {
                    break 'epochs;
                }
            }
            if args.eval_strategy == IntervalStrategy::Epoch {
                self.evaluate_and_log(&mut logger, &mut pos, epoch_f, max_steps)?;
            }
            if save_every == SaveStrategy::Epoch {
                self.checkpoint(&pos, epoch_f, max_steps)?;
            }
            pos.epoch_index = epoch + 1;
            pos.batches_done = 0;
        }
        logger.finish();
        Ok(TrainSummary {
            global_step: pos.global_step,
            max_steps,
            num_train_epochs: num_epochs,
            epoch: epoch_f,
            logging_steps,
            step_losses: pos.step_losses,
            log_history: pos.log_history,
            runtime_s: logger.elapsed(),
            samples: pos.samples,
            tokens: pos.tokens,
        })
    }

    /// Saves `output_dir/checkpoint-{step}` (nothing without an output folder).
    fn checkpoint(&self, pos: &LoopPosition, epoch: f64, max_steps: u64) -> Result<(), TrainError> {
        let Some(dir) = &self.options.output_dir else {
            return Ok(());
        };
        let data = CheckpointData {
            model: &self.model,
            optimizer: (!self.args.save_only_model).then_some(&self.optimizer),
            position: pos,
            epoch,
            max_steps,
        };
        save_checkpoint(
            dir,
            &self.options.weights,
            &data,
            self.args.save_total_limit,
        )?;
        Ok(())
    }
}
