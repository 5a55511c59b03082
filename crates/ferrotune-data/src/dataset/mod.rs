//! Datasets as LLaMA-Factory v0.9.5 reads them: `dataset_info.json`, local files, format
//! conversion to conversations, sampling, mixing and the train/eval split.
//!
//! | module | what it does |
//! |---|---|
//! | [`dataset_info`] | parse `dataset_info.json` into [`DatasetAttr`]s |
//! | [`files`] | read json, jsonl, csv, parquet and txt files (or folders of them) into rows |
//! | [`converter`] | alpaca, sharegpt and OpenAI rows → [`ConversationRecord`] |
//! | [`stream`] | what `streaming: true` changes: the shuffle buffer and the take/skip split |
//! | [`loader`] | [`load_dataset`] / [`load_splits`]: the whole pipeline for a [`ferrotune_config::Config`] |
//!
//! ```no_run
//! use std::path::Path;
//! let cfg = ferrotune_config::Config::from_overrides(&["dataset=alpaca_en_demo".into()])?;
//! let records = ferrotune_data::dataset::load_dataset(&cfg, &cfg.data.dataset, Path::new("data"))?;
//! println!("{} conversations; first prompt: {}", records.len(), records[0].prompt[0].content);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod converter;
pub mod dataset_info;
mod error;
pub mod files;
pub mod loader;
mod mix;
mod pyjson;
mod sharegpt;
pub mod stream;

pub use converter::{convert_row, ConversationRecord, Converted, RowSource, SkipReason};
pub use dataset_info::{Columns, DatasetAttr, DatasetInfo, DatasetSource, Formatting, Tags};
pub use error::DatasetError;
pub use files::{read_files, read_rows, Row, RowTable};
pub use loader::{load_dataset, load_splits, DatasetSplits};
