//! The error of every fallible function in the [`dataset`](super) module.
//!
//! Each variant names the file (and line, column or row) or the `dataset_info.json` entry at
//! fault and quotes the value; where there is a known fix the message ends with a hint naming it.

use std::path::PathBuf;

/// Everything that can go wrong while finding, reading and converting a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// A file or folder could not be read (missing permissions, not UTF-8, I/O failure).
    #[error("cannot read {}: {message}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the operating system or decoder said.
        message: String,
    },

    /// `dataset_info.json` is not valid JSON or not a JSON object.
    #[error("{}:{line}:{column}: {message}", path.display())]
    InfoSyntax {
        /// Path of `dataset_info.json`.
        path: PathBuf,
        /// 1-based line of the error (0 when it concerns the whole file).
        line: usize,
        /// 1-based column of the error (0 when it concerns the whole file).
        column: usize,
        /// What is wrong.
        message: String,
    },

    /// One entry of `dataset_info.json` has a key of the wrong type or an unknown value.
    #[error("{}: dataset `{name}`: {message}", path.display())]
    InfoEntry {
        /// Path of `dataset_info.json`.
        path: PathBuf,
        /// The entry (dataset name).
        name: String,
        /// The key at fault, its value and how to fix it.
        message: String,
    },

    /// A requested dataset name has no entry in `dataset_info.json`.
    #[error("dataset `{name}` is not defined in {}{}", path.display(), fmt_suggestion(suggestion.as_deref()))]
    UnknownDataset {
        /// The name asked for (an item of `dataset`/`eval_dataset`).
        name: String,
        /// Path of `dataset_info.json`.
        path: PathBuf,
        /// The closest defined name, when one is close enough.
        suggestion: Option<String>,
    },

    /// The dataset lives on a hub other than Hugging Face's, or behind a loading script; only
    /// local files and Hugging Face hub datasets are read yet.
    #[error(
        "dataset `{name}` is on {hub} ({key}: {url}); ferrotune reads local files and hugging \
         face hub datasets only yet: download it and add `file_name` to its entry in \
         dataset_info.json"
    )]
    RemoteDataset {
        /// The dataset name.
        name: String,
        /// Where it lives, in words (`the Hugging Face hub`, `ModelScope`, ...).
        hub: &'static str,
        /// The `dataset_info.json` key that points there (`hf_hub_url`, ...).
        key: &'static str,
        /// The value of that key.
        url: String,
    },

    /// A Hugging Face hub dataset (`hf_hub_url`) is not cached and cannot be downloaded, or has
    /// no data files for its `split`/`subset`/`folder`.
    #[error("dataset `{name}`: {source}")]
    Hub {
        /// The dataset name.
        name: String,
        /// What the hub resolver said (it names the repository, cache folder and fix); boxed to
        /// keep `DatasetError` small.
        source: Box<ferrotune_hub::HubError>,
    },

    /// `file_name` names neither a file nor a folder.
    #[error("dataset `{name}`: file {} not found; hint: check `file_name` in dataset_info.json and `dataset_dir`", path.display())]
    FileNotFound {
        /// The dataset name.
        name: String,
        /// `dataset_dir` joined with `file_name`.
        path: PathBuf,
    },

    /// A data file's extension is not one LLaMA-Factory reads, or a folder mixes types.
    #[error("{}: {message}", path.display())]
    FileType {
        /// The file (or folder) at fault.
        path: PathBuf,
        /// What is wrong and which types are allowed.
        message: String,
    },

    /// A data file's content does not parse; `line`/`column` are 1-based, 0 when unknown.
    #[error("{}{}: {message}", path.display(), fmt_position(*line, *column))]
    Parse {
        /// The data file.
        path: PathBuf,
        /// 1-based line, 0 when unknown.
        line: usize,
        /// 1-based column, 0 when unknown.
        column: usize,
        /// What is wrong.
        message: String,
    },

    /// A data file (or every file of a folder) holds no rows.
    #[error("{}: the dataset file holds no examples", path.display())]
    Empty {
        /// The file or folder.
        path: PathBuf,
    },

    /// A column named in `dataset_info.json` (or by its defaults) is absent from the data.
    #[error(
        "dataset `{name}`: column `{column}` (`{key}`) not found in {}; the data has columns {available:?}; \
         hint: set `{key}` in the dataset's entry of dataset_info.json",
        path.display()
    )]
    MissingColumn {
        /// The dataset name.
        name: String,
        /// The data file or folder.
        path: PathBuf,
        /// The missing column.
        column: String,
        /// The `dataset_info.json` key naming it, e.g. `columns.prompt` or `tags.role_tag`.
        key: String,
        /// The columns the data does have.
        available: Vec<String>,
    },

    /// A value in one row has the wrong type or shape.
    #[error("dataset `{name}` row {row}: {message}")]
    Row {
        /// The dataset name.
        name: String,
        /// 0-based index of the row in the dataset's file(s), in file order.
        row: usize,
        /// The column or message key at fault, the value found and the type expected.
        message: String,
    },

    /// A dataset's `ranking` does not suit the training stage.
    #[error("dataset `{name}` {message}")]
    Stage {
        /// The dataset name.
        name: String,
        /// What is wrong and the fix.
        message: String,
    },

    /// Every example of a dataset was skipped by the converter.
    #[error("dataset `{name}`: all {rows} examples were skipped ({reason}); hint: check `formatting`, `columns` and `tags` in dataset_info.json")]
    NoValidExamples {
        /// The dataset name.
        name: String,
        /// How many rows were read.
        rows: usize,
        /// Why the first one was skipped.
        reason: String,
    },

    /// Mixing, sampling or splitting options do not fit the data (`interleave_probs`,
    /// `val_size`, an empty `dataset`).
    #[error("{message}")]
    Options {
        /// The keys at fault, their values and the fix.
        message: String,
    },
}

/// Formats ``; did you mean `x`?`` or nothing.
fn fmt_suggestion(suggestion: Option<&str>) -> String {
    match suggestion {
        Some(s) => format!("; did you mean `{s}`?"),
        None => "; hint: add an entry for it or fix the name in `dataset`".into(),
    }
}

/// Formats `:line:column`, `:line` or nothing.
fn fmt_position(line: usize, column: usize) -> String {
    match (line, column) {
        (0, _) => String::new(),
        (l, 0) => format!(":{l}"),
        (l, c) => format!(":{l}:{c}"),
    }
}
