//! `ferrotune estimate <config.yaml> [key=value ...]`: the memory a training run will need,
//! part by part, its FLOPs per token and its expected step time, without training and
//! without loading the weights (see `ferrotune_train::estimate` for every formula).
//!
//! The runtime part is measured on this process after it has loaded the tokenizer and run
//! the matmul benchmark (binary, libraries, thread pools, tokenizer), plus the dataset files
//! and the allocator slack. `--json` prints the same numbers as one JSON object.

use std::process::ExitCode;

use anyhow::bail;
use candle_core::Device;
use clap::Args;
use ferrotune_hub::gguf::GgufFile;
use ferrotune_hub::resolve::ModelSource;
use ferrotune_hub::tokenizer::TokenizerBundle;
use ferrotune_train::estimate::{
    current_rss_bytes, dataset_bytes, estimate_flops, estimate_memory, measure_matmul_gflops,
    plan_from_config, EstimateContext, MemoryEstimate, PlannedRun, TuningPlan,
    ALLOCATOR_SLACK_BYTES,
};
use serde_json::json;

use super::ConfigArgs;

/// Side of the square f32 matmul timed at startup.
const BENCH_N: usize = 1024;
/// Timed repetitions (the best one counts).
const BENCH_REPEATS: usize = 3;

/// Arguments of `ferrotune estimate`.
#[derive(Debug, Clone, Args)]
pub struct EstimateArgs {
    /// Print one JSON object instead of the table (bytes, FLOPs, seconds).
    #[arg(long)]
    pub json: bool,
    /// The config and its overrides.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Prints the estimate of the training run `args` describes.
///
/// # Errors
/// Config errors, a model that cannot be resolved or whose config/metadata cannot be read,
/// finetuning types the estimate does not model, tokenizer errors.
pub fn run(args: &EstimateArgs) -> anyhow::Result<ExitCode> {
    let Some(cfg) = args.config.load()? else {
        bail!("`ferrotune estimate` needs a config file or key=value arguments (model_name_or_path, finetuning_type, cutoff_len, per_device_train_batch_size, ...)");
    };
    let run = plan_from_config(&cfg)?;
    // What every training process holds besides tensors: load the tokenizer and run the
    // matmul kernels (thread pools, packing buffers), then read the resident size.
    let _tokenizer = match &run.source {
        ModelSource::Gguf(path) => TokenizerBundle::from_gguf(&GgufFile::open(path)?)?,
        ModelSource::HfDir(dir) => TokenizerBundle::from_hf_dir(dir)?,
    };
    let gflops = measure_matmul_gflops(&Device::Cpu, BENCH_N, BENCH_REPEATS)?;
    let process = current_rss_bytes().unwrap_or(0);
    let data = dataset_bytes(&cfg);
    let ctx = EstimateContext {
        model_file_bytes: run.model_file_bytes,
        runtime_bytes: process + data + ALLOCATOR_SLACK_BYTES,
    };
    let mem = estimate_memory(&run.dims, &run.plan, run.shape, run.kernels, ctx);
    let flops = estimate_flops(&run.dims, &run.plan, run.shape);
    let tokens_per_step =
        run.shape.tokens() as f64 * cfg.training.gradient_accumulation_steps as f64;
    let step_s = flops.total() * tokens_per_step / (gflops * 1e9);
    if args.json {
        let phases: Vec<_> = mem
            .phases
            .iter()
            .map(|p| json!({"name": p.name, "bytes": p.bytes()}))
            .collect();
        let value = json!({
            "parameters": run.dims.num_params(),
            "batch": run.shape.batch,
            "cutoff_len": run.shape.seq,
            "gradient_checkpointing": run.shape.checkpointing,
            "fused_kernels": {
                "rms_norm": run.kernels.rms_norm,
                "attention": run.kernels.attention,
                "swiglu": run.kernels.swiglu,
                "lora": run.kernels.lora,
                "qkv_rope": run.kernels.qkv_rope,
                "o_residual": run.kernels.o_residual,
                "down_residual": run.kernels.down_residual,
                "mlp_block": run.kernels.mlp_block,
            },
            "frozen_weights_bytes": mem.frozen_weights,
            "trainable_weights_bytes": mem.trainable_weights,
            "gradients_bytes": mem.gradients,
            "optimizer_states_bytes": mem.optimizer_states,
            "activations_checkpointed_bytes": mem.activations_checkpointed,
            "activations_full_graph_bytes": mem.activations_full_graph,
            "loss_workspace_checkpointed_bytes": mem.loss_checkpointed,
            "loss_workspace_full_graph_bytes": mem.loss_full_graph,
            "runtime_bytes": mem.runtime,
            "runtime_process_bytes": process,
            "runtime_dataset_bytes": data,
            "runtime_allocator_slack_bytes": ALLOCATOR_SLACK_BYTES,
            "phases": phases,
            "peak_phase": mem.phases.get(mem.peak_phase).map(|p| p.name),
            "total_bytes": mem.total,
            "flops_per_token": {
                "forward": flops.forward,
                "backward": flops.backward,
                "recompute": flops.recompute,
                "total": flops.total(),
                "six_n": flops.six_n,
            },
            "matmul_gflops": gflops,
            "tokens_per_step": tokens_per_step,
            "step_seconds": step_s,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print_table(&run, &mem, process, data);
        println!();
        println!(
            "compute per token: forward {:.3} GFLOP, backward {:.3}, recompute {:.3}; total {:.3} GFLOP (6·P = {:.3})",
            flops.forward / 1e9,
            flops.backward / 1e9,
            flops.recompute / 1e9,
            flops.total() / 1e9,
            flops.six_n / 1e9
        );
        println!(
            "measured f32 matmul ({BENCH_N}³, best of {BENCH_REPEATS}): {gflops:.1} GFLOP/s; a step of {tokens_per_step:.0} tokens needs at least {step_s:.2} s ({:.0} tokens/s at that rate)",
            tokens_per_step / step_s.max(1e-12)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// MiB of `bytes`.
fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 20) as f64
}

/// The human-readable table: the run, the parts at the peak, the phases.
fn print_table(run: &PlannedRun, mem: &MemoryEstimate, process: u64, data: u64) {
    let d = &run.dims;
    let what = match &run.plan {
        TuningPlan::Lora { rank, targets, .. } => {
            format!("lora r={rank} on {}", targets.join(","))
        }
        TuningPlan::Full => "full".to_string(),
    };
    println!(
        "model: {:.1} M parameters (L {}, C {}, I {}, H {}, K {}, D {}, V {}){}; {what}",
        d.num_params() as f64 / 1e6,
        d.num_layers,
        d.hidden_size,
        d.intermediate_size,
        d.num_heads,
        d.num_kv_heads,
        d.head_dim,
        d.vocab_size,
        if d.tie_word_embeddings {
            ", tied head"
        } else {
            ""
        }
    );
    println!(
        "micro-batch: {} × {} tokens (cutoff_len; rows shorter without packing), gradient checkpointing {}",
        run.shape.batch,
        run.shape.seq,
        if run.shape.checkpointing { "on" } else { "off" }
    );
    let k = run.kernels;
    println!(
        "fused kernels (FERROTUNE_FUSED_KERNELS): rms_norm {}, attention {}, swiglu {}, lora {}, \
         q/k/v+RoPE {}, o_proj+residual {}, down_proj+residual {}, MLP block {}",
        k.rms_norm,
        k.attention,
        k.swiglu,
        k.lora,
        k.qkv_rope,
        k.o_residual,
        k.down_residual,
        k.mlp_block
    );
    let (on, off) = if run.shape.checkpointing {
        (
            (mem.activations_checkpointed, mem.loss_checkpointed),
            (mem.activations_full_graph, mem.loss_full_graph),
        )
    } else {
        (
            (mem.activations_full_graph, mem.loss_full_graph),
            (mem.activations_checkpointed, mem.loss_checkpointed),
        )
    };
    let other = if run.shape.checkpointing {
        "without checkpointing"
    } else {
        "with checkpointing"
    };
    println!();
    println!(
        "memory by part, MiB (f32; activations and the loss workspace live at different moments):"
    );
    let row =
        |name: &str, bytes: u64, note: String| println!("  {name:<24} {:>10.1}{note}", mib(bytes));
    row("frozen weights", mem.frozen_weights, String::new());
    row("trainable weights", mem.trainable_weights, String::new());
    row("gradients", mem.gradients, String::new());
    row("AdamW states", mem.optimizer_states, String::new());
    row(
        "activations",
        on.0,
        format!("   ({other}: {:.1})", mib(off.0)),
    );
    row(
        "logits/loss workspace",
        on.1,
        format!("   ({other}: {:.1})", mib(off.1)),
    );
    row(
        "runtime",
        mem.runtime,
        format!(
            "   (process {:.1} + dataset files {:.1} + allocator slack {:.1})",
            mib(process),
            mib(data),
            mib(ALLOCATOR_SLACK_BYTES)
        ),
    );
    let peak = mem.phases.get(mem.peak_phase);
    row(
        "total (peak)",
        mem.total,
        format!("   during: {}", peak.map_or("?", |p| p.name)),
    );
    println!();
    println!("phases (each besides the runtime), MiB:");
    for (i, p) in mem.phases.iter().enumerate() {
        let mark = if i == mem.peak_phase { " ← peak" } else { "" };
        println!("  {:<52} {:>10.1}{mark}", p.name, mib(p.bytes()));
    }
}
