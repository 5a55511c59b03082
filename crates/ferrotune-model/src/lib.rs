//! Decoder-only LLM architectures and their weights.
//!
//! One generic decoder ([`CausalLM`]) covers the llama, mistral, qwen2, qwen3, gemma
//! and phi3 families; each family's differences are switches resolved from its
//! `config.json` or GGUF metadata in `families/`. Weights come from HF safetensors
//! folders (memory-mapped; f32, f16 or bf16) or GGUF files (dequantized exactly as
//! llama.cpp does). The forward pass is built from differentiable candle ops and
//! returns logits for every position, as training needs. For inference,
//! [`load_gguf_quantized`] also keeps a GGUF's Q8_0/Q4_0/Q4_1 blocks, which decode steps
//! (a few rows, no gradients) multiply directly (`layers::QuantizedWeight`).
//!
//! ```no_run
//! use candle_core::{Device, Tensor};
//! use ferrotune_hub::resolve::ModelSource;
//!
//! let source = ModelSource::Gguf("models/SmolLM2-135M-Instruct.Q4_1.gguf".into());
//! let model = ferrotune_model::load_model(&source, &Device::Cpu)?;
//! let input_ids = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu)?;
//! let logits = model.forward(&input_ids, None)?; // [1, 3, 49152]
//! # Ok::<(), ferrotune_model::ModelError>(())
//! ```

pub mod adapters;
pub mod cache;
pub mod config;
pub mod decoder;
pub mod error;
pub mod families;
pub mod kernels;
pub mod layers;
pub mod load;
pub mod loss;
pub mod rope;
pub mod weights;

pub use cache::{CacheStep, KvCache, LayerKvCache};
pub use config::{Activation, ArchSwitches, HfConfig, ModelConfig, RopeScaling};
pub use decoder::{CausalLM, DecoderLayer};
pub use error::{ModelError, Result};
pub use families::Family;
pub use load::{gguf_model_config, load_gguf, load_gguf_quantized, load_hf_dir, load_model};
pub use loss::{causal_lm_loss, causal_lm_loss_mean, IGNORE_INDEX};
pub use weights::WeightStore;
