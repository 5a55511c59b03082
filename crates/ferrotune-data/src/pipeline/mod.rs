//! The whole data pipeline of a run, as LLaMA-Factory v0.9.5 runs it before training
//! (`get_template_and_fix_tokenizer` in `data/template.py`, `get_dataset` in `data/loader.py`):
//! config → prompt template and fixed tokenizer → datasets → encoded examples, optionally saved
//! to and reloaded from `tokenized_path`.
//!
//! | step | function |
//! |---|---|
//! | template by name or from the tokenizer's chat template, tokenizer fixes | [`prepare_tokenizer_and_template`] |
//! | load, convert, split and encode the datasets for the stage | [`prepare_dataset`] |
//! | save / reload encoded examples (`tokenized_path`) | [`save_tokenized`], [`load_tokenized`] |
//! | one JSON line per example, LLaMA-Factory's column names | [`TokenizedDataset::write_jsonl`] |
//!
//! ```no_run
//! use std::path::Path;
//! use ferrotune_data::pipeline::{prepare_dataset, prepare_tokenizer_and_template, PrepareOptions};
//! # fn run(cfg: &ferrotune_config::Config, tok: ferrotune_hub::tokenizer::TokenizerBundle)
//! # -> Result<(), ferrotune_data::pipeline::PipelineError> {
//! let (tok, template) = prepare_tokenizer_and_template(cfg, tok)?;
//! let splits = prepare_dataset(cfg, &tok, &template, Path::new("data"), &PrepareOptions::default())?;
//! println!("{} training examples ({})", splits.train.len(), splits.train.kind());
//! # Ok(()) }
//! ```

mod cache;
mod encode;
mod error;
mod example;
mod setup;

pub use cache::{has_tokenized_data, load_tokenized, save_tokenized, CACHE_FORMAT};
pub use encode::{
    batch_ranges, prepare_dataset, EncodePlan, NoProgress, PrepareOptions, Progress,
    TokenizedSplits,
};
pub use error::PipelineError;
pub use example::TokenizedDataset;
pub use setup::prepare_tokenizer_and_template;
