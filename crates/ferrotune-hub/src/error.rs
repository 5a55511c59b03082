//! The error type of every fallible function in this crate.
//!
//! Each variant names the file (or, for downloads, the URL) it is about, so a message read
//! without its call stack still says which artifact is at fault and, where there is a known fix,
//! what to do about it.

use std::path::PathBuf;

/// Everything that can go wrong while locating, reading or decoding a model artifact.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// Reading, mapping or writing a file failed at the operating-system level.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The file or folder being accessed.
        path: PathBuf,
        /// The underlying OS error.
        source: std::io::Error,
    },

    /// The GGUF container is malformed (bad magic, truncated, inconsistent sizes, ...).
    #[error("invalid gguf file {path}: {msg}")]
    Gguf {
        /// The GGUF file.
        path: PathBuf,
        /// What is wrong, with the byte offset where it was found.
        msg: String,
    },

    /// A metadata key that the caller requires is absent from a GGUF file.
    #[error("{path}: missing gguf metadata key `{key}`")]
    MissingKey {
        /// The GGUF file.
        path: PathBuf,
        /// The absent key, e.g. `llama.block_count`.
        key: String,
    },

    /// A GGUF metadata value has a type (or value) the caller cannot use.
    #[error("{path}: gguf metadata key `{key}` should be {expected}, found {got}")]
    WrongType {
        /// The GGUF file.
        path: PathBuf,
        /// The key whose value is unusable.
        key: String,
        /// What the caller accepts, e.g. `an integer in 0..=4294967295`.
        expected: String,
        /// What the file holds, e.g. `i32 -1` or `string "x"`.
        got: String,
    },

    /// A tensor cannot be found or decoded.
    #[error("{path}: tensor `{tensor}`: {msg}")]
    Tensor {
        /// The file holding the tensor.
        path: PathBuf,
        /// The tensor's name, e.g. `blk.0.attn_q.weight`.
        tensor: String,
        /// What is wrong.
        msg: String,
    },

    /// A tokenizer file (tokenizer.json, tokenizer_config.json, GGUF tokenizer metadata) is
    /// unusable, or encoding/decoding failed.
    #[error("tokenizer from {path}: {msg}")]
    Tokenizer {
        /// The file the tokenizer was built from.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },

    /// A JSON file of a model folder (e.g. generation_config.json) is malformed.
    #[error("invalid {path}: {msg}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        msg: String,
    },

    /// A local path does not hold a model in a form we can load.
    #[error("{path}: {msg}")]
    NotFound {
        /// The path that was inspected.
        path: PathBuf,
        /// What was expected there.
        msg: String,
    },

    /// A hub repository is not in the local cache and cannot be downloaded.
    #[error(
        "model `{repo}` (revision `{revision}`) is not in the hugging face cache at {cache_dir} \
         and {reason}; hint: {hint}"
    )]
    Offline {
        /// The repository id, e.g. `HuggingFaceTB/SmolLM2-135M-Instruct`.
        repo: String,
        /// The revision that was looked for.
        revision: String,
        /// The hub cache folder that was searched.
        cache_dir: PathBuf,
        /// Why no download was attempted or why it failed, e.g. `HF_HUB_OFFLINE=1 is set`.
        reason: String,
        /// What the user can do instead.
        hint: &'static str,
    },

    /// A hub dataset is not in the local cache and cannot be downloaded.
    #[error(
        "dataset `{repo}` (revision `{revision}`) is not in the hugging face cache at {cache_dir} \
         and {reason}; hint: download it elsewhere (`huggingface-cli download --repo-type dataset \
         {repo}`) into that cache, or download its data files and set `file_name` in \
         dataset_info.json"
    )]
    DatasetOffline {
        /// The dataset repository id, e.g. `llamafactory/alpaca_en`.
        repo: String,
        /// The revision that was looked for.
        revision: String,
        /// The hub cache folder that was searched.
        cache_dir: PathBuf,
        /// Why no download was attempted or why it failed.
        reason: String,
    },

    /// A hub dataset has no data files for the requested subset, folder and split.
    #[error(
        "dataset `{repo}`: no data files for {wanted}; {found}; hint: set `split`, `subset` or \
         `folder` in the dataset's entry of dataset_info.json"
    )]
    NoDataFiles {
        /// The dataset repository id.
        repo: String,
        /// What was asked for, e.g. `split \`test\` in subset \`en\``.
        wanted: String,
        /// What the repository does hold (its splits, or its readable files).
        found: String,
    },

    /// An HTTP download failed.
    #[error("download of {url} failed: {msg}")]
    Download {
        /// The URL requested.
        url: String,
        /// The HTTP status or transport error.
        msg: String,
    },
}

/// `Result` with [`HubError`].
pub type Result<T> = std::result::Result<T, HubError>;

impl HubError {
    /// Wraps an I/O error with the path it happened on.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        HubError::Io {
            path: path.into(),
            source,
        }
    }
}
