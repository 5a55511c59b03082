//! The five argument groups, one file each, named and ordered as in LLaMA-Factory's
//! `hparams/` package. Every field is a config key of the same name.

pub mod data;
pub mod finetuning;
pub mod generating;
pub mod model;
pub mod training;

pub use data::{DataArguments, MixStrategy};
pub use finetuning::{
    ApolloProj, ApolloProjType, ApolloScaleType, BadamMaskMode, BadamMode, BadamSwitchMode,
    FinetuningArguments, FinetuningType, GaloreProjType, PrefLoss, RewardModelType, Stage,
    SwanlabMode,
};
pub use generating::GeneratingArguments;
pub use model::{
    AttentionFunction, ExportDevice, ExportFormat, ExportQuantization, InferBackend, InferDtype,
    InitSpecialTokens, MixtureOfDepths, ModelArguments, QuantizationMethod, QuantizationType,
    RopeScaling, SglangLoraBackend,
};
pub use training::{HubStrategy, IntervalStrategy, SaveStrategy, SchedulerType, TrainingArguments};
