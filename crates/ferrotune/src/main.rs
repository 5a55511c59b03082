//! The `ferrotune` command line, named like LLaMA-Factory's `llamafactory-cli`:
//! `ferrotune <command> [config.yaml] [key=value ...]`.

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use commands::chat::ChatArgs;
use commands::estimate::EstimateArgs;
use commands::preprocess::PreprocessArgs;
use commands::ConfigArgs;

/// Fine-tune and run LLMs with LLaMA-Factory configs, in Rust.
#[derive(Debug, Parser)]
#[command(name = "ferrotune", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands; each config-taking command reads `[config.yaml] [key=value ...]`.
#[derive(Debug, Subcommand)]
enum Command {
    /// Train a model (stage pt, sft, rm, ppo, dpo or kto).
    Train(ConfigArgs),
    /// Chat with a model in the terminal.
    Chat(ChatArgs),
    /// Serve an OpenAI-style API.
    Api(ConfigArgs),
    /// Launch the web UI.
    Webui(ConfigArgs),
    /// Merge adapters and export a model.
    Export(ConfigArgs),
    /// Evaluate a model on a benchmark (MMLU, CMMLU, C-Eval).
    Eval(ConfigArgs),
    /// Tokenize datasets (saved to `tokenized_path` when set; `--dump FILE.jsonl` writes them).
    Preprocess(PreprocessArgs),
    /// Estimate the memory, FLOPs and step time a training run needs (`--json` for JSON).
    Estimate(EstimateArgs),
    /// Print the environment: versions, CPU, devices.
    Env,
    /// Print the ferrotune version.
    Version,
}

fn main() -> ExitCode {
    // oneDNN's OpenMP threads (kernels::blas) spin between products by default and then
    // compete for the cores with the rayon pool: passive waiting measured 122 against 107
    // tokens/s on the LoRA benchmark (2 cores). Set while the process has one thread.
    if std::env::var_os("OMP_WAIT_POLICY").is_none() {
        std::env::set_var("OMP_WAIT_POLICY", "passive");
    }
    init_tracing();
    let cli = Cli::parse();
    keep_freed_memory(matches!(cli.command, Command::Train(_)));
    match run(cli.command) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", error_chain(&err));
            ExitCode::FAILURE
        }
    }
}

/// Tells glibc's allocator to keep freed memory for reuse instead of handing it back to the
/// kernel. Training frees and allocates the same activation-sized buffers (1–32 MiB) every
/// layer; by default glibc serves the larger ones with fresh `mmap`s and trims the heap
/// top, so each one costs page faults, zeroed pages and TLB shootdowns (a fifth of a step's
/// time in `perf`). `M_MMAP_THRESHOLD` at its ceiling (32 MiB on 64-bit) keeps buffers below
/// that size on the heap and `M_TRIM_THRESHOLD` at 2 GiB (`i32::MAX`) stops trimming. In
/// one-off A/B runs of `ferrotune train` on tools/bench_train.py's lora_fp32_gc YAML (4 × 512,
/// load 1.1–1.4; not a committed command) this gave 123–128 against 108–109 tokens/s with the
/// same peak RSS.
///
/// For `train` (`whole_heap`), `M_MMAP_MAX` = 0 also puts allocations of 32 MiB and more on
/// the heap: full fine-tuning allocates the gradients, among them the `[V, C]` embedding
/// gradient (113 MB for the demo model), every step, and clearing their fresh pages took about
/// a tenth of a step (`clear_page_erms` in `perf`). This holds for the main thread's arena;
/// glibc still maps an allocation larger than a thread arena's 64 MiB heap made on another
/// thread (rayon, OpenMP). One-off alternating runs of the full_fp32 YAML
/// (4 × 512, not a committed command): 145–167 against 141–151 tokens/s, peak RSS 4.99
/// against 5.03 GB; LoRA unchanged. Other commands keep `mmap` for large buffers, so that a
/// long-lived server hands a freed model-sized buffer back. Elsewhere than glibc, nothing is
/// changed.
fn keep_freed_memory(whole_heap: bool) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets allocator parameters; called before any other thread
        // exists. A rejected value leaves glibc's default in place (nothing else changes).
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
            if whole_heap {
                libc::mallopt(libc::M_MMAP_MAX, 0);
            }
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = whole_heap;
}

/// The error and its causes joined by ": ", skipping a cause whose text the message before
/// it already contains (library errors often print their source themselves).
fn error_chain(err: &anyhow::Error) -> String {
    let mut out = err.to_string();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}

/// Dispatches a command; commands not built yet validate their config and exit with code 2.
fn run(command: Command) -> anyhow::Result<ExitCode> {
    use commands::pending::not_built;
    match command {
        Command::Train(args) => commands::train::run(&args),
        Command::Chat(args) => commands::chat::run(&args),
        Command::Api(args) => commands::api::run(&args),
        Command::Webui(args) => not_built("webui", "web UI", &args),
        Command::Export(args) => commands::export::run(&args),
        Command::Eval(args) => not_built("eval", "benchmark evaluation", &args),
        Command::Preprocess(args) => commands::preprocess::run(&args),
        Command::Estimate(args) => commands::estimate::run(&args),
        Command::Env => commands::env::run(),
        Command::Version => commands::version::run(),
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`; an invalid filter falls back to it).
/// Colors only when stderr is a terminal.
fn init_tracing() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
