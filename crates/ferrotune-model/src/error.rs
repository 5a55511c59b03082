//! Errors of model loading and the forward pass.

use std::path::PathBuf;

/// Everything that can go wrong while reading a model's config and weights or running it.
///
/// Every variant names the file it concerns, so a user can tell which of several
/// files (a shard, a GGUF, a config.json) is at fault.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file that failed.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// config.json is not valid JSON or a field has the wrong type.
    #[error("invalid config {path}: {msg}")]
    Config {
        /// The config.json (or GGUF) that is at fault.
        path: PathBuf,
        /// What is wrong, naming the field.
        msg: String,
    },
    /// config.json (or GGUF metadata) lacks a field the architecture needs.
    #[error("{path}: missing field `{field}`{hint}")]
    MissingField {
        /// The config file.
        path: PathBuf,
        /// The missing field, as spelled in config.json.
        field: String,
        /// Extra context, starting with "; " when not empty.
        hint: String,
    },
    /// The architecture (`model_type` or `general.architecture`) is not one we implement.
    #[error(
        "{path}: unsupported architecture `{arch}`; supported: llama, mistral, qwen2, qwen3, gemma, phi3"
    )]
    UnsupportedArchitecture {
        /// The config file.
        path: PathBuf,
        /// The architecture name found.
        arch: String,
    },
    /// A config value is valid JSON but a setting we do not support (e.g. a rope_scaling type).
    #[error("{path}: unsupported {what}")]
    Unsupported {
        /// The config file.
        path: PathBuf,
        /// What is not supported, with the value.
        what: String,
    },
    /// A weight file (or the folder that should hold them) is malformed or missing: a lying
    /// safetensors header, a bad dtype, no weight file at all.
    #[error("invalid weights in {path}: {msg}")]
    Weights {
        /// The weight file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// Tensors the architecture needs are absent from the weight files.
    #[error("{path}: missing tensors: {}", names.join(", "))]
    MissingTensors {
        /// The model folder or file.
        path: PathBuf,
        /// Every missing tensor, by its HF name.
        names: Vec<String>,
    },
    /// Tensors present in the weight files that the architecture does not use.
    #[error("{path}: unexpected tensors (wrong architecture in config?): {}", names.join(", "))]
    UnexpectedTensors {
        /// The model folder or file.
        path: PathBuf,
        /// Every unused tensor, by name.
        names: Vec<String>,
    },
    /// A tensor has another shape than the config implies.
    #[error("{path}: tensor `{name}` has shape {got:?}, expected {expected:?} from the config")]
    Shape {
        /// The model folder or file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// The shape the config implies.
        expected: Vec<usize>,
        /// The shape in the file.
        got: Vec<usize>,
    },
    /// A `lora_target` or `additional_target` name matches no module of the model.
    #[error("{key} `{name}` matches no module of the model; modules: {}; hint: set `{key}` to names from this list", available.join(", "))]
    AdapterTarget {
        /// The config key: `lora_target` or `additional_target`.
        key: String,
        /// The name that matched nothing.
        name: String,
        /// The module names that exist (for `lora_target`, the linear layers only).
        available: Vec<String>,
    },
    /// An adapter setting that cannot be applied (a zero rank, a module both trained and adapted).
    #[error("invalid adapter setting: {msg}")]
    AdapterConfig {
        /// What is wrong, naming the key and value.
        msg: String,
    },
    /// An adapter file (adapter_config.json, adapter_model.safetensors) is malformed or
    /// lacks or carries unexpected tensors.
    #[error("invalid adapter {path}: {msg}")]
    Adapter {
        /// The adapter file or folder.
        path: PathBuf,
        /// What is wrong, naming every tensor or key at fault.
        msg: String,
    },
    /// An adapter tensor has another shape than this base model needs.
    #[error("{path}: adapter tensor `{name}` has shape {got:?}, the base model needs {expected:?}; hint: the adapter was made for another base model (see base_model_name_or_path in adapter_config.json)")]
    AdapterShape {
        /// The adapter file.
        path: PathBuf,
        /// The tensor's PEFT name.
        name: String,
        /// The shape this base model implies.
        expected: Vec<usize>,
        /// The shape in the file.
        got: Vec<usize>,
    },
    /// The loss cannot be computed from these logits and labels.
    #[error("cannot compute the loss: {msg}")]
    Loss {
        /// What is wrong, with the shapes or the label at fault.
        msg: String,
    },
    /// The key/value cache does not fit the step it is asked to run (another batch size, a
    /// mask of the wrong shape).
    #[error("kv cache: {msg}")]
    Cache {
        /// What is wrong, with the shapes at fault.
        msg: String,
    },
    /// An error from the GGUF reader or tokenizer layer.
    #[error(transparent)]
    Hub(#[from] ferrotune_hub::HubError),
    /// A tensor operation failed (shape mismatch in the forward pass, out of memory).
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Result with [`ModelError`].
pub type Result<T> = std::result::Result<T, ModelError>;
