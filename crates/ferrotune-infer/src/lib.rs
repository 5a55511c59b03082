//! Text generation over ferrotune models: a prompt is run once through the model into a
//! key/value cache (prefill), then one token per step is chosen and fed back (decode), with
//! LLaMA-Factory's generating keys (`do_sample`, `temperature`, `top_p`, `top_k`,
//! `repetition_penalty`, `max_new_tokens`, ...) and their defaults.
//!
//! | piece | what it does |
//! |---|---|
//! | [`chat`] | a model, its merged adapters and template loaded from a config; conversations answered |
//! | [`Generator`] | batched generation (left padding), stop ids, a token callback, streamed text, tokens/s |
//! | [`GenerationParams`] | the generating keys, their defaults and checks |
//! | [`sampling`] | repetition penalty, temperature, top-k, top-p, greedy or seeded draws, in transformers' order |
//! | [`StreamDecoder`] | incremental detokenization that never splits a UTF-8 character |
//!
//! The KV cache itself lives with the model code (`ferrotune_model::KvCache`,
//! `CausalLM::forward_with_cache`). Adapters are applied to the model before it is handed over.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use ferrotune_hub::{gguf::GgufFile, tokenizer::TokenizerBundle};
//! use ferrotune_infer::{GenerationParams, Generator};
//!
//! let gguf = GgufFile::open("models/SmolLM2-135M-Instruct.Q4_1.gguf".as_ref())?;
//! let model = ferrotune_model::load_gguf(&gguf, &candle_core::Device::Cpu)?;
//! let generator = Generator::new(model, TokenizerBundle::from_gguf(&gguf)?);
//! let prompt = generator.tokenizer().encode("<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n", false)?;
//! let (outputs, stats) = generator.generate(&[prompt], &GenerationParams::greedy(32))?;
//! println!("{:?} at {:.1} tokens/s", outputs[0].token_ids, stats.decode_tokens_per_second());
//! # Ok(()) }
//! ```

pub mod chat;
mod engine;
mod error;
mod params;
pub mod sampling;
mod stream;

pub use engine::{
    FinishReason, Generation, GenerationStats, Generator, TextGeneration, TokenEvent,
};
pub use error::{InferError, Result};
pub use params::GenerationParams;
pub use stream::StreamDecoder;
