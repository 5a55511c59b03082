//! `load_dataset`: dataset names → converted conversations, with LLaMA-Factory v0.9.5's
//! sampling, mixing and splitting (`data/loader.py`, `data/data_utils.py`).
//!
//! Per dataset, in this order: look the name up in `dataset_info.json`, check its `ranking`
//! against the stage, read its file(s) (`file_name` under `dataset_dir`, or the split's files of
//! an `hf_hub_url` dataset from the Hugging Face cache, downloaded there when missing), apply `num_samples` (sampling, with replacement past the
//! dataset's size), cut to `max_samples`, convert every row. Then mix the datasets by
//! `mix_strategy` and, for the training datasets, split off `val_size` for evaluation.
//!
//! Rows the converter skips stay in place (as LLaMA-Factory's empty examples do) until after
//! mixing and splitting, so that which rows land where does not depend on them; they are then
//! dropped with one warning per dataset. Pre-training data needs nothing special here: its
//! `dataset_info.json` entry maps the text column to the prompt (`"columns": {"prompt":
//! "text"}`), giving one user turn of raw text and no response.

use std::path::{Path, PathBuf};

use ferrotune_config::args::{MixStrategy, Stage};
use ferrotune_config::Config;
use ferrotune_hub::resolve::dataset::{resolve_dataset, DatasetRequest};
use ferrotune_hub::resolve::HubOptions;
use tracing::{info, warn};

use super::converter::{convert_row, ConversationRecord, Converted, RowSource};
use super::dataset_info::{DatasetAttr, DatasetInfo, DatasetSource};
use super::files::{read_files, read_rows, RowTable};
use super::mix::{interleave, sample_indices, train_eval_indices, Stop};
use super::stream::{shuffle_buffer, take_skip};
use super::DatasetError;

/// Training and evaluation conversations, as LLaMA-Factory's `get_dataset` splits them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatasetSplits {
    /// Conversations to train on (`dataset`, less the `val_size` split).
    pub train: Vec<ConversationRecord>,
    /// Conversations to evaluate on: the `val_size` split, or `eval_dataset`.
    pub eval: Vec<ConversationRecord>,
}

/// Loads, converts and mixes the datasets `names` from `dataset_dir` (the folder holding
/// `dataset_info.json`), by `cfg`'s `max_samples`, `mix_strategy`, `interleave_probs`, `seed`
/// and `stage`. No train/eval split is made; see [`load_splits`].
///
/// Errors: every [`DatasetError`] of the steps above; [`DatasetError::Options`] when `names` is
/// empty.
pub fn load_dataset(
    cfg: &Config,
    names: &[String],
    dataset_dir: &Path,
) -> Result<Vec<ConversationRecord>, DatasetError> {
    Ok(drop_skipped(load_merged(cfg, names, dataset_dir)?))
}

/// Loads `cfg.data.dataset` and `cfg.data.eval_dataset` from `dataset_dir` and splits
/// `val_size` off the training data (a fraction, or a count when above 1), shuffled with `seed`.
///
/// Errors: as [`load_dataset`]; [`DatasetError::Options`] when both `val_size` and
/// `eval_dataset` are given, or when `val_size` leaves a side empty.
pub fn load_splits(cfg: &Config, dataset_dir: &Path) -> Result<DatasetSplits, DatasetError> {
    let data = &cfg.data;
    let val_size = data.val_size;
    if val_size > 1e-6 && !data.eval_dataset.is_empty() {
        return Err(DatasetError::Options {
            message: "`val_size` and `eval_dataset` exclude each other: use one of them".into(),
        });
    }
    if data.streaming {
        return load_streaming_splits(cfg, dataset_dir);
    }
    let mut splits = DatasetSplits::default();
    if !data.dataset.is_empty() {
        let merged = load_merged(cfg, &data.dataset, dataset_dir)?;
        if val_size > 1e-6 {
            let (train, eval) = train_eval_indices(merged.len(), val_size, cfg.training.seed)?;
            let pick = |idx: Vec<usize>| {
                idx.into_iter()
                    .filter_map(|i| merged.get(i).cloned().flatten())
                    .collect()
            };
            splits.train = pick(train);
            splits.eval = pick(eval);
        } else {
            splits.train = drop_skipped(merged);
        }
    }
    if !data.eval_dataset.is_empty() {
        splits.eval = load_dataset(cfg, &data.eval_dataset, dataset_dir)?;
    }
    Ok(splits)
}

/// `streaming: true` (see [`super::stream`]): the merged stream through the shuffle buffer,
/// then the first `val_size` examples as the evaluation split; `eval_dataset` shuffled too.
fn load_streaming_splits(cfg: &Config, dataset_dir: &Path) -> Result<DatasetSplits, DatasetError> {
    let data = &cfg.data;
    let (seed, buffer) = (cfg.training.seed, data.buffer_size);
    let mut splits = DatasetSplits::default();
    if !data.dataset.is_empty() {
        let merged = load_merged(cfg, &data.dataset, dataset_dir)?;
        let shuffled: Vec<_> = shuffle_buffer(merged, buffer, seed).collect();
        // Validation admits only a whole count with streaming.
        let (train, eval) = take_skip(shuffled, data.val_size as usize);
        splits.train = drop_skipped(train);
        splits.eval = drop_skipped(eval);
    }
    if !data.eval_dataset.is_empty() {
        let eval = load_merged(cfg, &data.eval_dataset, dataset_dir)?;
        splits.eval = drop_skipped(shuffle_buffer(eval, buffer, seed).collect());
    }
    Ok(splits)
}

/// Keeps the converted records, in order.
fn drop_skipped(records: Vec<Option<ConversationRecord>>) -> Vec<ConversationRecord> {
    records.into_iter().flatten().collect()
}

/// Loads every dataset and mixes them; skipped rows are `None`.
fn load_merged(
    cfg: &Config,
    names: &[String],
    dataset_dir: &Path,
) -> Result<Vec<Option<ConversationRecord>>, DatasetError> {
    if names.is_empty() {
        return Err(DatasetError::Options {
            message: "no dataset given; hint: set `dataset` to names from dataset_info.json".into(),
        });
    }
    let info = DatasetInfo::from_dir(dataset_dir)?;
    let mut all = Vec::with_capacity(names.len());
    for name in names {
        let attr = info.get(name)?;
        check_stage(&attr, cfg.finetuning.stage)?;
        all.push(load_single(cfg, &attr, dataset_dir)?);
    }
    if all.len() == 1 {
        return Ok(all.pop().unwrap_or_default());
    }
    let stop = match cfg.data.mix_strategy {
        MixStrategy::Concat => return Ok(all.into_iter().flatten().collect()),
        MixStrategy::InterleaveUnder => Stop::FirstExhausted,
        MixStrategy::InterleaveOver => Stop::AllExhausted,
        MixStrategy::InterleaveOnce => Stop::Once,
    };
    let lengths: Vec<usize> = all.iter().map(Vec::len).collect();
    let probs =
        (!cfg.data.interleave_probs.is_empty()).then_some(cfg.data.interleave_probs.as_slice());
    let order = interleave(&lengths, probs, stop, cfg.training.seed)?;
    Ok(order
        .into_iter()
        .map(|(d, i)| all.get(d).and_then(|rows| rows.get(i)).cloned().flatten())
        .collect())
}

/// LLaMA-Factory's rule: only the rm stage (which dpo uses) reads ranking data, and it reads
/// nothing else.
fn check_stage(attr: &DatasetAttr, stage: Stage) -> Result<(), DatasetError> {
    let pairwise_stage = matches!(stage, Stage::Rm | Stage::Dpo);
    let message = match (attr.ranking, pairwise_stage) {
        (true, false) => format!(
            "is a ranking dataset (chosen/rejected pairs), which only the rm and dpo stages read, \
             but `stage` is {stage}; hint: use `stage: dpo` or `stage: rm`, or a non-ranking dataset"
        ),
        (false, true) => format!(
            "is not a ranking dataset, but `stage: {stage}` needs chosen/rejected pairs; hint: pick \
             a dataset with \"ranking\": true in dataset_info.json"
        ),
        _ => return Ok(()),
    };
    Err(DatasetError::Stage {
        name: attr.name.clone(),
        message,
    })
}

/// Reads the `split` (of `subset`, under `folder`) of the hub dataset `repo`, from the Hugging
/// Face cache or downloaded into it (`cache_dir` and `hf_hub_token` from the model arguments,
/// else the `HF_*` environment variables; `HF_HUB_OFFLINE=1` forbids downloads), as
/// LLaMA-Factory's `load_dataset(path=hf_hub_url, name=subset, data_dir=folder, split=split)`
/// does.
fn read_hub_dataset(
    cfg: &Config,
    attr: &DatasetAttr,
    repo: &str,
) -> Result<RowTable, DatasetError> {
    let mut opts = HubOptions::from_env();
    if let Some(dir) = &cfg.model.cache_dir {
        opts.cache_dir = Some(PathBuf::from(dir));
    }
    if let Some(token) = &cfg.model.hf_hub_token {
        opts.token = Some(token.clone());
    }
    let request = DatasetRequest {
        repo,
        subset: attr.subset.as_deref(),
        folder: attr.folder.as_deref(),
        split: &attr.split,
    };
    let found = resolve_dataset(&request, &opts).map_err(|source| DatasetError::Hub {
        name: attr.name.clone(),
        source: Box::new(source),
    })?;
    info!(dataset = %attr.name, repo, commit = %found.commit, files = found.files.len(), "loading hub dataset");
    read_files(&found.snapshot, &found.files)
}

/// Reads, samples, truncates and converts one dataset.
fn load_single(
    cfg: &Config,
    attr: &DatasetAttr,
    dataset_dir: &Path,
) -> Result<Vec<Option<ConversationRecord>>, DatasetError> {
    let remote = |hub, key, url: &String| DatasetError::RemoteDataset {
        name: attr.name.clone(),
        hub,
        key,
        url: url.clone(),
    };
    let table = match &attr.source {
        DatasetSource::File(file_name) => {
            let path = dataset_dir.join(file_name);
            if !path.exists() {
                return Err(DatasetError::FileNotFound {
                    name: attr.name.clone(),
                    path,
                });
            }
            info!(dataset = %attr.name, path = %path.display(), "loading dataset");
            read_rows(&path)?
        }
        DatasetSource::HfHub(repo) => read_hub_dataset(cfg, attr, repo)?,
        DatasetSource::MsHub(u) => return Err(remote("ModelScope", "ms_hub_url", u)),
        DatasetSource::OmHub(u) => return Err(remote("Modelers", "om_hub_url", u)),
        DatasetSource::Script(u) => return Err(remote("a loading script", "script_url", u)),
        DatasetSource::CloudFile(u) => return Err(remote("cloud storage", "cloud_file_name", u)),
    };
    let path = table.path.clone();

    let mut indices: Vec<usize> = (0..table.rows.len()).collect();
    match attr.num_samples {
        Some(_) if cfg.data.streaming => {
            warn!(dataset = %attr.name, "`num_samples` is ignored in streaming mode, as LLaMA-Factory does");
        }
        Some(target) => {
            indices = sample_indices(table.rows.len(), target, cfg.training.seed);
            info!(dataset = %attr.name, "sampled {target} examples");
        }
        None => {}
    }
    if let Some(max) = cfg.data.max_samples {
        indices.truncate(max);
    }

    let src = RowSource {
        attr,
        path: &path,
        columns: &table.columns,
    };
    let mut records = Vec::with_capacity(indices.len());
    let mut skipped = 0usize;
    let mut first_reason = None;
    for index in indices {
        let Some(row) = table.rows.get(index) else {
            continue;
        };
        match convert_row(&src, row, index)? {
            Converted::Record(record) => records.push(Some(record)),
            Converted::Skipped(reason) => {
                tracing::debug!(dataset = %attr.name, row = index, "skipping example: {reason}");
                skipped += 1;
                first_reason.get_or_insert((index, reason));
                records.push(None);
            }
        }
    }
    if let Some((row, reason)) = first_reason {
        if skipped == records.len() {
            return Err(DatasetError::NoValidExamples {
                name: attr.name.clone(),
                rows: skipped,
                reason: format!("row {row}: {reason}"),
            });
        }
        warn!(dataset = %attr.name, "skipped {skipped} of {} examples (first: row {row}: {reason})", records.len());
    }
    Ok(records)
}
