//! The error of every fallible function in the [`pipeline`](super) module.

use std::path::PathBuf;

use crate::dataset::DatasetError;
use crate::error::DataError;

/// Everything that can go wrong between a config and encoded examples.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Template lookup, tokenizer fixes or encoding failed.
    #[error(transparent)]
    Data(#[from] DataError),

    /// A dataset could not be found, read or converted (boxed: dataset errors are large).
    #[error(transparent)]
    Dataset(Box<DatasetError>),

    /// No example survived encoding (LLaMA-Factory raises the same when printing the first
    /// example fails).
    #[error(
        "no valid {split} examples after encoding ({records} conversations read); hint: {hint}"
    )]
    NoExamples {
        /// `train` or `eval`.
        split: &'static str,
        /// How many conversations were encoded.
        records: usize,
        /// What to check.
        hint: &'static str,
    },

    /// A file or folder of `tokenized_path` (or a dump file) could not be written or read.
    #[error("{}: {message}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the operating system said.
        message: String,
    },

    /// A saved tokenized dataset is not in the format [`save_tokenized`](super::save_tokenized)
    /// writes; `line` is 1-based, 0 when it concerns the whole file.
    #[error("{}{}: {message}; hint: delete the folder or point `tokenized_path` elsewhere to re-tokenize", path.display(), fmt_line(*line))]
    Cache {
        /// The file at fault.
        path: PathBuf,
        /// 1-based line, 0 for the whole file.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

impl From<DatasetError> for PipelineError {
    fn from(err: DatasetError) -> Self {
        PipelineError::Dataset(Box::new(err))
    }
}

impl PipelineError {
    /// An [`PipelineError::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, err: impl std::fmt::Display) -> Self {
        PipelineError::Io {
            path: path.into(),
            message: err.to_string(),
        }
    }
}

/// Formats `:line` or nothing.
fn fmt_line(line: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(":{line}")
    }
}
