//! The error of the trainer: setup, the loop and its output files.

use std::path::PathBuf;

use thiserror::Error;

use crate::optim::OptimError;
use crate::schedule::ScheduleError;

/// Why training could not start, stopped, or could not write its outputs.
#[derive(Debug, Error)]
pub enum TrainError {
    /// A setting the trainer cannot honour, naming the key and the fix.
    #[error("{0}")]
    Config(String),
    /// Examples the trainer cannot batch.
    #[error("training data: {0}")]
    Data(String),
    /// The loss or the gradient norm stopped being finite.
    #[error("{what} is {value} at step {step}; hint: lower `learning_rate`, set `max_grad_norm`, or check the data")]
    NonFinite {
        /// `loss` or `grad norm`.
        what: &'static str,
        /// The value (NaN or ±inf).
        value: f64,
        /// The optimizer step (1-based) at fault.
        step: u64,
    },
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Writing a file in another format (JSON, PNG, tokenizer).
    #[error("cannot write {path}: {msg}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What failed.
        msg: String,
    },
    /// The model, its adapters or the loss.
    #[error(transparent)]
    Model(#[from] ferrotune_model::ModelError),
    /// The tokenizer, template or dataset pipeline.
    #[error(transparent)]
    Pipeline(#[from] ferrotune_data::pipeline::PipelineError),
    /// Model resolution or the tokenizer files.
    #[error(transparent)]
    Hub(#[from] ferrotune_hub::HubError),
    /// Loading the model from the config (`ferrotune_infer::chat::load_from_config`).
    #[error(transparent)]
    Load(Box<ferrotune_infer::InferError>),
    /// The optimizer.
    #[error(transparent)]
    Optim(#[from] OptimError),
    /// The learning-rate schedule.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    /// A tensor operation.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl From<ferrotune_infer::InferError> for TrainError {
    fn from(e: ferrotune_infer::InferError) -> Self {
        TrainError::Load(Box::new(e))
    }
}

impl TrainError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.into(),
            source,
        }
    }
}
