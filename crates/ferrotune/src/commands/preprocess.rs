//! `ferrotune preprocess <config.yaml> [key=value ...] [--dump FILE.jsonl]`: the data pipeline
//! alone, as LLaMA-Factory runs it before training (tokenizer → template → datasets → encoded
//! examples), saving to `tokenized_path` when set.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use ferrotune_config::Config;
use ferrotune_data::pipeline::{
    prepare_dataset, prepare_tokenizer_and_template, PrepareOptions, Progress,
};
use ferrotune_hub::gguf::GgufFile;
use ferrotune_hub::resolve::{resolve_model, HubOptions, ModelSource};
use ferrotune_hub::tokenizer::TokenizerBundle;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::ConfigArgs;

/// Arguments of `ferrotune preprocess`.
#[derive(Debug, Clone, Args)]
pub struct PreprocessArgs {
    /// Config file and key=value overrides.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Also write every training example as one JSON line (LLaMA-Factory's column names).
    #[arg(long, value_name = "FILE.jsonl")]
    pub dump: Option<PathBuf>,
}

/// Runs the data pipeline of the config and reports counts and throughput.
///
/// # Errors
/// Config, model resolution, tokenizer, dataset and encoding errors; I/O errors of `--dump`.
pub fn run(args: &PreprocessArgs) -> anyhow::Result<ExitCode> {
    let Some(cfg) = args.config.load()? else {
        bail!("`ferrotune preprocess` needs a config file or key=value arguments (model_name_or_path, dataset, template, ...)");
    };
    let start = Instant::now();
    let tok = load_tokenizer(&cfg)?;
    let (tok, template) = prepare_tokenizer_and_template(&cfg, tok)?;
    let dataset_dir = Path::new(&cfg.data.dataset_dir);

    let bar = Bar::new();
    let opts = PrepareOptions {
        progress: Some(&bar),
        threads: 0,
    };
    let encode_start = Instant::now();
    let splits = prepare_dataset(&cfg, &tok, &template, dataset_dir, &opts)?;
    let encode_secs = encode_start.elapsed().as_secs_f64();

    if let Some(example) = splits.train.describe_first(&tok)? {
        eprintln!("training example:\n{example}");
    }
    if let Some(path) = &args.dump {
        let file =
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut out = BufWriter::new(file);
        splits
            .train
            .write_jsonl(&mut out)
            .and_then(|()| out.flush())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let total = splits.train.len() + splits.eval.as_ref().map_or(0, |e| e.len());
    println!(
        "{} train examples ({}), {} eval examples",
        splits.train.len(),
        splits.train.kind(),
        splits.eval.as_ref().map_or(0, |e| e.len())
    );
    println!(
        "data pipeline: {encode_secs:.3} s ({:.0} examples/s); total {:.3} s",
        total as f64 / encode_secs.max(1e-9),
        start.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// The tokenizer of `model_name_or_path`: a GGUF file's metadata or an HF folder's files.
fn load_tokenizer(cfg: &Config) -> anyhow::Result<TokenizerBundle> {
    let Some(name) = cfg.model.model_name_or_path.as_deref() else {
        bail!("`model_name_or_path` is not set; hint: the tokenizer comes from the model, set it to a folder, a .gguf file or a hub id");
    };
    let mut hub = HubOptions::from_env();
    if let Some(dir) = &cfg.model.cache_dir {
        hub.cache_dir = Some(PathBuf::from(dir));
    }
    if let Some(token) = &cfg.model.hf_hub_token {
        hub.token = Some(token.clone());
    }
    Ok(match resolve_model(name, &hub)? {
        ModelSource::Gguf(path) => TokenizerBundle::from_gguf(&GgufFile::open(&path)?)?,
        ModelSource::HfDir(dir) => TokenizerBundle::from_hf_dir(&dir)?,
    })
}

/// An indicatif bar on stderr, hidden when stderr is not a terminal.
struct Bar(ProgressBar);

impl Bar {
    fn new() -> Bar {
        let bar = ProgressBar::hidden();
        if std::io::stderr().is_terminal() {
            bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        let style = ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style.progress_chars("=> "));
        Bar(bar)
    }
}

impl Progress for Bar {
    fn start(&self, split: &str, total: usize) {
        self.0.reset();
        self.0.set_length(total as u64);
        self.0
            .set_message(format!("Running tokenizer on {split} dataset"));
    }

    fn advance(&self, n: usize) {
        self.0.inc(n as u64);
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}
