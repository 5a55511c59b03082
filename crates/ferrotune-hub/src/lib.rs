//! Model artifacts for ferrotune: where a model lives, how its GGUF container is read, and the
//! tokenizer that goes with it.
//!
//! | module | what it does |
//! |---|---|
//! | [`resolve`] | turns `model_name_or_path` into a local folder or `.gguf` file: a local path, the Hugging Face hub cache, or a download into that cache; finds or downloads the data files of a hub dataset's split ([`resolve::dataset`]) |
//! | [`gguf`] | validates and memory-maps a GGUF file; typed metadata access; dequantizes tensors to `f32` |
//! | [`generation_config`] | the decoding defaults of `generation_config.json` (eos ids, sampling) |
//! | [`tokenizer`] | a [`tokenizers::Tokenizer`] plus its special tokens and chat template, from `tokenizer.json` + `tokenizer_config.json` or from GGUF metadata |
//!
//! ```no_run
//! use ferrotune_hub::{gguf::GgufFile, resolve, tokenizer::TokenizerBundle};
//! # fn main() -> ferrotune_hub::Result<()> {
//! let opts = resolve::HubOptions::from_env();
//! match resolve::resolve_model("models/SmolLM2-135M-Instruct.Q4_1.gguf", &opts)? {
//!     resolve::ModelSource::Gguf(path) => {
//!         let file = GgufFile::open(&path)?;
//!         let tok = TokenizerBundle::from_gguf(&file)?;
//!         let ids = tok.encode("Hello", false)?;
//!         let embed = file.dequantize("token_embd.weight", &candle_core::Device::Cpu)?; // [vocab, hidden]
//!         println!("{ids:?} {:?}", embed.dims());
//!     }
//!     resolve::ModelSource::HfDir(dir) => {
//!         let tok = TokenizerBundle::from_hf_dir(&dir)?;
//!         println!("{:?}", tok.eos_token);
//!     }
//! }
//! # Ok(()) }
//! ```

pub mod error;
pub mod generation_config;
pub mod gguf;
pub mod resolve;
pub mod tokenizer;

pub use error::{HubError, Result};
