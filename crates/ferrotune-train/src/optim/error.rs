//! The error of every fallible optimizer function.

use std::path::PathBuf;

use thiserror::Error;

/// Why an optimizer could not be built, step, or save or load its state.
#[derive(Debug, Error)]
pub enum OptimError {
    /// A hyperparameter outside the range torch accepts.
    #[error("optimizer setting `{key}` = {value} is out of range: it must be {expected}")]
    Hyperparameter {
        /// The key (`adam_beta1`, `learning_rate`, ...) or `lr_scale of <param>`.
        key: String,
        /// The value given.
        value: f64,
        /// The accepted range.
        expected: &'static str,
    },
    /// Two trainable parameters with one name.
    #[error(
        "trainable parameter `{name}` is listed twice; hint: give each trainable tensor one name"
    )]
    DuplicateParam {
        /// The repeated name.
        name: String,
    },
    /// A gradient whose shape differs from its parameter's.
    #[error("gradient of `{name}` has shape {grad:?} but the parameter has shape {param:?}")]
    GradShape {
        /// Parameter name.
        name: String,
        /// Parameter shape.
        param: Vec<usize>,
        /// Gradient shape.
        grad: Vec<usize>,
    },
    /// Gradients built for a different parameter list.
    #[error("got {got} gradient slots for an optimizer of {expected} parameters; hint: build `Gradients` from this optimizer")]
    GradCount {
        /// Slots in the `Gradients`.
        got: usize,
        /// Parameters of the optimizer.
        expected: usize,
    },
    /// Named gradients for names the optimizer does not hold.
    #[error("gradients for parameters the optimizer does not train: {names}; hint: check the names against the trainable parameters")]
    UnknownGrads {
        /// The names, comma-separated.
        names: String,
    },
    /// A tensor operation failed while updating or measuring `name`.
    #[error("optimizer update of `{name}` failed: {source}")]
    Tensor {
        /// The parameter being processed.
        name: String,
        /// The candle error.
        #[source]
        source: candle_core::Error,
    },
    /// The state file could not be written.
    #[error("cannot write optimizer state {}: {source}", path.display())]
    StateWrite {
        /// Destination file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The state file could not be read or parsed.
    #[error("cannot read optimizer state {}: {source}", path.display())]
    StateRead {
        /// Source file.
        path: PathBuf,
        /// The candle error.
        #[source]
        source: candle_core::Error,
    },
    /// State tensors missing for some parameters.
    #[error("optimizer state {} lacks {names}; hint: it was saved for other trainable parameters (another model or `lora_target`)", path.display())]
    StateMissing {
        /// Source file.
        path: PathBuf,
        /// The missing tensor names, comma-separated.
        names: String,
    },
    /// State tensors for parameters this optimizer does not hold.
    #[error("optimizer state {} has tensors for parameters not being trained: {names}; hint: it was saved for other trainable parameters", path.display())]
    StateUnexpected {
        /// Source file.
        path: PathBuf,
        /// The unexpected tensor names, comma-separated.
        names: String,
    },
    /// A state tensor of the wrong shape.
    #[error("optimizer state {}: `{tensor}` has shape {found:?}, expected {expected:?}", path.display())]
    StateShape {
        /// Source file.
        path: PathBuf,
        /// Tensor name.
        tensor: String,
        /// Shape the parameter needs.
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
    },
    /// A negative step count.
    #[error("optimizer state {}: `{tensor}` holds {value}, expected a step count >= 0", path.display())]
    StateStep {
        /// Source file.
        path: PathBuf,
        /// Tensor name.
        tensor: String,
        /// The value in the file.
        value: i64,
    },
}

/// Joins names for an error message, at most 8 of them.
pub(super) fn join_names(names: &[String]) -> String {
    let mut text = names
        .iter()
        .take(8)
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > 8 {
        text.push_str(&format!(" and {} more", names.len() - 8));
    }
    text
}
