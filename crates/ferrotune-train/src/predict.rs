//! `do_predict` with `predict_with_generate` for `stage: sft`, as LLaMA-Factory's `run_sft`
//! runs `trainer.predict` (v0.9.5 `train/sft/{workflow.py,trainer.py,metric.py}`):
//!
//! 1. the evaluation set is encoded for generation (`ferrotune_data`'s unsupervised
//!    encoding: the prompt as `input_ids`, the reference answer as `labels`);
//! 2. every prompt is answered in dataset order, `per_device_eval_batch_size` prompts at a
//!    time with left padding, with the generating keys (`do_sample`, `temperature`, `top_p`,
//!    `max_new_tokens`, ...; LLaMA-Factory's defaults sample) and stopping on the tokenizer's
//!    EOS and its additional special tokens (the template's stop words among them);
//! 3. each answer is scored against its label ([`crate::metrics`]: BLEU-4, ROUGE-1/2/L);
//! 4. `generated_predictions.jsonl` gets `{"prompt", "predict", "label"}` per example and
//!    `predict_results.json` (merged into `all_results.json`) the mean scores and speed.
//!
//! ```no_run
//! # fn run(cfg: &ferrotune_config::Config) -> Result<(), ferrotune_train::TrainError> {
//! // `ferrotune train` with `do_predict: true` runs this after training and evaluation.
//! let summary = ferrotune_train::recipe::run(cfg, &candle_core::Device::Cpu)?;
//! if let Some(p) = summary.predict {
//!     println!("BLEU-4 {:.2} over {} examples", p.mean.bleu_4, p.rows.len());
//! }
//! # Ok(()) }
//! ```

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use ferrotune_config::Config;
use ferrotune_data::pipeline::TokenizedDataset;
use ferrotune_data::processor::Encoded;
use ferrotune_hub::tokenizer::TokenizerBundle;
use ferrotune_infer::{GenerationParams, Generator};
use ferrotune_model::CausalLM;
use serde::Serialize;
use serde_json::{Map, Value};
use tracing::info;

use crate::error::TrainError;
use crate::metrics::{py_round, Similarity, SimilarityScorer};
use crate::outputs::write_atomic;

/// File of the per-example predictions in `output_dir`.
pub const PREDICTIONS_FILE: &str = "generated_predictions.jsonl";
/// File of the prediction metrics in `output_dir`.
pub const PREDICT_RESULTS_FILE: &str = "predict_results.json";

/// One line of `generated_predictions.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PredictionRow {
    /// The prompt ids decoded with special tokens kept (the rendered template).
    pub prompt: String,
    /// The generated ids decoded with the `skip_special_tokens` generating key (the stop
    /// token is part of the ids, so it shows when that key is false).
    pub predict: String,
    /// The reference answer (`labels`, -100 read as the pad id) decoded the same way.
    pub label: String,
}

/// What a prediction run produced.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictSummary {
    /// One row per example, in dataset order.
    pub rows: Vec<PredictionRow>,
    /// Each example's scores (texts decoded without special tokens, whatever
    /// `skip_special_tokens` says, as LLaMA-Factory's `ComputeSimilarity`).
    pub scores: Vec<Similarity>,
    /// The mean of `scores` (`np.mean`).
    pub mean: Similarity,
    /// Generation batches run (`⌈examples / per_device_eval_batch_size⌉`).
    pub n_batches: usize,
    /// Seconds from the first batch to the last score.
    pub runtime_s: f64,
}

impl PredictSummary {
    /// The metrics of `predict_results.json`, as HF's `Seq2SeqTrainer.predict` with
    /// LLaMA-Factory's `ComputeSimilarity` names them: `predict_bleu-4`, `predict_rouge-1`,
    /// `predict_rouge-2`, `predict_rouge-l` (means of per-example scores ×100 rounded to 4
    /// decimals), `predict_runtime` (s, 4 decimals), `predict_samples_per_second` and
    /// `predict_steps_per_second` (3 decimals, HF `speed_metrics`).
    pub fn metrics(&self) -> Map<String, Value> {
        let rt = self.runtime_s.max(1e-9);
        let mut m = Map::new();
        m.insert("predict_bleu-4".into(), self.mean.bleu_4.into());
        m.insert("predict_rouge-1".into(), self.mean.rouge_1.into());
        m.insert("predict_rouge-2".into(), self.mean.rouge_2.into());
        m.insert("predict_rouge-l".into(), self.mean.rouge_l.into());
        m.insert("predict_runtime".into(), py_round(self.runtime_s, 4).into());
        m.insert(
            "predict_samples_per_second".into(),
            py_round(self.rows.len() as f64 / rt, 3).into(),
        );
        m.insert(
            "predict_steps_per_second".into(),
            py_round(self.n_batches as f64 / rt, 3).into(),
        );
        m
    }
}

/// `do_predict` of `ferrotune train`: answers every example of `dataset` (the evaluation set
/// encoded with `predict_with_generate`) with `model` (adapters already applied, eval mode)
/// and `tok` (fixed for the template), scores the answers and writes
/// `generated_predictions.jsonl`, `predict_results.json` and `all_results.json` into
/// `output_dir`.
///
/// Decoding uses the config's generating keys and `seed`
/// ([`GenerationParams::from_args`]); generation stops on the tokenizer's EOS, its
/// additional special tokens (LLaMA-Factory's `gen_kwargs["eos_token_id"]`) and the model
/// config's `eos_token_id`s.
///
/// Errors: [`TrainError::Config`] when `dataset` is not an unsupervised (prompt-only) set
/// (`predict_with_generate` unset) or `per_device_eval_batch_size` is 0; generation errors
/// ([`TrainError::Load`], e.g. a prompt longer than the model's context or bad generating
/// keys); tokenizer errors; [`TrainError::Io`]/[`TrainError::Write`] writing the files.
pub fn run_predict(
    cfg: &Config,
    model: CausalLM,
    tok: &TokenizerBundle,
    dataset: &TokenizedDataset,
) -> Result<PredictSummary, TrainError> {
    let TokenizedDataset::Unsupervised(examples) = dataset else {
        return Err(TrainError::Config(format!(
            "`do_predict` needs the evaluation set encoded for generation, got {} examples; hint: set `predict_with_generate: true`",
            dataset.kind()
        )));
    };
    let stop_ids: Vec<u32> = tok
        .eos_token_id()
        .into_iter()
        .chain(
            tok.additional_special_tokens
                .iter()
                .filter_map(|t| tok.token_to_id(t)),
        )
        .collect();
    let generator = Generator::new(model, tok.clone()).with_stop_token_ids(stop_ids);
    let params = GenerationParams::from_args(&cfg.generating, cfg.training.seed);
    let summary = predict(
        &generator,
        examples,
        &params,
        cfg.training.per_device_eval_batch_size,
    )?;
    let dir = Path::new(&cfg.training.output_dir);
    save_predictions(dir, &summary)?;
    info!(
        examples = summary.rows.len(),
        bleu_4 = summary.mean.bleu_4,
        rouge_1 = summary.mean.rouge_1,
        rouge_2 = summary.mean.rouge_2,
        rouge_l = summary.mean.rouge_l,
        runtime_s = summary.runtime_s,
        "prediction finished"
    );
    Ok(summary)
}

/// Answers `examples` (prompt `input_ids`, reference `labels`) `batch_size` at a time with
/// `generator` and `params`, decodes and scores every answer.
///
/// Errors: [`TrainError::Config`] for a `batch_size` of 0 (`per_device_eval_batch_size`);
/// [`TrainError::Load`] from generation (its row numbers count within the batch, which the
/// log names); [`TrainError::Hub`] from decoding.
pub fn predict(
    generator: &Generator,
    examples: &[Encoded],
    params: &GenerationParams,
    batch_size: usize,
) -> Result<PredictSummary, TrainError> {
    if batch_size == 0 {
        return Err(TrainError::Config(
            "`per_device_eval_batch_size` is 0; hint: set it to 1 or more".into(),
        ));
    }
    let tok = generator.tokenizer();
    let pad = generator.pad_token_id();
    let skip = params.skip_special_tokens;
    let start = Instant::now();
    let scorer = SimilarityScorer::new();
    let mut rows = Vec::with_capacity(examples.len());
    let mut scores = Vec::with_capacity(examples.len());
    let n_batches = examples.len().div_ceil(batch_size);
    for (b, batch) in examples.chunks(batch_size).enumerate() {
        let prompts: Vec<Vec<u32>> = batch.iter().map(|e| e.input_ids.clone()).collect();
        let (generations, _) = generator.generate(&prompts, params)?;
        for (example, generation) in batch.iter().zip(&generations) {
            // LLaMA-Factory writes -100 label positions as the pad id before decoding.
            let label_ids: Vec<u32> = example
                .labels
                .iter()
                .map(|&l| u32::try_from(l).unwrap_or(pad))
                .collect();
            let row = PredictionRow {
                prompt: tok.decode(&example.input_ids, false)?,
                predict: tok.decode(&generation.token_ids, skip)?,
                label: tok.decode(&label_ids, skip)?,
            };
            // ComputeSimilarity always decodes without special tokens.
            let score = if skip {
                scorer.score(&row.predict, &row.label)
            } else {
                scorer.score(
                    &tok.decode(&generation.token_ids, true)?,
                    &tok.decode(&label_ids, true)?,
                )
            };
            rows.push(row);
            scores.push(score);
        }
        info!(
            batch = b + 1,
            of = n_batches,
            "predicted {} examples",
            rows.len()
        );
    }
    Ok(PredictSummary {
        mean: Similarity::mean(&scores),
        rows,
        scores,
        n_batches,
        runtime_s: start.elapsed().as_secs_f64(),
    })
}

/// Writes `generated_predictions.jsonl` (one JSON object per line, non-ASCII kept as is and
/// `", "`/`": "` separators, as LLaMA-Factory's `save_predictions` with Python's `json.dumps`), `predict_results.json` with
/// [`PredictSummary::metrics`], and merges those metrics into `all_results.json` (keys of an
/// existing file kept, as HF's `save_metrics(combined=True)`).
///
/// Errors: [`TrainError::Io`]/[`TrainError::Write`] naming the file.
pub fn save_predictions(dir: &Path, summary: &PredictSummary) -> Result<(), TrainError> {
    let path = dir.join(PREDICTIONS_FILE);
    let mut lines = Vec::new();
    for row in &summary.rows {
        let mut ser = serde_json::Serializer::with_formatter(&mut lines, PythonJson);
        row.serialize(&mut ser).map_err(|e| TrainError::Write {
            path: path.clone(),
            msg: e.to_string(),
        })?;
        lines
            .write_all(b"\n")
            .map_err(|e| TrainError::io(&path, e))?;
    }
    write_atomic(&path, &lines)?;
    crate::outputs::save_split_metrics(dir, "predict", &summary.metrics())
}

/// JSON with the separators of Python's `json.dumps` defaults: `", "` between members and
/// `": "` after keys (objects only; the rows hold no arrays).
struct PythonJson;

impl serde_json::ser::Formatter for PythonJson {
    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> std::io::Result<()> {
        writer.write_all(b": ")
    }
}
