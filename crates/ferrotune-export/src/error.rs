//! Errors of exporting a model.

use std::path::PathBuf;

/// Everything that can go wrong while merging and writing an export. Variants that concern a
/// file name it; config problems name the key and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The export settings are missing, contradictory or ask for something refused (quantized
    /// weights, an existing `export_dir`); the message names the key and the fix.
    #[error("{0}")]
    Config(String),
    /// Part of the export that ferrotune does not write yet (another GGUF family, a tokenizer
    /// kind), naming what is supported.
    #[error("{what} is not built yet; {supported}")]
    NotBuilt {
        /// What was asked for, e.g. "gguf export of the `qwen2` family".
        what: String,
        /// What is supported instead.
        supported: String,
    },
    /// A file or folder could not be created, written, synced or renamed (a full disk ends here).
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file or folder at fault.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Data could not be serialized into `path` (safetensors, JSON, tokenizer).
    #[error("cannot serialize {path}: {msg}")]
    Write {
        /// The file being written.
        path: PathBuf,
        /// What failed.
        msg: String,
    },
    /// The tokenizer cannot be described in the target format.
    #[error("tokenizer {path}: {msg}")]
    Tokenizer {
        /// The tokenizer's source (folder or GGUF file).
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// Loading the model or an adapter, or merging.
    #[error(transparent)]
    Model(#[from] ferrotune_model::ModelError),
    /// Resolving the model or reading its GGUF file or tokenizer.
    #[error(transparent)]
    Hub(#[from] ferrotune_hub::HubError),
    /// The prompt template or the tokenizer fixes of the run.
    #[error(transparent)]
    Data(#[from] ferrotune_data::DataError),
    /// The template setup of the data pipeline.
    #[error(transparent)]
    Pipeline(#[from] ferrotune_data::pipeline::PipelineError),
    /// A tensor operation (dtype conversion, permutation).
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

impl ExportError {
    /// An [`ExportError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, ExportError>;
