//! `ferrotune estimate`: the memory and compute a training run will need, from the model's
//! shape (`config.json` or GGUF metadata; no weight is loaded) and the tuning settings.
//!
//! Shapes: B `per_device_train_batch_size`, T `cutoff_len` (every row is taken as long as
//! `cutoff_len`: exact with `packing`, an upper bound otherwise), N = B·T tokens of a
//! micro-batch, C hidden, I MLP width, H query heads, K key/value heads, D head width,
//! V vocabulary, L decoder layers, P parameters, r `lora_rank`. All tensors are f32
//! (4 bytes): ferrotune dequantizes every GGUF tensor and converts bf16/f16 safetensors to
//! f32 when it loads a model for training ([`ferrotune_model::load_gguf`],
//! [`ferrotune_model::load_hf_dir`]). `bf16`/`fp16` mixed precision keeps that: it adds only
//! the rounded copies of one product's operands at a time (a few MiB for the demo model,
//! inside [`ALLOCATOR_SLACK_BYTES`]).
//!
//! [`plan_from_config`] reads a [`Config`] into a [`PlannedRun`] (dims, plan, run shape,
//! kernels); [`estimate_memory`] and [`estimate_flops`] take its parts. Every item is
//! re-exported here; each module documents its formulas and their sources:
//!
//! | module | what it holds |
//! |---|---|
//! | [`model_dims`] | [`ModelDims`] from `config.json` or GGUF metadata, a layer's [`Projection`]s, parameter counts |
//! | [`plan`] | what trains ([`TuningPlan`]), the batch shape ([`RunShape`]), the fused kernels a layer runs ([`FusedKernels`]) |
//! | [`activations`] | what one layer keeps for backward ([`LayerActivations`]), gradients in flight, constant-operand gradients: the one place to update when a kernel changes what it keeps |
//! | [`memory`] | weights, gradients and AdamW states (ZeRO), the phases of a run and its peak ([`estimate_memory`]) |
//! | [`runtime`] | the process's resident size, dataset files and allocator slack ([`ALLOCATOR_SLACK_BYTES`]) |
//! | [`flops`] | FLOPs per token (Kaplan, Hoffmann) and the measured matmul rate ([`estimate_flops`], [`measure_matmul_gflops`]) |

use ferrotune_config::args::FinetuningType;
use ferrotune_config::Config;
use ferrotune_hub::gguf::GgufFile;
use ferrotune_hub::resolve::ModelSource;
use ferrotune_model::ModelConfig;

use crate::error::TrainError;

pub mod activations;
pub mod flops;
pub mod memory;
pub mod model_dims;
pub mod plan;
pub mod runtime;

pub use activations::{
    constant_operand_grads, layer_activations, layer_backward_in_flight, LayerActivations,
};
pub use flops::{estimate_flops, measure_matmul_gflops, FlopsEstimate};
pub use memory::{estimate_memory, EstimateContext, MemoryEstimate, Phase};
pub use model_dims::{ModelDims, Projection};
pub use plan::{FusedKernels, RunShape, TuningPlan};
pub use runtime::{current_rss_bytes, dataset_bytes, ALLOCATOR_SLACK_BYTES};

use runtime::file_size;

/// A run as the estimate sees it: the model's shape and where it comes from, what trains,
/// and the batch shape.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRun {
    /// The model's shape.
    pub dims: ModelDims,
    /// What trains.
    pub plan: TuningPlan,
    /// B, T and checkpointing.
    pub shape: RunShape,
    /// The fused kernels training will run (`ferrotune_model::kernels::fused()`).
    pub kernels: FusedKernels,
    /// The resolved model (for the tokenizer).
    pub source: ModelSource,
    /// Bytes of the model file(s).
    pub model_file_bytes: u64,
}

/// The model shape, the tuning plan and the run shape of `cfg`, read from `config.json` or
/// the GGUF metadata of `model_name_or_path` (resolved as training does); no weight is read.
///
/// Errors: [`TrainError::Config`] without `model_name_or_path`, or for a `finetuning_type`
/// the estimate does not model (freeze, oft); resolution and metadata errors.
pub fn plan_from_config(cfg: &Config) -> Result<PlannedRun, TrainError> {
    let name = cfg.model.model_name_or_path.as_deref().ok_or_else(|| {
        TrainError::Config(
            "`model_name_or_path` is not set; hint: set it to a folder, a .gguf file or a hub id"
                .into(),
        )
    })?;
    let mut hub = ferrotune_hub::resolve::HubOptions::from_env();
    if let Some(dir) = &cfg.model.cache_dir {
        hub.cache_dir = Some(dir.into());
    }
    if let Some(token) = &cfg.model.hf_hub_token {
        hub.token = Some(token.clone());
    }
    let source = ferrotune_hub::resolve::resolve_model(name, &hub)?;
    let (dims, model_file_bytes) = match &source {
        ModelSource::Gguf(path) => {
            let file = GgufFile::open(path)?;
            (ModelDims::from_gguf(&file)?, file_size(path))
        }
        ModelSource::HfDir(dir) => {
            let config = ModelConfig::from_hf_config_file(&dir.join("config.json"))?;
            let files = ferrotune_model::load::safetensors_files(dir)?;
            (
                ModelDims::from_model_config(&config),
                files.iter().map(|f| file_size(f)).sum(),
            )
        }
    };
    let ft = &cfg.finetuning;
    let plan = match ft.finetuning_type {
        FinetuningType::Lora => TuningPlan::Lora {
            rank: ft.lora_rank as usize,
            targets: ft.lora_target.clone(),
            dropout: ft.lora_dropout,
            dora: ft.use_dora,
        },
        FinetuningType::Full => TuningPlan::Full,
        other => {
            return Err(TrainError::Config(format!(
                "`ferrotune estimate` models `finetuning_type: lora` and `full`, not `{other}`; hint: estimate the lora or full run instead"
            )))
        }
    };
    let shape = RunShape {
        batch: cfg.training.per_device_train_batch_size,
        seq: cfg.data.cutoff_len,
        checkpointing: !cfg.model.disable_gradient_checkpointing
            || cfg.training.gradient_checkpointing,
    };
    let kernels = FusedKernels::for_model(&dims, &plan, ferrotune_model::kernels::fused());
    Ok(PlannedRun {
        dims,
        plan,
        shape,
        kernels,
        source,
        model_file_bytes,
    })
}
