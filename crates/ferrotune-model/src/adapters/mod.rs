//! Low-rank adapters by composition: a [`crate::layers::Linear`] may carry a
//! [`LoraAdapter`]; [`apply_lora`] decides which projections get one (the model files never
//! mention LoRA); variants (rsLoRA scaling, DoRA) are handled in [`LoraAdapter::forward`];
//! merging for export is a pure function ([`merge_weight`], [`merge_adapters`]); adapters
//! load from and save to PEFT's format ([`load_peft`], [`AdapterSet::save_peft`]).
//!
//! References: LoRA (Hu et al. 2021), rsLoRA (Kalajdzievski 2023), DoRA (Liu et al. 2024),
//! PiSSA (Meng et al. 2024); PEFT v0.21.2 `tuners/lora/{layer,dora,variants}.py` for the
//! exact initialization, forward and file format.
//!
//! ```no_run
//! # use candle_core::Device;
//! use ferrotune_model::adapters::{apply_lora, LoraConfig, LoraInit};
//! let mut model = ferrotune_model::load_hf_dir("fixtures/tiny/llama".as_ref(), &Device::Cpu)?;
//! let cfg = LoraConfig {
//!     lora_rank: 8, lora_alpha: 16.0, lora_dropout: 0.0,
//!     lora_target: vec!["all".into()], additional_target: vec![],
//!     use_rslora: false, use_dora: false, init: LoraInit::Default,
//! };
//! let adapters = apply_lora(&mut model, &cfg, 42)?; // adapters.vars() go to the optimizer
//! adapters.save_peft("out".as_ref(), "fixtures/tiny/llama")?;
//! # Ok::<(), ferrotune_model::ModelError>(())
//! ```

mod apply;
mod config;
mod lora;
mod merge;
mod peft;
mod svd;
mod walk;

pub use apply::{apply_lora, mix_seed, set_dropout_seed, set_training, AdapterSet, PEFT_PREFIX};
pub use config::{LoraConfig, LoraInit};
pub use lora::{LoraAdapter, LoraVariant};
pub use merge::{merge_adapter_dirs, merge_adapters, merge_weight, merged_tensors};
pub use peft::{load_peft, load_peft_files, read_peft_config, ADAPTER_CONFIG, ADAPTER_WEIGHTS};
pub(crate) use walk::linears_mut;
