//! Conversations to encoded examples for a training stage, in parallel and in dataset order
//! (LLaMA-Factory v0.9.5 `data/loader.py`: `_get_dataset_processor`, `_get_preprocessed_dataset`,
//! `get_dataset`).
//!
//! LLaMA-Factory maps its processors over batches of `preprocessing_batch_size` examples, each
//! worker of `preprocessing_num_workers` taking one contiguous shard. Encoders that look across
//! examples (packing, KTO's mismatched pairs) depend on those batch boundaries, so
//! [`batch_ranges`] reproduces them; per-example encoders are split into any chunks.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use ferrotune_config::args::Stage;
use ferrotune_config::Config;
use ferrotune_hub::tokenizer::TokenizerBundle;
use tracing::{info, warn};

use super::cache::{has_tokenized_data, load_tokenized, save_tokenized};
use super::example::TokenizedDataset;
use super::PipelineError;
use crate::dataset::{load_splits, ConversationRecord, DatasetError};
use crate::error::DataError;
use crate::processor::{
    encode_feedback, encode_pairwise, encode_pretrain, encode_pretrain_packed, encode_supervised,
    encode_supervised_packed, encode_unsupervised, BatchOptions, EncodeOptions, PackOptions,
    Sample,
};
use crate::template::Template;

/// Examples per work unit for encoders that treat each example on its own.
const CHUNK: usize = 256;

/// Training and evaluation examples of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizedSplits {
    /// Training examples (empty when no `dataset` is given).
    pub train: TokenizedDataset,
    /// Evaluation examples (`val_size` split or `eval_dataset`), when there are any.
    pub eval: Option<TokenizedDataset>,
}

/// Reports encoding progress, e.g. to a progress bar. Called from several threads.
pub trait Progress: Sync {
    /// Encoding of `split` (`train` or `eval`) starts with `total` conversations.
    fn start(&self, split: &str, total: usize);
    /// `n` more conversations are encoded.
    fn advance(&self, n: usize);
    /// The split is done.
    fn finish(&self);
}

/// A [`Progress`] that reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _split: &str, _total: usize) {}
    fn advance(&self, _n: usize) {}
    fn finish(&self) {}
}

/// What [`prepare_dataset`] needs beyond the config.
#[derive(Clone, Copy, Default)]
pub struct PrepareOptions<'a> {
    /// Where to report progress; `None` reports nothing.
    pub progress: Option<&'a dyn Progress>,
    /// Encoding threads; 0 uses every available core.
    pub threads: usize,
}

/// The resolved encoding settings of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodePlan {
    /// The training stage.
    pub stage: Stage,
    /// The sequence budget: the config's `effective_cutoff_len` (`cutoff_len`, less one when
    /// the config sets packing, as LLaMA-Factory does).
    pub cutoff_len: usize,
    /// Pack examples (`packing`, resolved).
    pub packing: bool,
    /// Pack without cross-attention (`neat_packing`).
    pub neat_packing: bool,
    /// Train on prompt tokens too.
    pub train_on_prompt: bool,
    /// Train on the last turn only.
    pub mask_history: bool,
    /// Evaluation examples are prompts to generate from (`predict_with_generate`).
    pub predict_with_generate: bool,
    /// `preprocessing_batch_size`.
    pub batch_size: usize,
    /// `preprocessing_num_workers` (1 when unset): the number of contiguous shards.
    pub num_shards: usize,
}

impl EncodePlan {
    /// The plan for `cfg`.
    pub fn from_config(cfg: &Config) -> EncodePlan {
        let data = &cfg.data;
        EncodePlan {
            stage: cfg.finetuning.stage,
            cutoff_len: cfg.effective_cutoff_len,
            packing: data.packing,
            neat_packing: data.neat_packing,
            train_on_prompt: data.train_on_prompt,
            mask_history: data.mask_history,
            predict_with_generate: cfg.training.predict_with_generate,
            batch_size: data.preprocessing_batch_size.max(1),
            num_shards: data.preprocessing_num_workers.unwrap_or(1).max(1),
        }
    }
}

/// Which encoder a split goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    Supervised,
    Packed,
    Pairwise,
    Kto,
    Pretrain,
    PretrainPacked,
    Unsupervised,
}

impl Job {
    /// Whether the encoder looks across the examples of a preprocessing batch, so that work
    /// units must be LLaMA-Factory's batches.
    fn batch_level(self) -> bool {
        matches!(self, Job::Packed | Job::Kto | Job::PretrainPacked)
    }

    /// An empty dataset of this job's kind.
    fn empty(self) -> TokenizedDataset {
        match self {
            Job::Supervised => TokenizedDataset::Supervised(Vec::new()),
            Job::Packed => TokenizedDataset::Packed(Vec::new()),
            Job::Pairwise => TokenizedDataset::Pairwise(Vec::new()),
            Job::Kto => TokenizedDataset::Kto(Vec::new()),
            Job::Pretrain | Job::PretrainPacked => TokenizedDataset::Pretrain(Vec::new()),
            Job::Unsupervised => TokenizedDataset::Unsupervised(Vec::new()),
        }
    }
}

/// The encoder LLaMA-Factory's `_get_dataset_processor` picks for `plan` and split (the dpo
/// workflow loads its data as `rm`; generation-time evaluation is unsupervised).
fn job(plan: &EncodePlan, is_eval: bool) -> Job {
    match plan.stage {
        Stage::Pt if plan.packing => Job::PretrainPacked,
        Stage::Pt => Job::Pretrain,
        Stage::Sft if plan.predict_with_generate && is_eval => Job::Unsupervised,
        Stage::Sft if plan.packing => Job::Packed,
        Stage::Sft => Job::Supervised,
        Stage::Rm | Stage::Dpo => Job::Pairwise,
        Stage::Kto => Job::Kto,
        Stage::Ppo => Job::Unsupervised,
    }
}

/// Loads `cfg`'s datasets from `dataset_dir` and encodes them for its stage, as
/// LLaMA-Factory's `get_dataset` does: sft → supervised (packed with `packing`); rm/dpo →
/// pairwise; kto → feedback; pt → pretraining; ppo, and evaluation with
/// `predict_with_generate` → unsupervised.
///
/// With `tokenized_path`: when that folder exists and is not empty its examples are loaded
/// and every data key is ignored (with a warning, as LLaMA-Factory does); else the encoded
/// examples are saved there.
///
/// # Errors
/// Dataset errors ([`PipelineError::Dataset`]), encoding errors ([`PipelineError::Data`]),
/// [`PipelineError::NoExamples`] when a split loses every example, and the I/O and format
/// errors of `tokenized_path`.
pub fn prepare_dataset(
    cfg: &Config,
    tok: &TokenizerBundle,
    template: &Template,
    dataset_dir: &Path,
    opts: &PrepareOptions<'_>,
) -> Result<TokenizedSplits, PipelineError> {
    let tokenized_path = cfg.data.tokenized_path.as_deref().map(Path::new);
    if let Some(path) = tokenized_path {
        if has_tokenized_data(path) {
            warn!(path = %path.display(), "loading the tokenized dataset from disk ignores the other data arguments");
            return load_tokenized(path);
        }
        if cfg.data.streaming {
            return Err(PipelineError::Dataset(Box::new(DatasetError::Options {
                message: format!(
                    "`streaming` cannot save a tokenized dataset to `tokenized_path` ({}), as in \
                     LLaMA-Factory; hint: turn off `streaming` to save it once, then streaming runs load it",
                    path.display()
                ),
            })));
        }
    }
    let plan = EncodePlan::from_config(cfg);
    let train_job = job(&plan, false);
    let eval_job = job(&plan, true);
    let records = load_splits(cfg, dataset_dir)?;
    let progress = opts.progress.unwrap_or(&NoProgress);
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let ctx = Ctx {
        plan: &plan,
        tok,
        template,
        template_name: cfg.data.template.as_deref(),
        progress,
        threads,
    };
    let train = encode_split(&ctx, train_job, "train", &records.train)?;
    let eval = if records.eval.is_empty() {
        None
    } else {
        Some(encode_split(&ctx, eval_job, "eval", &records.eval)?)
    };
    let splits = TokenizedSplits { train, eval };
    if let Some(path) = tokenized_path {
        save_tokenized(path, &splits, cfg, &plan)?;
        info!(path = %path.display(), "tokenized dataset saved; train with `tokenized_path: {}`", path.display());
    }
    Ok(splits)
}

/// What every encoding call shares.
struct Ctx<'a> {
    plan: &'a EncodePlan,
    tok: &'a TokenizerBundle,
    template: &'a Template,
    template_name: Option<&'a str>,
    progress: &'a dyn Progress,
    threads: usize,
}

/// Encodes one split with `threads` workers; the output keeps the input order.
fn encode_split(
    ctx: &Ctx<'_>,
    job: Job,
    split: &'static str,
    records: &[ConversationRecord],
) -> Result<TokenizedDataset, PipelineError> {
    let plan = ctx.plan;
    let units: Vec<(usize, usize)> = if job.batch_level() {
        batch_ranges(records.len(), plan.num_shards, plan.batch_size)
    } else {
        (0..records.len())
            .step_by(CHUNK)
            .map(|s| (s, (s + CHUNK).min(records.len())))
            .collect()
    };
    ctx.progress.start(split, records.len());
    let results: Vec<Mutex<Option<Result<TokenizedDataset, PipelineError>>>> =
        units.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let worker = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let (Some(&(start, end)), Some(slot)) = (units.get(i), results.get(i)) else {
            break;
        };
        if failed.load(Ordering::Relaxed) {
            break;
        }
        let out = encode_unit(ctx, job, records.get(start..end).unwrap_or_default());
        failed.fetch_or(out.is_err(), Ordering::Relaxed);
        ctx.progress.advance(end - start);
        if let Ok(mut slot) = slot.lock() {
            *slot = Some(out);
        }
    };
    let threads = ctx.threads.clamp(1, units.len().max(1));
    std::thread::scope(|s| {
        for _ in 1..threads {
            s.spawn(worker);
        }
        worker();
    });
    ctx.progress.finish();
    let mut out = job.empty();
    for slot in results {
        let part = slot
            .into_inner()
            .ok()
            .flatten()
            .unwrap_or_else(|| Ok(job.empty()))?;
        out.extend(part);
    }
    if out.is_empty() && !records.is_empty() {
        return Err(PipelineError::NoExamples {
            split,
            records: records.len(),
            hint: "check the dataset's format against its dataset_info.json entry",
        });
    }
    let dropped = records.len().saturating_sub(out.len());
    if dropped > 0
        && matches!(
            job,
            Job::Supervised | Job::Pairwise | Job::Kto | Job::Unsupervised
        )
    {
        warn!("dropped {dropped} invalid {split} example(s) (a prompt of even length or not exactly one response)");
    }
    info!(split, examples = out.len(), kind = out.kind(), "encoded");
    Ok(out)
}

/// The processor's view of a record: an empty system or tool list counts as none.
fn sample(record: &ConversationRecord) -> Sample<'_> {
    Sample {
        prompt: &record.prompt,
        response: &record.response,
        system: Some(record.system.as_str()).filter(|s| !s.is_empty()),
        tools: Some(record.tools.as_str()).filter(|t| !t.is_empty()),
    }
}

/// Encodes a run of consecutive records (one preprocessing batch for batch-level jobs).
fn encode_unit(
    ctx: &Ctx<'_>,
    job: Job,
    records: &[ConversationRecord],
) -> Result<TokenizedDataset, PipelineError> {
    let plan = ctx.plan;
    let (template, tok) = (ctx.template, ctx.tok);
    let opts = EncodeOptions {
        cutoff_len: plan.cutoff_len,
        train_on_prompt: plan.train_on_prompt,
        mask_history: plan.mask_history,
    };
    let batch = BatchOptions {
        cutoff_len: plan.cutoff_len,
        preprocessing_batch_size: plan.batch_size,
    };
    let texts = || -> Vec<&str> {
        records
            .iter()
            .filter_map(|r| r.prompt.first().map(|m| m.content.as_str()))
            .collect()
    };
    let samples = || -> Vec<Sample<'_>> { records.iter().map(sample).collect() };
    Ok(match job {
        Job::Supervised => TokenizedDataset::Supervised(each(records, |s| {
            encode_supervised(template, tok, s, &opts)
        })?),
        Job::Unsupervised => TokenizedDataset::Unsupervised(each(records, |s| {
            encode_unsupervised(template, tok, s, plan.cutoff_len)
        })?),
        Job::Pairwise => TokenizedDataset::Pairwise(each(records, |s| {
            encode_pairwise(template, tok, s, plan.cutoff_len)
        })?),
        Job::Packed => {
            let pack = PackOptions {
                preprocessing_batch_size: plan.batch_size,
                neat_packing: plan.neat_packing,
            };
            TokenizedDataset::Packed(encode_supervised_packed(
                template,
                tok,
                &samples(),
                &opts,
                &pack,
            )?)
        }
        Job::Kto => TokenizedDataset::Kto(encode_feedback(template, tok, &samples(), &batch)?),
        Job::Pretrain => {
            let mut out = Vec::with_capacity(records.len());
            for text in texts() {
                out.push(encode_pretrain(
                    ctx.template_name,
                    tok,
                    text,
                    plan.cutoff_len,
                )?);
            }
            TokenizedDataset::Pretrain(out)
        }
        Job::PretrainPacked => TokenizedDataset::Pretrain(encode_pretrain_packed(
            ctx.template_name,
            tok,
            &texts(),
            &batch,
        )?),
    })
}

/// Encodes each record on its own with `f`, leaving out those it drops (`None`).
fn each<T>(
    records: &[ConversationRecord],
    f: impl Fn(&Sample<'_>) -> Result<Option<T>, DataError>,
) -> Result<Vec<T>, PipelineError> {
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        out.extend(f(&sample(r))?);
    }
    Ok(out)
}

/// The `(start, end)` index ranges of the batches LLaMA-Factory hands its processor for `n`
/// examples: `datasets`' `map(num_proc=num_shards, batch_size=batch_size)` splits the data into
/// `num_shards` contiguous shards (the first `n % num_shards` one longer; never more shards
/// than examples), then each shard into batches of `batch_size`, the last one shorter.
pub fn batch_ranges(n: usize, num_shards: usize, batch_size: usize) -> Vec<(usize, usize)> {
    let shards = num_shards.clamp(1, n.max(1));
    let batch_size = batch_size.max(1);
    let (div, rem) = (n / shards, n % shards);
    let mut ranges = Vec::new();
    for shard in 0..shards {
        let start = div * shard + shard.min(rem);
        let end = start + div + usize::from(shard < rem);
        ranges.extend(
            (start..end)
                .step_by(batch_size)
                .map(|s| (s, (s + batch_size).min(end))),
        );
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_ranges_follow_contiguous_shards() {
        assert_eq!(batch_ranges(5, 1, 2), [(0, 2), (2, 4), (4, 5)]);
        // 7 examples, 2 shards: [0, 4) and [4, 7), each cut into batches of 3.
        assert_eq!(batch_ranges(7, 2, 3), [(0, 3), (3, 4), (4, 7)]);
        assert_eq!(batch_ranges(2, 4, 10), [(0, 1), (1, 2)]);
        assert!(batch_ranges(0, 2, 10).is_empty());
    }
}
