//! Saving encoded examples to `tokenized_path` and loading them back.
//!
//! Format (ours; LLaMA-Factory saves an Arrow `DatasetDict` instead): a folder holding
//!
//! - `meta.json`: `{"format": "ferrotune-tokenized", "format_version": 1, "ferrotune_version",
//!   "kind", "stage", "template", "cutoff_len", "train_examples", "eval_examples"}`, where
//!   `kind` is the example kind (`supervised`, `pretrain`, `unsupervised`, ...) and
//!   `eval_examples` is `null` when there is no evaluation split;
//! - `train.jsonl` and, with an evaluation split, `eval.jsonl`: one JSON object per example in
//!   order, exactly as [`TokenizedDataset::write_jsonl`] writes them (LLaMA-Factory's column
//!   names).
//!
//! The folder is written under a temporary name beside `tokenized_path` and renamed into place,
//! so an interrupted run never leaves a half-written dataset that a later run would load.

use std::fs;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use ferrotune_config::Config;
use serde::{Deserialize, Serialize};

use super::encode::{EncodePlan, TokenizedSplits};
use super::example::TokenizedDataset;
use super::PipelineError;

/// The `format` value of `meta.json`.
pub const CACHE_FORMAT: &str = "ferrotune-tokenized";

/// The `format_version` this build reads and writes.
const FORMAT_VERSION: u32 = 1;

/// The contents of `meta.json`.
#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    format: String,
    format_version: u32,
    ferrotune_version: String,
    kind: String,
    stage: String,
    template: Option<String>,
    cutoff_len: usize,
    train_examples: usize,
    eval_examples: Option<usize>,
}

/// Whether `path` holds tokenized data to load: an existing, non-empty folder (LLaMA-Factory's
/// `has_tokenized_data`).
pub fn has_tokenized_data(path: &Path) -> bool {
    path.is_dir() && fs::read_dir(path).is_ok_and(|mut entries| entries.next().is_some())
}

/// Saves `splits` to the folder `path` in the format of the module doc; `cfg` and `plan` fill
/// `meta.json`. An existing empty folder at `path` is replaced.
///
/// # Errors
/// [`PipelineError::Io`] naming the file that could not be written or the folder that could
/// not be renamed (e.g. `path` exists and is not empty).
pub fn save_tokenized(
    path: &Path,
    splits: &TokenizedSplits,
    cfg: &Config,
    plan: &EncodePlan,
) -> Result<(), PipelineError> {
    let tmp = temp_sibling(path);
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| PipelineError::io(&tmp, e))?;
    }
    fs::create_dir_all(&tmp).map_err(|e| PipelineError::io(&tmp, e))?;
    let meta = Meta {
        format: CACHE_FORMAT.to_owned(),
        format_version: FORMAT_VERSION,
        ferrotune_version: env!("CARGO_PKG_VERSION").to_owned(),
        kind: splits.train.kind().to_owned(),
        stage: plan.stage.to_string(),
        template: cfg.data.template.clone(),
        cutoff_len: plan.cutoff_len,
        train_examples: splits.train.len(),
        eval_examples: splits.eval.as_ref().map(TokenizedDataset::len),
    };
    let meta_path = tmp.join("meta.json");
    let text = serde_json::to_string_pretty(&meta).map_err(|e| PipelineError::io(&meta_path, e))?;
    fs::write(&meta_path, text + "\n").map_err(|e| PipelineError::io(&meta_path, e))?;
    write_split(&tmp.join("train.jsonl"), &splits.train)?;
    if let Some(eval) = &splits.eval {
        write_split(&tmp.join("eval.jsonl"), eval)?;
    }
    if path.is_dir() && !has_tokenized_data(path) {
        fs::remove_dir(path).map_err(|e| PipelineError::io(path, e))?;
    }
    fs::rename(&tmp, path).map_err(|e| PipelineError::io(path, e))
}

/// Loads the splits saved by [`save_tokenized`] from the folder `path`.
///
/// # Errors
/// [`PipelineError::Io`] when a file cannot be read; [`PipelineError::Cache`] when `meta.json`
/// is missing or of another format or version, a line does not parse, or the counts differ
/// from `meta.json`.
pub fn load_tokenized(path: &Path) -> Result<TokenizedSplits, PipelineError> {
    let meta_path = path.join("meta.json");
    let cache_error = |file: &Path, line, message: String| PipelineError::Cache {
        path: file.to_path_buf(),
        line,
        message,
    };
    let text = fs::read_to_string(&meta_path).map_err(|e| {
        cache_error(
            &meta_path,
            0,
            format!("cannot read the tokenized dataset's meta.json ({e})"),
        )
    })?;
    let meta: Meta = serde_json::from_str(&text)
        .map_err(|e| cache_error(&meta_path, e.line(), e.to_string()))?;
    if meta.format != CACHE_FORMAT || meta.format_version != FORMAT_VERSION {
        return Err(cache_error(
            &meta_path,
            0,
            format!(
                "format `{}` version {} is not `{CACHE_FORMAT}` version {FORMAT_VERSION}",
                meta.format, meta.format_version
            ),
        ));
    }
    let train = read_split(&path.join("train.jsonl"), &meta.kind, meta.train_examples)?;
    let eval = match meta.eval_examples {
        Some(n) => Some(read_split(&path.join("eval.jsonl"), &meta.kind, n)?),
        None => None,
    };
    tracing::info!(path = %path.display(), train = train.len(), "loaded tokenized dataset");
    Ok(TokenizedSplits { train, eval })
}

/// `<parent>/.<name>.tmp-<pid>`: the folder written before the rename.
fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "tokenized".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Writes one split as JSON lines.
fn write_split(file: &Path, data: &TokenizedDataset) -> Result<(), PipelineError> {
    let out = fs::File::create(file).map_err(|e| PipelineError::io(file, e))?;
    let mut out = BufWriter::new(out);
    data.write_jsonl(&mut out)
        .and_then(|()| out.flush())
        .map_err(|e| PipelineError::io(file, e))
}

/// Reads one split of kind `kind` and checks it has `expected` examples.
fn read_split(file: &Path, kind: &str, expected: usize) -> Result<TokenizedDataset, PipelineError> {
    let mut data = TokenizedDataset::empty_of_kind(kind).ok_or_else(|| PipelineError::Cache {
        path: file.to_path_buf(),
        line: 0,
        message: format!("unknown example kind `{kind}` in meta.json"),
    })?;
    let reader = fs::File::open(file).map_err(|e| PipelineError::io(file, e))?;
    for (i, line) in BufReader::new(reader).lines().enumerate() {
        let line = line.map_err(|e| PipelineError::io(file, e))?;
        data.push_json(&line).map_err(|e| PipelineError::Cache {
            path: file.to_path_buf(),
            line: i + 1,
            message: e.to_string(),
        })?;
    }
    if data.len() != expected {
        return Err(PipelineError::Cache {
            path: file.to_path_buf(),
            line: 0,
            message: format!("holds {} examples, meta.json says {expected}", data.len()),
        });
    }
    Ok(data)
}
