//! Learning-rate schedules as Hugging Face transformers' `get_scheduler` builds them.
//!
//! Every schedule here is a `LambdaLR`: the learning rate of optimizer step `k` (0-based) is
//! `learning_rate * factor(k)`, and the trainer calls the scheduler once after every optimizer
//! step, so step `k` trains with [`Schedule::lr_at`]`(k)`. Formulas follow the `_lr_lambda`
//! functions of transformers' `src/transformers/optimization.py` (5.x; the same in 4.57), with
//! the same order of floating-point operations so that values agree to the last bits. Warmup
//! steps follow `TrainingArguments.get_warmup_steps` (4.57: `warmup_steps` when > 0, else
//! `ceil(warmup_ratio * total_steps)`), and `warmup_stable_decay` gets LLaMA-Factory 0.9.5's
//! defaults for `num_stable_steps` and `num_decay_steps` (`train/trainer_utils.py`,
//! `create_custom_scheduler`).
//!
//! ```
//! use ferrotune_config::TrainingArguments;
//! use ferrotune_config::args::SchedulerType;
//! use ferrotune_train::schedule::Schedule;
//!
//! let args = TrainingArguments {
//!     learning_rate: 1e-4,
//!     lr_scheduler_type: SchedulerType::Cosine,
//!     warmup_ratio: 0.1,
//!     ..TrainingArguments::default()
//! };
//! let schedule = Schedule::from_config(&args, 100)?;
//! assert_eq!(schedule.warmup_steps(), 10);
//! assert_eq!(schedule.lr_at(5), 0.5e-4); // halfway through the warmup
//! assert_eq!(schedule.lr_at(10), 1e-4); // peak
//! # Ok::<(), ferrotune_train::schedule::ScheduleError>(())
//! ```

mod kwargs;
#[cfg(test)]
mod tests;

use std::f64::consts::PI;

use ferrotune_config::args::SchedulerType;
use ferrotune_config::TrainingArguments;
use thiserror::Error;

use kwargs::Kwargs;

/// A resolved schedule: peak learning rate, step counts and the shape of the curve.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// Peak learning rate (`learning_rate`), the value the factor multiplies.
    pub base_lr: f64,
    /// Optimizer steps of the warmup.
    pub warmup_steps: u64,
    /// Optimizer steps of the whole run (`num_training_steps`).
    pub total_steps: u64,
    /// Curve after (and for some kinds, during) the warmup.
    pub kind: ScheduleKind,
}

/// The shape of a schedule with its `lr_scheduler_kwargs` resolved (defaults filled in).
#[derive(Debug, Clone, PartialEq)]
pub enum ScheduleKind {
    /// `constant`: factor 1 at every step; no warmup even when one is configured.
    Constant,
    /// `constant_with_warmup`: linear warmup from 0, then 1.
    ConstantWithWarmup,
    /// `linear`: linear warmup from 0, then linear decay to 0 at `total_steps`.
    Linear,
    /// `cosine`: linear warmup, then `0.5 * (1 + cos(pi * num_cycles * 2 * progress))`.
    Cosine {
        /// Cosine waves over the decay (default 0.5: one half-wave down to 0).
        num_cycles: f64,
    },
    /// `cosine_with_restarts`: cosine decays to 0 restarted `num_cycles` times.
    CosineWithRestarts {
        /// Hard restarts (default 1).
        num_cycles: f64,
    },
    /// `polynomial`: `(lr - lr_end) * (1 - progress)^power + lr_end`, then `lr_end`.
    Polynomial {
        /// Final learning rate (default 1e-7); must be below `learning_rate`.
        lr_end: f64,
        /// Exponent (default 1.0: linear).
        power: f64,
    },
    /// `inverse_sqrt`: linear warmup, then `1 / sqrt((step + timescale - warmup) / timescale)`.
    InverseSqrt {
        /// Time scale in steps (default: `warmup_steps`, or 10000 when that is 0).
        timescale: f64,
    },
    /// `cosine_with_min_lr`: cosine decay from 1 to `min_lr_rate` instead of 0.
    CosineWithMinLr {
        /// Cosine waves (default 0.5).
        num_cycles: f64,
        /// Floor as a fraction of `learning_rate` (`min_lr / learning_rate` when `min_lr` is set).
        min_lr_rate: f64,
    },
    /// `cosine_warmup_with_min_lr`: like `cosine_with_min_lr`, but the warmup starts at
    /// `1 / warmup_steps` (or `warmup_lr_rate`) and the decay is shifted one step earlier.
    CosineWarmupWithMinLr {
        /// Cosine waves (default 0.5).
        num_cycles: f64,
        /// Floor as a fraction of `learning_rate`.
        min_lr_rate: f64,
        /// Factor of the first warmup step; `None` starts at `1 / warmup_steps`.
        warmup_lr_rate: Option<f64>,
    },
    /// `warmup_stable_decay`: warmup, `num_stable_steps` at the peak, `num_decay_steps` of decay,
    /// then `min_lr_ratio`.
    WarmupStableDecay {
        /// Steps at the peak after the warmup (may be negative as in Python when set by hand).
        num_stable_steps: i64,
        /// Steps of the decay.
        num_decay_steps: i64,
        /// Shape of the warmup (default linear).
        warmup_type: WsdShape,
        /// Shape of the decay (default cosine).
        decay_type: WsdShape,
        /// Floor as a fraction of `learning_rate` (default 0).
        min_lr_ratio: f64,
        /// Cosine waves of a cosine decay (default 0.5).
        num_cycles: f64,
    },
}

/// Curve of a warmup or decay phase of `warmup_stable_decay` (`warmup_type`, `decay_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsdShape {
    /// `linear`.
    Linear,
    /// `cosine`.
    Cosine,
    /// `1-sqrt`.
    OneMinusSqrt,
}

/// Why a schedule could not be built from the training arguments.
#[derive(Debug, Error, PartialEq)]
pub enum ScheduleError {
    /// `lr_scheduler_kwargs` is neither a mapping nor a JSON string holding one.
    #[error("`lr_scheduler_kwargs` must be a mapping, got {found}; hint: write it as e.g. `lr_scheduler_kwargs: {{num_cycles: 1}}`")]
    KwargsNotMapping {
        /// The value as written.
        found: String,
    },
    /// A key the schedule's function does not take (transformers raises `TypeError`).
    #[error("`lr_scheduler_kwargs.{key}` is not a parameter of the `{scheduler}` schedule, which takes {allowed}; hint: remove the key or change `lr_scheduler_type`")]
    UnknownKwarg {
        /// `lr_scheduler_type`.
        scheduler: &'static str,
        /// The key at fault.
        key: String,
        /// The keys that schedule takes.
        allowed: String,
    },
    /// A key with a value of the wrong type.
    #[error("`lr_scheduler_kwargs.{key}` must be {expected}, got {found}")]
    KwargType {
        /// The key at fault.
        key: String,
        /// What it should be.
        expected: &'static str,
        /// The value as written.
        found: String,
    },
    /// A schedule that needs a key that is not set.
    #[error("the `{scheduler}` schedule needs `lr_scheduler_kwargs.{key}`; hint: {hint}")]
    MissingKwarg {
        /// `lr_scheduler_type`.
        scheduler: &'static str,
        /// The missing key.
        key: &'static str,
        /// How to set it.
        hint: &'static str,
    },
    /// Both `min_lr` and `min_lr_rate` are set.
    #[error("`lr_scheduler_kwargs` sets both `min_lr` ({min_lr}) and `min_lr_rate` ({min_lr_rate}); hint: keep only one")]
    MinLrConflict {
        /// `min_lr`.
        min_lr: f64,
        /// `min_lr_rate`.
        min_lr_rate: f64,
    },
    /// Polynomial decay with an end value not below the peak.
    #[error("`lr_scheduler_kwargs.lr_end` ({lr_end}) must be smaller than `learning_rate` ({learning_rate}) for the polynomial schedule")]
    LrEndTooLarge {
        /// `lr_end`.
        lr_end: f64,
        /// `learning_rate`.
        learning_rate: f64,
    },
    /// `reduce_lr_on_plateau`, whose value depends on evaluation metrics.
    #[error("`lr_scheduler_type: reduce_lr_on_plateau` follows evaluation metrics, not the step, and is not supported; hint: choose another `lr_scheduler_type`")]
    NotStepFunction,
}

impl Schedule {
    /// Builds the schedule of `args` for a run of `total_steps` optimizer steps, reading
    /// `learning_rate`, `lr_scheduler_type`, `lr_scheduler_kwargs`, `warmup_steps` and
    /// `warmup_ratio`.
    ///
    /// # Errors
    /// [`ScheduleError`] for kwargs the schedule does not take or of the wrong type, missing
    /// required kwargs (`min_lr`/`min_lr_rate` of the min-lr cosines), `lr_end >= learning_rate`,
    /// and `reduce_lr_on_plateau`.
    pub fn from_config(args: &TrainingArguments, total_steps: u64) -> Result<Self, ScheduleError> {
        let warmup_steps = if args.warmup_steps > 0 {
            args.warmup_steps
        } else {
            // `math.ceil(num_training_steps * warmup_ratio)`; validated to lie in [0, 1].
            (total_steps as f64 * args.warmup_ratio).ceil() as u64
        };
        let kwargs = Kwargs::parse(args.lr_scheduler_kwargs.as_ref())?;
        let lr = args.learning_rate;
        let kind = match args.lr_scheduler_type {
            // transformers passes no kwargs to these two, so any are ignored.
            SchedulerType::Constant => ScheduleKind::Constant,
            SchedulerType::ConstantWithWarmup => ScheduleKind::ConstantWithWarmup,
            SchedulerType::Linear => {
                kwargs.only("linear", &[])?;
                ScheduleKind::Linear
            }
            SchedulerType::Cosine => {
                kwargs.only("cosine", &["num_cycles"])?;
                ScheduleKind::Cosine {
                    num_cycles: kwargs.number("num_cycles")?.unwrap_or(0.5),
                }
            }
            SchedulerType::CosineWithRestarts => {
                kwargs.only("cosine_with_restarts", &["num_cycles"])?;
                ScheduleKind::CosineWithRestarts {
                    num_cycles: kwargs.number("num_cycles")?.unwrap_or(1.0),
                }
            }
            SchedulerType::Polynomial => {
                kwargs.only("polynomial", &["lr_end", "power"])?;
                let lr_end = kwargs.number("lr_end")?.unwrap_or(1e-7);
                if lr <= lr_end || lr.is_nan() {
                    return Err(ScheduleError::LrEndTooLarge {
                        lr_end,
                        learning_rate: lr,
                    });
                }
                ScheduleKind::Polynomial {
                    lr_end,
                    power: kwargs.number("power")?.unwrap_or(1.0),
                }
            }
            SchedulerType::InverseSqrt => {
                kwargs.only("inverse_sqrt", &["timescale"])?;
                let default = if warmup_steps > 0 {
                    warmup_steps
                } else {
                    10_000
                };
                ScheduleKind::InverseSqrt {
                    timescale: kwargs.number("timescale")?.unwrap_or(default as f64),
                }
            }
            SchedulerType::CosineWithMinLr => {
                kwargs.only(
                    "cosine_with_min_lr",
                    &["num_cycles", "min_lr", "min_lr_rate"],
                )?;
                ScheduleKind::CosineWithMinLr {
                    num_cycles: kwargs.number("num_cycles")?.unwrap_or(0.5),
                    min_lr_rate: kwargs.min_lr_rate("cosine_with_min_lr", lr)?,
                }
            }
            SchedulerType::CosineWarmupWithMinLr => {
                let name = "cosine_warmup_with_min_lr";
                kwargs.only(
                    name,
                    &["num_cycles", "min_lr", "min_lr_rate", "warmup_lr_rate"],
                )?;
                ScheduleKind::CosineWarmupWithMinLr {
                    num_cycles: kwargs.number("num_cycles")?.unwrap_or(0.5),
                    min_lr_rate: kwargs.min_lr_rate(name, lr)?,
                    warmup_lr_rate: kwargs.number("warmup_lr_rate")?,
                }
            }
            SchedulerType::WarmupStableDecay => kwargs.wsd(warmup_steps, total_steps)?,
            SchedulerType::ReduceLrOnPlateau => return Err(ScheduleError::NotStepFunction),
        };
        Ok(Schedule {
            base_lr: lr,
            warmup_steps,
            total_steps,
            kind,
        })
    }

    /// Optimizer steps of the warmup.
    pub fn warmup_steps(&self) -> u64 {
        self.warmup_steps
    }

    /// Learning rate of optimizer step `step` (0-based), in the unit of `learning_rate`:
    /// `base_lr * factor_at(step)`, as `LambdaLR` computes it.
    pub fn lr_at(&self, step: u64) -> f64 {
        self.base_lr * self.factor_at(step)
    }

    /// The `LambdaLR` multiplier of optimizer step `step` (0-based), dimensionless.
    pub fn factor_at(&self, step: u64) -> f64 {
        // Python ints: signed, exact; `step` beyond i64 is not a real run.
        let s = i64::try_from(step).unwrap_or(i64::MAX);
        let w = i64::try_from(self.warmup_steps).unwrap_or(i64::MAX);
        let n = i64::try_from(self.total_steps).unwrap_or(i64::MAX);
        let progress = || (s - w) as f64 / (n - w).max(1) as f64;
        if s < w {
            // Linear warmup from 0, except for the kinds that have their own.
            let linear = s as f64 / w.max(1) as f64;
            match &self.kind {
                ScheduleKind::Constant | ScheduleKind::CosineWarmupWithMinLr { .. } => {}
                ScheduleKind::WarmupStableDecay {
                    warmup_type,
                    min_lr_ratio,
                    ..
                } => return wsd_warmup(*warmup_type, linear, *min_lr_ratio),
                _ => return linear,
            }
        }
        match &self.kind {
            ScheduleKind::Constant | ScheduleKind::ConstantWithWarmup => 1.0,
            ScheduleKind::Linear => 0f64.max((n - s) as f64 / (n - w).max(1) as f64),
            ScheduleKind::Cosine { num_cycles } => {
                0f64.max(0.5 * (1.0 + (PI * num_cycles * 2.0 * progress()).cos()))
            }
            ScheduleKind::CosineWithRestarts { num_cycles } => {
                let p = progress();
                if p >= 1.0 {
                    return 0.0;
                }
                0f64.max(0.5 * (1.0 + (PI * (num_cycles * p).rem_euclid(1.0)).cos()))
            }
            ScheduleKind::Polynomial { lr_end, power } => {
                let lr_init = self.base_lr;
                if s > n {
                    return lr_end / lr_init;
                }
                // transformers divides by zero here when warmup_steps == total_steps; we give
                // the end value instead.
                let decay_steps = n - w;
                if decay_steps == 0 {
                    return lr_end / lr_init;
                }
                let pct_remaining = 1.0 - (s - w) as f64 / decay_steps as f64;
                ((lr_init - lr_end) * pct_remaining.powf(*power) + lr_end) / lr_init
            }
            ScheduleKind::InverseSqrt { timescale } => {
                let shift = timescale - w as f64;
                1.0 / ((s as f64 + shift) / timescale).sqrt()
            }
            ScheduleKind::CosineWithMinLr {
                num_cycles,
                min_lr_rate,
            } => {
                let factor = 0.5 * (1.0 + (PI * num_cycles * 2.0 * progress()).cos());
                0f64.max(factor * (1.0 - min_lr_rate) + min_lr_rate)
            }
            ScheduleKind::CosineWarmupWithMinLr {
                num_cycles,
                min_lr_rate,
                warmup_lr_rate,
            } => {
                let (s, w, n) = (s as f64, w as f64, n as f64);
                if s < w {
                    return match warmup_lr_rate {
                        None => (s + 1.0) / w.max(1.0),
                        Some(r) => r + (1.0 - r) * s / (w - 1.0).max(1.0),
                    };
                }
                let progress = (s - w + 1.0) / (n - w).max(1.0);
                let factor = 0.5 * (1.0 + (PI * num_cycles * 2.0 * progress).cos());
                0f64.max(factor * (1.0 - min_lr_rate) + min_lr_rate)
            }
            ScheduleKind::WarmupStableDecay {
                num_stable_steps,
                num_decay_steps,
                decay_type,
                min_lr_ratio,
                num_cycles,
                ..
            } => {
                if s < w + num_stable_steps {
                    return 1.0;
                }
                if s >= w + num_stable_steps + num_decay_steps {
                    return *min_lr_ratio;
                }
                let p = (s - w - num_stable_steps) as f64 / (*num_decay_steps).max(1) as f64;
                let factor = match decay_type {
                    WsdShape::Linear => 1.0 - p,
                    WsdShape::Cosine => 0.5 * (1.0 + (PI * num_cycles * 2.0 * p).cos()),
                    WsdShape::OneMinusSqrt => 1.0 - p.sqrt(),
                };
                0f64.max(factor * (1.0 - min_lr_ratio) + min_lr_ratio)
            }
        }
    }
}

/// Warmup factor of `warmup_stable_decay` at warmup progress `p` in `[0, 1)`.
fn wsd_warmup(shape: WsdShape, p: f64, min_lr_ratio: f64) -> f64 {
    let factor = match shape {
        WsdShape::Linear => p,
        WsdShape::Cosine => 0.5 * (1.0 - (PI * p).cos()),
        WsdShape::OneMinusSqrt => 1.0 - (1.0 - p).sqrt(),
    };
    0f64.max(factor * (1.0 - min_lr_ratio) + min_lr_ratio)
}
