//! Training for ferrotune: the Hugging Face Trainer's loop as LLaMA-Factory runs it for the
//! `pt` and `sft` stages, with LoRA adapters or full fine-tuning.
//!
//! | module | what it does |
//! |---|---|
//! | [`recipe`] | `ferrotune train`: config → model, data, adapters → loop → output files |
//! | [`tuning`] | which tensors train (`finetuning_type`) and how they are saved; adapters to load |
//! | [`trainer`] | the loop: shuffled micro-batches, token-weighted accumulation, clipping, AdamW, logs |
//! | [`recompute`] | one micro-batch's backward: gradient checkpointing per layer with a chunked loss, or the full graph |
//! | [`checkpoint`] | `checkpoint-N` folders (weights, optimizer state, trainer state) and resuming |
//! | [`estimate`] | `ferrotune estimate`: memory by part, FLOPs per token and step time of a run, without loading weights |
//! | [`eval`] | `eval_loss` on held-out examples, `eval_results.json` |
//! | [`collate`] | right padding of encoded examples into `[B, T]` batches |
//! | [`optim`] | AdamW as `torch.optim.AdamW`, `clip_grad_norm_`, decay grouping, LoRA+ lr scales, state files |
//! | [`schedule`] | every `lr_scheduler_type` of transformers' `get_scheduler` as a pure function of the step |
//! | [`predict`] | `do_predict`: generation on the evaluation set, `generated_predictions.jsonl`, BLEU/ROUGE |
//! | [`metrics`] | BLEU-4 and ROUGE-1/2/L as LLaMA-Factory's `ComputeSimilarity` (jieba words) |
//! | [`logging`], [`outputs`], [`plot`] | `trainer_log.jsonl`, result and state files, `training_loss.png` |
//!
//! ```
//! use candle_core::{Device, Var};
//! use ferrotune_config::TrainingArguments;
//! use ferrotune_train::optim::{AdamW, Gradients, TrainableParam};
//! use ferrotune_train::schedule::Schedule;
//!
//! let args = TrainingArguments { learning_rate: 1e-3, warmup_steps: 2, ..Default::default() };
//! let weight = Var::new(&[0.5f32, -0.5], &Device::Cpu)?;
//! let mut optimizer =
//!     AdamW::from_training_args(vec![TrainableParam::new("lm_head.weight", weight.clone())], &args)?;
//! let schedule = Schedule::from_config(&args, 10)?;
//! for step in 0..3 {
//!     let loss = weight.as_tensor().sqr()?.sum_all()?;
//!     let mut grads = Gradients::from_grad_store(&optimizer, &loss.backward()?);
//!     let _grad_norm = grads.clip_norm(args.max_grad_norm)?;
//!     optimizer.step(&grads, schedule.lr_at(step))?;
//! }
//! // Step 0 has lr 0 (warmup), steps 1 and 2 move each weight about 5e-4 + 1e-3 toward 0.
//! let w = weight.as_tensor().to_vec1::<f32>()?;
//! assert!((w[0] - (0.5 - 1.5e-3)).abs() < 1e-5);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub mod checkpoint;
pub mod collate;
pub mod error;
pub mod estimate;
pub mod eval;
pub mod logging;
pub mod loss_scale;
pub mod metrics;
pub mod optim;
pub mod outputs;
pub mod plot;
pub mod predict;
pub mod recipe;
pub mod recompute;
pub mod schedule;
pub mod trainer;
pub mod tuning;

pub use error::TrainError;
pub use trainer::{LoopOptions, StepStats, TrainSummary, Trainer};
