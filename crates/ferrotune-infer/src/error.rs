//! Errors of generation and streaming detokenization.

use ferrotune_hub::HubError;
use ferrotune_model::ModelError;

/// Everything that can go wrong while generating.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// A generating argument has a value generation cannot use.
    #[error("generating argument `{key}` = {value}: {msg}")]
    InvalidParam {
        /// The LLaMA-Factory key (`num_beams`, `temperature`, ...).
        key: &'static str,
        /// The value given.
        value: String,
        /// What is wrong, with a hint naming the fix.
        msg: String,
    },
    /// A setting of the config that cannot be used (missing model, bad adapter path,
    /// template errors), naming the key and the fix.
    #[error("{0}")]
    Config(String),
    /// A prompt has no tokens.
    #[error("prompt {row} is empty; hint: render the prompt with the chat template first")]
    EmptyPrompt {
        /// Index of the prompt in the batch.
        row: usize,
    },
    /// A prompt holds an id outside the model's vocabulary.
    #[error("prompt {row} holds token id {token} but the model's vocabulary has {vocab_size} ids; hint: encode with the model's own tokenizer")]
    TokenOutOfRange {
        /// Index of the prompt in the batch.
        row: usize,
        /// The id at fault.
        token: u32,
        /// The model's `vocab_size`.
        vocab_size: usize,
    },
    /// A prompt leaves no room for a new token within the model's context.
    #[error("prompt {row} has {len} tokens but the model's context is {limit} (max_position_embeddings); hint: shorten the prompt or the history (cutoff_len)")]
    PromptTooLong {
        /// Index of the prompt in the batch.
        row: usize,
        /// Prompt length in tokens (padding included for batches).
        len: usize,
        /// `max_position_embeddings` of the model.
        limit: usize,
    },
    /// The incremental detokenizer met text it cannot extend (a decoder whose output for more
    /// tokens does not start with its output for fewer).
    #[error("streaming detokenization of {source_path}: {msg}")]
    Detokenize {
        /// The tokenizer's folder or GGUF file.
        source_path: String,
        /// What went wrong, with the texts at fault.
        msg: String,
    },
    /// The forward pass failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The tokenizer failed.
    #[error(transparent)]
    Tokenizer(#[from] HubError),
    /// A tensor operation failed outside the model (reading logits back).
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Result with [`InferError`].
pub type Result<T> = std::result::Result<T, InferError>;
